"""Exact affine hulls and curvature of real polynomial hypersurfaces ``{F = 0}``.

**The data distribution** (stated once in :mod:`llcgeo.manifolds`, ``REGULAR_FLOOR``) lives on
the *regular* real zeros of ``F``: ``F(x) = 0`` with ``grad F(x) != 0``. ``F`` is split into its
irreducible factors over Q; a repeated factor has no regular zeros (the gradient of ``F``
vanishes on it), and a factor ``f`` that appears once has regular zeros exactly when it changes
sign. So the support is the union of the real (d-1)-dimensional pieces of the factors that
appear once and change sign; lower-dimensional real zeros (an isolated point, a line) carry
no data in the sampler either.

**Every piece is certified, never searched for.** A sign change is proven by exact evaluation at
two rational points (float candidates rounded at increasing precision); a factor is proven to
keep one sign by an exact certificate (even powers with one sign, a positive-semidefinite
quadric, a univariate factor without real roots, the shift of such a form). When neither can
be proven, the derivation is refused with ``DerivationError``, never guessed.

**Curvature is decided exactly.** The crossing point on the segment between two sign points is
algebraic; the second fundamental form there lives in ``Q(t*)`` and is zero-tested by reduction
modulo the minimal polynomial of ``t*``. A piece curved at one regular point lies in no
hyperplane, so the affine hull is all of R^d. A factor flat at a regular point that contains its
tangent hyperplane there (checked exactly in ``Q(t*)``) is a product of conjugate hyperplanes
(it is irreducible over Q, so it is not one rational plane); the number of real ones is the
number of real roots of ``F`` on a generic rational line (Sturm). Two or more distinct real
hyperplanes span R^d (``x**2 - 2*y**2``); a single irrational one is refused, since llcgeo's
witnesses are rational.

>>> from llcgeo.manifolds import ImplicitHypersurface
>>> hypersurface_support(ImplicitHypersurface("x*(x - y**2)", ["x", "y"])).affine_dimension
2
>>> hypersurface_support(ImplicitHypersurface("(x + y - 1)*(x**2 + y**2 + 1)", ["x", "y"])).forms
((Fraction(1, 1), Fraction(1, 1)),)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from fractions import Fraction
from functools import singledispatch

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
_PRECISIONS = (6, 12, 20, 30, 42, 52)  # candidate points rounded to multiples of 2**-k, in turn
_DENOMINATORS = (1, 2, 3, 4, 6, 8, 12, 16, 64, 256, 1024)  # simple shifts, tried first
_LINE_TRIES = 8  # random rational lines tried before the count of real hyperplanes is refused


def polynomial(manifold: ImplicitHypersurface) -> sp.Poly:
    """``F`` as a polynomial over Q in the manifold's variables, in their order."""
    names = symbols_for(manifold.variables)
    gens = [names[v] for v in manifold.variables]
    return sp.Poly(to_sympy(manifold.F, names), *gens, domain="QQ")


def factors_with_multiplicity(poly: sp.Poly) -> list[tuple[sp.Poly, int]]:
    """The distinct non-constant irreducible factors of ``poly`` over Q, with multiplicities."""
    if poly.is_zero:
        raise SpecError("F is identically zero: it defines all of R^d, not a hypersurface")
    _, factors = poly.factor_list()
    return [(f, k) for f, k in factors if f.total_degree() > 0]


def _evaluate(poly: sp.Poly, points: np.ndarray) -> np.ndarray:
    """``poly`` at many float points (rows), term by term."""
    out = np.zeros(len(points))
    with np.errstate(all="ignore"):
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


def _rationalized(point: np.ndarray):
    """``point`` rounded to multiples of ``2**-k``, for each precision ``k`` in turn."""
    for k in _PRECISIONS:
        yield [Fraction(round(float(v) * 2**k), 2**k) for v in point]


def _exact_sign(poly: sp.Poly, rational) -> int:
    return int(sp.sign(poly.eval(tuple(map(sp.Rational, rational)))))


def _first_of_sign(poly: sp.Poly, point: np.ndarray, sign: int) -> list:
    """The coarsest rounding of ``point`` at which ``poly`` has ``sign`` exactly ([] if none)."""
    for rational in _rationalized(point):
        if _exact_sign(poly, rational) == sign:
            return [rational]
    return []


