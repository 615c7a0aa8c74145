"""The verdict rules and the claim statistics."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from llcgeo.reconcile.stats import combined, singles_out, weighted_line_fit
from llcgeo.reconcile.verdict import RHAT_MAX, Z_AGREE, decide, limit
from llcgeo.thresholds import ESS_MIN

GOOD = {"diverged": 0, "chains": 4, "rhat": 1.0, "ess": 10 * ESS_MIN}


@pytest.mark.parametrize(
    ("z", "overrides", "verdict"),
    [
        (0.0, {}, "agree"),
        (Z_AGREE, {}, "agree"),
        (-Z_AGREE - 1e-9, {}, "disagree"),
        (10.0, {}, "disagree"),
        (0.0, {"diverged": 1}, "inconclusive"),
        (10.0, {"diverged": 1}, "inconclusive"),
        (0.0, {"rhat": RHAT_MAX + 0.01}, "inconclusive"),
        (0.0, {"rhat": math.nan}, "inconclusive"),
        (0.0, {"ess": ESS_MIN - 1}, "inconclusive"),
        (0.0, {"ess": ESS_MIN}, "agree"),
        (math.nan, {}, "inconclusive"),
    ],
)
def test_decide(z, overrides, verdict):
    got, reasons = decide(z=z, **(GOOD | overrides))
    assert got == verdict
    assert bool(reasons) == (verdict != "agree")


def test_weighted_fit_recovers_a_line_with_honest_errors():
    rng = np.random.default_rng(0)
    x = np.arange(1, 9, dtype=float)
    se = np.full_like(x, 0.5)
    slopes = []
    for _ in range(400):
        fit = weighted_line_fit(x, 3.0 * x - 1.0 + rng.normal(0, se), se)
        slopes.append((fit.slope - 3.0) / fit.slope_se)
    # standardized slope errors: mean 0, sd 1 (400 draws: the sd of the sd is about 0.035)
    assert abs(np.mean(slopes)) < 4 / np.sqrt(400)
    assert abs(np.std(slopes) - 1) < 4 * 0.035


@pytest.mark.parametrize(
    ("measured", "se", "verdict"),
    [
        (10.5, 0.1, "agree"),
        (12.0, 0.1, "disagree"),
        (11.2, 0.5, "inconclusive"),
        (math.nan, 0.1, "inconclusive"),
    ],
)
def test_singles_out(measured, se, verdict):
    assert singles_out(measured, se, claimed=10.5, alternative=12.0)[0] == verdict


def test_combined():
    assert combined(["agree", "agree"]) == "agree"
    assert combined(["agree", "inconclusive"]) == "inconclusive"
    assert combined(["inconclusive", "disagree"]) == "disagree"
    assert combined([]) == "inconclusive"


def test_the_limit_is_bonferroni_at_three_sigma():
    from scipy.stats import norm, t

    assert limit(1) == Z_AGREE
    for k in (2, 10, 100):
        # k independent null cases all pass with the probability of one 3-sigma test
        assert 2 * norm.sf(limit(k)) * k == pytest.approx(2 * norm.sf(Z_AGREE), rel=1e-9)
        assert 2 * t.sf(limit(k, 7), 7) * k == pytest.approx(2 * norm.sf(Z_AGREE), rel=1e-9)


def test_a_claim_on_one_case_applies_and_prints_that_cases_own_limit():
    from llcgeo.reconcile.stats import cases_verdict, statistic_text

    one = limit(1, 7)  # 4.53 for eight chains
    for z in (0.99 * one, 1.01 * one):
        case = decide(z=z, dof=7, **(GOOD | {"chains": 8, "ess": 8000}))[0]
        record = _record(z, case, dof=7)
        assert cases_verdict([record])[0] == case
        assert f"(limit {one:.2f})" in statistic_text([record])
        assert f"(limit {one:.2f})" in cases_verdict([record])[1]


def _record(z, verdict="agree", dof=None):
    reasons = ("why",) if verdict != "agree" else ()
    return SimpleNamespace(z=z, verdict=verdict, reasons=reasons, dof=dof)


def test_cases_verdict_judges_cases_together():
    from llcgeo.reconcile.stats import cases_verdict

    ten = [_record(0.5)] * 9
    assert cases_verdict(ten + [_record(3.5, "disagree")])[0] == "agree"  # 3.5 < 3.64
    assert cases_verdict(ten + [_record(4.0, "disagree")])[0] == "disagree"
    assert cases_verdict([_record(3.5, "disagree")])[0] == "disagree"
    assert cases_verdict(ten + [_record(0.0, "inconclusive")])[0] == "inconclusive"


def test_cases_with_measured_errors_are_judged_with_a_student_t_limit():
    from llcgeo.reconcile.stats import cases_verdict

    # 4.0 passes the normal family limit for 2 cases (3.2) only with t's heavier tails (3 dof)
    assert cases_verdict([_record(0.5), _record(4.0)])[0] == "disagree"
    assert cases_verdict([_record(0.5, dof=3), _record(4.0, dof=3)])[0] == "agree"


@pytest.mark.parametrize("chains", [4, 8])
def test_minibatch_t_limit_keeps_the_false_alarm_rate_of_three_sigma(chains):
    """Simulated null cases: per-chain estimates iid normal around the reference, the standard
    error estimated from the chains as a minibatch case does. The t limit alarms at 0.27%; the
    normal 3 would alarm at several percent. Tolerance: 4 binomial standard errors."""
    from llcgeo.reconcile.verdict import t_agree

    trials = 400_000
    per_chain = np.random.default_rng(chains).standard_normal((trials, chains))
    se = per_chain.std(axis=1, ddof=1) / math.sqrt(chains)
    t = per_chain.mean(axis=1) / se
    target = math.erfc(Z_AGREE / math.sqrt(2))
    tolerance = 4 * math.sqrt(target * (1 - target) / trials)
    assert abs(np.mean(np.abs(t) > t_agree(chains - 1)) - target) <= tolerance
    assert np.mean(np.abs(t) > Z_AGREE) > 5 * target
    assert decide(z=t_agree(chains - 1) * 0.99, dof=chains - 1, **GOOD)[0] == "agree"
    assert decide(z=t_agree(chains - 1) * 1.01, dof=chains - 1, **GOOD)[0] == "disagree"


def test_a_slope_interval_is_taken_at_the_verdicts_one_level():
    from llcgeo.reconcile.stats import INTERVAL
    from llcgeo.thresholds import ALPHA

    fit = weighted_line_fit([1, 2, 3, 4], [2.1, 3.9, 6.2, 7.8], [0.1, 0.1, 0.1, 0.1])
    lo, hi = fit.slope_interval()
    assert (hi - lo) / 2 == pytest.approx(limit() * fit.slope_se, rel=1e-12)
    assert limit() == Z_AGREE and INTERVAL == f"{1 - ALPHA:.2%} CI" == "99.73% CI"
