"""A softmax head on fixed features: its loss, its minimum and its exact Hessian.

With every parameter before it frozen, the head sees fixed features ``z``; its cross-entropy is
then a convex function of the head alone, refitted here to its minimum (:func:`fit_head`), with
the exact Hessian :func:`head_hessian` (``E[A(p) (x) z~ z~^T]``, :mod:`llcgeo.theory.softmax`).

The head's loss (and training, :mod:`~llcgeo.numerics.measurements.training`) uses smoothed
labels (:data:`SMOOTHING`): a trained classifier separates its training set, so with one-hot
labels the cross-entropy has no finite minimum; smoothing keeps one and leaves the Hessian's
formula unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from llcgeo.errors import EstimationError
from llcgeo.numerics.paths.losses import cross_entropy

SMOOTHING = 0.1
MINIMUM_GRADIENT = 1e-8  # a fitted head with a larger gradient is not at its minimum
F64 = torch.float64


def _augmented(z: torch.Tensor, with_bias: bool) -> torch.Tensor:
    return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1) if with_bias else z


def head_hessian(z: torch.Tensor, weight: torch.Tensor, bias, *, moving_bias: bool):
    """The exact Hessian of the mean cross-entropy of ``softmax(W z + b)`` in the entries that
    move (``W`` row-major, then ``b`` when ``moving_bias``), at ``(weight, bias)``: the mean
    over samples of ``A(p) (x) z~ z~^T`` with ``A(p) = diag p - p p^T``. Label smoothing
    does not enter it."""
    z = z.to(F64)
    p = torch.softmax(logits(z, weight.to(F64), None if bias is None else bias.to(F64)), dim=1)
    zt = _augmented(z, moving_bias)

    def curvature(rows):  # A(p), the softmax's
        return torch.diag_embed(p[rows]) - p[rows, :, None] * p[rows, None, :]

    k, width = p.shape[1], zt.shape[1]
    full = kronecker_mean(curvature, zt, k)
    order = [c * width + i for c in range(k) for i in range(z.shape[1])]
    if moving_bias:
        order += [c * width + width - 1 for c in range(k)]
    index = torch.tensor(order)
    return full[index][:, index]


CHUNK_BYTES = 64 << 20  # the rows held at once to form their share of a Kronecker mean


def kronecker_mean(curvature, z: torch.Tensor, k: int) -> torch.Tensor:
    """``mean_s A_s (x) z_s z_s^T``, ``(k w, k w)`` in (output, feature) order, for features
    ``z`` ``(rows, w)`` and ``curvature(rows) -> A`` ``(len(rows), k, k)`` (a slice of rows):
    one product of ``k^2 x rows`` by ``rows x w^2`` matrices, a chunk of rows at a time. The
    Hessian of any loss read through a linear map ``W z + b``, whose second derivative in the
    map's outputs is ``A_s``, has this form."""
    rows, w = z.shape
    total = z.new_zeros(k * k, w * w)
    per = max(1, CHUNK_BYTES // (z.element_size() * (k * k + w * w)))
    for start in range(0, rows, per):
        part = slice(start, start + per)
        a = curvature(part)
        outer = z[part, :, None] * z[part, None, :]
        total.addmm_(a.reshape(len(a), k * k).T, outer.reshape(len(a), w * w))
    return total.view(k, k, w, w).permute(0, 2, 1, 3).reshape(k * w, k * w) / rows


def logits(z, weight, bias):
    """The head's logits ``z W^T + b`` (``(rows, classes)``)."""
    return z @ weight.T + (0 if bias is None else bias)


def _head_loss(z, labels, weight, bias):
    return cross_entropy(SMOOTHING)(logits(z, weight, bias), labels).mean()


def fit_head(z, labels, weight, bias, *, moving_bias: bool, iterations: int = 200):
    """``(weight, bias, gradient norm)`` at the minimum of the head's smoothed cross-entropy
    on fixed features ``z``, by damped Newton steps (Levenberg-Marquardt) from
    ``(weight, bias)``: a step ``(H + mu I)^-1 g`` is kept when it lowers the loss or the
    gradient (near the minimum the loss changes below its rounding), and ``mu`` shrinks after
    a kept step and grows after a refused one. The loss is convex, so this reaches the
    minimum; along the Hessian's kernel the loss is flat and the step stays tiny."""
    z, weight = z.to(F64), weight.detach().to(F64).clone()
    bias = None if bias is None else bias.detach().to(F64).clone()
    loss = _head_loss(z, labels, weight, bias)
    grad = _gradient(z, labels, weight, bias, moving_bias)
    mu = None
    for _ in range(iterations):
        if float(grad.norm()) < 1e-13:
            break
        h = head_hessian(z, weight, bias, moving_bias=moving_bias)
        scale = float(h.diagonal().mean())
        mu = 1e-3 * scale if mu is None else mu
        step = torch.linalg.solve(h + mu * torch.eye(len(h), dtype=F64), grad)
        cand = _moved(weight, bias, -step, moving_bias)
        cand_loss = _head_loss(z, labels, *cand)
        cand_grad = _gradient(z, labels, *cand, moving_bias)
        if cand_loss < loss or cand_grad.norm() < grad.norm():
            (weight, bias), loss, grad = cand, cand_loss, cand_grad
            mu = max(mu / 10, 1e-14 * scale)
        else:
            mu *= 10
    norm = float(grad.norm())
    if not norm < MINIMUM_GRADIENT:
        raise EstimationError(
            f"the head's loss has no minimum within reach: its gradient is still {norm:.3g} "
            f"after {iterations} damped Newton steps (the minimum needs below "
            f"{MINIMUM_GRADIENT:g}); a larger label smoothing keeps the minimum closer"
        )
    return weight, bias, norm


def _gradient(z, labels, weight, bias, moving_bias: bool) -> torch.Tensor:
    w = weight.clone().requires_grad_(True)
    b = None if bias is None else bias.clone().requires_grad_(moving_bias)
    loss = _head_loss(z, labels, w, b)
    moving = [w, b] if moving_bias else [w]
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, moving)])


def _moved(weight, bias, step, moving_bias: bool):
    size = weight.numel()
    weight = weight + step[:size].view_as(weight)
    if moving_bias:
        bias = bias + step[size:]
    return weight, bias


def linear_head(weight: torch.Tensor, bias, *, moving_bias: bool):
    """``(nn.Linear in float64 at (weight, bias), param_masks)``: the weight moves, the bias
    (where there is one) only where ``moving_bias``."""
    classes, width = weight.shape
    head = nn.Linear(width, classes, bias=bias is not None, dtype=F64)
    masks = {"weight": torch.ones(classes, width, dtype=torch.bool)}
    with torch.no_grad():
        head.weight.copy_(weight)
        if bias is not None:
            head.bias.copy_(bias)
            masks["bias"] = torch.full((classes,), moving_bias, dtype=torch.bool)
    return head, masks