def _signed_points(poly: sp.Poly, points: np.ndarray) -> dict[int, list]:
    """Up to 8 rational points of each sign, each sign verified exactly."""
    values = _evaluate(poly, points)
    found: dict[int, list] = {-1: [], 1: []}
    for sign in (-1, 1):
        order = [i for i in np.argsort(-sign * values) if sign * values[i] > 0][:8]
        for i in order:
            found[sign].extend(_first_of_sign(poly, points[i], sign))
    return found


def _exact_sign_points(poly: sp.Poly, d: int, scale: float):
    """Rational points where ``poly`` is exactly negative and exactly positive (lists, maybe
    empty). Random points first; local extrema only when those miss a sign."""
    rng = np.random.default_rng(_SEARCH_SEED)
    found = _signed_points(poly, _random_points(d, scale, rng))
    if not (found[-1] and found[1]):
        extra = _signed_points(poly, _extrema(poly, d, scale, rng))
        found = {sign: found[sign] + extra[sign] for sign in (-1, 1)}
    return found[-1], found[1]


# --- certificates that a factor keeps one sign -------------------------------------------------


def _even_with_one_sign(poly: sp.Poly) -> bool:
    """Every exponent even and every coefficient of one sign: ``poly`` never changes sign."""
    terms = poly.terms()
    even = all(e % 2 == 0 for exponents, _ in terms for e in exponents)
    return even and len({c > 0 for _, c in terms}) == 1


def _quadric_one_signed(poly: sp.Poly) -> bool:
    """For total degree 2: ``f = [x; 1]^T M [x; 1]`` keeps one sign iff ``M`` or ``-M`` is
    positive semidefinite (exact, over Q)."""
    gens, d = poly.gens, len(poly.gens)
    expr = poly.as_expr()
    m = sp.zeros(d + 1, d + 1)
    for i, xi in enumerate(gens):
        for j, xj in enumerate(gens):
            m[i, j] = sp.diff(expr, xi, xj).subs(dict.fromkeys(gens, 0)) / 2
        m[i, d] = m[d, i] = sp.diff(expr, xi).subs(dict.fromkeys(gens, 0)) / 2
    m[d, d] = expr.subs(dict.fromkeys(gens, 0))
    return bool(m.is_positive_semidefinite or (-m).is_positive_semidefinite)


def _univariate_without_real_roots(poly: sp.Poly) -> bool:
    used = [x for x in poly.gens if poly.degree(x) > 0]
    return len(used) == 1 and sp.Poly(poly.as_expr(), used[0]).count_roots() == 0


def _shift_candidates(point: np.ndarray):
    """Rational points near ``point``: simple fractions first, then binary roundings."""
    for q in _DENOMINATORS:
        yield [Fraction(float(v)).limit_denominator(q) for v in point]
    yield from _rationalized(point)


def _shifted_even(poly: sp.Poly, d: int, scale: float) -> bool:
    """``f(x + c)`` is a form of :func:`_even_with_one_sign` for a rational ``c`` near the
    lowest numerical extremum (``(x - 1/3)**4 + y**2 + 1``)."""
    rng = np.random.default_rng(_SEARCH_SEED)
    points = _extrema(poly, d, scale, rng)
    if not len(points):
        return False
    values = np.abs(_evaluate(poly, points))
    for shift in _shift_candidates(points[int(np.argmin(values))]):
        moved = {x: x + sp.Rational(c) for x, c in zip(poly.gens, shift)}
        if _even_with_one_sign(sp.Poly(poly.as_expr().subs(moved), *poly.gens)):
            return True
    return False


def _keeps_one_sign(poly: sp.Poly, d: int, scale: float) -> bool:
    """True only on an exact proof that ``poly`` never changes sign."""
    if _even_with_one_sign(poly) or _univariate_without_real_roots(poly):
        return True
    if poly.total_degree() == 2:
        return _quadric_one_signed(poly)
    return _shifted_even(poly, d, scale)


# --- curvature at a crossing, in Q(t*) ---------------------------------------------------------


