"""Hermite coefficients, the non-linearity strength and the mean-field correlation map."""

import math

import numpy as np
import pytest
import sympy as sp
from scipy import integrate

from llcgeo.errors import SpecError
from llcgeo.theory.hermite import (
    ACTIVATIONS,
    activation_second_moment,
    correlation_map,
    equicorrelated_isometry_gap,
    hermite_coefficients,
    mean_field_correlations,
    nonlinearity_strength,
    relu_hermite_coefficient,
)

x = sp.Symbol("x", real=True)


def _relu_coefficient_by_integration(k: int) -> sp.Expr:
    """``E[relu(X) He_k(X)] / sqrt(k!)`` integrated by sympy, independently of the closed form."""
    integrand = x * sp.hermite_prob(k, x) * sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)
    return sp.simplify(sp.integrate(integrand, (x, 0, sp.oo)) / sp.sqrt(sp.factorial(k)))


@pytest.mark.parametrize("k", range(9))
def test_relu_coefficients_match_direct_integration_exactly(k):
    assert sp.simplify(relu_hermite_coefficient(k) - _relu_coefficient_by_integration(k)) == 0


def test_relu_closed_form_low_orders():
    c = hermite_coefficients("relu", 5)
    assert c[0] == 1 / sp.sqrt(2 * sp.pi)
    assert c[1] == sp.Rational(1, 2)
    assert c[2] == 1 / (2 * sp.sqrt(sp.pi))
    assert c[3] == 0
    assert sp.simplify(c[4] + 1 / sp.sqrt(48 * sp.pi)) == 0  # He_2(0) / sqrt(2 pi 4!)


def test_relu_squares_are_the_taylor_coefficients_of_the_arccosine_kernel():
    # Mehler: E[relu(U) relu(V)] = sum_k c_k^2 rho^k, exactly, order by order
    rho = sp.Symbol("rho")
    kernel = (sp.sqrt(1 - rho**2) + (sp.pi - sp.acos(rho)) * rho) / (2 * sp.pi)
    series = sp.series(kernel, rho, 0, 10).removeO()
    for k, c in enumerate(hermite_coefficients("relu", 10)):
        assert sp.simplify(series.coeff(rho, k) - c**2) == 0


def test_odd_relu_coefficients_above_one_vanish():
    assert all(relu_hermite_coefficient(k) == 0 for k in range(3, 40, 2))


def test_relu_parseval_partial_sums_approach_one_half_from_below():
    # c_k^2 ~ k^(-5/2) for even k, so the tail beyond 100 terms is about 5e-5
    squares = [float(c) ** 2 for c in hermite_coefficients("relu", 100)]
    partial = np.cumsum(squares)
    assert np.all(np.diff(partial) >= 0)
    assert 0.5 - 1e-4 < partial[-1] < 0.5


