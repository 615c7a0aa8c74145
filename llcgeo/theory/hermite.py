"""Hermite expansions of activations and the mean-field correlation map of a normalized MLP.

Convention: ``h_k = He_k / sqrt(k!)`` with ``He_k`` the probabilists' Hermite polynomials, an
orthonormal basis under ``X ~ N(0, 1)``; the coefficients of an activation are
``c_k = E[act(X) h_k(X)]``, so ``act = sum_k c_k h_k`` and, by Mehler's formula, for ``(U, V)``
standard Gaussians with correlation ``rho``, ``E[act(U) act(V)] = sum_k c_k**2 rho**k``.
Activations are used as they are (not centred, not rescaled): a LayerNorm placed after the
activation removes ``c_0`` and the scale itself (it subtracts the mean over units and divides by
their spread), so the centred, normalized activation of Joudaki, Daneshmand & Bach (2023) is what
a network ``x <- LN(act(W x))`` sees whatever the raw activation.

Mean-field correlation map (infinite width, Gaussian weights, unit-variance pre-activations)::

    LN(act(W x)):                 rho -> sum_{k>=1} c_k**2 rho**k / sum_{k>=1} c_k**2  (centred)
    act(LN(W x)) and act(W x):    rho -> sum_{k>=0} c_k**2 rho**k / sum_{k>=0} c_k**2  (raw)

(for ``act(W x)`` the weight variance is ``1 / (width E[act(X)**2])`` so that the
pre-activations keep unit variance). The centred map has slope ``beta0 = c_1**2 / sum_{k>=1}
c_k**2`` at ``rho = 0``: the non-linearity strength; correlations near 0 shrink by ``beta0`` per
layer and the isometry gap, quadratic in them, by ``beta0**2``.

>>> relu_hermite_coefficient(2)
1/(2*sqrt(pi))
>>> nonlinearity_strength("relu")
pi/(2*(-1 + pi))
>>> round(correlation_map("relu", 0.0, centred=False), 6)  # 1/pi: ReLU outputs never decorrelate
0.31831
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import sympy as sp
from scipy import integrate, special

from llcgeo.errors import SpecError
from llcgeo.limits import MAX_DEPTH
from llcgeo.validate import between, integer

ACTIVATIONS = ("relu", "tanh", "sin", "gelu", "linear")
EXACT_ACTIVATIONS = ("relu", "linear")
SERIES_TERMS = 96  # Hermite terms kept for activations without a closed-form kernel
QUADRATURE_NODES = 240


def check_activation(name: str) -> str:
    """``name`` if it is a known activation, else a :class:`SpecError` naming the choices."""
    if name not in ACTIVATIONS:
        raise SpecError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name


def _gelu(x):
    return x * special.ndtr(x)


def _gelu_slope(x):
    return special.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


_NUMPY = {
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "sin": (np.sin, np.cos),
    "gelu": (_gelu, _gelu_slope),
    "linear": (lambda x: x, np.ones_like),
}


def activation_function(name: str):
    """``(act, act')`` as numpy functions of an array."""
    return _NUMPY[check_activation(name)]


@lru_cache(maxsize=512, typed=True)
def relu_hermite_coefficient(k: int) -> sp.Expr:
    """``c_k`` of ``max(x, 0)``, exactly.

    ``c_0 = 1/sqrt(2 pi)``, ``c_1 = 1/2``; for ``k >= 2``, integrating ``x He_k(x) phi(x)`` by
    parts twice gives ``E[relu(X) He_k(X)] = He_{k-2}(0) / sqrt(2 pi)``, which is
    ``(-1)**(k/2 - 1) (k-3)!! / sqrt(2 pi)`` for even ``k`` and 0 for odd ``k``.

    >>> [relu_hermite_coefficient(k) for k in (1, 3, 5)]
    [1/2, 0, 0]
    """
    integer(k, "a Hermite index", 0)
    if k == 1:
        return sp.Rational(1, 2)
    if k % 2:
        return sp.Integer(0)
    he_at_zero = (-1) ** ((k - 2) // 2) * sp.factorial2(k - 3) if k >= 2 else 1
    return sp.simplify(he_at_zero / sp.sqrt(2 * sp.pi) / sp.sqrt(sp.factorial(k)))


@lru_cache(maxsize=4)
def _gauss_hermite(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return x, w / math.sqrt(2 * math.pi)


def gaussian_expectation(fn, variance: float = 1.0) -> float:
    """``E[fn(sqrt(variance) X)]``, ``X ~ N(0, 1)``, by Gauss-Hermite quadrature (smooth ``fn``).

    >>> round(gaussian_expectation(lambda x: x**4, 2.0), 10)
    12.0
    """
    x, w = _gauss_hermite(QUADRATURE_NODES)
    return float(np.dot(w, fn(math.sqrt(variance) * x)))


def _orthonormal_hermite(x: np.ndarray, count: int) -> np.ndarray:
    """Rows ``h_0(x) .. h_{count-1}(x)`` by the stable recurrence
    ``h_{k+1} = (x h_k - sqrt(k) h_{k-1}) / sqrt(k+1)``."""
    out = np.empty((count, x.size))
    out[0] = 1.0
    if count > 1:
        out[1] = x
    for k in range(1, count - 1):
        out[k + 1] = (x * out[k] - math.sqrt(k) * out[k - 1]) / math.sqrt(k + 1)
    return out


@lru_cache(maxsize=16)
def _numeric_coefficients(name: str, count: int) -> tuple[float, ...]:
    x, w = _gauss_hermite(QUADRATURE_NODES)
    act = _NUMPY[name][0]
    return tuple(float(c) for c in _orthonormal_hermite(x, count) @ (w * act(x)))


def hermite_coefficients(activation: str, count: int = 8) -> tuple:
    """``(c_0, ..., c_{count-1})``: exact sympy numbers for relu and linear, floats from
    Gauss-Hermite quadrature otherwise (accurate to ~1e-12 for the smooth activations here).

    >>> hermite_coefficients("relu", 3)
    (sqrt(2)/(2*sqrt(pi)), 1/2, 1/(2*sqrt(pi)))
    >>> round(hermite_coefficients("sin", 2)[1], 12)  # e**(-1/2) exactly
    0.606530659713
    """
    check_activation(activation)
    integer(count, "count", 1)
    if activation == "relu":
        return tuple(relu_hermite_coefficient(k) for k in range(count))
    if activation == "linear":
        return tuple(sp.Integer(1 if k == 1 else 0) for k in range(count))
    return _numeric_coefficients(activation, count)


@lru_cache(maxsize=8)
def activation_second_moment(activation: str):
    """``E[act(X)**2] = sum_k c_k**2``: exact for relu (1/2), linear (1) and sin
    (``(1 - e**-2)/2``); adaptive quadrature for the others.

    >>> activation_second_moment("sin")
    1/2 - exp(-2)/2
    """
    check_activation(activation)
    exact = {"relu": sp.Rational(1, 2), "linear": sp.Integer(1), "sin": (1 - sp.exp(-2)) / 2}
    if activation in exact:
        return exact[activation]
    act = _NUMPY[activation][0]
    value, _ = integrate.quad(lambda t: act(t) ** 2 * math.exp(-t * t / 2), -40, 40, limit=200)
    return value / math.sqrt(2 * math.pi)


def nonlinearity_strength(activation: str):
    """``beta0 = c_1**2 / sum_{k>=1} c_k**2``, the linear share of the centred activation
    (1 for a linear activation, smaller the more non-linear); exact for relu and linear.

    >>> round(float(nonlinearity_strength("tanh")), 4)
    0.9305
    """
    coefficients = hermite_coefficients(activation, 2)
    centred = activation_second_moment(activation) - coefficients[0] ** 2
    if activation in EXACT_ACTIVATIONS:
        return sp.simplify(coefficients[1] ** 2 / centred)
    return float(coefficients[1] ** 2 / float(centred))


def _relu_kernel(rho: float) -> float:
    """``E[relu(U) relu(V)]`` (the degree-1 arc-cosine kernel, Cho & Saul 2009)."""
    rho = min(1.0, max(-1.0, rho))
    return (math.sqrt(1 - rho * rho) + (math.pi - math.acos(rho)) * rho) / (2 * math.pi)


def correlation_map(activation: str, rho: float, centred: bool) -> float:
    """One layer of the mean-field correlation map (see the module docstring).

    ``centred=True`` drops ``c_0`` (a LayerNorm after the activation), ``False`` keeps it.
    ReLU uses the closed-form arc-cosine kernel; smooth activations sum ``SERIES_TERMS`` Hermite
    terms, whose neglected tail is below ``1e-12`` for tanh, sin and GELU.

    >>> round(correlation_map("relu", 0.5, centred=True), 6)
    0.426422
    """
    check_activation(activation)
    between(rho, "a correlation", -1, 1)
    if activation == "linear":
        return float(rho)
    total = float(activation_second_moment(activation))
    if activation == "relu":
        offset = 1 / (2 * math.pi) if centred else 0.0
        return (_relu_kernel(rho) - offset) / (total - offset)
    c = np.asarray(_numeric_coefficients(activation, SERIES_TERMS)) ** 2
    if centred:
        total, c = total - c[0], np.concatenate(([0.0], c[1:]))
    return float(np.polynomial.polynomial.polyval(rho, c) / total)


def mean_field_correlations(
    activation: str, rho0: float, depth: int, centred: bool
) -> tuple[float, ...]:
    """``(rho_0, rho_1, ..., rho_depth)`` with ``rho_{l+1} = correlation_map(rho_l)``.

    >>> [round(r, 4) for r in mean_field_correlations("relu", 0.5, 2, centred=True)]
    [0.5, 0.4264, 0.3559]
    """
    integer(depth, "depth", 1, MAX_DEPTH)
    out = [float(rho0)]
    for _ in range(depth):
        out.append(correlation_map(activation, out[-1], centred))
    return tuple(out)


def equicorrelated_isometry_gap(rho: float, n: int) -> float:
    """``-log I(G)`` for ``G = (1 - rho) I_n + rho 1 1^T``, ``I(G) = det(G)**(1/n) / (tr G / n)``:
    ``-[(n-1) log(1 - rho) + log(1 + (n-1) rho)] / n``, about ``(n-1) rho**2 / 2`` for small rho.

    >>> round(equicorrelated_isometry_gap(0.5, 2), 6)  # -log(sqrt(0.5 * 1.5))
    0.143841
    """
    integer(n, "the batch size", 2)
    if not -1 / (n - 1) < rho < 1:
        return math.inf
    return -((n - 1) * math.log1p(-rho) + math.log1p((n - 1) * rho)) / n
