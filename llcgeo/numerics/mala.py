"""A Metropolis-adjusted Langevin (MALA) kernel: the SGLD proposal, then an exact accept/reject.

The proposal is SGLD's step ``w' = w - (eps/2) grad U(w) + sqrt(eps) xi`` on the localized,
tempered potential ``U(w) = nbeta (L(w) - L(w*)) + gamma/2 |w - w*|^2``; it is accepted with
probability ``min(1, exp(U(w) - U(w') + log q(w | w') - log q(w' | w)))``, ``q`` the proposal's
Gaussian density. The chain then samples ``exp(-U)`` exactly, whatever ``eps``: the reference
that shows how much of an SGLD estimate is step-size bias. It needs the full batch (a minibatch
``U`` would make the acceptance test wrong), and every chain accepts or rejects on its own.

Like :func:`llcgeo.numerics.sgld.build_kernel`, :func:`build_mala_kernel` returns
``step(state, batch, eps, generator) -> (state, info)``; the state counts each chain's accepted
proposals, so the run's acceptance rate is ``state.accepted / state.step``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from llcgeo.numerics.sgld import DriftFn, SGLDInfo, drift_vector, potential


class MALAState(NamedTuple):
    """``position`` ``(chains, P)``, the steps taken and each chain's accepted proposals."""

    position: torch.Tensor
    step: int
    accepted: torch.Tensor


def init_mala(position: torch.Tensor) -> MALAState:
    return MALAState(position, 0, torch.zeros(position.shape[0], device=position.device))


def build_mala_kernel(drift: DriftFn, *, mask: torch.Tensor | None = None):
    """``step(state, None, eps, generator) -> (state, info)``; ``mask`` marks what moves."""
    keep = None if mask is None else mask.to(torch.bool)

    def masked(v: torch.Tensor) -> torch.Tensor:
        return v if keep is None else torch.where(keep, v, torch.zeros_like(v))

    def step(state: MALAState, batch, eps, generator: torch.Generator):
        if batch is not None:
            raise ValueError("MALA needs the full batch")
        w = state.position
        loss, d = drift(w, None)
        grad = masked(drift_vector(w, d))
        noise = masked(torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device))
        proposal = w - 0.5 * eps * grad + eps**0.5 * noise
        new_loss, new_d = drift(proposal, None)
        new_grad = masked(drift_vector(proposal, new_d))
        back = w - (proposal - 0.5 * eps * new_grad)
        log_ratio = (
            potential(w, loss, d)
            - potential(proposal, new_loss, new_d)
            - back.square().sum(dim=1) / (2 * eps)
            + noise.square().sum(dim=1) / 2
        )
        uniform = torch.rand(w.shape[0], generator=generator, dtype=w.dtype, device=w.device)
        accept = torch.log(uniform) < torch.nan_to_num(log_ratio, nan=-torch.inf)
        position = torch.where(accept[:, None], proposal, w)
        accepted = state.accepted + accept.to(state.accepted.dtype)
        return MALAState(position, state.step + 1, accepted), SGLDInfo(loss)

    return step
