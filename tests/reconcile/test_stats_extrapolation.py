"""The extrapolation to a limit (:func:`llcgeo.reconcile.stats.extrapolate_to_zero`): exact on a
model it contains, its errors those of the weighted fit (widened by Birge's ratio alone), its
band the fit's error at every x, and its standard error honest over many noisy data sets."""

import numpy as np
import pytest

from llcgeo.reconcile.stats import Extrapolation, extrapolate_to_zero, weighted_fit


def test_a_line_and_a_further_term_are_recovered_exactly():
    x = np.array([0.05, 0.1, 0.2, 0.05, 0.1, 0.2])
    other = np.array([0.01, 0.01, 0.01, 0.04, 0.04, 0.04])  # a localization term beside it
    e = extrapolate_to_zero(x, 6.0 - 2.0 * x - 1.5 * other, [0.05] * 6, others=(other,))
    assert e.limit == pytest.approx(6.0, abs=1e-10) and e.slope == pytest.approx(-2.0)
    assert e.others == (pytest.approx(-1.5),) and e.chi2 == pytest.approx(0.0, abs=1e-12)
    assert e.dof == 3 and e.scale == 1.0
    assert e.line(0.0) == e.limit and e.line(0.1) == pytest.approx(5.8)


def test_its_errors_are_the_weighted_fits_widened_by_birges_ratio():
    rng = np.random.default_rng(1)
    x, se = np.linspace(0.05, 0.3, 8), np.full(8, 0.02)
    values = 3.0 + x + rng.normal(0, 0.1, 8)  # five times the stated errors: widened
    e = extrapolate_to_zero(x, values, se)
    fit = weighted_fit(np.column_stack([np.ones(8), x]), values, se)
    assert e.scale == pytest.approx(fit.scale) and e.scale > 2
    assert (e.limit, e.slope) == pytest.approx(fit.coefficients)
    assert (e.limit_se, e.slope_se) == pytest.approx(fit.errors)


def test_the_band_is_the_fit_and_its_error_at_each_x():
    """At each x of the band, the line and its error are the intercept, and the intercept's
    error, of the same fit with x shifted there (how the singular figure drew it before)."""
    x, values, se = [0.1, 0.15, 0.25], [5.8, 5.75, 5.5], [0.05, 0.04, 0.06]
    e = extrapolate_to_zero(x, values, se)
    xs, line, spread = e.band(0.25, points=6)
    assert xs[0] == 0.0 and xs[-1] == 0.25 and len(xs) == 6
    for at, centre, error in zip(xs, line, spread):
        shifted = extrapolate_to_zero([v - at for v in x], values, se)
        assert centre == pytest.approx(shifted.limit, rel=1e-12)
        assert error == pytest.approx(shifted.limit_se, rel=1e-9)
    assert spread[0] == max(spread)  # largest at the limit, farthest from the data


def test_the_limits_standard_error_is_honest_over_many_data_sets():
    rng = np.random.default_rng(7)
    x, se = np.array([1 / np.log(n) for n in (1e4, 1e5, 1e6)] * 4), np.full(12, 0.05)
    z = []
    for _ in range(400):
        e = extrapolate_to_zero(x, 6.0 + 0.3 * x + rng.normal(0, se), se)
        z.append((e.limit - 6.0) / e.limit_se)
    assert abs(np.mean(z)) < 0.2 and 0.85 < np.std(z) < 1.1  # widening only ever narrows z


def test_an_extrapolation_is_a_plain_value():
    e = extrapolate_to_zero([0.1, 0.2, 0.3], [1.0, 1.1, 1.2], [0.1] * 3)
    assert isinstance(e, Extrapolation) and e == extrapolate_to_zero([0.1, 0.2, 0.3],
                                                                       [1.0, 1.1, 1.2], [0.1] * 3)
