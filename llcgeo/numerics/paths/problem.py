"""What every model path hands to the sampler: a :class:`Problem`.

A :class:`Problem` is a loss with its gradient over flat parameter vectors ``(chains, P)``, a
centre ``w*``, the mask of entries that move and the exact full-batch loss at ``w*``. The paths
differ only in how they build it (:mod:`llcgeo.numerics.paths.linear`,
:mod:`llcgeo.numerics.paths.module`, ...); sampling, diagnostics and the estimate are shared
(:mod:`llcgeo.numerics.runner`), so every path gives the same result.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from llcgeo.numerics.paths.masks import moving_index
from llcgeo.numerics.sampling.affine import Quadratic
from llcgeo.numerics.sampling.sgld import LossAndGrad


class Problem(NamedTuple):
    """``loss_and_grad(w, batch)`` returns ``(L_batch(w) - L(w*), grad L_batch(w))`` per chain,
    with ``batch`` a tensor of sample indices or ``None`` for the full batch.

    ``start`` is the chains' common starting position (``w*`` in the path's coordinates),
    ``centre`` the localization centre, ``init_loss`` the exact full-batch ``L(w*)``;
    ``hessian_eigenvalues`` (float64, ascending) those of the block the mask moves, where the
    path knows them exactly (the linear fast path), else ``None``. ``work_per_chain`` is what
    a step's temporaries (activations, logits, gathered rows) take per chain, for the plan.
    """

    loss_and_grad: LossAndGrad
    start: torch.Tensor
    centre: torch.Tensor
    mask: torch.Tensor | None
    init_loss: float
    n: int
    nbeta: float
    warnings: tuple[str, ...] = ()
    hessian_eigenvalues: np.ndarray | None = None
    # the linear path's minibatch run: () -> linear.DataMoments, for a verdict that asks (the
    # fourth moment is O(n q^4): a plain estimate never pays for it)
    moments: Any = None
    work_per_chain: int = 0  # bytes of a step's temporaries per chain (numerics.plan)
    chains: int | None = None  # the chains it is built for, where its data are per chain
    certified_flat: int = 0  # directions the path knows the loss to be exactly flat along
    quadratic: Any = None  # affine.Quadratic where the loss is exactly that quadratic (small P)

    @property
    def free_parameters(self) -> int:
        return int(self.start.numel() if self.mask is None else self.mask.sum())


def quadratic_problem(hessian: torch.Tensor, like: Problem) -> Problem:
    """The quadratic model ``1/2 (w - w*)^T H (w - w*)`` of ``like``'s loss, ``H`` given on the
    entries ``like.mask`` moves, in ``like``'s coordinates: run with ``like``'s config and seed,
    its chains see the very same noise, so the difference of the two estimates is what the
    loss's terms beyond the quadratic add."""
    centre = like.centre
    index = moving_index(like.mask, centre.numel(), centre.device)
    h = hessian.to(centre.device, centre.dtype)

    def loss_and_grad(position: torch.Tensor, batch):
        if batch is not None:
            raise ValueError("the quadratic model is full batch")
        delta = (position - centre).index_select(1, index)
        pulled = delta @ h
        grad = torch.zeros_like(position).index_copy_(1, index, pulled)
        return 0.5 * (pulled * delta).sum(dim=1), grad

    work = 3 * index.numel() * h.element_size()
    full = torch.zeros(centre.numel(), centre.numel(), dtype=torch.float64, device=centre.device)
    full[index[:, None], index[None, :]] = hessian.to(full)
    exact = Quadratic(full, torch.zeros(centre.numel(), dtype=torch.float64, device=full.device))
    return like._replace(loss_and_grad=loss_and_grad, init_loss=0.0, warnings=(),
                         work_per_chain=work, quadratic=exact)  # fmt: skip
