"""What every model path hands to the sampler: a :class:`Problem`, made of small records.

:class:`Posterior` is what every kernel samples: a loss with its gradient over flat parameter
vectors ``(chains, P)``, the chains' start, a centre ``w*``, the mask of entries that move, the
exact full-batch loss at ``w*``, ``n`` and ``nbeta``. :class:`Exact` is what a path knows exactly
about that loss (its Hessian spectrum, its flat directions, the quadratic it is, the data's
moments), for the shortcuts and verdicts that can use it; :class:`Footprint` is what the plan
needs (a step's temporaries per chain, the chains the data are built for). A path fills only the
records it knows. The paths differ only in how they build them
(:mod:`llcgeo.numerics.paths.linear`, :mod:`llcgeo.numerics.paths.module`, ...); sampling,
diagnostics and the estimate are shared (:mod:`llcgeo.numerics.runner`), so every path gives
the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from llcgeo.numerics.paths.masks import moving_index
from llcgeo.numerics.sampling.affine import BlockQuadratic, Quadratic, dense_fits
from llcgeo.numerics.sampling.sgld import LossAndGrad


class Posterior(NamedTuple):
    """What every kernel samples. ``loss_and_grad(w, batch)`` returns ``(L_batch(w) - L(w*),
    grad L_batch(w))`` per chain, with ``batch`` a tensor of sample indices or ``None`` for the
    full batch. ``start`` is the chains' common starting position (``w*`` in the path's
    coordinates), ``centre`` the localization centre, ``mask`` the entries that move (``None``:
    all), ``init_loss`` the exact full-batch ``L(w*)``, ``n`` the samples minibatches are drawn
    from, ``nbeta`` the inverse temperature times ``n``."""

    loss_and_grad: LossAndGrad
    start: torch.Tensor
    centre: torch.Tensor
    mask: torch.Tensor | None
    init_loss: float
    n: int
    nbeta: float

    @property
    def free_parameters(self) -> int:
        return int(self.start.numel() if self.mask is None else self.mask.sum())


class Exact(NamedTuple):
    """What a path knows exactly about its loss; the defaults say it knows nothing.

    ``hessian_eigenvalues`` (float64, ascending) are those of the block the mask moves (the
    linear path). ``certified_flat`` counts the directions the loss is exactly flat along (a
    symmetry the path knows). ``quadratic`` is the
    :class:`~llcgeo.numerics.sampling.affine.Quadratic` (or block) the loss exactly is, in the
    path's coordinates, for the affine driver. ``moments``, on the linear path's minibatch run,
    computes its :class:`~llcgeo.numerics.paths.linear.DataMoments` when a verdict asks (the
    fourth moment is ``O(n q^4)``: a plain estimate never pays for it).
    """

    hessian_eigenvalues: np.ndarray | None = None
    certified_flat: int = 0
    quadratic: Quadratic | BlockQuadratic | None = None
    moments: Callable[[], Any] | None = None


class Footprint(NamedTuple):
    """What a run takes beyond its positions, for the plan (:mod:`llcgeo.numerics.plan`):
    ``work_per_chain``, the bytes of a step's temporaries per chain (activations, logits,
    gathered rows); ``chains``, the chains the data are built for where they are per chain
    (``None``: any number)."""

    work_per_chain: int = 0
    chains: int | None = None


class Problem(NamedTuple):
    """A path's problem: the :class:`Posterior` to sample, what the path knows exactly about
    its loss (:class:`Exact`), the :class:`Footprint` the plan reads, and ``warnings``, the
    notes the path (and the estimate's own checks) make about it, which the estimate carries."""

    posterior: Posterior
    exact: Exact = Exact()
    footprint: Footprint = Footprint()
    warnings: tuple[str, ...] = ()

    def noted(self, notes: tuple[str, ...]) -> Problem:
        """This problem with ``notes`` added to its warnings."""
        return self._replace(warnings=self.warnings + notes)


def quadratic_problem(hessian: torch.Tensor, like: Problem) -> Problem:
    """The quadratic model ``1/2 (w - w*)^T H (w - w*)`` of ``like``'s loss, ``H`` given on the
    entries ``like``'s mask moves (a vector: its diagonal, as in whitened coordinates), in
    ``like``'s coordinates: run with ``like``'s config and seed, its chains see the very same
    noise, so the difference of the two estimates is what the loss's terms beyond the
    quadratic add. It has no warnings of its own."""
    posterior = like.posterior
    centre = posterior.centre
    index = moving_index(posterior.mask, centre.numel(), centre.device)
    h = hessian.to(centre.device, centre.dtype)
    diagonal = h.dim() == 1

    def loss_and_grad(position: torch.Tensor, batch):
        if batch is not None:
            raise ValueError("the quadratic model is full batch")
        delta = (position - centre).index_select(1, index)
        pulled = delta * h if diagonal else delta @ h
        grad = torch.zeros_like(position).index_copy_(1, index, pulled)
        return 0.5 * (pulled * delta).sum(dim=1), grad

    work = 3 * index.numel() * h.element_size()
    # the dense model is the affine driver's alone: built only where the driver can run it
    exact = _dense_quadratic(hessian, index, centre) if dense_fits(centre.numel()) else None
    # the model shares the loss's Hessian at w*: what the path knows of that stays true
    return Problem(posterior._replace(loss_and_grad=loss_and_grad, init_loss=0.0),
                   like.exact._replace(quadratic=exact),
                   like.footprint._replace(work_per_chain=work))  # fmt: skip


def _dense_quadratic(hessian: torch.Tensor, index: torch.Tensor, centre) -> Quadratic:
    """The quadratic model's :class:`Quadratic` over every entry, ``hessian`` (or its diagonal)
    placed on the moving ones."""
    full = torch.zeros(centre.numel(), centre.numel(), dtype=torch.float64, device=centre.device)
    if hessian.dim() == 1:
        full[index, index] = hessian.to(full)
    else:
        full[index[:, None], index[None, :]] = hessian.to(full)
    return Quadratic(full, torch.zeros(centre.numel(), dtype=torch.float64, device=full.device))
