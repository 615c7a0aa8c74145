"""The fast full-batch path for a product of bias-free linear maps ``y = W_L ... W_1 x``.

Under the Gaussian loss the loss of ``P = W_L ... W_1`` depends on the data only through
``S = X^T X / n`` and the gradient at the centre ``C = S P*^T - X^T Y / n``::

    L(P) - L(P*) = 1/2 tr(D S D^T) + tr(D C),   D = P - P*

so a full-batch step costs ``O(chains (L m d h))`` for the products and ``O(chains m d^2)`` for the
form, whatever ``n`` is, and the excess is this form rather than a difference of two large
numbers. Positions are the layers' weights flattened in ``nn.Sequential`` order, exactly as the
general path (:mod:`llcgeo.numerics.paths.module`) lays them out, so masks, noise and chains line up
entry for entry and the two paths give the same estimate up to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError
from llcgeo.numerics.paths.problem import Footprint, Posterior, Problem


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
    loss_and_grad = _loss_and_grad(shapes, centre_product.to(dtype), s.to(dtype),
                                   gradient.T.to(dtype))  # fmt: skip
    nbeta = config.resolved_nbeta(n)
    work = start.element_size() * (3 * start.numel() + 4 * centre_product.numel())
    return Problem(Posterior(loss_and_grad, start, start, mask, init_loss, n, nbeta),
                   footprint=Footprint(work))  # fmt: skip


def _product(matrices: list[torch.Tensor]) -> torch.Tensor:
    """``W_L ... W_1`` for batched ``(chains, out, in)`` matrices given first layer first."""
    out = matrices[0]
    for w in matrices[1:]:
        out = torch.matmul(w, out)
    return out


def _loss_and_grad(shapes, centre, s, c_t, scale=None):
    """``(L(P) - L(P*), its gradient in each W_k)`` per chain, by hand: with
    ``G = dL/dP = D S + C^T``, ``dL/dW_k = (W_L ... W_{k+1})^T G (W_{k-1} ... W_1)^T``, and
    ``L - L* = 1/2 <D, G + C^T>``; a few batched products a step, no autograd graph. ``s``
    ``(d, d)`` and ``c_t`` ``(m, d)`` are one data set's, or ``(chains, ., .)`` each chain's
    own; ``scale`` ``(chains, 1)``, when given, multiplies each chain's loss and gradient."""
    sizes = [rows * cols for rows, cols in shapes]

    def loss_and_grad(position: torch.Tensor, batch):
        parts = position.split(sizes, dim=1)
        weights = [p.view(-1, *shape) for p, shape in zip(parts, shapes, strict=True)]
        below = [weights[0]]  # below[k] = W_k ... W_1
        for w in weights[1:]:
            below.append(torch.matmul(w, below[-1]))
        delta = below[-1] - centre  # (chains, m, d)
        chains = delta.shape[0]
        g = torch.baddbmm(c_t.expand_as(delta), delta, s.expand(chains, -1, -1))
        value = 0.5 * torch.linalg.vecdot((g + c_t).flatten(1), delta.flatten(1))
        grads, above = [], g  # above = (W_L ... W_{k+1})^T G, from the top layer down
        for k in range(len(weights) - 1, -1, -1):
            grads.append(above if k == 0 else torch.matmul(above, below[k - 1].transpose(1, 2)))
            if k:
                above = torch.matmul(weights[k].transpose(1, 2), above)
        grad = torch.cat([g.flatten(1) for g in reversed(grads)], dim=1)
        if scale is None:
            return value, grad
        return scale[:, 0] * value, scale * grad

    return loss_and_grad


class Statistics(NamedTuple):
    """What a data set tells a product of linear maps under the Gaussian loss: ``S = X^T X /
    n`` and the gradient at the centre, ``C = S P*^T - X^T Y / n`` ``(d, m)``."""

    second: torch.Tensor
    gradient: torch.Tensor


def grid_problem(model: torch.nn.Sequential, groups, chains: int, dtype=torch.float64) -> Problem:
    """Many data sets and temperatures at once: ``groups`` lists ``(Statistics, nbeta)``, and
    each group gets ``chains`` chains of its own around ``model``'s weights. Each chain's loss
    is its group's ``nbeta (L(P) - L(P*))``, so the problem's own ``nbeta`` is 1 and an
    estimate is the mean of the recorded loss; the step cost does not depend on the ``n``
    behind each group."""
    if not is_linear_product(model):
        raise EstimationError("a grid of data sets needs a product of bias-free linear maps")
    shapes = [tuple(layer.weight.shape) for layer in model]
    weights = [layer.weight.detach().to(dtype) for layer in model]
    start = torch.cat([w.reshape(-1) for w in weights])

    def per_chain(tensors) -> torch.Tensor:
        return torch.stack([t.to(dtype) for t in tensors for _ in range(chains)])

    s = per_chain(stats.second for stats, _ in groups)
    c_t = per_chain(stats.gradient.T for stats, _ in groups)
    scale = per_chain(torch.tensor([nbeta]) for _, nbeta in groups)
    loss_and_grad = _loss_and_grad(shapes, _product([w[None] for w in weights])[0], s, c_t, scale)
    work = start.element_size() * (3 * start.numel() + 2 * s[0].numel())
    # each chain's loss is already its group's nbeta (L - L*): nbeta 1, L(w*) 0; full batch
    # only, so n is nominal
    posterior = Posterior(loss_and_grad, start, start, None, 0.0, 2, 1.0)
    return Problem(posterior, footprint=Footprint(work, chains=chains * len(groups)))