def _crossing(poly: sp.Poly, low: Sequence[Fraction], high: Sequence[Fraction]):
    """An exact zero ``low + t*(high - low)``, ``0 < t* < 1``: (t symbol, t*, min poly of t*)."""
    t = sp.Symbol("t")
    line = [sp.Rational(a) + t * (sp.Rational(b) - sp.Rational(a)) for a, b in zip(low, high)]
    g = sp.Poly(poly.as_expr().subs(dict(zip(poly.gens, line))), t)
    root = next(r for r in sp.real_roots(g) if 0 < r < 1)
    return t, line, sp.minimal_polynomial(root, t, polys=True)


def _reducer(poly: sp.Poly, t, line, minpoly):
    at = dict(zip(poly.gens, line))

    def reduced(expr) -> sp.Poly:
        return sp.Poly(sp.expand(sp.sympify(expr).subs(at)), t, domain="QQ").rem(minpoly)

    return reduced


def _shape_at(poly: sp.Poly, low, high) -> str:
    """ "curved", "contains its tangent plane", "inflection" (flat there, curved elsewhere) or
    "singular", at the crossing on the segment ``low -> high``.

    Entries live in ``Q(t*) = Q[t] / (minpoly)``: every product is reduced modulo the minimal
    polynomial, so zero-testing is exact and the degrees stay below ``deg(minpoly)``.
    """
    t, line, minpoly = _crossing(poly, low, high)
    reduced = _reducer(poly, t, line, minpoly)
    gradient = [poly.diff(x) for x in poly.gens]
    n = [reduced(g.as_expr()) for g in gradient]
    if all(c.is_zero for c in n):
        return "singular"
    h = [[reduced(g.diff(y).as_expr()) for y in poly.gens] for g in gradient]
    if not _form_vanishes(n, h, minpoly):
        return "curved"
    if _contains_plane(poly, t, line, n, minpoly):
        return "contains its tangent plane"
    return "inflection"


def _contains_plane(poly: sp.Poly, t, line, n, minpoly) -> bool:
    """Whether ``f`` vanishes on the hyperplane through ``line(t*)`` with normal ``n`` (exact:
    ``f(p + sum_j s_j u_j)``, ``u_j`` spanning ``n^perp``, is zero in ``Q(t*)[s]``)."""
    d = len(n)
    i = next(k for k, c in enumerate(n) if not c.is_zero)
    s = sp.symbols(f"s0:{d}")
    point = [line[k] + sum(s[j] * _perp(n, i, j, k) for j in range(d) if j != i) for k in range(d)]
    image = sp.Poly(sp.expand(poly.as_expr().subs(dict(zip(poly.gens, point)))), *s)
    return all(sp.Poly(c, t, domain="QQ").rem(minpoly).is_zero for c in image.coeffs())


def _perp(n, i: int, j: int, k: int):
    """Coordinate ``k`` of ``u_j = n_i e_j - n_j e_i``, orthogonal to ``n``."""
    if k == j:
        return n[i].as_expr()
    return -n[j].as_expr() if k == i else 0


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


def _real_hyperplanes(poly: sp.Poly) -> int:
    """For ``f`` a product of conjugate hyperplanes: how many are real, by Sturm on a rational
    line that crosses each once (the restriction keeps full degree and distinct roots)."""
    rng = np.random.default_rng(_SEARCH_SEED)
    s, k = sp.Symbol("s"), poly.total_degree()
    for _ in range(_LINE_TRIES):
        a, b = rng.integers(-7, 8, size=(2, len(poly.gens)))
        line = {x: int(ai) + s * int(bi) for x, ai, bi in zip(poly.gens, a, b)}
        g = sp.Poly(poly.as_expr().subs(line), s)
        if g.degree() == k and sp.degree(sp.gcd(g, g.diff(s)), s) == 0:
            return g.count_roots()
    raise DerivationError(
        f"no rational line crossed each hyperplane of the factor {poly.as_expr()} of F once "
        f"in {_LINE_TRIES} tries, so the number of its real hyperplanes is not decided"
    )


# --- one factor, the whole support -------------------------------------------------------------


