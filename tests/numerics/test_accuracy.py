"""Full-batch SGLD estimates against the exact expectation of the estimator, and their approach
to the LLC: ``m (d - 1) / 2`` on the LayerNorm image, ``m d / 2`` on RMSNorm and Gaussian data.

Every tolerance is ``3 * sqrt(variance / chains)`` with the *predicted* per-chain variance from
``llcgeo.theory.expected_sgld_estimate`` (exact for this linear-Gaussian chain started at ``w*``),
plus, when comparing with the LLC itself, the exactly known deterministic gap between the
estimator's expectation and the LLC at the given eps and chain length.
"""

import math

import pytest

from llcgeo.manifolds import Gaussian, LayerNormImage, LinearLayer, RMSNormImage
from llcgeo.numerics import SGLDConfig, measure_linear
from llcgeo.theory import expected_sgld_estimate

D, M, N, CHAINS = 8, 3, 20_000, 16
MANIFOLDS = {
    "layernorm": (LayerNormImage(D), M * (D - 1) / 2),
    "rmsnorm": (RMSNormImage(D), M * D / 2),
    "gaussian": (Gaussian(D), M * D / 2),
}
# eps -> 0 with the chain lengthened in proportion (relaxation takes ~ 2 / (eps nbeta h) steps)
SETTINGS = (
    SGLDConfig(eps=1e-3, chains=CHAINS, steps=1_000, burnin=100),
    SGLDConfig(eps=1e-4, chains=CHAINS, steps=4_000, burnin=400),
    SGLDConfig(eps=1e-5, chains=CHAINS, steps=20_000, burnin=2_000),
)


def measure(manifold, config):
    r = measure_linear(manifold, LinearLayer(M), "all", N, config, seed=11, device="cpu")
    expected = expected_sgld_estimate(
        r.hessian_eigenvalues, r.nbeta, config.gamma, config.eps, config.steps, config.burnin
    )
    e = r.estimate
    # eps = 1e-3 is meant to be biased (the expectation says by how much): only that is said
    assert e.diverged_chains == ()
    assert all("stability bound" in w for w in e.warnings)
    return e.mean, expected.mean, 3 * math.sqrt(expected.variance / e.chains_kept)


@pytest.fixture(scope="module")
def runs():
    return {
        name: [measure(manifold, config) for config in SETTINGS]
        for name, (manifold, _) in MANIFOLDS.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", MANIFOLDS)
def test_estimate_matches_the_exact_expectation_at_every_setting(runs, name):
    for config, (mean, expected, tolerance) in zip(SETTINGS, runs[name], strict=True):
        assert abs(mean - expected) <= tolerance, (config.eps, mean, expected, tolerance)


@pytest.mark.slow
@pytest.mark.parametrize("name", MANIFOLDS)
def test_estimate_moves_to_the_llc_as_eps_shrinks_and_the_chain_lengthens(runs, name):
    llc = MANIFOLDS[name][1]
    gaps = [abs(mean - llc) for mean, _, _ in runs[name]]
    assert gaps[0] > gaps[1] > gaps[2]
    mean, expected, tolerance = runs[name][-1]
    assert abs(expected - llc) < 0.01 * llc  # the settings are within 1% of the limit ...
    assert abs(mean - llc) <= abs(expected - llc) + tolerance  # ... and so is the measurement


@pytest.mark.slow
def test_layernorm_drops_the_llc_by_m_over_2(runs):
    (ln, ln_expected, ln_tol), (rms, rms_expected, rms_tol) = (
        runs["layernorm"][-1],
        runs["rmsnorm"][-1],
    )
    bias = abs((rms_expected - ln_expected) - M / 2)
    assert abs((rms - ln) - M / 2) <= bias + math.hypot(ln_tol, rms_tol)
