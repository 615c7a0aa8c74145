"""Closed-form second moments agree with the exact spans."""

import pytest
import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.errors import DerivationError
from llcgeo.theory import (
    bump_curvature_eigenvalue,
    bump_normal_moments,
    second_moment,
    span_dimension,
)

FAMILIES = [
    mf.Gaussian(4),
    mf.Sphere(4, radius=2),
    mf.Ellipsoid(3, axes=[1, 2, 3]),
    mf.RMSNormImage(4, gain=[1, 0, 2, 3]),
    mf.LayerNormImage(4),
    mf.LayerNormImage(4, gain=[1, 2, 3, 4], bias=[1, 1, 0, 0]),
    mf.LayerNormImage(4, gain=[1, 2, 3, 4], bias=[1, -2, 0, 0]),
    mf.Hyperplane([1, 2, 2], offset=3),
    mf.Hyperplane([1, 2, 2]),
    mf.BumpedHyperplane(3, kappa=1, fraction=1),
    mf.BumpedHyperplane(3, kappa=0, fraction=1),
]


@pytest.mark.parametrize("manifold", FAMILIES, ids=repr)
def test_rank_of_second_moment_is_the_span(manifold):
    assert second_moment(manifold).rank() == span_dimension(manifold)[0]


def test_trace_of_normalized_images():
    assert second_moment(mf.LayerNormImage(5)).trace() == 5  # |y|^2 = d
    assert second_moment(mf.RMSNormImage(5)).trace() == 5


def test_bump_moments_limits_and_eigenvalue():
    full = mf.BumpedHyperplane(3, kappa=2, fraction=1)
    assert bump_normal_moments(full) == (1, 3)
    assert bump_curvature_eigenvalue(full, bias=False) == 3
    assert bump_curvature_eigenvalue(full, bias=True) == 2  # Var(u^2) = 2
    half = mf.BumpedHyperplane(3, kappa=2, fraction="1/2")
    m2, m4 = (float(sp.N(v)) for v in bump_normal_moments(half))
    assert 0 < m4 < m2 < 0.5


def test_no_closed_form_says_so():
    with pytest.raises(DerivationError, match="no closed-form"):
        second_moment(mf.Simplex(3))
    with pytest.raises(DerivationError, match="eps = 0"):
        second_moment(mf.LayerNormImage(3, eps="1/100"))
