"""The affine driver of an exactly quadratic loss runs the kernel's own chains: the same noise,
the same numbers up to rounding."""

import numpy as np
import pytest
import torch

from llcgeo import SGLDConfig, estimate_llc
from llcgeo.numerics import runner
from llcgeo.numerics.paths.choose import model_problem
from llcgeo.numerics.sampling import affine
from llcgeo.numerics.sampling.kernels import KERNELS


def _traces(layer, x, y, config, masks, monkeypatch, fits: bool):
    monkeypatch.setattr(affine, "MAX_PARAMETERS", 10**6 if fits else 0)
    return estimate_llc(layer, x, y, config=config, param_masks=masks, device="cpu", seed=3)


@pytest.mark.parametrize("masked", [False, True])
def test_the_affine_driver_runs_the_kernels_chains(fitted_linear, monkeypatch, masked):
    layer, x, y = fitted_linear(500)
    config = SGLDConfig(eps=2e-3, gamma=5.0, chains=3, steps=400, burnin=50)
    masks = {"weight": torch.tensor([[True, False, True], [True, True, False]])} if masked else None
    fast = _traces(layer, x, y, config, masks, monkeypatch, fits=True)
    kernel = _traces(layer, x, y, config, masks, monkeypatch, fits=False)
    np.testing.assert_allclose(fast.loss_trace, kernel.loss_trace, rtol=1e-10)
    np.testing.assert_allclose(fast.per_chain, kernel.per_chain, rtol=1e-8)


def test_the_linear_path_offers_its_quadratic_only_on_the_full_batch(fitted_linear):
    layer, x, y = fitted_linear(200)
    full = model_problem(layer, x, y, SGLDConfig(), None, "gaussian", "cpu")
    mini = model_problem(layer, x, y, SGLDConfig(batch_size=20), None, "gaussian", "cpu")
    assert full.exact.quadratic is not None and mini.exact.quadratic is None
    w = torch.randn(4, full.posterior.start.numel(), dtype=torch.float64)
    loss, grad = full.posterior.loss_and_grad(w, None)
    h, g = full.exact.quadratic.dense()
    assert torch.allclose(loss, 0.5 * ((w @ h) * w).sum(1) + w @ g, rtol=1e-12)
    assert torch.allclose(grad, w @ h + g, rtol=1e-12)


def test_the_sampler_registry_says_which_sampler_the_affine_driver_runs(fitted_linear, monkeypatch):
    layer, x, y = fitted_linear(200)
    config = SGLDConfig(eps=1e-3, chains=2, steps=20, burnin=5)
    problem = model_problem(layer, x, y, config, None, "gaussian", "cpu")
    driven, original = [], runner.run_affine
    monkeypatch.setattr(runner, "run_affine", lambda *a, **k: driven.append(1) or original(*a, **k))
    runner.run_problem(problem, config, seed=0)
    assert driven == [1] and [name for name, s in KERNELS.items() if s.affine] == ["sgld"]
    monkeypatch.setitem(KERNELS, "sgld", KERNELS["sgld"]._replace(affine=False))
    runner.run_problem(problem, config, seed=0)
    assert driven == [1]  # the entry said no: the kernel ran
