"""The CUDA code path, where a GPU is present: same estimator, same agreement with theory."""

import math

import pytest
import torch

from llcgeo.manifolds import LayerNormImage, LinearLayer
from llcgeo.numerics import SGLDConfig, cross_entropy, estimate_llc, measure_linear
from llcgeo.numerics.measurements.heads import SMOOTHING, fit_head, head_hessian, linear_head
from llcgeo.numerics.measurements.quadratic_model import measure_with_quadratic
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


def test_a_masked_head_and_its_quadratic_model_run_on_cuda():
    """The mask is built once, on the GPU, where the kernels and the affine driver of the
    quadratic model use it as it is."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (300,), generator=g)
    start = torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    weight, bias, _ = fit_head(z, labels, *start, moving_bias=False)
    head, masks = linear_head(weight, bias, moving_bias=False)
    hessian = head_hessian(z, weight, bias, moving_bias=False)
    config = SGLDConfig(eps=1e-4, chains=4, steps=200, burnin=20)
    measured = measure_with_quadratic(head, z, labels, cross_entropy(SMOOTHING), hessian, config,
                                      masks=masks, seed=0, device="cuda")  # fmt: skip
    for estimate in measured:
        assert estimate.device.startswith("cuda") and math.isfinite(estimate.mean)
