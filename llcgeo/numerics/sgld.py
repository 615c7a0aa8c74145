"""SGLD as a pure ``init``/``step`` pair, all chains advancing together as one batch dimension.

The update is devinterp's, localized at the centre ``w*``::

    w <- w - (eps/2) (nbeta * grad L_batch(w) + gamma (w - w*)) + sqrt(eps) * noise_level * N(0, I)

Positions are tensors of shape ``(chains, P)``: one flat parameter vector per chain. Entries
whose mask is ``False`` never move (devinterp's ``param_masks``); an optional bounding box clamps
``w - w*`` to ``[-box, box]``. The gradient comes from a ``loss_and_grad(position, batch)``
function supplied by a model path (:mod:`llcgeo.numerics.linear`, :mod:`llcgeo.numerics.module`),
which also returns the loss at the position the step *starts* from, so a trace of ``info.loss``
over steps ``k`` holds ``L(w_k)``.

>>> quadratic = lambda w, batch: (0.5 * w.square().sum(1), w)
>>> config = SGLDConfig(eps=1e-2, chains=3, steps=10, burnin=0)
>>> step = build_kernel(quadratic, config, nbeta=1.0, centre=torch.zeros(2))
>>> state = init(torch.zeros(3, 2))
>>> state, info = step(state, None, torch.Generator().manual_seed(0))
>>> state.position.shape, info.loss.tolist(), state.step
(torch.Size([3, 2]), [0.0, 0.0, 0.0], 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError

LossAndGrad = Callable[[torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]


class SGLDState(NamedTuple):
    """Where the chains are: ``position`` of shape ``(chains, P)`` and the steps taken."""

    position: torch.Tensor
    step: int


class SGLDInfo(NamedTuple):
    """What one step saw: ``loss`` (per chain) at the position the step started from."""

    loss: torch.Tensor


def init(position: torch.Tensor) -> SGLDState:
    """The state at ``position`` (``(chains, P)``), before any step."""
    if position.dim() != 2:
        raise EstimationError(f"position must have shape (chains, P), got {tuple(position.shape)}")
    return SGLDState(position, 0)


def build_kernel(
    loss_and_grad: LossAndGrad,
    config: SGLDConfig,
    *,
    nbeta: float,
    centre: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> Callable[[SGLDState, torch.Tensor | None, torch.Generator], tuple[SGLDState, SGLDInfo]]:
    """``step(state, batch, generator) -> (state, info)`` for ``config``'s eps, gamma, noise.

    ``centre`` (shape ``(P,)``) is ``w*``; ``mask`` (bool, ``(P,)``) marks the entries that move.
    """
    grad_rate, pull_rate = 0.5 * config.eps * nbeta, 0.5 * config.eps * config.gamma
    noise_scale = math.sqrt(config.eps) * config.noise_level
    box = config.bounding_box
    off_origin = bool(centre.any())  # the linear path works in offsets from w*: centre 0

    def step(state: SGLDState, batch, generator: torch.Generator):
        w = state.position
        loss, grad = loss_and_grad(w, batch)
        # w - (eps/2)(nbeta grad + gamma (w - w*)) + sqrt(eps) sigma xi, in as few passes as
        # possible: small runs are dominated by the cost of launching each operation
        new = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
        new.mul_(noise_scale).add_(grad, alpha=-grad_rate).add_(w, alpha=1.0 - pull_rate)
        if off_origin:
            new.add_(centre, alpha=pull_rate)
        if mask is not None:
            new = torch.where(mask, new, w)
        if box is not None:
            new = (new - centre).clamp_(-box, box).add_(centre)
        return SGLDState(new, state.step + 1), SGLDInfo(loss)

    return step


def minibatches(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Endless index batches, shared by all chains: a fresh permutation of ``range(n)`` each
    epoch, cut into ``n // batch_size`` batches (the incomplete last batch is dropped, as
    torch's ``DataLoader(drop_last=True)`` in devinterp does).

    >>> batches = minibatches(5, 2, torch.Generator().manual_seed(0), torch.device("cpu"))
    >>> [len(next(batches)) for _ in range(3)]
    [2, 2, 2]
    """
    if batch_size > n:
        raise EstimationError(f"batch_size ({batch_size}) is larger than the dataset (n = {n})")
    per_epoch = n // batch_size
    while True:
        order = torch.randperm(n, generator=generator, device=device)
        for i in range(per_epoch):
            yield order[i * batch_size : (i + 1) * batch_size]


class ChainRun(NamedTuple):
    """The raw output of :func:`run_chains`: the recorded losses and each chain's worst loss."""

    trace: torch.Tensor
    peak: torch.Tensor
    final: SGLDState


def run_chains(step, state: SGLDState, batches, config: SGLDConfig, generator, progress=None):
    """Run ``config.steps`` steps; record ``info.loss`` for steps ``burnin..steps-1``.

    ``batches`` is an iterator of index batches, or ``None`` for full batch. ``peak`` is the
    largest loss of each chain over *all* steps (NaN if any was NaN), for divergence checks.
    ``progress(done, total)``, when given, is called about a hundred times.
    """
    position = state.position
    losses = torch.empty(
        position.shape[0], config.steps, dtype=position.dtype, device=position.device
    )
    every = max(1, config.steps // 100)
    for k in range(config.steps):
        state, info = step(state, None if batches is None else next(batches), generator)
        losses[:, k] = info.loss
        if progress is not None and ((k + 1) % every == 0 or k + 1 == config.steps):
            progress(k + 1, config.steps)
    return ChainRun(losses[:, config.burnin :], losses.amax(dim=1), state)
