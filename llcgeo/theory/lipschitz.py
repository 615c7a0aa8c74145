"""Layer-wise product bounds on the Lipschitz constants of a deep MLP, and the growth they predict.

For ``a_l = W_l x_{l-1}``, ``x_l = act(N_l(a_l))``, ``f(x_0) = x_L`` (see
:mod:`llcgeo.numerics.measurements.lipschitz`), the chain rule and ``||A B|| <= ||A|| ||B||``
give, at any input, with ``s_act = sup |act'|`` and ``n_l`` the normalization's local
Lipschitz factor at ``a_l`` (1 without one; ``max|g| / sqrt(var(a_l) + eps)`` for LayerNorm,
``max|g| / sqrt(mean(a_l**2) + eps)`` for RMSNorm, since their Jacobians are
``diag(g) / sigma`` times a contraction)::

    || d f / d x_0 ||   <=  prod_l s_act n_l ||W_l||                               (input)
    || d f / d theta || <=  sqrt(sum_l b_l**2),
                            b_l = s_act n_l |x_{l-1}| prod_{k > l} s_act n_k ||W_k||  (parameters)

(``d f / d W_l [E] = J_{>l} D_l J_N E x_{l-1}`` and Cauchy-Schwarz over layers). Than (2025,
arXiv 2511.00958) reads these products: without normalization every factor is
``s_act ||W_l||``, which for ``W`` with i.i.d. ``N(0, s**2/width)`` entries is about ``2 s``
(the Bai-Yin edge of a square Gaussian matrix), so the bound grows like ``(2 s s_act)**L``; a
normalization divides each factor by the spread of ``a_l``, about ``s sqrt(m)`` with
``m = E[x_{l-1}**2]``, which removes the weight scale from the rate and reduces the constant by
``(s sqrt(m))**L``: exponentially in the number of normalizations.

Mean field (infinite width) gives the typical growth of a tangent vector per layer,
``chi_l = s**2 E[act'(a)**2]`` with ``a ~ N(0, q_l)`` without normalization
(``q_{l+1} = s**2 E[act(a)**2]``, ``q_1 = s**2 input_variance``), and
``E[act'(z)**2] / m_{l-1}`` with ``z ~ N(0, 1)`` after a normalization
(``m_0 = input_variance``, ``m_l = E[act(z)**2]``).

>>> import numpy as np
>>> log_input_bound(np.log([[2.0, 2.0]]), np.zeros((1, 2)), "relu")
array([[0.69314718, 1.38629436]])
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from llcgeo.errors import SpecError
from llcgeo.limits import MAX_DEPTH
from llcgeo.theory.hermite import activation_function, check_activation, gaussian_expectation
from llcgeo.validate import integer, positive

NORMALIZATIONS = ("none", "layernorm", "rmsnorm")


def activation_lipschitz(activation: str) -> float:
    """``sup |act'|``: 1 for relu, tanh, sin and linear; for GELU ``x Phi(x)`` the slope
    ``Phi(x) + x phi(x)`` peaks at ``x = sqrt(2)``: ``Phi(sqrt 2) + exp(-1)/sqrt(pi)``.

    >>> round(activation_lipschitz("gelu"), 6)
    1.128904
    """
    check_activation(activation)
    if activation == "gelu":
        return float(special.ndtr(math.sqrt(2)) + math.exp(-1) / math.sqrt(math.pi))
    return 1.0


def _layers(log_weight_norms, log_norm_factors) -> tuple[np.ndarray, np.ndarray]:
    w, n = np.asarray(log_weight_norms, float), np.asarray(log_norm_factors, float)
    if w.shape[-1] != n.shape[-1] or w.shape[-1] < 1:
        raise SpecError(
            f"weight norms ({w.shape[-1]} layers) and normalization factors "
            f"({n.shape[-1]} layers) must cover the same, non-zero number of layers"
        )
    return w, n


def log_input_bound(log_weight_norms, log_norm_factors, activation: str) -> np.ndarray:
    """``log prod_{l <= L} s_act n_l ||W_l||`` for every depth ``L`` (last axis = layers;
    leading axes broadcast, e.g. ``(networks, 1, layers)`` against ``(networks, points,
    layers)``).
    """
    w, n = _layers(log_weight_norms, log_norm_factors)
    return np.cumsum(w + n + math.log(activation_lipschitz(activation)), axis=-1)


def log_parameter_bound(
    log_weight_norms, log_norm_factors, log_input_norms, activation: str, depth: int
) -> np.ndarray:
    """``log sqrt(sum_{l <= depth} b_l**2)`` (see the module docstring), computed in logs.

    >>> z = np.zeros((1, 2))
    >>> round(float(log_parameter_bound(z, z, z, "relu", 2)[0]), 6)  # sqrt(1 + 1)
    0.346574
    """
    w, n = _layers(log_weight_norms, log_norm_factors)
    if not 1 <= depth <= w.shape[-1]:
        raise SpecError(f"depth must lie in 1..{w.shape[-1]}, got {depth}")
    x = np.asarray(log_input_norms, float)[..., :depth]
    per_layer = (w + n + math.log(activation_lipschitz(activation)))[..., :depth]
    after = np.cumsum(per_layer[..., ::-1], axis=-1)[..., ::-1] - per_layer  # sum over k > l
    log_b = n[..., :depth] + math.log(activation_lipschitz(activation)) + x + after
    return 0.5 * special.logsumexp(2 * log_b, axis=-1)


def _moments(activation: str, variance: float) -> tuple[float, float]:
    """``(E[act(a)**2], E[act'(a)**2])`` for ``a ~ N(0, variance)``; exact for relu/linear."""
    if activation == "relu":
        return variance / 2, 0.5
    if activation == "linear":
        return variance, 1.0
    act, slope = activation_function(activation)
    return (
        gaussian_expectation(lambda t: act(t) ** 2, variance),
        gaussian_expectation(lambda t: slope(t) ** 2, variance),
    )


def mean_field_log_growth(
    activation: str, normalization: str, weight_scale: float, input_variance: float, depth: int
) -> tuple[float, ...]:
    """``0.5 log chi_l`` for ``l = 1..depth``: the mean-field log-growth per layer of a tangent
    vector's norm (see the module docstring).

    >>> [round(g, 6) for g in mean_field_log_growth("relu", "none", 2.0, 1.0, 2)]
    [0.346574, 0.346574]
    >>> [round(g, 6) for g in mean_field_log_growth("relu", "layernorm", 2.0, 4.0, 2)]
    [-1.039721, 0.0]
    """
    check_activation(activation)
    _check_normalization(normalization)
    integer(depth, "depth", 1, MAX_DEPTH)
    positive(weight_scale, "weight_scale")
    positive(input_variance, "input_variance")
    out, q, m = [], weight_scale**2 * input_variance, input_variance
    for _ in range(depth):
        if normalization == "none":
            second, slope = _moments(activation, q)
            out.append(0.5 * math.log(weight_scale**2 * slope))
            q = weight_scale**2 * second
        else:
            second, slope = _moments(activation, 1.0)
            out.append(0.5 * math.log(slope / m))
            m = second
    return tuple(out)


def bound_log_growth(activation: str, normalization: str, weight_scale: float) -> float:
    """The per-layer log-growth of the input bound that Gaussian weights predict at large
    width: ``log(2 s s_act)`` without normalization, ``log(2 s_act / sqrt(m))`` with one
    (``m = E[act(z)**2]``, ``z ~ N(0, 1)``: the weight scale cancels).

    >>> [round(bound_log_growth("relu", norm, 2.0), 6) for norm in ("none", "layernorm")]
    [1.386294, 1.039721]
    """
    _check_normalization(normalization)
    lip = activation_lipschitz(activation)
    if normalization == "none":
        return math.log(2 * weight_scale * lip)
    second, _ = _moments(activation, 1.0)
    return math.log(2 * lip / math.sqrt(second))


def _check_normalization(name: str) -> None:
    if name not in NORMALIZATIONS:
        raise SpecError(f"normalization must be one of {NORMALIZATIONS}, got {name!r}")
