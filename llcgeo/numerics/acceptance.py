"""The Metropolis acceptance probability of SGLD's own steps: a step-size diagnostic.

Each SGLD step ``w -> w'`` is MALA's proposal; MALA would accept it with probability
``min(1, exp(U(w) - U(w') - |w - w' + (eps/2) grad U(w')|^2 / (2 eps)
+ |w' - w + (eps/2) grad U(w)|^2 / (2 eps)))``, ``U(w) = nbeta (L(w) - L(w*)) +
gamma/2 |w - w*|^2``. SGLD accepts every step; the mean of that probability says how far its
discretization is from the posterior it aims at (devinterp 1 reported it): near 1, the step
is small against the curvature; well below 1/2, eps is large. The potential and gradient at
``w'`` are the ones the next step computes anyway, so watching costs a few operations a step
and no extra gradient. On minibatches ``U`` is the minibatch potential, and the rate an
approximation, as devinterp's was. Entries that the mask freezes take no part.
"""

from __future__ import annotations

import torch

from llcgeo.numerics.sgld import drift_vector, potential


class AcceptanceWatch:
    """Wraps a drift function; after a run, :attr:`rate` is the mean acceptance probability
    over all chains and every step whose end point was evaluated."""

    def __init__(self, drift, *, eps: float, mask: torch.Tensor | None):
        self._drift, self._eps = drift, eps
        self._keep = None if mask is None else mask.to(torch.bool)
        self._previous = None  # (w, U(w), grad U(w)) of the last evaluation
        self._total, self._count = None, 0  # a tensor sum: no device sync a step

    def __call__(self, w: torch.Tensor, batch):
        loss, d = self._drift(w, batch)
        current = (w, potential(w, loss, d), self._masked(drift_vector(w, d)))
        if self._previous is not None:
            self._record(self._previous, current)
        self._previous = current
        return loss, d

    def _masked(self, g: torch.Tensor) -> torch.Tensor:
        return g if self._keep is None else torch.where(self._keep, g, torch.zeros_like(g))

    def _record(self, before, after) -> None:
        (w, u, g), (w_new, u_new, g_new) = before, after
        eps = self._eps
        forward = (w_new - w + 0.5 * eps * g).square().sum(dim=1, keepdim=True)
        backward = (w - w_new + 0.5 * eps * g_new).square().sum(dim=1, keepdim=True)
        log_ratio = u - u_new + ((forward - backward) / (2 * eps)).squeeze(1)
        probability = torch.exp(torch.clamp(torch.nan_to_num(log_ratio, nan=-torch.inf), max=0))
        total = probability.sum()
        self._total = total if self._total is None else self._total + total
        self._count += probability.numel()

    @property
    def rate(self) -> float | None:
        return float(self._total) / self._count if self._count else None