def _classify(factor: sp.Poly, d: int, scale: float):
    """("plane", a, c) | "full" | None (no (d-1)-dimensional real part), each proven."""
    if factor.total_degree() == 1:
        coeffs = [factor.coeff_monomial(x) for x in factor.gens]
        a = tuple(fraction(sp.Rational(c)) for c in coeffs)
        return ("plane", a, -fraction(sp.Rational(factor.coeff_monomial(1))))
    negative, positive = _exact_sign_points(factor, d, scale)
    if not (negative and positive):
        if _keeps_one_sign(factor, d, scale):
            return None
        raise DerivationError(
            f"llcgeo can neither find a sign change of the factor {factor.as_expr()} of F nor "
            "prove that it keeps one sign, so whether it has real points of dimension d - 1 "
            "is not decided; give F with that factor split, or with a clearer scale"
        )
    shapes = [_shape_at(factor, low, high) for low, high in zip(negative, positive)]
    if "curved" in shapes:
        return "full"
    if "contains its tangent plane" in shapes:
        return _conjugate_planes(factor)
    raise DerivationError(
        f"the factor {factor.as_expr()} of F is flat at every tested real zero that is regular "
        f"({', '.join(sorted(set(shapes)))}) but does not contain a hyperplane there; llcgeo "
        "cannot decide its curvature"
    )


def _conjugate_planes(factor: sp.Poly) -> str:
    if _real_hyperplanes(factor) >= 2:
        return "full"  # two distinct real hyperplanes: their union spans R^d affinely
    raise DerivationError(
        f"the real points of the factor {factor.as_expr()} of F form one hyperplane with "
        "irrational coefficients; llcgeo states affine hulls with rational witnesses only"
    )


def _normalized(a, c):
    pivot = next(v for v in a if v != 0)
    return tuple(v / pivot for v in a), c / pivot


def hypersurface_support(manifold: ImplicitHypersurface) -> AffineSupport:
    """The affine hull of the regular real zeros of ``F`` (the data's support)."""
    d, poly = manifold.d, polynomial(manifold)
    factors = factors_with_multiplicity(poly)
    if not factors:
        raise SpecError(f"F = {poly.as_expr()} is a non-zero constant: it has no real points")
    scale = float(manifold.scale)
    pieces = [_classify(f, d, scale) for f, k in factors if k == 1]
    real = [p for p in pieces if p is not None]
    if not real:
        raise SpecError(_no_regular_zeros_message(poly, factors, d))
    planes = {_normalized(p[1], p[2]) for p in real if p != "full"}
    if "full" in real or len(planes) > 1:
        return AffineSupport(d)
    (a, c) = planes.pop()
    return AffineSupport(d, (a,), (c,))


def _no_regular_zeros_message(poly: sp.Poly, factors, d: int) -> str:
    repeated = [f"({f.as_expr()})**{k}" for f, k in factors if k > 1]
    if repeated:
        return (
            f"F = {poly.as_expr()} has no regular real zeros: grad F vanishes wherever a "
            f"repeated factor vanishes ({', '.join(repeated)}), and no factor that appears once "
            "changes sign; write F with each factor once (the data lie where F = 0 and "
            "grad F != 0)"
        )
    constant = poly.coeff_monomial(1)
    if all(_even_with_one_sign(f) for f, _ in factors) and constant != 0:
        return (
            f"F = {poly.as_expr()} has no real points (it is a sum of even powers of one sign "
            "with a non-zero constant), so there is no manifold to put data on"
        )
    return (
        f"F = {poly.as_expr()} never changes sign (proven), so its real zeros form a set of "
        f"dimension below d - 1 = {d - 1}: it is not a hypersurface that can carry data"
    )


