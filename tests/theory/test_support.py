"""Exact affine hulls and spans of the named families."""

from fractions import Fraction

import pytest
import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.theory import affine_hull_dimension, affine_support, is_affinely_flat, span_dimension

# (manifold, span dimension, affine hull dimension)
TABLE = [
    (mf.Gaussian(5), 5, 5),
    (mf.LayerNormImage(5), 4, 4),
    (mf.LayerNormImage(5, gain=[1, 2, 3, 4, 5]), 4, 4),
    (mf.LayerNormImage(5, bias=[1, 0, 0, 0, 0]), 5, 4),
    # alpha . bias = 1/1 - 2/2 = 0: the biased image still passes through 0
    (mf.LayerNormImage(5, gain=[1, 2, 3, 4, 5], bias=[1, 2, 0, 0, 0]), 5, 4),
    (mf.LayerNormImage(5, gain=[1, 2, 3, 4, 5], bias=[1, -2, 0, 0, 0]), 4, 4),
    (mf.LayerNormImage(5, gain=[0, 1, 1, 1, 1]), 4, 4),
    (mf.LayerNormImage(5, gain=[0, 0, 1, 1, 1]), 3, 3),
    (mf.LayerNormImage(5, gain=[0, 0, 1, 1, 1], bias=[1, 0, 0, 0, 0]), 4, 3),
    (mf.LayerNormImage(1), 0, 0),
    (mf.LayerNormImage(1, bias=[2]), 1, 0),
    (mf.RMSNormImage(5), 5, 5),
    (mf.RMSNormImage(5, gain=[0, 1, 1, 1, 1]), 4, 4),
    (mf.Sphere(5, radius=3), 5, 5),
    (mf.Sphere(1), 1, 1),
    (mf.Simplex(5), 5, 4),
    (mf.Simplex(1), 1, 0),
    (mf.Ellipsoid(3, axes=[1, 2, 3]), 3, 3),
    (mf.Hyperplane([1, 2, 3]), 2, 2),
    (mf.Hyperplane([1, 2, 3], offset=4), 3, 2),
    (mf.BumpedHyperplane(4, kappa=0, fraction=1), 3, 3),
    (mf.BumpedHyperplane(4, kappa=1, fraction=0), 3, 3),
    (mf.BumpedHyperplane(4, kappa="-1/100", fraction="1/100"), 4, 4),
]


@pytest.mark.parametrize(("manifold", "span", "affine"), TABLE, ids=lambda v: repr(v)[:40])
def test_named_family_dimensions(manifold, span, affine):
    assert span_dimension(manifold)[0] == span
    assert affine_hull_dimension(manifold)[0] == affine
    assert is_affinely_flat(manifold) == (affine < manifold.d)


@pytest.mark.parametrize(("manifold", "span", "affine"), TABLE, ids=lambda v: repr(v)[:40])
def test_witness_forms_are_independent_and_counted(manifold, span, affine):
    linear, affine_w = span_dimension(manifold)[1], affine_hull_dimension(manifold)[1]
    assert linear.rows == manifold.d - span and (linear.rows == 0 or linear.rank() == linear.rows)
    assert affine_w.rows == manifold.d - affine
    assert affine_w.shape[1] == manifold.d + 1


def test_layernorm_witness_is_the_inverse_gain():
    _, witness = span_dimension(mf.LayerNormImage(3, gain=[1, 2, 4]))
    assert witness == sp.Matrix([[1, sp.Rational(1, 2), sp.Rational(1, 4)]])


def test_simplex_affine_witness_is_sum_minus_one():
    _, witness = affine_hull_dimension(mf.Simplex(3))
    assert witness == sp.Matrix([[1, 1, 1, -1]])


def test_linear_forms_vanish_on_the_affine_hull_point_set():
    support = affine_support(mf.LayerNormImage(4, bias=[1, 2, 3, 4], gain=[1, 1, 0, 1]))
    point = (Fraction(1), Fraction(2), Fraction(3), Fraction(4))  # gain 0 pins x3 = 3 = bias
    for form in support.linear_forms():
        assert sum(a * x for a, x in zip(form, point)) == 0


def test_large_named_family_is_fast():
    import time

    start = time.perf_counter()
    assert span_dimension(mf.LayerNormImage(1024))[0] == 1023
    assert time.perf_counter() - start < 1.0


def test_an_expression_manifold_is_derived_once_per_process(monkeypatch):
    from llcgeo import ImplicitHypersurface
    from llcgeo.manifolds import LinearLayer
    from llcgeo.theory import predicted_llc, support

    derivations = []
    original = support.run_bounded

    def counted(*args, **kwargs):
        derivations.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(support, "run_bounded", counted)
    support._derived.cache_clear()  # another test may have derived this cone already
    cone = ImplicitHypersurface("x**2 + y**2 - z**2", ["x", "y", "z"])
    first = predicted_llc(cone, LinearLayer(2))
    second = predicted_llc(cone, LinearLayer(3, bias=True), "weight")
    assert derivations == [cone]  # the second layer reuses the exact support
    assert (first.llc, second.llc) == (3, sp.Rational(9, 2)) and first.flat is False
