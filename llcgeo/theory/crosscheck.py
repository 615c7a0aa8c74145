"""The numerical cross-check held against every implicit and parametric derivation.

Before an exact hull is used, the ranks it implies (the dimension of the affine hull and of the
linear span) are compared with the ranks of a sample of the spec's *own* data distribution,
the one :mod:`llcgeo.manifolds` defines and the torch samplers draw: Gaussian starts projected
by Newton steps onto the regular zeros of ``F`` (``REGULAR_FLOOR``), or ``phi`` at uniform
parameters. The sample is drawn in float64 first. A singular value of the centred or raw data
counts as zero below ``ZERO`` and as non-zero above ``NONZERO`` (relative to the largest); one
in between, or a disagreement, repeats the check at ``DIGITS`` significant digits (mpmath, the
points refined by Newton steps at that precision), where the band is ``10**-(DIGITS - 20)`` to
``10**-(DIGITS // 3)``. A disagreement that survives is a ``DerivationError`` showing both
numbers; the exact answer is never returned past it.

>>> from llcgeo.manifolds import ImplicitHypersurface
>>> sampled_dimensions(ImplicitHypersurface("z*(x**2 + y**2)", ["x", "y", "z"]))
(2, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath
import numpy as np

from llcgeo.errors import DerivationError
from llcgeo.expr import fold
from llcgeo.limits import MAX_DIGITS
from llcgeo.manifolds import (
    REGULAR_PROBE,
    ImplicitHypersurface,
    ParametricManifold,
    regular_probe,
    regular_zeros,
)

_SEED = 20261128
ZERO, NONZERO = 1e-9, 1e-5  # float64 singular values, relative: Newton stops at 1e-10
DIGITS = 3 * MAX_DIGITS + 30  # coefficients of 100 digits, products of three of them
_NEWTON_STEPS, _POLISH_STEPS = 60, 12
_FEW, _MANY = 4, 64  # points per dimension: first pass, and again before a lower rank counts


class Ambiguous(Exception):
    """A singular value fell between the zero and the non-zero band."""


@dataclass(frozen=True)
class Dual:
    """Forward-mode derivative of a polynomial: ``value`` (n,) and ``grad`` (n, d), over float64
    or over mpmath numbers (numpy object arrays)."""

    value: np.ndarray
    grad: np.ndarray

    def __add__(self, other):
        other = _lift(other, self)
        return Dual(self.value + other.value, self.grad + other.grad)

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.value, -self.grad)

    def __sub__(self, other):
        return self + (-_lift(other, self))

    def __rsub__(self, other):
        return _lift(other, self) + (-self)

    def __mul__(self, other):
        other = _lift(other, self)
        grad = self.grad * other.value[:, None] + other.grad * self.value[:, None]
        return Dual(self.value * other.value, grad)

    __rmul__ = __mul__

    def __truediv__(self, other):  # only by constants: F is a polynomial
        return Dual(self.value / other, self.grad / other)

    def __pow__(self, k: int):
        out = _lift(1, self)
        for _ in range(k):
            out = out * self
        return out


def _lift(value, like: Dual) -> Dual:
    if isinstance(value, Dual):
        return value
    return Dual(np.full_like(like.value, value), np.zeros_like(like.grad))


def _number(dtype):
    if dtype is object:
        return lambda q: mpmath.mpf(q.numerator) / q.denominator
    return float


def _polynomial_at(spec: ImplicitHypersurface, x: np.ndarray) -> Dual:
    n, d = x.shape
    eye = np.eye(d, dtype=x.dtype)
    env = {
        name: Dual(x[:, j].copy(), np.repeat(eye[j][None], n, axis=0))
        for j, name in enumerate(spec.variables)
    }
    return _lift(fold(spec.F, env, {}, _number(x.dtype)), env[spec.variables[0]])


def _newton(spec: ImplicitHypersurface, x: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        at = _polynomial_at(spec, x)
        norm2 = (at.grad * at.grad).sum(axis=1)
        with np.errstate(all="ignore"):
            x = x - (at.value / norm2)[:, None] * at.grad
    return x


def _implicit_points(spec: ImplicitHypersurface, count: int) -> np.ndarray:
    """``count`` regular zeros of ``F`` (fewer if 64 times as many starts do not give them),
    drawn and tested as the torch sampler draws and tests them."""
    rng = np.random.default_rng(_SEED)
    kept, drawn = [], 0
    while sum(map(len, kept)) < count and drawn < 64 * count:
        have = sum(map(len, kept))
        rate = max(have / drawn, 1 / 64) if drawn else 1.0
        starts = min(int(1.5 * (count - have) / rate) + 8, 64 * count - drawn)
        kept.append(_regular_of(spec, float(spec.scale) * rng.standard_normal((starts, spec.d))))
        drawn += starts
    return np.concatenate(kept)[:count]


def _regular_of(spec: ImplicitHypersurface, start: np.ndarray) -> np.ndarray:
    x = _newton(spec, start, _NEWTON_STEPS)
    at = _polynomial_at(spec, x)
    h = REGULAR_PROBE * float(spec.scale)
    moved = _polynomial_at(spec, x + h * np.array(regular_probe(spec.d)))
    with np.errstate(all="ignore"):
        slope = np.linalg.norm(at.grad, axis=1)
        change = np.linalg.norm(moved.grad - at.grad, axis=1)
        size = 1.0 + np.abs(x).max(axis=1)
        ok = np.isfinite(x).all(axis=1)
        ok &= regular_zeros(at.value, slope, change, size, float(spec.scale))
    return x[ok]


def _parametric_points(spec: ParametricManifold, count: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(_SEED)
    u = rng.random((count, len(spec.parameters)))
    number = _number(dtype)
    lo = np.array([number(r[0]) for r in spec.ranges], dtype=dtype)
    hi = np.array([number(r[1]) for r in spec.ranges], dtype=dtype)
    t = lo + (hi - lo) * u.astype(dtype)
    env = {name: t[:, j] for j, name in enumerate(spec.parameters)}
    funcs = _functions(dtype)
    columns = [fold(p, env, funcs, number, _constants(dtype)) for p in spec.phi]
    return np.stack([np.broadcast_to(np.asarray(c, dtype=dtype), (count,)) for c in columns], 1)


def _functions(dtype):
    if dtype is object:
        return {f: np.vectorize(getattr(mpmath, f), otypes=[object]) for f in _NAMES}
    return {f: getattr(np, f) for f in _NAMES}


_NAMES = ("sin", "cos", "exp", "sqrt")


def _constants(dtype):
    return {"pi": mpmath.pi if dtype is object else math.pi}


def _rank(matrix: np.ndarray, zero: float, nonzero: float) -> int:
    values = _singular_values(matrix)
    top = max(values[0], 1e-300) if len(values) else 1.0
    relative = [v / top for v in values]
    if any(zero < r < nonzero for r in relative):
        raise Ambiguous
    return int(sum(r >= nonzero for r in relative))


def _singular_values(matrix: np.ndarray) -> list:
    if matrix.dtype == object:
        return sorted(mpmath.svd_r(mpmath.matrix(matrix.tolist()), compute_uv=False), reverse=True)
    return list(np.linalg.svd(matrix, compute_uv=False))


def _dimensions(x: np.ndarray, zero: float, nonzero: float) -> tuple[int, int]:
    """(affine hull, linear span) dimensions of the rows of ``x``."""
    centred = x - x.mean(axis=0)
    return _rank(centred, zero, nonzero), _rank(x, zero, nonzero)


def _points(spec, count: int, dtype) -> np.ndarray:
    if isinstance(spec, ParametricManifold):
        return _parametric_points(spec, count, dtype)
    x = _implicit_points(spec, count)
    if dtype is object:
        with mpmath.workdps(DIGITS):
            x = _newton(spec, np.vectorize(mpmath.mpf, otypes=[object])(x), _POLISH_STEPS)
    return x


def _measure(spec, per_dimension: int, precise: bool) -> tuple[int, int]:
    count = per_dimension * (spec.d + 2)
    x = _points(spec, count, float)
    if len(x) < spec.d + 2:
        raise DerivationError(
            f"the cross-check found only {len(x)} regular zeros of {spec!r} among {count} "
            "starting points, too few to confirm the exact answer"
        )
    if not precise:
        return _dimensions(x, ZERO, NONZERO)
    with mpmath.workdps(DIGITS):
        x = _points(spec, count, object)
        small = mpmath.mpf(10) ** -(DIGITS - 20)
        return _dimensions(x, small, mpmath.mpf(10) ** -(DIGITS // 3))


def sampled_dimensions(spec, *, precise: bool = False) -> tuple[int, int]:
    """(affine hull, linear span) dimensions of a sample of ``spec``'s data distribution."""
    try:
        return _measure(spec, _FEW, precise)
    except Ambiguous:
        if precise:
            raise DerivationError(
                f"the numerical cross-check of {spec!r} cannot tell a direction of its data from "
                f"zero even at {DIGITS} digits, so the exact answer is not confirmed"
            ) from None
        return sampled_dimensions(spec, precise=True)


def cross_check(spec, affine: int, span: int) -> None:
    """Raise ``DerivationError`` unless a sample of ``spec``'s data has the exact dimensions.

    A float64 sample that disagrees is redrawn larger (when it shows *fewer* directions it may
    have missed a piece of small mass) and then at ``DIGITS`` digits (a direction of tiny
    curvature is below float64's resolution); only a disagreement that survives both counts.
    """
    expected = (affine, span)
    found = sampled_dimensions(spec)
    if found != expected and (found[0] < affine or found[1] < span):
        found = _measure_or_precise(spec)
    if found != expected:
        found = sampled_dimensions(spec, precise=True)
    if found != expected:
        raise DerivationError(
            f"the exact derivation for {spec!r} gives an affine hull of dimension {affine} and "
            f"a span of dimension {span}, but a sample of its own data shows {found[0]} and "
            f"{found[1]}; the exact answer is withheld (please report this spec)"
        )


def _measure_or_precise(spec) -> tuple[int, int]:
    try:
        return _measure(spec, _MANY, precise=False)
    except Ambiguous:
        return sampled_dimensions(spec, precise=True)
