"""The affine hull of a manifold's support, exactly: ``{x : A x = c}`` with rational ``A``, ``c``.

Everything the LLC needs is linear algebra on this pair: the affine forms that vanish on the
support (``a_i . x - c_i``), and the linear forms that vanish on its linear span (the
combinations ``lambda^T A`` with ``lambda . c = 0``). The named families give the pair in O(d)
from their structure; implicit and parametric manifolds derive it in their own modules.

>>> from llcgeo.manifolds import LayerNormImage, Simplex
>>> s = affine_support(LayerNormImage(4))
>>> s.affine_dimension, s.span_dimension
(3, 3)
>>> s = affine_support(Simplex(4))
>>> s.affine_dimension, s.span_dimension
(3, 4)
"""

from __future__ import annotations

import functools
from fractions import Fraction
from functools import singledispatch

import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.errors import DerivationError, LLCGeoError
from llcgeo.limits import derivation_seconds, run_bounded
from llcgeo.theory.affine import AffineSupport, Vector
from llcgeo.theory.crosscheck import cross_check
from llcgeo.theory.hypersurface import hypersurface_support
from llcgeo.theory.parametric import parametric_support


def _unit(d: int, i: int) -> Vector:
    return tuple(Fraction(int(j == i)) for j in range(d))


def _coordinates_fixed(d: int, indices, point) -> AffineSupport:
    """``{x : x_i = point_i for i in indices}``."""
    forms = tuple(_unit(d, i) for i in indices)
    return AffineSupport(d, forms, tuple(point[i] for i in indices))


def affine_support(manifold, *, seconds: float | None = None) -> AffineSupport:
    """The exact affine hull of the support of ``manifold``'s data distribution, derived within
    ``seconds`` (``None``: the configured default of :mod:`llcgeo.limits`; ``math.inf``: no
    bound) or refused with ``DerivationError``."""
    if not mf.is_manifold(manifold):
        raise TypeError(f"no affine hull is known for {type(manifold).__name__}")
    if isinstance(manifold, (mf.ImplicitHypersurface, mf.ParametricManifold)):
        return _derived(manifold, derivation_seconds(seconds))
    return _support(manifold)  # closed forms, O(d)


@functools.lru_cache(maxsize=64)
def _derived(manifold, seconds: float) -> AffineSupport:
    """A derivation from expressions, within ``seconds``. Its answer is exact, so a process
    derives each manifold once (a hypothesis file's cases, its judging and a calibration all
    ask); a refusal is not kept, so a longer limit may try again."""
    what = f"the exact derivation for {type(manifold).__name__}"
    return run_bounded(_support, manifold, seconds=seconds, what=what)


@singledispatch
def _support(manifold) -> AffineSupport:
    raise TypeError(f"no affine hull is known for {type(manifold).__name__}")


# decorator: ``support(spec) -> AffineSupport``, the exact affine hull of a registered family
register_support = _support.register


@_support.register(mf.Gaussian)
@_support.register(mf.Sphere)
@_support.register(mf.Ellipsoid)
def _full(manifold) -> AffineSupport:
    return AffineSupport(manifold.d)


@_support.register(mf.RMSNormImage)
def _rmsnorm(manifold: mf.RMSNormImage) -> AffineSupport:
    # a zero gain pins its coordinate to 0; the rest is an ellipsoid in the remaining axes
    zeros = [i for i, g in enumerate(manifold.gain or ()) if g == 0]
    return _coordinates_fixed(manifold.d, zeros, (Fraction(0),) * manifold.d)


@_support.register(mf.LayerNormImage)
def _layernorm(manifold: mf.LayerNormImage) -> AffineSupport:
    d = manifold.d
    gain = manifold.gain or (Fraction(1),) * d
    bias = manifold.bias or (Fraction(0),) * d
    zeros = [i for i, g in enumerate(gain) if g == 0]
    if d == 1 or zeros:
        # mean-centring leaves {sum y = 0}; diag(gain) maps it onto {x_Z = 0} when Z is not empty
        return _coordinates_fixed(d, zeros or [0], bias)
    alpha = tuple(1 / g for g in gain)
    return AffineSupport(d, (alpha,), (sum(a * b for a, b in zip(alpha, bias)),))


@_support.register(mf.Simplex)
def _simplex(manifold: mf.Simplex) -> AffineSupport:
    return AffineSupport(manifold.d, ((Fraction(1),) * manifold.d,), (Fraction(1),))


@_support.register(mf.Hyperplane)
def _hyperplane(manifold: mf.Hyperplane) -> AffineSupport:
    return AffineSupport(manifold.d, (manifold.normal,), (manifold.offset,))


@_support.register(mf.BumpedHyperplane)
def _bumped(manifold: mf.BumpedHyperplane) -> AffineSupport:
    if manifold.flat:
        return _coordinates_fixed(manifold.d, [manifold.d - 1], (Fraction(0),) * manifold.d)
    return AffineSupport(manifold.d)


@_support.register(mf.ImplicitHypersurface)
@_support.register(mf.ParametricManifold)
def _from_expressions(manifold) -> AffineSupport:
    """Derived exactly, then confirmed by a sample of the manifold's own data; any failure
    inside sympy or numpy reaches the user as the package's ``DerivationError``."""
    derive = (
        hypersurface_support
        if isinstance(manifold, mf.ImplicitHypersurface)
        else parametric_support
    )
    try:
        support = derive(manifold)
        cross_check(manifold, support.affine_dimension, support.span_dimension)
    except LLCGeoError:
        raise
    except Exception as error:  # RecursionError, ValueError, ... from inside a library
        raise DerivationError(
            f"the exact derivation for {manifold!r} failed inside a library "
            f"({type(error).__name__}: {error}); simplify the input, and please report it"
        ) from None
    return support


def span_dimension(manifold) -> tuple[int, sp.Matrix]:
    """Dimension of the linear span of the support, and a basis of the linear forms that
    vanish on it (rows of the witness matrix)."""
    s = affine_support(manifold)
    return s.span_dimension, s.linear_witness()


def affine_hull_dimension(manifold) -> tuple[int, sp.Matrix]:
    """Dimension of the affine hull of the support, and a basis of the affine forms that vanish
    on it (rows ``(a, -c)`` for ``a . x - c = 0``)."""
    s = affine_support(manifold)
    return s.affine_dimension, s.affine_witness()


def is_affinely_flat(manifold) -> bool:
    """True when the support lies in an affine hyperplane (its affine hull is not all of R^d)."""
    return affine_support(manifold).affine_dimension < manifold.d
