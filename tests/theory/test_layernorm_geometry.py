"""The exact hyperellipsoid image of LayerNorm, and the radius moments of Gaussian inputs."""

import math

import numpy as np
import pytest
import sympy as sp
from scipy import integrate, special, stats

from llcgeo.errors import DerivationError, SpecError
from llcgeo.theory.layernorm_geometry import (
    axis_coordinate_moments,
    layernorm_ellipsoid,
    squared_radius_moments,
)


def _form(gain):
    """``P G^-2 P`` built directly, as an independent check of the eigenpairs."""
    alpha = sp.Matrix([1 / sp.sympify(g) for g in gain])
    projector = sp.eye(len(gain)) - alpha * alpha.T / (alpha.T * alpha)[0]
    return projector * sp.diag(*[sp.sympify(g) ** -2 for g in gain]) * projector


def test_gain_123_has_the_exact_axes():
    e = layernorm_ellipsoid((1, 2, 3))
    assert e.eigenvalues == (sp.Rational(1, 7), sp.Rational(3, 7))
    assert e.semi_axes == (sp.sqrt(21), sp.sqrt(7))
    assert e.normal == (1, sp.Rational(1, 2), sp.Rational(1, 3))


@pytest.mark.parametrize(
    "gain", [(1, 2, 3), (1, 1, -1, 1, 2, -2, 2, 2, 3, 3, 3, -3), (2, 2, 2, 2), ("1/2", 3, 3)]
)
def test_axes_are_exact_orthonormal_eigenvectors_in_the_hyperplane(gain):
    e = layernorm_ellipsoid(gain)
    form, n = _form(gain), len(gain)
    alpha = sp.Matrix(e.normal)
    axes = [sp.Matrix(u) for u in e.axes]
    assert len(axes) == n - 1
    for lam, u, s in zip(e.eigenvalues, axes, e.semi_axes):
        assert (form * u - lam * u).applyfunc(sp.simplify) == sp.zeros(n, 1)
        assert sp.simplify((alpha.T * u)[0]) == 0
        assert sp.simplify((u.T * u)[0] - 1) == 0
        # the end of the semi-axis lies exactly on the ellipsoid (y - b)^T G^-2 (y - b) = N
        end = s * u
        quad = sum(end[i] ** 2 / sp.sympify(gain[i]) ** 2 for i in range(n))
        assert sp.simplify(quad - n) == 0
    for i, u in enumerate(axes):
        for v in axes[i + 1 :]:
            assert sp.simplify((u.T * v)[0]) == 0


def test_eigenvalues_solve_the_secular_equation():
    gain = (1, 2, 3, 5)
    e = layernorm_ellipsoid(gain)
    d = [sp.Rational(1, g**2) for g in gain]
    weight = [v / sum(d) for v in d]  # alpha_hat_i^2
    for lam in e.eigenvalues:
        value = sum(w / (v - lam) for w, v in zip(weight, d))
        assert abs(complex(sp.N(value, 30))) < 1e-20


def test_uniform_gain_is_a_sphere_of_radius_g_sqrt_n():
    e = layernorm_ellipsoid((2,) * 8)
    assert e.eigenvalues == (sp.Rational(1, 4),) * 7
    assert e.semi_axes == (4 * sp.sqrt(2),) * 7


def test_quartic_secular_equation_gives_exact_roots_matching_numpy():
    gain = (1, 2, 3, 4, 5)
    e = layernorm_ellipsoid(gain)
    assert any(lam.has(sp.CRootOf) for lam in e.eigenvalues)
    numeric = np.linalg.eigvalsh(np.array(_form(gain), dtype=float))[1:]
    assert np.allclose([float(v) for v in e.eigenvalues], numeric, rtol=1e-12)


def test_signs_and_bias_do_not_change_the_axes_lengths():
    plain = layernorm_ellipsoid((1, 2, 3))
    signed = layernorm_ellipsoid((-1, 2, -3), bias=(5, "1/3", -2))
    assert signed.eigenvalues == plain.eigenvalues
    assert signed.bias == (5, sp.Rational(1, 3), -2)


