"""calibrate on singular models: settings vouched for by the singular suite's extrapolation (or a
refusal that gives the figures), and chains long enough for the bulk-ESS rule the verdicts use.

The slow tests hold calibrated settings to known coefficients (Aoyagi and Watanabe's reduced-rank
regression, Aoyagi's deep linear networks): the estimate at those settings, with the
multiplicity's ``(m - 1) / log nbeta`` added back as the singular suite adds it, must land within
5% plus 3 of its own standard errors of the exact coefficient, or calibrate must have refused."""

import math

import numpy as np
import pytest
import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.numerics.sweep import GridPoint
from llcgeo.reconcile import calibration as cal
from llcgeo.theory.calibration import ESS_MARGIN, recommend
from llcgeo.thresholds import ESS_MIN

NBETA = 10_000.0  # sqrt(nbeta) = 100: x = gamma / 100
GAMMAS = (10.0, 10 / math.sqrt(10), 1.0)  # the grid calibrate runs at this nbeta


def _points(values, gammas=GAMMAS, se=0.05):
    return [GridPoint(1e-5, g, v, se, 1.0, 2000.0, 0) for g, v in zip(gammas, values)]


def _on_line(limit, slope):
    return [limit + slope * g / math.sqrt(NBETA) for g in GAMMAS]


def test_the_gamma_grid_starts_well_below_sqrt_nbeta_or_at_the_quadratic_choice():
    grid = cal.gamma_grid(NBETA, quadratic_gamma=1e3)
    assert grid[0] == pytest.approx(cal.GAMMA_START * 100) and len(grid) == cal.GAMMA_POINTS
    assert grid[0] / grid[-1] == pytest.approx(10.0)  # one decade, largest first
    assert cal.gamma_grid(NBETA, quadratic_gamma=2.0)[0] == 2.0


def test_the_largest_gamma_whose_deficit_is_within_the_target_is_chosen():
    # b = -2: deficits 0.2, 0.063 and 0.02 (b's 3 SE added: a little more), 5% of 6 is 0.3
    points = _points(_on_line(6.0, -2.0), se=0.01)
    fit = cal.gamma_extrapolation(points, NBETA)
    assert fit.limit == pytest.approx(6.0) and fit.slope == pytest.approx(-2.0)
    assert cal.vouched_gamma(points, fit, NBETA, 0.05).gamma == 10.0
    steep = _points(_on_line(6.0, -5.0), se=0.01)  # deficit 0.5 at gamma 10: too much
    chosen = cal.vouched_gamma(steep, cal.gamma_extrapolation(steep, NBETA), NBETA, 0.05)
    assert chosen.gamma == pytest.approx(10 / math.sqrt(10))


def test_a_gamma_whose_chains_disagree_is_passed_over():
    points = _points(_on_line(6.0, 0.0))
    points[0] = points[0]._replace(rhat=1.5)
    fit = cal.gamma_extrapolation(points, NBETA)
    assert cal.vouched_gamma(points, fit, NBETA, 0.05).gamma == points[1].gamma


def test_a_sweep_that_cannot_be_vouched_for_is_refused_with_its_figures():
    steep = _points(_on_line(6.0, -300.0), se=0.01)  # 5% of 6 lost even at gamma 1
    with pytest.raises(SpecError, match=r"no gamma of the sweep can be vouched for: .* \+- "):
        cal.vouched_gamma(steep, cal.gamma_extrapolation(steep, NBETA), NBETA, 0.05)


def test_a_drift_shared_by_every_gamma_is_not_settled():
    short = _points([5.8, 5.9, 6.0], se=0.05)
    assert cal.settled(short, _points([5.8, 5.9, 6.0], se=0.05))
    drifted = _points([5.95, 6.05, 6.15], se=0.05)  # each 2.1 SE up, alone within 3
    assert not cal.settled(short, drifted)
    assert not cal.settled(short, _points([5.8, 5.9, 6.3], se=0.05))  # one alone, 4.2 SE


def test_chains_that_never_settle_are_refused():
    """A sweep whose estimates keep rising with the chain length runs out of steps."""

    def rising(steps):
        return _points([6.0 * (1 - 2000 / steps)] * 3, se=0.01)

    with pytest.raises(SpecError, match="still move at 256000 steps"):
        cal.settled_sweep(rising, rising(cal.SINGULAR_STEPS))
    settling = iter([_points([5.0] * 3), _points([5.9] * 3), _points([6.0] * 3)])
    points, steps = cal.settled_sweep(lambda steps: next(settling), _points([4.0] * 3))
    assert steps == 8 * cal.SINGULAR_STEPS and points[0].mean == 6.0


