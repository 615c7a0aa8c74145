"""Exact affine hulls and curvature of real polynomial hypersurfaces ``{F = 0}``.

``F`` is split into its distinct irreducible factors over Q. A factor contributes a
(d-1)-dimensional piece of real points exactly when it changes sign (a square-free polynomial
that never changes sign has only singular real zeros, a set of dimension < d-1 that carries no
data). A sign change is *certified* by exact evaluation at two rational points; the crossing
point on the segment between them is an algebraic number, and the second fundamental form there
is decided exactly in ``Q(t*)`` by reduction modulo the minimal polynomial of ``t*``. A factor
curved at one smooth real point lies in no hyperplane, so the affine hull is all of R^d; a
degree-one factor is a rational hyperplane. Floating point only *proposes* candidate points.

>>> from llcgeo.manifolds import ImplicitHypersurface
>>> hypersurface_support(ImplicitHypersurface("x*(x - y**2)", ["x", "y"])).affine_dimension
2
>>> hypersurface_support(ImplicitHypersurface("(x + y - 1)**2", ["x", "y"])).forms
((Fraction(1, 1), Fraction(1, 1)),)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import sympy as sp
from scipy.optimize import minimize

from llcgeo import manifolds as mf
from llcgeo.errors import DerivationError, SpecError
from llcgeo.expr import Binary, Expr, Num, Var
from llcgeo.manifolds import ImplicitHypersurface
from llcgeo.theory.affine import AffineSupport
from llcgeo.theory.symbolic import fraction, symbols_for, to_sympy

_SEARCH_SEED = 20260322
_GRID = 64  # candidate points are rounded to multiples of 1/_GRID before exact evaluation


def polynomial(manifold: ImplicitHypersurface) -> sp.Poly:
    """``F`` as a polynomial over Q in the manifold's variables, in their order."""
    names = symbols_for(manifold.variables)
    gens = [names[v] for v in manifold.variables]
    return sp.Poly(to_sympy(manifold.F, names), *gens, domain="QQ")


def real_factors(poly: sp.Poly) -> list[sp.Poly]:
    """The distinct non-constant irreducible factors of ``poly`` over Q."""
    if poly.is_zero:
        raise SpecError("F is identically zero: it defines all of R^d, not a hypersurface")
    _, factors = poly.factor_list()
    return [f for f, _ in factors if f.total_degree() > 0]


def _evaluate(poly: sp.Poly, points: np.ndarray) -> np.ndarray:
    """``poly`` at many float points (rows), term by term."""
    out = np.zeros(len(points))
    for exponents, coeff in poly.terms():
        out += float(coeff) * np.prod(points ** np.array(exponents), axis=1)
    return out


def _random_points(d: int, scale: float, rng) -> np.ndarray:
    scales = scale * np.repeat([0.25, 0.5, 1.0, 2.0, 4.0], 400)[:, None]
    return rng.standard_normal((len(scales), d)) * scales


def _extrema(poly: sp.Poly, d: int, scale: float, rng) -> np.ndarray:
    """Local minima of ``f`` and of ``-f`` from a few starts: the points a blind search misses."""
    found = []
    for sign in (1.0, -1.0):
        for start in rng.standard_normal((4, d)) * scale:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # runaway searches are discarded just below
                res = minimize(lambda x, s=sign: s * _evaluate(poly, x[None])[0], start)
            if np.all(np.isfinite(res.x)) and np.max(np.abs(res.x)) < 1e6:
                found.append(res.x)
    return np.array(found).reshape(-1, d)


def _exact_sign_points(poly: sp.Poly, d: int, scale: float):
    """Rational points where ``poly`` is exactly negative and exactly positive (lists, maybe
    empty). Random points first; local extrema only when those miss a sign."""
    rng = np.random.default_rng(_SEARCH_SEED)
    found = _signed_points(poly, _random_points(d, scale, rng))
    if not (found[-1] and found[1]):
        extra = _signed_points(poly, _extrema(poly, d, scale, rng))
        found = {sign: found[sign] + extra[sign] for sign in (-1, 1)}
    return found[-1], found[1]


def _signed_points(poly: sp.Poly, points: np.ndarray) -> dict[int, list]:
    """Up to 8 rationalized points of each sign, the sign verified exactly."""
    values = _evaluate(poly, points)
    found: dict[int, list] = {-1: [], 1: []}
    for sign in (-1, 1):
        for i in np.argsort(-sign * values)[:8]:
            rational = [Fraction(round(v * _GRID), _GRID) for v in points[i]]
            if int(sp.sign(poly.eval(tuple(map(sp.Rational, rational))))) == sign:
                found[sign].append(rational)
    return found