def test_symbolic_two_dimensional_gain_is_a_segment():
    g1, g2 = sp.symbols("g1 g2", positive=True)
    e = layernorm_ellipsoid((g1, g2))
    assert sp.simplify(e.eigenvalues[0] - 2 / (g1**2 + g2**2)) == 0
    assert sp.simplify(e.semi_axes[0] - sp.sqrt(g1**2 + g2**2)) == 0


def test_symbolic_three_dimensional_gain_specializes_to_the_numbers():
    g = sp.symbols("g1 g2 g3", positive=True)
    e = layernorm_ellipsoid(g)
    values = dict(zip(g, (1, 2, 3)))
    assert [sp.nsimplify(sp.N(v.subs(values), 40)) for v in e.eigenvalues] == [
        sp.Rational(1, 7),
        sp.Rational(3, 7),
    ]


def test_too_many_distinct_symbolic_gains_is_a_derivation_error():
    with pytest.raises(DerivationError, match="secular equation has degree 3"):
        layernorm_ellipsoid(sp.symbols("g1:5", positive=True))


def test_zero_gain_says_what_the_image_becomes():
    with pytest.raises(SpecError, match=r"gain\[1\] = 0.*constant bias\[1\] = 5.*\{y_1 = 5\}"):
        layernorm_ellipsoid((1, 0, 2), bias=(0, 5, 0))


@pytest.mark.parametrize(
    "gain, bias",
    [((1,), None), ((1, 2), (0,)), ("12", None), ((1, "x"), None), ((1, float("nan")), None)],
)
def test_bad_gains_raise_spec_error(gain, bias):
    with pytest.raises(SpecError):
        layernorm_ellipsoid(gain, bias)


def _deficit_by_quadrature(n, eps, variance, power):
    """``E[(1 - r^2)^power]`` integrated against the chi-square density directly."""
    t = n * eps / variance
    density = stats.chi2(n - 1).pdf
    value, _ = integrate.quad(lambda x: (t / (x + t)) ** power * density(x), 0, np.inf)
    return value


@pytest.mark.parametrize("n, eps, variance", [(3, 1.0, 1.0), (8, 0.01, 1.0), (12, 2.0, 4.0)])
def test_radius_moments_match_direct_integration(n, eps, variance):
    r2, r4 = squared_radius_moments(n, eps, variance)
    d1 = _deficit_by_quadrature(n, eps, variance, 1)
    d2 = _deficit_by_quadrature(n, eps, variance, 2)
    assert 1 - r2 == pytest.approx(d1, rel=1e-8)
    assert r4 == pytest.approx(1 - 2 * d1 + d2, rel=1e-8)


def test_radius_deficit_for_three_coordinates_in_closed_form():
    # chi2(2) is exponential with mean 2: E[3 / (X + 3)] = 1.5 e^1.5 E1(1.5)
    r2, _ = squared_radius_moments(3, 1)
    assert 1 - r2 == pytest.approx(1.5 * math.exp(1.5) * special.exp1(1.5), rel=1e-10)


def test_zero_eps_puts_every_output_on_the_surface():
    assert squared_radius_moments(5, 0) == (1.0, 1.0)


def test_axis_moments_of_a_circle():
    # N = 3, r = 1: the coordinate is s cos(theta), mean s^2/2, variance s^4/8
    mean, var = axis_coordinate_moments(3.0, 3, (1.0, 1.0))
    assert mean == pytest.approx(4.5)
    assert var == pytest.approx(81 / 8)


@pytest.mark.parametrize(
    "call",
    [
        lambda: squared_radius_moments(1, 1),
        lambda: squared_radius_moments(3, -1),
        lambda: squared_radius_moments(3, 1, 0),
    ],
)
def test_bad_moment_arguments_raise_spec_error(call):
    with pytest.raises(SpecError):
        call()
