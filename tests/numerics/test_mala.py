"""MALA: the SGLD proposal with an exact Metropolis test samples the tempered posterior itself.

On a linear layer the loss is quadratic, so the posterior estimate has a closed form
(``expected_sgld_estimate(...).exact_posterior``). MALA must land on it at step sizes where
SGLD's own (exactly known) step-size bias is many standard errors away. The chains are
independent, so their spread gives the standard error; ``t = (mean - exact) / SE`` is held at
the family-wise Student-t limit over the step sizes tried.
"""

import numpy as np
import pytest
import torch

from llcgeo.errors import SpecError
from llcgeo.numerics import SGLDConfig, estimate_llc
from llcgeo.numerics.paths.linear import design_matrix, second_moment
from llcgeo.reconcile.verdict import limit as verdict_limit
from llcgeo.theory import expected_sgld_estimate

F64 = torch.float64
EPS = (1e-3, 3e-3)
CHAINS = 32


@pytest.mark.slow
def test_mala_samples_the_exact_posterior_where_sgld_is_biased(fitted_linear):
    layer, x, y = fitted_linear(2000)
    h = np.repeat(np.linalg.eigvalsh(second_moment(design_matrix(x, True)).numpy()), 2)
    limit = verdict_limit(len(EPS), CHAINS - 1)
    for eps in EPS:
        mala, sgld = (
            estimate_llc(layer, x, y, device="cpu", config=SGLDConfig(
                eps=eps, gamma=10.0, chains=CHAINS, steps=3000, burnin=1000, sampler=sampler))
            for sampler in ("mala", "sgld")
        )  # fmt: skip
        exact = expected_sgld_estimate(h, mala.nbeta, 10.0, eps, 3000, 1000).exact_posterior
        assert abs(mala.mean - exact) / mala.se <= limit
        assert abs(sgld.mean - exact) / sgld.se > limit  # the bias MALA removes is real here
        assert 0.5 < mala.acceptance_rate <= 1.0 and sgld.acceptance_rate is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"batch_size": 64}, "full batch"), ({"bounding_box": 1.0}, "bounding box"),
     ({"noise_level": 0.5}, "noise level"), ({"sampler": "hmc"}, "sampler must be one of")],
)  # fmt: skip
def test_mala_refuses_what_would_change_its_target(settings, message):
    with pytest.raises(SpecError, match=message):
        SGLDConfig(sampler=settings.pop("sampler", "mala"), **settings)