def test_a_sweep_below_zero_or_with_diverged_chains_is_refused():
    with pytest.raises(SpecError, match="at or below 0 .* no minimum of the loss"):
        cal._refuse_broken(_points([-4.5, -3.2, -1.9]), 1e-3)
    with pytest.raises(SpecError, match=r"chains diverged .* \(gamma 1\)"):
        cal._refuse_broken([*_points([6.0, 6.0]), GridPoint(1e-3, 1.0, 6.0, 0.1, 1.0, 900, 2)],
                           1e-3)  # fmt: skip


def test_a_sweep_too_steep_to_extrapolate_is_refused_before_longer_chains():
    cal.refuse_too_steep(_points(_on_line(6.0, -2.0), se=0.01), NBETA, 0.05)  # passes
    with pytest.raises(SpecError, match="falls too steeply with gamma"):
        cal.refuse_too_steep(_points(_on_line(6.0, -40.0), se=0.01), NBETA, 0.05)


def test_the_chains_are_lengthened_for_the_ess_rule_and_the_standard_error():
    point = GridPoint(1e-5, 1.0, 6.0, 0.05, 1.0, 200.0, 0)  # 800 / 200: four times the draws
    assert cal._singular_steps(point, 10_000, target_se=0.12) == 2000 + 4 * 8000
    # a standard error of 0.05 to reach 0.0125: sixteen times the draws, more than the ESS asks
    assert cal._singular_steps(point, 10_000, target_se=0.0125) == 2000 + 16 * 8000


def test_recommended_chains_reach_the_bulk_ess_asked_for():
    from llcgeo.theory.sgld import energy_autocorrelation_time

    h, nbeta = [2.0, 1.0, 0.5], 1000.0
    r = recommend(h, nbeta=nbeta, chains=4, se=0.2, ess=ESS_MARGIN * ESS_MIN)
    tau = energy_autocorrelation_time(h, nbeta, r.gamma, r.eps)
    assert r.chains * (r.steps - r.burnin) / tau >= ESS_MARGIN * ESS_MIN
    assert "bulk ESS" in r.reasons[3]
    assert recommend(h, nbeta=nbeta, chains=4, se=0.2).steps < r.steps  # the SE alone: shorter


def test_a_calibrated_quadratic_run_meets_the_ess_rule(fitted_linear):
    import llcgeo
    from llcgeo.numerics import estimate_llc

    layer, x, y = fitted_linear(3000, seed=2)
    c = llcgeo.calibrate(layer, x, y, se=0.1)  # a loose SE: the ESS rule sets the draws
    assert "bulk ESS" in c.recommendation.reasons[3]
    assert estimate_llc(layer, x, y, config=c.config, device="cpu", seed=3).ess >= ESS_MIN


# --- known coefficients ------------------------------------------------------------------------


def _deep_linear(widths, rank: int, n: int, seed: int = 0):
    """A deep linear teacher of true rank ``rank`` at its truth, on ``n`` Gaussian inputs with
    noise 0.5, and its exact coefficient."""
    from llcgeo.numerics.measurements.deep_linear import deep_linear_teacher
    from llcgeo.theory.singular import dln_coefficient

    g = torch.Generator().manual_seed(seed)
    teacher = deep_linear_teacher(widths, rank, g)
    x = torch.randn(n, widths[0], generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = teacher(x) + 0.5 * torch.randn(n, widths[-1], generator=g, dtype=torch.float64)
    return teacher, x, y, dln_coefficient(widths, rank)


def _lands_on_the_coefficient_or_is_refused(widths, rank: int, n: int):
    from llcgeo.numerics.estimate import estimate_llc

    teacher, x, y, exact = _deep_linear(widths, rank, n)
    try:
        c = cal.calibrate(teacher, x, y, config=SGLDConfig(chains=8))
    except SpecError as refusal:  # allowed, if it says why in figures
        assert "+-" in str(refusal) and "\n" not in str(refusal), refusal
        return None
    assert "from a sweep" in c.recommendation.reasons[1]
    e = estimate_llc(teacher, x, y, config=c.config, device="cpu", seed=1)
    nbeta = n / math.log(n)
    corrected = e.mean + (exact.multiplicity - 1) / math.log(nbeta)
    allowed = 0.05 * float(exact.llc) + 3 * e.se
    assert abs(corrected - float(exact.llc)) <= allowed, (corrected, e.se, c.config)
    assert e.ess >= ESS_MIN and np.isfinite(e.rhat)
    return e


@pytest.mark.slow
def test_a_reduced_rank_regression_lands_on_its_coefficient():
    """(M, H, N, r) = (4, 3, 4, 1): exact 6, multiplicity 1, at n = 10 000."""
    _lands_on_the_coefficient_or_is_refused((4, 3, 4), 1, 10_000)


@pytest.mark.slow
def test_a_deep_linear_network_lands_on_its_coefficient():
    """Widths (3, 2, 2, 3), rank 1: Aoyagi's coefficient 3, multiplicity 1, at n = 10 000."""
    _lands_on_the_coefficient_or_is_refused((3, 2, 2, 3), 1, 10_000)
