"""The SGLD kernel implements devinterp's update exactly, masks and boxes hold, and the driver
records ``L(w_k)`` for ``k = burnin..steps-1``."""

import math

import pytest
import torch

from llcgeo.errors import EstimationError
from llcgeo.numerics import SGLDConfig, build_kernel, init
from llcgeo.numerics.sampling.sgld import bounding_box, localized_gradient, minibatches, run_chains

F64 = torch.float64


def quadratic(h):
    """``L(w) = 1/2 sum_j h_j w_j^2`` per chain, with its gradient."""

    def loss_and_grad(w, batch):
        return 0.5 * (h * w.square()).sum(dim=1), h * w

    return loss_and_grad


def kernel(loss_and_grad, config, *, nbeta, centre, mask=None):
    """The kernel :func:`llcgeo.numerics.runner.run_problem` builds for ``config``."""
    drift = localized_gradient(loss_and_grad, nbeta=nbeta, gamma=config.gamma, centre=centre)
    box = config.bounding_box
    project = None if box is None else bounding_box(centre, box)
    return build_kernel(drift, noise_level=config.noise_level, mask=mask, project=project)


def _run(step, state, config, progress=None):
    return run_chains(step, state, None, eps=config.eps, steps=config.steps, burnin=config.burnin,
                      generator=torch.Generator().manual_seed(0), progress=progress)  # fmt: skip


def test_one_step_is_the_devinterp_update_exactly():
    config = SGLDConfig(eps=0.01, gamma=2.0, noise_level=0.5, chains=3, steps=2, burnin=0)
    h = torch.tensor([1.0, 3.0], dtype=F64)
    centre = torch.tensor([0.5, -1.0], dtype=F64)
    w = torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    nbeta = 7.0
    step = kernel(quadratic(h), config, nbeta=nbeta, centre=centre)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(3, 2, generator=torch.Generator().set_state(g.get_state()), dtype=F64)
    state, info = step(init(w), None, config.eps, g)
    drift = nbeta * h * w + 2.0 * (w - centre)
    expected = w - 0.005 * drift + math.sqrt(0.01) * 0.5 * noise
    assert torch.allclose(state.position, expected, rtol=0, atol=1e-15)
    assert torch.equal(info.loss, 0.5 * (h * w.square()).sum(dim=1))
    assert state.step == 1


def test_each_chain_may_take_its_own_step_size():
    h = torch.tensor([1.0, 3.0], dtype=F64)
    drift = localized_gradient(quadratic(h), nbeta=2.0, gamma=1.0, centre=torch.zeros(2, dtype=F64))
    step = build_kernel(drift)
    w = torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    eps = torch.tensor([[1e-3], [1e-2], [1e-1]], dtype=F64)
    batched, _ = step(init(w), None, eps, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(3, 2, generator=g, dtype=F64)
    for i, e in enumerate(eps[:, 0].tolist()):
        expected = w[i] - e / 2 * (2.0 * h * w[i] + w[i]) + math.sqrt(e) * noise[i]
        assert torch.allclose(batched.position[i], expected, rtol=0, atol=1e-15)


def test_masked_entries_never_move_and_free_ones_do():
    config = SGLDConfig(eps=0.1, chains=4, steps=50, burnin=0)
    mask = torch.tensor([True, False, True, False])
    step = kernel(
        quadratic(torch.ones(4, dtype=F64)),
        config,
        nbeta=1.0,
        centre=torch.zeros(4, dtype=F64),
        mask=mask,
    )
    start = torch.full((4, 4), 0.3, dtype=F64)
    run = _run(step, init(start), config)
    final = run.final.position
    assert torch.equal(final[:, ~mask], start[:, ~mask])
    assert bool((final[:, mask] != start[:, mask]).all())


def test_bounding_box_clamps_the_offset_from_the_centre():
    config = SGLDConfig(eps=1.0, gamma=0.0, chains=8, steps=20, burnin=0, bounding_box=0.1)
    centre = torch.tensor([1.0, -2.0], dtype=F64)
    step = kernel(quadratic(torch.zeros(2, dtype=F64)), config, nbeta=1.0, centre=centre)
    run = _run(step, init(centre.expand(8, 2).clone()), config)
    offset = run.final.position - centre
    assert float(offset.abs().max()) <= 0.1 + 1e-15


def test_trace_holds_the_loss_at_the_start_of_each_recorded_step():
    config = SGLDConfig(eps=0.01, chains=2, steps=6, burnin=2)
    h = torch.ones(1, dtype=F64)
    step = kernel(quadratic(h), config, nbeta=3.0, centre=torch.zeros(1, dtype=F64))
    start = torch.tensor([[1.0], [-1.0]], dtype=F64)
    run = _run(step, init(start), config)
    state, g, losses = init(start), torch.Generator().manual_seed(0), []
    for _ in range(6):
        losses.append(0.5 * state.position[:, 0].square())
        state, _ = step(state, None, config.eps, g)
    assert torch.allclose(run.trace, torch.stack(losses[2:], dim=1), rtol=0, atol=0)
    assert torch.equal(run.peak, torch.stack(losses, dim=1).max(dim=1).values)


def test_progress_is_reported_up_to_the_last_step():
    seen = []
    config = SGLDConfig(eps=0.01, chains=1, steps=250, burnin=0)
    step = kernel(quadratic(torch.ones(1)), config, nbeta=1.0, centre=torch.zeros(1))
    _run(step, init(torch.zeros(1, 1)), config, progress=lambda *done: seen.append(done))
    assert seen[-1] == (250, 250) and all(
        a < b for (a, _), (b, _) in zip(seen, seen[1:], strict=False)
    )


def test_minibatches_cover_each_epoch_without_repeats_each_chain_its_own():
    cpu = torch.device("cpu")
    batches = minibatches(10, 3, torch.Generator().manual_seed(0), cpu, chains=4)
    epoch = torch.cat([next(batches) for _ in range(3)], dim=1)
    assert epoch.shape == (4, 9)
    assert all(len(set(row)) == 9 for row in epoch.tolist())  # 10 // 3 batches of 3, distinct
    assert len({tuple(row) for row in epoch.tolist()}) == 4  # the chains' orders differ
    independent = minibatches(10, 3, torch.Generator().manual_seed(0), cpu, "independent", 2)
    assert next(independent).shape == (2, 3)
    with pytest.raises(EstimationError, match="larger than the dataset"):
        next(minibatches(2, 3, torch.Generator(), torch.device("cpu")))


def test_init_wants_chains_by_parameters():
    with pytest.raises(EstimationError, match="chains, P"):
        init(torch.zeros(3))
