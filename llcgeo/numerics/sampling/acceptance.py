"""The Metropolis test of a Langevin step, written once: MALA applies it, SGLD reports it.

A step ``w -> w'`` with the proposal ``q(w' | w) = N(w - (eps/2) grad U(w), eps I)`` on the
potential ``U(w) = nbeta (L(w) - L(w*)) + gamma/2 |w - w*|^2`` is accepted by MALA with
probability ``min(1, exp(log_ratio))``::

    log_ratio = U(w) - U(w') - |w - w' + (eps/2) grad U(w')|^2 / (2 eps)
                             + |w' - w + (eps/2) grad U(w)|^2 / (2 eps)

SGLD accepts every step; the mean of this probability over its steps says how far its
discretization is from the posterior it aims at (devinterp 1 reported it): near 1, the step is
small against the curvature; well below 1/2, eps is large. On minibatches ``U`` is the minibatch
potential, and the rate an approximation, as devinterp's was. Entries a mask freezes take no
part (their gradient is zeroed before it reaches here).

>>> w, w_new = torch.zeros(1, 2), torch.tensor([[0.1, 0.0]])
>>> g = torch.zeros(1, 2)
>>> log_acceptance_ratio(Evaluation(w, torch.zeros(1), g), Evaluation(w_new, torch.zeros(1), g),
...                      0.01).tolist()
[0.0]
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Evaluation(NamedTuple):
    """The potential ``U`` and its (masked) gradient at a position, per chain."""

    position: torch.Tensor
    potential: torch.Tensor
    gradient: torch.Tensor


def log_acceptance_ratio(here: Evaluation, there: Evaluation, eps) -> torch.Tensor:
    """The log Metropolis ratio of the Langevin step ``here -> there`` (per chain); ``eps`` a
    number or a ``(chains, 1)`` tensor."""
    forward = (there.position - here.position + 0.5 * eps * here.gradient).square()
    backward = (here.position - there.position + 0.5 * eps * there.gradient).square()
    moved = ((forward - backward) / (2 * eps)).sum(dim=1)
    return here.potential - there.potential + moved


def acceptance_probability(here: Evaluation, there: Evaluation, eps) -> torch.Tensor:
    """``min(1, exp(log_ratio))`` per chain, 0 where the ratio is not a number."""
    ratio = torch.nan_to_num(log_acceptance_ratio(here, there, eps), nan=-torch.inf)
    return torch.exp(ratio.clamp(max=0))
