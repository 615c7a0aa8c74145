"""The image of LayerNorm as a hyperellipsoid (Riechers 2024, arXiv 2405.04134), exactly.

``LN(a) = g * (a - mean(a)) / sqrt(var(a) + eps) + b`` in ``R^N`` (population variance). With
``z = (a - mean(a)) / sqrt(var(a) + eps)``: ``1^T z = 0`` and ``|z|**2 = N var/(var + eps) < N``.
Writing ``y - b = G z``, ``G = diag(g)``, these become

* the hyperplane ``alpha^T (y - b) = 0``, ``alpha = (1/g_1, ..., 1/g_N)``, and
* the solid hyperellipsoid ``(y - b)^T G^-2 (y - b) < N``;

their intersection is an ``(N-1)``-dimensional hyperellipsoid centred at ``b``. Its principal
axes are the eigenvectors ``u_k`` of ``P G^-2 P`` (``P = I - alpha_hat alpha_hat^T``) with
non-zero eigenvalue ``lambda_k``, and its semi-axes are ``sqrt(N / lambda_k)`` (the boundary
point ``t u_k`` has ``t**2 u_k^T G^-2 u_k = t**2 lambda_k = N``). Each ``lambda_k`` is a root of
the secular equation ``sum_i alpha_hat_i**2 / (g_i**-2 - lambda) = 0``, and
``u_k`` is proportional to ``(G^-2 - lambda_k)^-1 alpha`` when ``lambda_k`` is no ``g_i**-2``.

For Gaussian inputs ``a ~ N(0, s**2 I)`` the direction of ``z`` is uniform and independent of
``r**2 = |z|**2 / N = var / (var + eps)``, with ``N var / s**2 ~ chi2(N-1)``; so the coordinate of
``y - b`` along axis ``k`` is ``semi_axis_k * r * w_k`` with ``w`` uniform on the unit sphere of
``R^(N-1)``, and ``E[1 - r**2] = E[eps / (var + eps)]`` says how close typical outputs lie to the
surface.

>>> e = layernorm_ellipsoid((1, 2, 3))
>>> e.eigenvalues, e.semi_axes
((1/7, 3/7), (sqrt(21), sqrt(7)))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp
from scipy import integrate

from llcgeo.errors import DerivationError, SpecError
from llcgeo.manifolds import dimension, exact
from llcgeo.validate import entries, non_negative, positive


@dataclass(frozen=True)
class LayerNormEllipsoid:
    """The hyperellipsoid image of LayerNorm with gain ``gain`` and bias ``bias``.

    ``normal`` is ``alpha``; ``eigenvalues`` ascend; ``axes[k]`` is the unit vector of
    ``eigenvalues[k]`` and ``semi_axes[k] = sqrt(N / eigenvalues[k])`` its half-length.
    """

    gain: tuple[sp.Expr, ...]
    bias: tuple[sp.Expr, ...]
    normal: tuple[sp.Expr, ...]
    eigenvalues: tuple[sp.Expr, ...]
    axes: tuple[tuple[sp.Expr, ...], ...]
    semi_axes: tuple[sp.Expr, ...]

    @property
    def dimension(self) -> int:
        return len(self.gain)

    def numeric(self) -> dict[str, list]:
        """The same quantities as floats (for samplers and plots)."""

        def floats(values):
            return [float(v) for v in values]

        return {
            "gain": floats(self.gain),
            "bias": floats(self.bias),
            "normal": floats(self.normal),
            "eigenvalues": floats(self.eigenvalues),
            "axes": [floats(u) for u in self.axes],
            "semi_axes": floats(self.semi_axes),
        }


def _entry(value, what: str) -> sp.Expr:
    """A sympy number or expression; plain numbers and text are read exactly as rationals
    (text is never handed to sympy's parser)."""
    if isinstance(value, sp.Basic):
        return sp.sympify(value)
    return sp.Rational(exact(value, what))


def _vector(values, what: str, length: int | None = None) -> tuple[sp.Expr, ...]:
    return entries(values, what, _entry, length, against="the gain's length")


def _check_gain(gain: tuple[sp.Expr, ...], bias: tuple[sp.Expr, ...]) -> None:
    dimension(len(gain), "len(gain)", minimum=2)
    for i, g in enumerate(gain):
        if g.is_zero:
            raise SpecError(
                f"gain[{i}] = 0: coordinate {i} of LN(a) is then the constant bias[{i}] = "
                f"{bias[i]}, so the image lies in the subspace {{y_{i} = {bias[i]}}} and is the "
                f"LayerNorm image of the other coordinates there; the hyperellipsoid description "
                f"needs every gain non-zero (drop coordinate {i} to describe the rest)"
            )
        if g.is_real is False:
            raise SpecError(f"gain[{i}] must be real, got {g}")


def layernorm_ellipsoid(gain, bias=None) -> LayerNormEllipsoid:
    """The hyperellipsoid that the image of LayerNorm with this gain and bias spans.

    ``gain`` (length ``N >= 2``) holds numbers (read exactly) or sympy expressions (e.g.
    positive symbols); ``bias`` defaults to 0. Eigenvalues come out as rationals, radicals or
    exact ``CRootOf`` numbers. A zero gain raises :class:`SpecError` saying what the image
    becomes; symbolic gains whose secular equation has degree above 2 raise
    :class:`DerivationError`.

    >>> g1, g2 = sp.symbols("g1 g2", positive=True)
    >>> layernorm_ellipsoid((g1, g2)).semi_axes
    (sqrt(g1**2 + g2**2),)
    """
    gain = _vector(gain, "gain")
    bias = _vector(bias, "bias", len(gain)) if bias is not None else (sp.Integer(0),) * len(gain)
    _check_gain(gain, bias)
    alpha = tuple(1 / g for g in gain)
    pairs = sorted(_principal_axes(alpha), key=lambda pair: _order_key(pair[0]))
    n = len(gain)
    return LayerNormEllipsoid(
        gain=gain,
        bias=bias,
        normal=alpha,
        eigenvalues=tuple(lam for lam, _ in pairs),
        axes=tuple(u for _, u in pairs),
        semi_axes=tuple(_semi_axis(n, lam) for lam, _ in pairs),
    )


def _principal_axes(alpha: tuple[sp.Expr, ...]) -> list[tuple[sp.Expr, tuple[sp.Expr, ...]]]:
    """Eigenpairs of ``P D P`` on ``alpha``'s complement, ``D = diag(alpha**2) = G^-2``.

    A rank-one-projected diagonal matrix: a value ``delta`` repeated ``m`` times in ``D`` is an
    eigenvalue ``m - 1`` times (vectors on those coordinates orthogonal to ``alpha``); the
    others solve the secular equation over the distinct values (see the module docstring).
    """
    groups: list[tuple[sp.Expr, list[int]]] = []
    for i, a in enumerate(alpha):
        delta = sp.simplify(a**2)
        for value, members in groups:
            if sp.simplify(value - delta) == 0:
                members.append(i)
                break
        else:
            groups.append((delta, [i]))
    pairs = [pair for value, members in groups for pair in _repeated(value, members, alpha)]
    return pairs + _secular(groups, alpha)


def _repeated(value, members: list[int], alpha) -> list:
    if len(members) < 2:
        return []
    n = len(alpha)
    basis = []
    for j in members[1:]:  # alpha_0 e_j - alpha_j e_0 is orthogonal to alpha
        v = [sp.Integer(0)] * n
        v[members[0]], v[j] = -alpha[j], alpha[members[0]]
        basis.append(sp.Matrix(v))
    return [(value, _simplified(u)) for u in sp.GramSchmidt(basis, orthonormal=True)]


def _secular(groups, alpha) -> list:
    lam = sp.Dummy("lambda")
    values = [value for value, _ in groups]
    weights = [value * len(members) for value, members in groups]  # sum of alpha_i**2
    poly = sum(
        w * sp.Mul(*[v - lam for k, v in enumerate(values) if k != j])
        for j, w in enumerate(weights)
    )
    symbolic = bool(sp.expand(poly).free_symbols - {lam})
    poly = sp.Poly(sp.expand(poly), lam)
    if symbolic and poly.degree() > 2:
        raise DerivationError(
            f"the secular equation has degree {poly.degree()} in symbolic gains; "
            "give numbers, or at most three distinct symbolic gains"
        )
    roots = sp.roots(poly, multiple=True) if symbolic else poly.all_roots()
    if len(roots) != len(values) - 1:
        raise DerivationError(f"expected {len(values) - 1} secular roots, found {len(roots)}")
    out = []
    for root in roots:
        u = sp.Matrix([a / (a**2 - root) for a in alpha])
        u = u / sp.sqrt(sum(c**2 for c in u))
        # a symbolic radical root makes simplify stall; its raw form is exact and short enough
        out.append((root, tuple(u) if symbolic and len(roots) > 1 else _simplified(u)))
    return out


def _simplified(u: sp.Matrix) -> tuple[sp.Expr, ...]:
    if u.has(sp.CRootOf):  # simplify cannot shorten implicit algebraic numbers, only stall
        return tuple(u)
    return tuple(sp.simplify(c) for c in u)


def _semi_axis(n: int, lam: sp.Expr) -> sp.Expr:
    if lam.has(sp.CRootOf) or (lam.free_symbols and lam.has(sp.sqrt(2).func)):
        return sp.sqrt(n / lam)
    return sp.sqrt(sp.simplify(n / lam))


def _order_key(value: sp.Expr):
    try:
        return (0, float(value))
    except TypeError:  # symbolic: keep sympy's order, stably
        return (1, sp.default_sort_key(value))


def squared_radius_moments(dimension_n: int, eps, input_variance=1) -> tuple[float, float]:
    """``(E[r**2], E[r**4])`` for ``r**2 = var(a) / (var(a) + eps)``, ``a ~ N(0, s**2 I_N)``.

    With ``t = N eps / s**2`` and ``X ~ chi2(N-1)``, ``1 - r**2 = t / (X + t)``, and
    ``E[1/(X + t)] = int_0^inf exp(-u t) (1 + 2u)**(-(N-1)/2) du`` (the Laplace transform of the
    chi-square), ``E[1/(X + t)**2] = int_0^inf u exp(-u t) (1 + 2u)**(-(N-1)/2) du``.

    >>> squared_radius_moments(4, 0)
    (1.0, 1.0)
    >>> m1, m2 = squared_radius_moments(3, 1)  # X ~ chi2(2): E[3/(X+3)] = 1.5 e**1.5 E1(1.5)
    >>> round(1 - m1, 6)
    0.672385
    """
    n = dimension(dimension_n, "N", minimum=2)
    t = n * _ratio(eps, input_variance)
    if t == 0:
        return 1.0, 1.0
    k = n - 1
    first = _laplace(lambda u: math.exp(-u * t) * (1 + 2 * u) ** (-k / 2))
    second = _laplace(lambda u: u * math.exp(-u * t) * (1 + 2 * u) ** (-k / 2))
    deficit, deficit_sq = t * first, t * t * second
    return 1 - deficit, 1 - 2 * deficit + deficit_sq


def _ratio(eps, input_variance) -> float:
    eps, variance = exact(eps, "eps"), exact(input_variance, "input_variance")
    non_negative(eps, "eps")
    positive(variance, "input_variance")
    return float(Fraction(eps) / Fraction(variance))


def _laplace(integrand) -> float:
    value, _ = integrate.quad(integrand, 0, math.inf, limit=200, epsabs=0, epsrel=1e-12)
    return value


def axis_coordinate_moments(
    semi_axis: float, dimension_n: int, r2_moments: tuple[float, float]
) -> tuple[float, float]:
    """Mean and variance of ``c_k**2``, the squared coordinate of ``y - b`` along axis ``k``.

    ``c_k = semi_axis r w_k`` with ``w`` uniform on the sphere of ``R^m``, ``m = N - 1``,
    independent of ``r``: ``E[w_k**2] = 1/m``, ``E[w_k**4] = 3/(m (m+2))``.

    >>> axis_coordinate_moments(2.0, 3, (1.0, 1.0))  # a circle of radius 2: 4 cos^2 theta
    (2.0, 2.0)
    """
    m = dimension(dimension_n, "N", minimum=2) - 1
    r2, r4 = r2_moments
    mean = semi_axis**2 * r2 / m
    fourth = semi_axis**4 * r4 * 3 / (m * (m + 2))
    return mean, fourth - mean**2
