"""R-hat, ESS and divergence checks as pure functions of arrays."""

import math

import numpy as np
import pytest

from llcgeo.numerics.sampling import diagnostics
from llcgeo.numerics.sampling.diagnostics import (
    diverged,
    divergence_threshold,
    ess,
    mean_and_se,
    rhat,
)


def ar1(rho, chains, draws, seed=0):
    """Stationary AR(1) chains ``x_t = rho x_{t-1} + e_t``; their ESS is ``N (1-rho)/(1+rho)``."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((chains, draws))
    x = np.empty((chains, draws))
    x[:, 0] = noise[:, 0] / math.sqrt(1 - rho**2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x


def test_rhat_is_one_for_mixed_chains_and_large_for_separated_ones():
    x = ar1(0.5, 4, 4000)
    # for well-mixed chains R-hat - 1 is O(1/N); 0.01 is many times that at N = 2000 per half
    assert abs(rhat(x) - 1.0) < 0.01
    shifted = x + np.arange(4)[:, None]
    assert rhat(shifted) > 1.3  # sqrt((W + B) / W) = sqrt((4/3 + 10/7) / (4/3)) = 1.44
    drifting = x + np.linspace(0, 5, 4000)[None, :]  # each chain drifts: split halves disagree
    assert rhat(drifting) > 1.3  # halves differ by 2.5: sqrt((1.85 + 1.79) / 1.85) = 1.40


def test_ess_matches_the_ar1_formula():
    # Geyer's estimator on 4 x 20 000 draws has a relative error of a few per cent at these
    # correlations (its variance is O(tau^2 / N)); 10% is over three of its standard errors.
    for rho in (0.0, 0.5, 0.9):
        x = ar1(rho, 4, 20_000, seed=1)
        expected = x.size * (1 - rho) / (1 + rho)
        assert abs(ess(x) / expected - 1) < 0.10, rho


def test_axes_are_explicit():
    x = ar1(0.5, 3, 1000)
    assert rhat(x.T, chain_axis=1, sample_axis=0) == rhat(x)
    assert ess(x.T, chain_axis=1, sample_axis=0) == ess(x)


def test_degenerate_traces_give_nan():
    assert math.isnan(rhat(np.ones((2, 50))))
    assert math.isnan(ess(np.ones((2, 50))))
    assert math.isnan(rhat(np.zeros((2, 3))))
    assert math.isnan(ess(np.array([[1.0, np.nan, 2.0, 3.0]])))


def test_divergence_rule():
    threshold = divergence_threshold(init_loss=2.0, free_parameters=10, nbeta=5.0)
    assert threshold == 100 * (2.0 + 1.0)
    bad = diverged(
        np.array([0.5, np.inf, 301.0, 299.0]), np.array([True, True, True, False]), threshold
    )
    assert bad.tolist() == [False, True, True, True]


def test_mean_and_se_leave_out_dropped_chains():
    mean, se = mean_and_se([1.0, 3.0, 100.0], [True, True, False])
    assert mean == 2.0 and se == math.sqrt(2.0) / math.sqrt(2)
    assert all(math.isnan(v) for v in mean_and_se([1.0], [False]))
    assert math.isnan(mean_and_se([1.0, 2.0], [True, False])[1])


def _chains():
    rng = np.random.default_rng(1)
    return {
        "independent": rng.standard_normal((4, 1000)),
        "autocorrelated": np.cumsum(rng.standard_normal((4, 1000)), axis=1) * 0.05
        + rng.standard_normal((4, 1000)),
        "heavy-tailed": rng.standard_cauchy((4, 800)),
        "one chain shifted": rng.standard_normal((4, 500)) + np.array([[0], [0], [0], [0.5]]),
        "one chain wider": rng.standard_normal((4, 500)) * np.array([[1], [1], [1], [3]]),
    }


@pytest.mark.parametrize("name", list(_chains()))
def test_rank_normalized_diagnostics_match_arviz(name):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ announces its refactor on import
        az = pytest.importorskip("arviz")
    x = _chains()[name]
    assert diagnostics.rank_rhat(x) == pytest.approx(float(az.rhat(x, method="rank")), rel=1e-9)
    # ArviZ truncates the autocorrelation sum a lag differently: within 2% on these chains
    assert diagnostics.ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), rel=0.02)
    assert diagnostics.ess_tail(x) == pytest.approx(float(az.ess(x, method="tail")), rel=0.02)


def test_folded_rhat_and_tail_ess_see_a_chain_that_is_only_wider():
    x = _chains()["one chain wider"]
    assert diagnostics.rhat(x) < 1.01 < 1.1 < diagnostics.rank_rhat(x)
    assert diagnostics.ess_tail(x) < 100 < diagnostics.ess_bulk(x)


def _rank_inputs():
    rng = np.random.default_rng(2)
    return {
        "continuous": rng.standard_normal((4, 500)),
        "rounded (many ties)": np.round(rng.standard_normal((4, 500)), 1),
        "few values": rng.integers(0, 3, size=(3, 200)).astype(float),
        "all equal": np.full((2, 50), 7.0),
        "signed zeros": np.array([[0.0, -0.0, 1.0, -1.0], [-0.0, 2.0, 0.0, 1.0]]),
    }


@pytest.mark.parametrize("name", list(_rank_inputs()))
def test_ranks_and_normal_scores_match_scipy(name):
    """The rank normalization without scipy gives scipy's numbers: ranks exactly (ties
    averaged), normal scores within 1e-12 (both quantiles are Cephes' ndtri)."""
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    x = _rank_inputs()[name]
    ranks = stats.rankdata(x, method="average").reshape(x.shape)
    np.testing.assert_array_equal(diagnostics.average_ranks(x), ranks)
    expected = special.ndtri((ranks - 3 / 8) / (x.size + 1 / 4))
    np.testing.assert_allclose(diagnostics._z_scale(x), expected, rtol=0, atol=1e-12)


def test_the_normal_quantile_matches_scipy_across_its_range():
    import torch

    special = pytest.importorskip("scipy.special")
    p = np.concatenate([np.random.default_rng(3).random(10_000), [1e-300, 1e-20, 0.5, 1 - 1e-16]])
    z = torch.special.ndtri(torch.from_numpy(p)).numpy()
    np.testing.assert_allclose(z, special.ndtri(p), rtol=1e-12, atol=1e-12)


def test_the_rank_normalized_diagnostics_import_no_scipy():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from llcgeo.numerics.sampling import diagnostics as d; "
        "x = np.random.default_rng(0).standard_normal((4, 100)); "
        "d.rank_rhat(x), d.ess_bulk(x); print('scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
