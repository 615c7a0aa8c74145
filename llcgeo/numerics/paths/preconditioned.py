"""A model as a function of preconditioned coordinates: ``w = w* + P u`` on the entries that
move, the rest held at ``w*``.

SGLD on ``u`` with step ``eps`` and localization ``gamma`` is preconditioned SGLD on ``w``: the
drift is ``P P^T`` times the gradient, the noise ``sqrt(eps) P xi``. With ``P = B V
Lambda^(-1/2)`` (``B`` a basis of the directions that can move, ``V Lambda V^T`` the Hessian
on them) the loss's quadratic model is ``|u|^2 / 2``: every direction relaxes at one rate, so a
few thousand steps sample what raw coordinates whose curvatures span decades need millions for.
The LLC does not depend on the coordinates (a linear change of variables scales the volume by
a constant); the estimator at a finite step and localization does, and its exact expectation is
taken in ``u``. ``estimate_llc(..., preconditioner=P)`` samples this way; ``llcgeo.scan`` says
which ``P`` it used.

>>> import torch
>>> layer = torch.nn.Linear(2, 1, bias=False)
>>> masks = flat_mask(layer, None)
>>> moved = Preconditioned(layer, masks, torch.eye(2, dtype=torch.float64)[:, :1])
>>> moved.u.shape, [name for name, _ in moved.named_parameters()]
(torch.Size([1]), ['u'])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector

from llcgeo.errors import EstimationError
from llcgeo.numerics.paths.masks import flatten_masks
from llcgeo.numerics.paths.module import named_parts, parameter_shapes


class Preconditioned(nn.Module):
    """``model`` as a function of ``u`` alone: ``w = centre + scatter(mask, P u)``, where
    ``mask`` (flat, over ``named_parameters()``) picks the entries that move and ``P`` has one
    row for each of them. ``model`` itself is left untouched."""

    def __init__(self, model: nn.Module, mask: torch.Tensor, transform: torch.Tensor):
        super().__init__()
        self.shapes = dict(parameter_shapes(model))
        centre = parameters_to_vector(model.parameters()).detach()
        self.model = _frozen_copy(model)
        self.register_buffer("centre", centre)
        self.register_buffer("moving", mask.nonzero().reshape(-1).to(centre.device))
        # held transposed: a chain's step is u^T P^T and its gradient g^T P, products of a row
        # with a row-major matrix (BLAS takes P u and P^T g several times slower)
        self.register_buffer("transposed", transform.to(centre).T.contiguous())
        self.u = nn.Parameter(centre.new_zeros(transform.shape[1]))

    @property
    def transform(self) -> torch.Tensor:
        return self.transposed.T

    def forward(self, *args, **kwargs):
        moved = self.centre.index_add(0, self.moving, self.u @ self.transposed)
        # attention's fused kernels have no batching rule: the chains run as one batch
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            return functional_call(self.model, named_parts(moved, self.shapes), args, kwargs)


def flat_mask(model: nn.Module, param_masks) -> torch.Tensor:
    """The flat boolean mask of the entries ``param_masks`` move (all of them for ``None``)."""
    mask = flatten_masks(parameter_shapes(model), param_masks)
    return torch.ones(sum(s.numel() for s in parameter_shapes(model).values()), dtype=torch.bool) \
        if mask is None else mask.bool()


def preconditioned(model: nn.Module, param_masks, preconditioner) -> Preconditioned:
    """:class:`Preconditioned` for ``estimate_llc``'s arguments, its shapes checked."""
    mask = flat_mask(model, param_masks)
    transform = torch.as_tensor(preconditioner)
    if transform.dim() != 2 or transform.shape[0] != int(mask.sum()):
        raise EstimationError(
            f"the preconditioner must have one row for each of the {int(mask.sum())} entries "
            f"that move (param_masks), got shape {tuple(transform.shape)}"
        )
    if not transform.is_floating_point() or not bool(torch.isfinite(transform).all()):
        raise EstimationError("the preconditioner must hold finite floats")
    return Preconditioned(model, mask, transform.to(torch.float64))


def _frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters are buffers: ``functional_call`` supplies them."""
    from llcgeo.numerics.paths.module import as_buffers, copied

    return as_buffers(copied(model))
