"""The exact minibatch expectation against the sampler it describes.

On independently drawn batches (``batches="independent"``) the mean estimate over independent
chains is unbiased for :func:`llcgeo.theory.minibatch_expectation`, so each seed's
``t = (mean - reference) / measured SE`` is Student-t with ``chains - 1`` degrees of freedom and
the seeds together are held at the family-wise limit of ``reconcile.verdict``. The same runs
must reject the full-batch expectation, which leaves the batch noise out: that is the effect
the minibatch reference exists to include (it is about 8 SE at b = 20).
"""

import pytest

from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.numerics import measure_linear
from llcgeo.reconcile.verdict import limit as verdict_limit
from llcgeo.theory import expectation_at, minibatch_expectation

SEEDS, CHAINS = 3, 48
LAYER = mf.LinearLayer(2, bias=True)


def _t_values(batch_size: int):
    config = SGLDConfig(
        eps=2e-4, gamma=100.0, chains=CHAINS, steps=2500, burnin=800,
        batch_size=batch_size, batches="independent",
    )  # fmt: skip
    out = []
    for seed in range(SEEDS):
        measured = measure_linear(mf.LayerNormImage(4), LAYER, "all", 4000, config, seed=seed)
        est = measured.estimate
        minibatch, stable = minibatch_expectation(measured.data_moments, config, measured.nbeta)
        full = expectation_at(measured.hessian_eigenvalues, config, measured.nbeta).mean
        assert stable
        out.append(((est.mean - minibatch) / est.se, (est.mean - full) / est.se))
    return out


@pytest.mark.slow
def test_independent_batches_average_to_the_exact_minibatch_expectation():
    limit = verdict_limit(SEEDS, CHAINS - 1)
    t_values = _t_values(batch_size=20)
    assert all(abs(t_mini) <= limit for t_mini, _ in t_values), t_values
    assert all(t_full > limit for _, t_full in t_values), t_values
