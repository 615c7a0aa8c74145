"""``estimate_llc``: both model paths give one result, the estimate is a function of the trace,
and diverged chains never change the mean silently."""

import math

import numpy as np
import pytest
import torch

from llcgeo.errors import EstimationError
from llcgeo.numerics import LLCEstimate, SGLDConfig, estimate_llc
from llcgeo.numerics.paths.problem import Posterior, Problem
from llcgeo.numerics.runner import summarize
from llcgeo.numerics.sampling.sgld import ChainRun, SGLDState

F64 = torch.float64


def regression(n=400, d=3, m=2, seed=0):
    """A ``Linear(d, m)`` layer at its least-squares fit on noisy linear data."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64)
    y = x @ torch.randn(d, m, generator=g, dtype=F64) + 0.3 * torch.randn(
        n, m, generator=g, dtype=F64
    )
    z = torch.cat([x, torch.ones(n, 1, dtype=F64)], dim=1)
    theta = torch.linalg.lstsq(z, y).solution.T
    layer = torch.nn.Linear(d, m, dtype=F64)
    with torch.no_grad():
        layer.weight.copy_(theta[:, :d])
        layer.bias.copy_(theta[:, d])
    return layer, x, y


@pytest.mark.parametrize("batch_size", [None, 64])
def test_fast_path_and_module_path_agree_chain_for_chain(batch_size):
    # Same seed -> same noise and batches, and positions share torch.nn.Linear's layout, so the
    # two paths follow the same trajectories up to rounding.
    layer, x, y = regression()
    config = SGLDConfig(eps=1e-3, chains=3, steps=300, burnin=50, batch_size=batch_size)
    masks = {"weight": torch.tensor([[True, False, True], [True, True, False]])}
    fast = estimate_llc(layer, x, y, config=config, param_masks=masks, device="cpu", seed=4)
    general = estimate_llc(
        torch.nn.Sequential(layer),
        x,
        y,
        config=config,
        device="cpu",
        seed=4,
        param_masks={"0." + k: v for k, v in masks.items()},
    )
    np.testing.assert_allclose(fast.per_chain, general.per_chain, rtol=1e-7)
    np.testing.assert_allclose(fast.loss_trace, general.loss_trace, rtol=1e-10)
    assert fast.init_loss == pytest.approx(general.init_loss, rel=1e-12)


def test_callable_loss_equals_the_named_gaussian_loss():
    layer, x, y = regression()
    config = SGLDConfig(eps=1e-3, chains=2, steps=100, burnin=10)
    model = torch.nn.Sequential(layer)
    named = estimate_llc(model, x, y, config=config, device="cpu")
    custom = estimate_llc(
        model,
        x,
        y,
        config=config,
        device="cpu",
        loss=lambda out, t: 0.5 * ((out - t) ** 2).sum(dim=1),
    )
    np.testing.assert_allclose(named.per_chain, custom.per_chain, rtol=1e-12)


def test_estimate_is_nbeta_times_mean_excess_loss_and_records_its_inputs():
    layer, x, y = regression()
    config = SGLDConfig(eps=1e-3, chains=3, steps=200, burnin=20)
    e = estimate_llc(layer, x, y, config=config, device="cpu", seed=9)
    assert isinstance(e, LLCEstimate) and e.loss_trace.shape == (3, 180)
    assert e.nbeta == pytest.approx(400 / math.log(400)) and e.n == 400
    np.testing.assert_allclose(e.per_chain, e.nbeta * (e.loss_trace.mean(axis=1) - e.init_loss))
    assert e.mean == pytest.approx(e.per_chain.mean())
    assert e.se == pytest.approx(e.per_chain.std(ddof=1) / math.sqrt(3))
    assert (e.seed, e.config, e.device, e.diverged_chains) == (9, config, "cpu", ())
    assert e.init_loss == pytest.approx(float(0.5 * (layer(x) - y).square().sum(1).mean().detach()))
    with pytest.raises(ValueError):
        e.per_chain[0] = 0.0  # results are frozen, arrays included


def test_seed_makes_runs_reproducible_and_distinct():
    layer, x, y = regression()
    config = SGLDConfig(eps=1e-3, chains=2, steps=50, burnin=0, batch_size=32)
    a, b, c = (estimate_llc(layer, x, y, config=config, device="cpu", seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.loss_trace, b.loss_trace)
    assert not np.array_equal(a.loss_trace, c.loss_trace)


def test_the_model_is_left_untouched_and_float32_works():
    layer, x, y = regression()
    model = torch.nn.Sequential(layer, torch.nn.Identity())  # at the least-squares minimum
    before = [p.detach().clone() for p in model.parameters()]
    config = SGLDConfig(eps=1e-4, chains=2, steps=100, burnin=20, dtype="float32")
    e = estimate_llc(model, x, y, config=config, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert math.isfinite(e.mean) and e.loss_trace.dtype == np.float64


def test_an_estimate_far_below_zero_is_refused_as_no_minimum():
    layer, x, y = regression()
    model = torch.nn.Sequential(torch.nn.Linear(3, 3, dtype=F64), torch.nn.Tanh(), layer)
    config = SGLDConfig(eps=1e-4, chains=4, steps=200, burnin=50)
    with pytest.raises(EstimationError, match="below zero.*not a minimum"):
        estimate_llc(model, x, y, config=config, device="cpu")


def test_unstable_step_warns_and_every_diverged_chain_leaves_a_nan_mean():
    layer, x, y = regression()
    config = SGLDConfig(eps=0.5, chains=2, steps=400, burnin=0)
    e = estimate_llc(layer, x, y, config=config, device="cpu")
    assert e.diverged_chains == (0, 1) and math.isnan(e.mean) and math.isnan(e.se)
    assert any("unstable" in w for w in e.warnings)
    assert any("every chain diverged" in w for w in e.warnings)


def test_a_diverged_chain_is_named_and_left_out_of_the_mean():
    config = SGLDConfig(chains=3, steps=4, burnin=0)
    trace = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0], [1.0, 5e3, math.inf, 1.0]])
    position = torch.zeros(3, 2)
    problem = Problem(Posterior(None, position[0], position[0], None, 0.5, n=10, nbeta=2.0))
    run = ChainRun(trace, trace.max(dim=1).values, SGLDState(position, 4))
    e = summarize(problem, run, config, seed=0, seconds=0.0)
    assert e.diverged_chains == (2,)
    assert e.mean == pytest.approx(2.0 * 1.5) and e.se == pytest.approx(1.0)
    assert "chain 2" in e.warnings[0]


def test_a_chain_whose_final_position_is_not_finite_counts_as_diverged():
    config = SGLDConfig(chains=2, steps=2, burnin=0)
    trace = torch.ones(2, 2)
    position = torch.tensor([[0.0], [math.nan]])
    problem = Problem(Posterior(None, position[0], position[0], None, 0.0, n=10, nbeta=1.0))
    e = summarize(
        problem, ChainRun(trace, trace[:, 0], SGLDState(position, 2)), config, seed=0, seconds=0.0
    )
    assert e.diverged_chains == (1,) and e.mean == 1.0
