"""A Metropolis-adjusted Langevin (MALA) kernel: the SGLD proposal, then an exact accept/reject.

The proposal is SGLD's step ``w' = w - (eps/2) grad U(w) + sqrt(eps) xi`` on the localized,
tempered potential ``U(w) = nbeta (L(w) - L(w*)) + gamma/2 |w - w*|^2``; it is accepted with
the probability of :mod:`llcgeo.numerics.sampling.acceptance`. The chain then samples ``exp(-U)``
exactly, whatever ``eps``: the reference that shows how much of an SGLD estimate is step-size
bias. It needs the full batch (a minibatch ``U`` would make the acceptance test wrong), and
every chain accepts or rejects on its own.

The state keeps the loss, potential and gradient at its position (as blackjax's MALA does), so
a step evaluates the loss and its gradient once, at the proposal. Like
:func:`llcgeo.numerics.sampling.sgld.build_kernel`, :func:`build_mala_kernel` returns
``step(state, batch, eps, generator) -> (state, info)``; ``info.acceptance`` says which chains
accepted, so the run's acceptance rate is its mean.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from llcgeo.numerics.sampling.acceptance import Evaluation, log_acceptance_ratio
from llcgeo.numerics.sampling.sgld import DriftFn, SGLDInfo, evaluation, masked


class MALAState(NamedTuple):
    """``position`` ``(chains, P)``, the steps taken, and (after the first step) the loss and
    the :class:`~llcgeo.numerics.sampling.acceptance.Evaluation` at ``position``."""

    position: torch.Tensor
    step: int
    loss: torch.Tensor | None = None
    here: Evaluation | None = None


def init_mala(position: torch.Tensor) -> MALAState:
    return MALAState(position, 0)


def build_mala_kernel(drift: DriftFn, *, mask: torch.Tensor | None = None):
    """``step(state, None, eps, generator) -> (state, info)``; ``mask`` (bool, ``(P,)``, on the
    positions' device: the problem's, as it was built) marks what moves."""

    def evaluate(w: torch.Tensor):
        loss, d = drift(w, None)
        return loss, evaluation(w, loss, d, mask)

    def step(state: MALAState, batch, eps, generator: torch.Generator):
        if batch is not None:
            raise ValueError("MALA needs the full batch")
        w = state.position
        loss, here = (state.loss, state.here) if state.here is not None else evaluate(w)
        noise = masked(torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device),
                       mask)  # fmt: skip
        proposal = w - 0.5 * eps * here.gradient + eps**0.5 * noise
        new_loss, there = evaluate(proposal)
        ratio = torch.nan_to_num(log_acceptance_ratio(here, there, eps), nan=-torch.inf)
        uniform = torch.rand(w.shape[0], generator=generator, dtype=w.dtype, device=w.device)
        accept = torch.log(uniform) < ratio
        kept = Evaluation(*(_where(accept, a, b) for a, b in zip(there, here, strict=True)))
        state = MALAState(kept.position, state.step + 1, _where(accept, new_loss, loss), kept)
        return state, SGLDInfo(loss, accept.to(w.dtype))

    return step


def _where(accept: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per chain: ``new`` where accepted, else ``old`` (``accept`` has shape ``(chains,)``)."""
    return torch.where(accept.view(-1, *([1] * (new.dim() - 1))), new, old)