def _crossing(poly: sp.Poly, low: Sequence[Fraction], high: Sequence[Fraction]):
    """An exact zero ``low + t*(high - low)``, ``0 < t* < 1``: (t symbol, t*, min poly of t*)."""
    t = sp.Symbol("t")
    line = [sp.Rational(a) + t * (sp.Rational(b) - sp.Rational(a)) for a, b in zip(low, high)]
    g = sp.Poly(poly.as_expr().subs(dict(zip(poly.gens, line))), t)
    root = next(r for r in sp.real_roots(g) if 0 < r < 1)
    return t, line, sp.minimal_polynomial(root, t, polys=True)


def _curved_at(poly: sp.Poly, low, high) -> bool | None:
    """Whether the second fundamental form at the crossing is non-zero (None: singular point).

    Entries live in ``Q(t*) = Q[t] / (minpoly)``: every product is reduced modulo the minimal
    polynomial, so zero-testing is exact and the degrees stay below ``deg(minpoly)``.
    """
    t, line, minpoly = _crossing(poly, low, high)
    at = dict(zip(poly.gens, line))

    def reduced(expr) -> sp.Poly:
        return sp.Poly(sp.expand(expr.subs(at)), t, domain="QQ").rem(minpoly)

    gradient = [poly.diff(x) for x in poly.gens]
    n = [reduced(g.as_expr()) for g in gradient]
    if all(c.is_zero for c in n):
        return None
    h = [[reduced(g.diff(y).as_expr()) for y in poly.gens] for g in gradient]
    return not _form_vanishes(n, h, minpoly)


def _form_vanishes(n, h, minpoly) -> bool:
    """``|n|^4 H - |n|^2 (H n n^T + n n^T H) + (n^T H n) n n^T == 0`` (``|n|^4 P H P``)."""
    dim = len(n)

    def dot(a, b):
        return sum((x * y for x, y in zip(a, b)), sp.Poly(0, *minpoly.gens, domain="QQ")).rem(
            minpoly
        )

    hn = [dot(row, n) for row in h]
    nn, nhn = dot(n, n), dot(n, hn)
    nn2 = (nn * nn).rem(minpoly)
    for i in range(dim):
        for j in range(dim):
            entry = nn2 * h[i][j] - nn * (hn[i] * n[j] + n[i] * hn[j]) + nhn * n[i] * n[j]
            if not entry.rem(minpoly).is_zero:
                return False
    return True


def _classify(factor: sp.Poly, d: int, scale: float):
    """("plane", a, c) | "curved" | None (no (d-1)-dimensional real part)."""
    if factor.total_degree() == 1:
        coeffs = [factor.coeff_monomial(x) for x in factor.gens]
        a = tuple(fraction(sp.Rational(c)) for c in coeffs)
        return ("plane", a, -fraction(sp.Rational(factor.coeff_monomial(1))))
    negative, positive = _exact_sign_points(factor, d, scale)
    for low, high in zip(negative, positive):
        curved = _curved_at(factor, low, high)
        if curved:
            return "curved"
        if curved is False:
            raise DerivationError(
                f"the factor {factor.as_expr()} of F is flat at a smooth real point but is not "
                "linear over Q: its real points lie on hyperplanes with irrational coefficients, "
                "and llcgeo decides affine hulls exactly over Q only (factor F over Q by hand)"
            )
    if negative and positive:
        raise DerivationError(
            f"every tested real zero of the factor {factor.as_expr()} of F is singular; "
            "llcgeo cannot find a smooth point at which to decide its curvature"
        )
    return None


def _normalized(a, c):
    pivot = next(v for v in a if v != 0)
    return tuple(v / pivot for v in a), c / pivot


def hypersurface_support(manifold: ImplicitHypersurface) -> AffineSupport:
    """The affine hull of the (d-1)-dimensional real part of ``{F = 0}``."""
    d, poly = manifold.d, polynomial(manifold)
    factors = real_factors(poly)
    if not factors:
        raise SpecError(f"F = {poly.as_expr()} is a non-zero constant: it has no real points")
    pieces = [_classify(f, d, float(manifold.scale)) for f in factors]
    real = [p for p in pieces if p is not None]
    if not real:
        raise SpecError(_no_hypersurface_message(poly, d, float(manifold.scale)))
    planes = {_normalized(p[1], p[2]) for p in real if p != "curved"}
    if "curved" in real or len(planes) > 1:
        return AffineSupport(d)
    (a, c) = planes.pop()
    return AffineSupport(d, (a,), (c,))


