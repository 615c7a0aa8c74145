"""The settings rules the network suite and the scanner share, and the one flat-eigenvalue rule
(``thresholds.FLAT``) that calibration and the numerical rank both apply."""

import math

import pytest

from llcgeo.reconcile.stats import moving_eigenvalues, numerical_rank
from llcgeo.theory import calibration as cal
from llcgeo.thresholds import FLAT


@pytest.mark.parametrize("small", [5 * FLAT, FLAT / 5])
def test_calibration_counts_the_directions_the_numerical_rank_counts(small):
    spectrum = [1.0, 0.5, small]
    r = cal.network_recommendation(spectrum, nbeta=1000.0, chains=4, max_burnin=500)
    rank, _ = numerical_rank(spectrum)
    assert 2 * r.llc == rank == moving_eigenvalues(spectrum).size == (3 if small > FLAT else 2)


def test_the_network_recommendation_is_recommend_at_the_shared_settings():
    spectrum, kwargs = [3.0, 1.0, 0.2], {"nbeta": 5000.0, "chains": 16, "max_burnin": 2000}
    assert cal.network_recommendation(spectrum, **kwargs) == cal.recommend(
        spectrum, se=cal.NETWORK_SE, max_steps=cal.NETWORK_MAX_STEPS, **kwargs
    )
    tighter = cal.network_recommendation(spectrum, localization=0.01, **kwargs)
    assert tighter == cal.recommend(
        spectrum, localization=0.01, se=cal.NETWORK_SE, max_steps=cal.NETWORK_MAX_STEPS, **kwargs
    )
    assert tighter.gamma < cal.network_recommendation(spectrum, **kwargs).gamma


def test_the_burn_in_is_capped_and_the_chain_length_left_to_the_caller():
    spectrum, kwargs = [1.0, 1e-3], {"nbeta": 1000.0, "chains": 4, "max_burnin": 1000}
    strict = cal.recommend(spectrum, **kwargs)
    loose = cal.network_recommendation(spectrum, **kwargs)
    assert (loose.eps, loose.gamma, loose.burnin) == (strict.eps, strict.gamma, strict.burnin)
    assert loose.burnin <= 1000 and loose.steps < strict.steps  # the caller sets the draws


def test_network_nbeta_is_the_factor_times_n_over_log_n():
    assert cal.network_nbeta(1797) == cal.NBETA_FACTOR * 1797 / math.log(1797)
    assert cal.network_nbeta(100, factor=1.0) == 100 / math.log(100)
    with pytest.raises(cal.SpecError, match="rows must be at least 2"):
        cal.network_nbeta(1)
