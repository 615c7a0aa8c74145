"""The CUDA code path, where a GPU is present: same estimator, same agreement with theory."""

import math

import pytest
import torch

from llcgeo.manifolds import LayerNormImage, LinearLayer
from llcgeo.numerics import SGLDConfig, estimate_llc, measure_linear
from llcgeo.theory import expected_sgld_estimate

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_full_batch_on_cuda_matches_the_exact_expectation():
    config = SGLDConfig(eps=1e-4, chains=64, steps=4_000, burnin=400)
    r = measure_linear(
        LayerNormImage(8), LinearLayer(3), "all", 20_000, config, seed=2, device="cuda"
    )
    expected = expected_sgld_estimate(
        r.hessian_eigenvalues, r.nbeta, config.gamma, config.eps, config.steps, config.burnin
    )
    assert r.estimate.device.startswith("cuda")
    # 3 predicted standard errors of a mean over the kept chains
    assert abs(r.estimate.mean - expected.mean) <= 3 * math.sqrt(expected.variance / 64)


@pytest.mark.parametrize("batch_size", [None, 128])
def test_both_paths_agree_on_cuda(batch_size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 4, generator=g, dtype=torch.float64)
    layer = torch.nn.Linear(4, 2, dtype=torch.float64)
    y = layer(x).detach() + 0.1 * torch.randn(1000, 2, generator=g, dtype=torch.float64)
    config = SGLDConfig(eps=1e-4, chains=4, steps=200, burnin=20, batch_size=batch_size)
    fast = estimate_llc(layer, x, y, config=config, device="cuda", seed=1)
    general = estimate_llc(torch.nn.Sequential(layer), x, y, config=config, device="cuda", seed=1)
    assert torch.allclose(
        torch.as_tensor(fast.per_chain), torch.as_tensor(general.per_chain), rtol=1e-6
    )