def _no_hypersurface_message(poly: sp.Poly, d: int, scale: float) -> str:
    rng = np.random.default_rng(_SEARCH_SEED)
    lowest = min(abs(_evaluate(poly, p[None])[0]) for p in _extrema(poly, d, scale, rng))
    if lowest > 1e-9:
        return (
            f"F = {poly.as_expr()} has no real points (it never changes sign and its smallest "
            f"value found is {lowest:.3g}), so there is no manifold to put data on"
        )
    return (
        f"F = {poly.as_expr()} never changes sign, so its real zeros form a set of dimension "
        f"below d - 1 = {d - 1}: it is not a hypersurface that can carry data"
    )


def second_fundamental_form(manifold, point) -> sp.Matrix:
    """``P H P / |grad F|`` at ``point`` (numbers or symbols), ``P = I - n n^T`` with unit
    normal ``n = grad F / |grad F|``: the shape operator in ambient coordinates (zero on the
    normal). For the unit sphere ``|x|^2 - 1`` with outward normal it is ``P``. Named
    hypersurface families (sphere, ellipsoid, hyperplane, simplex, RMSNorm image, bumped
    hyperplane) are accepted through their equations (:func:`as_hypersurface`)."""
    if len(point) != manifold.d:
        raise SpecError(f"point has {len(point)} coordinates but the manifold has d={manifold.d}")
    manifold = as_hypersurface(manifold, point)
    poly = polynomial(manifold)
    at = dict(zip(poly.gens, point))
    f = poly.as_expr()
    grad = sp.Matrix([sp.diff(f, x) for x in poly.gens]).subs(at)
    norm2 = sp.simplify((grad.T * grad)[0])
    if norm2 == 0:
        raise SpecError(f"grad F vanishes at {tuple(point)}: no tangent space there")
    proj = sp.eye(manifold.d) - grad * grad.T / norm2
    return sp.simplify(proj * sp.hessian(f, poly.gens).subs(at) * proj / sp.sqrt(norm2))


def _axis_names(d: int) -> tuple[str, ...]:
    return tuple(f"x{i + 1}" for i in range(d))


def _sum(terms):
    out = terms[0]
    for t in terms[1:]:
        out = Binary("+", out, t)
    return out


def _num(q) -> Num:
    return Num(Fraction(q))


def _square(e):
    return Binary("**", e, _num(2))


def _local_equation(manifold, point) -> Expr:
    d = manifold.d
    xs = [Var(n) for n in _axis_names(d)]
    if isinstance(manifold, mf.Sphere):
        return _sum([_square(x) for x in xs] + [_num(-(manifold.radius**2))])
    if isinstance(manifold, mf.Ellipsoid):
        return _sum(
            [_square(Binary("/", x, _num(a))) for x, a in zip(xs, manifold.axes)] + [_num(-1)]
        )
    if isinstance(manifold, mf.RMSNormImage) and manifold.eps == 0:
        gain = manifold.gain or (Fraction(1),) * d
        if all(g != 0 for g in gain):
            return _sum([_square(Binary("/", x, _num(g))) for x, g in zip(xs, gain)] + [_num(-d)])
    if isinstance(manifold, (mf.Hyperplane, mf.Simplex)):
        normal = manifold.normal if isinstance(manifold, mf.Hyperplane) else (1,) * d
        offset = manifold.offset if isinstance(manifold, mf.Hyperplane) else 1
        return _sum([Binary("*", _num(a), x) for a, x in zip(normal, xs)] + [_num(-offset)])
    if isinstance(manifold, mf.BumpedHyperplane):
        inside = abs(float(point[0])) < manifold.half_width
        bump = Binary("*", _num(manifold.kappa / 2 if inside else 0), _square(xs[0]))
        return Binary("-", bump, xs[-1])  # normal -e_d at the centre, so the form is +kappa
    raise SpecError(f"{type(manifold).__name__} is not a hypersurface with a known equation")


def as_hypersurface(manifold, point=None) -> ImplicitHypersurface:
    """The named family as ``{F = 0}`` in variables ``x1..xd`` (near ``point`` for the
    piecewise :class:`~llcgeo.manifolds.BumpedHyperplane`)."""
    if isinstance(manifold, ImplicitHypersurface):
        return manifold
    if isinstance(manifold, mf.BumpedHyperplane) and point is None:
        raise SpecError("the bumped hyperplane is piecewise: give the point to take it near")
    return ImplicitHypersurface(_local_equation(manifold, point), _axis_names(manifold.d))
