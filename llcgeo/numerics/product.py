"""The fast full-batch path for a product of bias-free linear maps ``y = W_L ... W_1 x``.

Under the Gaussian loss the loss of ``P = W_L ... W_1`` depends on the data only through
``S = X^T X / n`` and the gradient at the centre ``C = S P*^T - X^T Y / n``::

    L(P) - L(P*) = 1/2 tr(D S D^T) + tr(D C),   D = P - P*

so a full-batch step costs ``O(chains (L m d h))`` for the products and ``O(chains m d^2)`` for the
form, whatever ``n`` is, and the excess is this form rather than a difference of two large
numbers. Positions are the layers' weights flattened in ``nn.Sequential`` order, exactly as the
general path (:mod:`llcgeo.numerics.module`) lays them out, so masks, noise and chains line up
entry for entry and the two paths give the same estimate up to rounding.
"""

from __future__ import annotations

import torch

from llcgeo.config import SGLDConfig
from llcgeo.numerics.problem import Problem


def is_linear_product(model: torch.nn.Module) -> bool:
    """A ``torch.nn.Sequential`` of ``torch.nn.Linear`` layers, none with a bias."""
    return (
        type(model) is torch.nn.Sequential
        and len(model) > 0
        and all(type(layer) is torch.nn.Linear and layer.bias is None for layer in model)
    )


def product_problem(model: torch.nn.Sequential, x, y, config: SGLDConfig, mask=None) -> Problem:
    """The :class:`Problem` of ``model`` around its current weights on ``x`` ``(n, d)``, ``y``
    ``(n, m)`` (float64, on the target device; the chains run in ``config.dtype``)."""
    from llcgeo.numerics.device import resolve_dtype

    dtype = resolve_dtype(config.dtype)
    shapes = [tuple(layer.weight.shape) for layer in model]
    weights = [layer.weight.detach().to(x.device, torch.float64) for layer in model]
    centre_product = _product([w[None] for w in weights])[0]
    n = x.shape[0]
    s = x.T @ x / n
    gradient = s @ centre_product.T - x.T @ y / n  # (d, m)
    residual = y - x @ centre_product.T
    init_loss = float(0.5 * residual.square().sum(dim=1).mean())
    start = torch.cat([w.reshape(-1) for w in weights]).to(dtype)
    loss_and_grad = _loss_and_grad(
        shapes, centre_product.to(dtype), s.to(dtype), gradient.to(dtype)
    )
    mask = None if mask is None else mask.to(x.device)
    nbeta = config.resolved_nbeta(n)
    work = start.element_size() * (3 * start.numel() + 4 * centre_product.numel())
    return Problem(loss_and_grad, start, start, mask, init_loss, n, nbeta, work_per_chain=work)


def _product(matrices: list[torch.Tensor]) -> torch.Tensor:
    """``W_L ... W_1`` for batched ``(chains, out, in)`` matrices given first layer first."""
    out = matrices[0]
    for w in matrices[1:]:
        out = torch.matmul(w, out)
    return out


def _loss_and_grad(shapes, centre, s, gradient):
    sizes = [rows * cols for rows, cols in shapes]

    def excess(position: torch.Tensor) -> torch.Tensor:
        parts = position.split(sizes, dim=1)
        matrices = [p.view(-1, *shape) for p, shape in zip(parts, shapes, strict=True)]
        delta = _product(matrices) - centre  # (chains, m, d)
        form = torch.einsum("cmd,de,cme->c", delta, s, delta)
        return 0.5 * form + torch.einsum("cmd,dm->c", delta, gradient)

    def loss_and_grad(position: torch.Tensor, batch):
        with torch.enable_grad():
            tracked = position.detach().requires_grad_(True)
            value = excess(tracked)
            (grad,) = torch.autograd.grad(value.sum(), tracked)
        return value.detach(), grad

    return loss_and_grad