def test_sin_quadrature_matches_the_closed_form():
    # E[sin(X) He_k(X)] = E[sin^(k)(X)] = (-1)^((k-1)/2) e^(-1/2) for odd k, 0 for even k
    c = hermite_coefficients("sin", 30)
    for k, value in enumerate(c):
        exact = 0.0 if k % 2 == 0 else (-1) ** ((k - 1) // 2) * math.exp(-0.5)
        assert value == pytest.approx(exact / math.sqrt(math.factorial(k)), abs=1e-13)


def test_gelu_first_coefficients_are_exact_values():
    c = hermite_coefficients("gelu", 2)
    assert c[0] == pytest.approx(1 / (2 * math.sqrt(math.pi)), abs=1e-13)  # E[X Phi(X)]
    assert c[1] == pytest.approx(0.5, abs=1e-13)  # E[X^2 Phi(X)]


@pytest.mark.parametrize("activation", ["tanh", "sin", "gelu"])
def test_quadrature_coefficients_satisfy_parseval(activation):
    squares = np.square(hermite_coefficients(activation, 96))
    assert squares.sum() == pytest.approx(float(activation_second_moment(activation)), rel=1e-11)


def test_tanh_coefficient_against_adaptive_quadrature():
    def integrand(t):
        return np.tanh(t) * (t**3 - 3 * t) * np.exp(-t * t / 2)

    value = integrate.quad(integrand, -40, 40, limit=200)[0] / math.sqrt(2 * math.pi * 6)
    assert hermite_coefficients("tanh", 4)[3] == pytest.approx(value, abs=1e-12)


def test_nonlinearity_strength_exact_for_relu_and_linear():
    assert sp.simplify(nonlinearity_strength("relu") - sp.pi / (2 * (sp.pi - 1))) == 0
    assert nonlinearity_strength("linear") == 1


@pytest.mark.parametrize("activation", ["tanh", "sin", "gelu"])
def test_nonlinearity_strength_lies_strictly_between_zero_and_one(activation):
    assert 0 < nonlinearity_strength(activation) < 1


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_correlation_map_fixes_one_and_is_increasing(activation):
    grid = np.linspace(-0.99, 1.0, 60)
    for centred in (True, False):
        values = [correlation_map(activation, r, centred) for r in grid]
        assert values[-1] == pytest.approx(1.0, abs=1e-12)
        assert np.all(np.diff(values) >= -1e-12)


def test_centred_map_has_slope_beta0_at_zero():
    for activation in ("relu", "tanh", "gelu"):
        h = 1e-6
        slope = (correlation_map(activation, h, True) - correlation_map(activation, -h, True)) / (
            2 * h
        )
        assert slope == pytest.approx(float(nonlinearity_strength(activation)), rel=1e-6)


def test_uncentred_relu_map_never_reaches_zero():
    assert correlation_map("relu", 0.0, centred=False) == pytest.approx(1 / math.pi, abs=1e-15)
    assert correlation_map("relu", 0.0, centred=True) == pytest.approx(0.0, abs=1e-15)


def test_tanh_map_against_two_dimensional_quadrature():
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / math.sqrt(2 * math.pi)
    u, v = np.meshgrid(nodes, nodes, indexing="ij")
    w = np.outer(weights, weights)
    rho = 0.6
    joint = np.sum(w * np.tanh(u) * np.tanh(rho * u + math.sqrt(1 - rho**2) * v))
    assert correlation_map("tanh", rho, True) == pytest.approx(
        joint / float(activation_second_moment("tanh")), abs=1e-10
    )


def test_mean_field_iterates_the_map():
    out = mean_field_correlations("gelu", 0.8, 3, centred=True)
    assert out[0] == 0.8
    for a, b in zip(out, out[1:]):
        assert b == pytest.approx(correlation_map("gelu", a, True), abs=0)


def test_equicorrelated_gap_matches_eigenvalues():
    n, rho = 5, 0.3
    gram = (1 - rho) * np.eye(n) + rho * np.ones((n, n))
    eig = np.linalg.eigvalsh(gram)
    expected = math.log(eig.mean()) - np.log(eig).mean()
    assert equicorrelated_isometry_gap(rho, n) == pytest.approx(expected, rel=1e-13)
    assert equicorrelated_isometry_gap(0.0, n) == 0.0
    assert equicorrelated_isometry_gap(1.0, n) == math.inf


@pytest.mark.parametrize(
    "call",
    [
        lambda: hermite_coefficients("swish", 3),
        lambda: correlation_map("softplus", 0.5, True),
        lambda: mean_field_correlations("relu", 0.5, 0, True),
        lambda: correlation_map("relu", 1.5, True),
        lambda: relu_hermite_coefficient(-1),
        lambda: hermite_coefficients("relu", 0),
        lambda: equicorrelated_isometry_gap(0.1, 1),
    ],
)
def test_bad_input_raises_spec_error(call):
    with pytest.raises(SpecError):
        call()


def test_unknown_activation_message_lists_choices():
    with pytest.raises(SpecError, match="relu, tanh, sin, gelu, linear"):
        nonlinearity_strength("elu")