def second_fundamental_form(manifold, point) -> sp.Matrix:
    """``P H P / |grad F|`` at ``point`` (numbers or symbols), ``P = I - n n^T`` with unit
    normal ``n = grad F / |grad F|``: the shape operator in ambient coordinates (zero on the
    normal). For the unit sphere ``|x|^2 - 1`` with outward normal it is ``P``. Named
    hypersurface families (sphere, ellipsoid, hyperplane, simplex, RMSNorm image, bumped
    hyperplane) are accepted through their equations (:func:`as_hypersurface`)."""
    if len(point) != manifold.d:
        raise SpecError(f"point has {len(point)} coordinates but the manifold has d={manifold.d}")
    point = [_coordinate(v, i) for i, v in enumerate(point)]
    manifold = as_hypersurface(manifold, point)
    poly = polynomial(manifold)
    at = dict(zip(poly.gens, point))
    f = poly.as_expr()
    residual = sp.simplify(f.subs(at))
    if residual.is_number and residual != 0:
        raise SpecError(f"the point {tuple(point)} is not on the manifold: F = {residual} there")
    grad = sp.Matrix([sp.diff(f, x) for x in poly.gens]).subs(at)
    norm2 = sp.simplify((grad.T * grad)[0])
    if norm2 == 0:
        raise SpecError(f"grad F vanishes at {tuple(point)}: no tangent space there")
    proj = sp.eye(manifold.d) - grad * grad.T / norm2
    return sp.simplify(proj * sp.hessian(f, poly.gens).subs(at) * proj / sp.sqrt(norm2))


def _coordinate(value, index: int):
    """A coordinate as sympy: a sympy expression (symbols allowed) as it is, any other number
    exactly through the checked conversion of :func:`llcgeo.manifolds.exact`."""
    if isinstance(value, sp.Basic):
        return value
    return sp.Rational(mf.exact(value, f"point[{index}]"))


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


@singledispatch
def local_equation(manifold, point) -> Expr:
    """``F`` in the variables ``x1..xd`` with the manifold ``{F = 0}`` near ``point`` (a
    registered family adds its own with ``local_equation.register``)."""
    raise SpecError(f"{type(manifold).__name__} is not a hypersurface with a known equation")


@local_equation.register(mf.Sphere)
def _sphere(manifold, point) -> Expr:
    xs = _axes(manifold.d)
    return _sum([_square(x) for x in xs] + [_num(-(manifold.radius**2))])


@local_equation.register(mf.Ellipsoid)
def _ellipsoid(manifold, point) -> Expr:
    xs = _axes(manifold.d)
    return _sum([_square(Binary("/", x, _num(a))) for x, a in zip(xs, manifold.axes)] + [_num(-1)])


@local_equation.register(mf.RMSNormImage)
def _rmsnorm(manifold, point) -> Expr:
    gain = manifold.gain or (Fraction(1),) * manifold.d
    if manifold.eps != 0 or any(g == 0 for g in gain):
        raise SpecError("RMSNorm's image is a hypersurface only for eps = 0 and non-zero gains")
    xs = _axes(manifold.d)
    squares = [_square(Binary("/", x, _num(g))) for x, g in zip(xs, gain)]
    return _sum(squares + [_num(-manifold.d)])


@local_equation.register(mf.Hyperplane)
@local_equation.register(mf.Simplex)
def _plane(manifold, point) -> Expr:
    d = manifold.d
    normal = manifold.normal if isinstance(manifold, mf.Hyperplane) else (1,) * d
    offset = manifold.offset if isinstance(manifold, mf.Hyperplane) else 1
    return _sum([Binary("*", _num(a), x) for a, x in zip(normal, _axes(d))] + [_num(-offset)])


@local_equation.register(mf.BumpedHyperplane)
def _bumped(manifold, point) -> Expr:
    if point is None:
        raise SpecError("the bumped hyperplane is piecewise: give the point to take it near")
    xs = _axes(manifold.d)
    inside = abs(float(point[0])) < manifold.half_width
    bump = Binary("*", _num(manifold.kappa / 2 if inside else 0), _square(xs[0]))
    return Binary("-", bump, xs[-1])  # normal -e_d at the centre, so the form is +kappa


def _axes(d: int) -> list[Var]:
    return [Var(name) for name in _axis_names(d)]


def as_hypersurface(manifold, point=None) -> ImplicitHypersurface:
    """The named family as ``{F = 0}`` in variables ``x1..xd`` (near ``point`` for the
    piecewise :class:`~llcgeo.manifolds.BumpedHyperplane`)."""
    if isinstance(manifold, ImplicitHypersurface):
        return manifold
    return ImplicitHypersurface(local_equation(manifold, point), _axis_names(manifold.d))
