"""Exact second moments ``E[x x^T]`` where the data distribution gives them in closed form,
the curved-strip moments of :class:`~llcgeo.manifolds.BumpedHyperplane`, and its crossover.

>>> from llcgeo.manifolds import LayerNormImage
>>> second_moment(LayerNormImage(3))
Matrix([
[   1, -1/2, -1/2],
[-1/2,    1, -1/2],
[-1/2, -1/2,    1]])
>>> from llcgeo.manifolds import BumpedHyperplane
>>> bump_normal_moments(BumpedHyperplane(3, kappa=2, fraction=1))
(1, 3)
"""

from __future__ import annotations

from fractions import Fraction
from functools import singledispatch

import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.errors import DerivationError
from llcgeo.theory.symbolic import rational as _q


def _rational_vector(values, d: int, default: int) -> sp.Matrix:
    return sp.Matrix([_q(Fraction(v)) for v in (values if values is not None else (default,) * d)])


@singledispatch
def second_moment(manifold) -> sp.Matrix:
    """``E[x x^T]`` of the manifold's data distribution, exactly."""
    raise DerivationError(
        f"no closed-form second moment for {type(manifold).__name__}; estimate it from a sample"
    )


@second_moment.register(mf.Gaussian)
def _gaussian(manifold):
    return sp.eye(manifold.d)


@second_moment.register(mf.Sphere)
def _sphere(manifold):
    r = _q(manifold.radius)
    return r**2 / manifold.d * sp.eye(manifold.d)


@second_moment.register(mf.Ellipsoid)
def _ellipsoid(manifold):
    axes = _rational_vector(manifold.axes, manifold.d, 1)
    return sp.diag(*[a**2 for a in axes]) / manifold.d


def _no_eps(manifold) -> None:
    if manifold.eps != 0:
        raise DerivationError("the second moment has a closed form only for eps = 0")


@second_moment.register(mf.RMSNormImage)
def _rmsnorm(manifold):
    _no_eps(manifold)  # y = sqrt(d) a / |a| is uniform on the sphere of radius sqrt(d)
    gain = _rational_vector(manifold.gain, manifold.d, 1)
    return sp.diag(*[g**2 for g in gain])


@second_moment.register(mf.LayerNormImage)
def _layernorm(manifold):
    _no_eps(
        manifold
    )  # y is uniform on the radius-sqrt(d) sphere of {sum y = 0}: E[y y^T] = d P/(d-1)
    d = manifold.d
    gain, bias = _rational_vector(manifold.gain, d, 1), _rational_vector(manifold.bias, d, 0)
    centred = sp.eye(d) - sp.ones(d, d) / d
    cov = sp.zeros(d, d) if d == 1 else sp.Rational(d, d - 1) * centred
    g = sp.diag(*gain)
    return g * cov * g + bias * bias.T


@second_moment.register(mf.Hyperplane)
def _hyperplane(manifold):
    n = _rational_vector(manifold.normal, manifold.d, 0)
    nn = (n.T * n)[0]
    c = _q(manifold.offset)
    return sp.eye(manifold.d) - n * n.T / nn + c**2 * n * n.T / nn**2


@second_moment.register(mf.BumpedHyperplane)
def _bumped(manifold):
    m2, m4 = bump_normal_moments(manifold)
    k = _q(manifold.kappa)
    out = sp.eye(manifold.d)
    out[manifold.d - 1, manifold.d - 1] = k**2 / 4 * m4
    return out


def _strip_half_width(fraction) -> sp.Expr:
    return sp.sqrt(2) * sp.erfinv(fraction)


def bump_normal_moments(manifold: mf.BumpedHyperplane) -> tuple[sp.Expr, sp.Expr]:
    """``(E[u^2 1(|u|<c)], E[u^4 1(|u|<c)])`` for ``u ~ N(0, 1)``, ``P(|u| < c) = fraction``.

    The normal coordinate is ``h = kappa/2 u^2 1(|u|<c)``, so ``E[h] = kappa/2 m2`` and
    ``E[h^2] = kappa^2/4 m4``; integrating by parts gives ``m2 = p - 2 c phi(c)`` and
    ``m4 = 3 p - 2 phi(c) (c^3 + 3 c)``.
    """
    p = _q(manifold.fraction)
    if p == 1:
        return sp.Integer(1), sp.Integer(3)
    if p == 0:
        return sp.Integer(0), sp.Integer(0)
    c = _strip_half_width(p)
    phi = sp.exp(-(c**2) / 2) / sp.sqrt(2 * sp.pi)
    return p - 2 * c * phi, 3 * p - 2 * phi * (c**3 + 3 * c)


def bump_curvature_eigenvalue(manifold: mf.BumpedHyperplane, bias: bool) -> sp.Expr:
    """The population-Hessian eigenvalue that the curvature creates: ``E[h^2]`` without a
    bias, ``Var(h)`` with one (the normal coordinate is uncorrelated with ``u``)."""
    m2, m4 = bump_normal_moments(manifold)
    k = _q(manifold.kappa)
    return k**2 / 4 * (m4 - m2**2 if bias else m4)
