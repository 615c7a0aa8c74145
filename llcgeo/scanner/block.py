"""A reader whose quotient is beyond the dense Hessian budget, measured on a block of it.

The block is the quotient's first ``k`` output directions (each times the whole row space the
norm's image spans), ``k`` as many as the budget holds. Its Hessian ``H_B`` is a principal block
of the quotient's Hessian, so:

* **for the whole reader** (proven): ``rank H >= rank H_B``, and the LLC is at least
  ``rank H_B / 2``; it is at most half the quotient's dimension;
* **for the block** (predicted, measured, judged): its own wrLLC, the LLC of the loss on
  ``w* + span B`` with the rest of the reader at ``w*``, is exactly ``k r / 2`` where ``H_B``
  has full rank, and lies between half its rank and ``k r / 2`` otherwise.

The block is sampled in the coordinates that whiten ``H_B`` over one decade of curvature:
``w = w* + B V S u`` with ``H_B = V diag(lambda) V^T`` and ``S = diag(lambda + floor)^(-1/2)``,
``floor = lambda_max / WHITENED_RANGE``. The quadratic model in ``u`` is then
``1/2 u^T diag(mu) u``, ``mu = lambda / (lambda + floor)``: the curvatures of the top decade
all lie between 1/2 and 1 and relax at about one rate, so a few thousand steps sample what the
raw coordinates, whose curvatures span several decades, need tens of thousands for. Below the
floor the localization confines, as tightly as plain chains would (:mod:`llcgeo.scanner`
raises it to that): whitening every decade would send the chains far along nearly flat
directions, where terms beyond the quadratic take over. The LLC does not depend on the
coordinates; the estimator at a finite step and localization does, and its exact expectation
is taken in these coordinates, on ``mu``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector

from llcgeo.numerics.paths.module import named_parts
from llcgeo.scanner.reader import as_buffers

WHITENED_RANGE = 10.0  # the decade of curvatures whitened; below it the localization confines


def block_outputs(rows: int, budget: int) -> int:
    """How many output directions a block takes: as many as ``budget`` directions hold, at
    least one, each ``rows`` directions wide."""
    return max(1, budget // rows)


class Whitened(nn.Module):
    """``model`` (with named parameters, all of them moving in the reader) as a function of the
    whitened coordinates ``u`` alone: ``w = centre + transform u``."""

    def __init__(self, model: nn.Module, transform: torch.Tensor):
        super().__init__()
        self.shapes = {name: p.shape for name, p in model.named_parameters()}
        centre = parameters_to_vector(model.parameters()).detach()
        self.model = as_buffers(model)
        self.register_buffer("centre", centre)
        self.register_buffer("transform", transform.to(centre))
        self.u = nn.Parameter(centre.new_zeros(transform.shape[1]))

    def forward(self, *args, **kwargs):
        parts = named_parts(torch.addmv(self.centre, self.transform, self.u), self.shapes)
        # attention's fused kernels have no batching rule: the chains run as one batch
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            return functional_call(self.model, parts, args, kwargs)


def whitening(hessian: np.ndarray):
    """``(eigenvalues, transform, mu)`` of the block's Hessian: its eigenvalues (clipped at 0),
    the map ``V S`` from whitened coordinates to the block's, and the Hessian's spectrum in
    those coordinates, ``lambda / (lambda + floor)``."""
    values, vectors = np.linalg.eigh(hessian)
    values = np.clip(values, 0.0, None)
    floor = values.max(initial=0.0) / WHITENED_RANGE or 1.0
    scale = (values + floor) ** -0.5
    return values, vectors * scale, values * scale**2
