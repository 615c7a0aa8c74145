"""Parametrized manifolds: exact affine hulls through exponential-polynomial expansion."""

import pytest

from llcgeo import manifolds as mf
from llcgeo.theory import affine_support


@pytest.mark.parametrize(
    ("phi", "params", "affine", "span"),
    [
        (["(2 + cos(v))*cos(u)", "(2 + cos(v))*sin(u)", "sin(v)"], "u v", 3, 3),  # torus
        (["u", "v", "u**2 + v**2"], "u v", 3, 3),  # paraboloid patch
        (["u + v", "u - v", "2*u"], "u v", 2, 2),  # a plane through 0 in a rotated basis
        (["u + v", "u - v", "2*u + 1"], "u v", 2, 3),  # the same plane, shifted
        (["cos(u)**2", "sin(u)**2", "u"], "u", 2, 3),  # cos^2 + sin^2 = 1 is found
        (["exp(u)", "exp(2*u)", "u"], "u", 3, 3),
        (["cos(pi*u)", "sin(pi*u)"], "u", 2, 2),
        (["u", "u"], "u", 1, 1),
    ],
)
def test_parametric_hulls(phi, params, affine, span):
    support = affine_support(mf.ParametricManifold(phi, params))
    assert (support.affine_dimension, support.span_dimension) == (affine, span)


def test_rotated_plane_witness():
    support = affine_support(mf.ParametricManifold(["u + v", "u - v", "2*u + 1"], "u v"))
    (form,), (value,) = support.forms, support.values
    assert value != 0
    # the form must vanish on phi(t) - value for sample parameter values
    for u, v in [(0, 0), (1, 2), (-3, 5)]:
        point = (u + v, u - v, 2 * u + 1)
        assert sum(a * x for a, x in zip(form, point)) == value
