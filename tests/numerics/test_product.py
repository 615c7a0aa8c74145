"""The product-of-linear-maps fast path: the general path's numbers, without the data."""

import numpy as np
import pytest
import torch

from llcgeo.numerics import SGLDConfig, estimate_llc

F64 = torch.float64


def _network(widths=(4, 3, 4), n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    layers = [torch.nn.Linear(a, b, bias=False, dtype=F64) for a, b in zip(widths, widths[1:])]
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=F64) * 0.5)
    model = torch.nn.Sequential(*layers)
    x = torch.randn(n, widths[0], generator=g, dtype=F64)
    y = model(x).detach() + 0.3 * torch.randn(n, widths[-1], generator=g, dtype=F64)
    return model, x, y


def test_the_fast_path_follows_the_general_path_chain_for_chain():
    model, x, y = _network()
    config = SGLDConfig(eps=1e-4, chains=3, steps=300, burnin=50)
    masks = {"0.weight": torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) > 0.3}
    fast = estimate_llc(model, x, y, config=config, param_masks=masks, device="cpu", seed=2)
    general = estimate_llc(
        torch.nn.Sequential(*model, torch.nn.Identity()), x, y, config=config,
        param_masks=masks, device="cpu", seed=2,
    )  # fmt: skip
    np.testing.assert_allclose(fast.per_chain, general.per_chain, rtol=1e-9)
    np.testing.assert_allclose(fast.loss_trace, general.loss_trace, rtol=1e-9, atol=1e-12)
    assert fast.init_loss == pytest.approx(general.init_loss, rel=1e-12)
    assert not any("fast path" in w for w in fast.warnings)


@pytest.mark.parametrize(
    ("change", "why", "used"),
    [
        ("bias", "has a bias", "the stacked-MLP path"),
        ("minibatch", "minibatches", "the stacked-MLP path"),
        ("loss", "not the Gaussian loss", "the general path"),
    ],
)
def test_a_product_that_cannot_take_the_fast_path_says_so(change, why, used):
    model, x, y = _network(n=64)
    config = SGLDConfig(eps=1e-4, chains=1, steps=5, burnin=0,
                        batch_size=16 if change == "minibatch" else None)  # fmt: skip
    if change == "bias":
        model = torch.nn.Sequential(torch.nn.Linear(4, 3, dtype=F64), *list(model)[1:])
    loss = (lambda out, t: 0.5 * (out - t).square().sum(dim=1)) if change == "loss" else "gaussian"
    estimate = estimate_llc(model, x, y, config=config, loss=loss, device="cpu")
    assert any(why in w and f"{used} used" in w for w in estimate.warnings)
