"""Implicit polynomial hypersurfaces: exact flatness, curvature and bad input."""

import pytest
import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.errors import DerivationError, ExpressionError, SpecError
from llcgeo.theory import affine_support, predicted_llc, second_fundamental_form

XYZ = ("x", "y", "z")


@pytest.mark.parametrize(
    ("equation", "affine", "span"),
    [
        ("x**2 + y**2 + z**2 - 1", 3, 3),  # sphere
        ("x**2 + y**2 - z**2", 3, 3),  # cone
        ("z - x**2 - y**2", 3, 3),  # paraboloid
        ("z - x**3", 3, 3),  # cubic cylinder, curved away from x = 0
        ("(x + y - 1)*(z**2 + 1)", 2, 3),  # the second factor has no real points
        ("(x + y - 1)*(x**2 + y**2 + z**2 - 4)**2", 2, 3),  # a repeated factor has no regular zeros
        ("3*x - 2*y", 2, 2),
        ("z*(z - 1)", 3, 3),  # two parallel planes
        ("z*(z - x**2)", 3, 3),  # a union, flat on part of its mass
        ("z*(x**2 + y**2 + 1)", 2, 2),  # the second factor has no real points
        ("z*(x**2 + y**2)", 2, 2),  # the z-axis is singular (grad F = 0): the data avoid it
        ("x*((x - 1)**2 + y**2)", 2, 2),  # so is the isolated real point (1, 0)
        ("x**2 - 2*y**2", 3, 3),  # two real planes, irrational over Q: together they span R^3
        ("x**2 - 2", 3, 3),  # two parallel irrational planes
        ("z*((x - 1/3)**2 + y**2 - 1/1000000)", 3, 3),  # a thin cylinder the grid would miss
        ("z*((x - 1/3)**4 + y**2 + 1)", 2, 2),  # proven positive after an exact shift
    ],
)
def test_implicit_affine_hulls(equation, affine, span):
    support = affine_support(mf.ImplicitHypersurface(equation, XYZ))
    assert (support.affine_dimension, support.span_dimension) == (affine, span)


def test_curvature_anywhere_means_no_drop():
    layer = mf.LinearLayer(2)
    for kappa in ("1/1000", "-1/1000", "5"):
        p = predicted_llc(mf.ImplicitHypersurface(f"z - ({kappa})*x**2", XYZ), layer)
        assert p.llc_drop == 0 and not p.flat
    flat = predicted_llc(mf.ImplicitHypersurface("z - 0*x**2", XYZ), layer)
    assert flat.llc_drop == 1 and flat.flat


@pytest.mark.parametrize(
    ("equation", "message"),
    [
        ("x**2 + y**2 + z**2 + 1", "no real points"),
        ("x**2 + y**2", "never changes sign"),
        ("(x + y - 1)**2", "repeated factor"),
        ("(x + 2*y - z - 1)**3", "repeated factor"),
        ("0*x", "identically zero"),
        ("7 + 0*x", "no real points"),
    ],
)
def test_degenerate_equations_are_rejected(equation, message):
    with pytest.raises(SpecError, match=message):
        affine_support(mf.ImplicitHypersurface(equation, XYZ))


def test_one_irrational_plane_is_refused_not_guessed():
    with pytest.raises(DerivationError, match="one hyperplane with irrational coefficients"):
        affine_support(mf.ImplicitHypersurface("x**3 - 2", XYZ))


def test_a_factor_whose_sign_is_not_decided_is_refused_not_guessed():
    # positive everywhere, but neither of even powers nor a quadric, nor a shift of one
    with pytest.raises(DerivationError, match="nor prove that it keeps one sign"):
        affine_support(mf.ImplicitHypersurface("z*(x**4 + x**2*y**2 + y**4 - x*y**3 + 1)", XYZ))


@pytest.mark.parametrize(
    ("equation", "variables", "error", "message"),
    [
        ("sin(x) + y", XYZ, SpecError, "polynomial"),
        ("x / y", XYZ, SpecError, "polynomial"),
        ("x + w", XYZ, ExpressionError, "w"),
        ("x + y", ("x", "x"), SpecError, "repeats"),
        ("x + y", (), SpecError, "at least one"),
    ],
)
def test_bad_specs(equation, variables, error, message):
    with pytest.raises(error, match=message):
        mf.ImplicitHypersurface(equation, variables)


def test_second_fundamental_form_of_sphere_and_cylinder():
    sphere = mf.ImplicitHypersurface("x**2 + y**2 + z**2 - 4", XYZ)
    assert second_fundamental_form(sphere, [0, 0, 2]) == sp.diag(
        sp.Rational(1, 2), sp.Rational(1, 2), 0
    )
    a, b = sp.symbols("a b", real=True)
    cyl = mf.ImplicitHypersurface("x**2 + y**2 - 1", XYZ)
    form = second_fundamental_form(cyl, [a, b, 0]).subs(
        {a: sp.cos(sp.Symbol("t")), b: sp.sin(sp.Symbol("t"))}
    )
    assert sp.simplify(form.trace()) == 1  # one principal curvature 1, the other 0


def test_second_fundamental_form_of_named_families():
    bump = mf.BumpedHyperplane(3, kappa="-3/2", fraction="1/2")
    assert second_fundamental_form(bump, [0, 0, 0]) == sp.diag(sp.Rational(-3, 2), 0, 0)
    assert second_fundamental_form(bump, [5, 0, 0]) == sp.zeros(3, 3)
    assert second_fundamental_form(mf.Simplex(3), [1, 0, 0]) == sp.zeros(3, 3)
    with pytest.raises(SpecError, match="not a hypersurface"):
        second_fundamental_form(mf.LayerNormImage(3), [1, 0, -1])
    with pytest.raises(SpecError, match="vanishes"):
        second_fundamental_form(mf.ImplicitHypersurface("x**2 + y**2 - z**2", XYZ), [0, 0, 0])


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ([1, 2, 3], "not on the manifold: F = -4"),
        (["a", 0, 1], "unknown name 'a'"),
        ([float("nan"), 0, 1], "finite"),
        ([None, 1, 1], "None"),
    ],
)
def test_a_bad_point_is_refused_by_name(point, message):
    cone = mf.ImplicitHypersurface("x**2 + y**2 - z**2", XYZ)
    with pytest.raises(SpecError, match=message):
        second_fundamental_form(cone, point)
