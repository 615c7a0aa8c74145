"""The stacked-MLP fast path: an ``nn.Sequential`` of ``nn.Linear`` layers and elementwise
activations, every chain's weights stacked on a leading axis.

A step runs the network once for all chains with batched matrix products
(``h <- act(b + h W^T)`` on ``(chains, rows, width)`` tensors) and one backward pass of
autograd through them: the same arithmetic as the general path's ``vmap`` over
``functional_call``, without its per-operation machinery, which dominates for small networks.
A test holds the two paths to the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from llcgeo.config import SGLDConfig
from llcgeo.numerics.problem import Problem

# parameter-free modules that act entry by entry, so they apply to stacked tensors unchanged
ELEMENTWISE = (
    nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Softplus,
    nn.Identity,
)  # fmt: skip


def is_stacked_mlp(model: nn.Module) -> bool:
    """Whether ``model`` is an ``nn.Sequential`` of ``nn.Linear`` layers and the parameter-free
    elementwise activations of ``ELEMENTWISE`` (at least one linear layer)."""
    if type(model) is not nn.Sequential or len(model) == 0:
        return False
    kinds = [type(layer) for layer in model]
    return nn.Linear in kinds and all(k is nn.Linear or k in ELEMENTWISE for k in kinds)


def _layers(model: nn.Sequential):
    """``(kind, out, in, has_bias)`` for a linear layer, ``(module,)`` for an activation."""
    for layer in model:
        if type(layer) is nn.Linear:
            yield ("linear", layer.out_features, layer.in_features, layer.bias is not None)
        else:
            yield (layer,)


def stacked_problem(model: nn.Sequential, x, y, config: SGLDConfig, mask, loss) -> Problem:
    """The :class:`Problem` of ``model`` at its parameters on ``(n, d)`` inputs ``x`` (on the
    device, in the run's dtype) with the per-sample ``loss`` (the Gaussian loss or a
    :class:`~llcgeo.numerics.losses.CrossEntropy`: losses that take ``(rows, K)`` outputs)."""
    plan = list(_layers(model))
    centre = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).to(x)
    sizes = [p.numel() for p in model.parameters()]

    def forward(w: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        # one split, not a slice per tensor: its backward writes the gradient once
        parts, h = iter(w.split(sizes, dim=1)), xb
        for step in plan:
            if step[0] != "linear":
                h = step[0](h)
                continue
            _, out, inp, has_bias = step
            weight = next(parts).view(-1, out, inp).transpose(1, 2)
            if has_bias:
                h = torch.baddbmm(next(parts).view(-1, 1, out), h, weight)
            else:
                h = torch.bmm(h, weight)
        return h

    def batch_loss(w: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        chains, rows = xb.shape[0], xb.shape[1]
        outputs = forward(w, xb)
        values = loss(outputs.reshape(chains * rows, -1), yb.reshape(chains * rows, *yb.shape[2:]))
        return values.view(chains, rows).mean(dim=1)

    with torch.no_grad():
        init_loss = float(batch_loss(centre[None], x[None], y[None])[0])

    def loss_and_grad(position: torch.Tensor, batch):
        if batch is None:
            xb = x.expand(position.shape[0], *x.shape)
            yb = y.expand(position.shape[0], *y.shape)
        else:
            xb, yb = x[batch], y[batch]
        w = position.detach().requires_grad_(True)
        with torch.enable_grad():
            values = batch_loss(w, xb, yb)
            (grad,) = torch.autograd.grad(values.sum(), w)
        return values.detach() - init_loss, grad

    mask = None if mask is None else mask.to(x.device)
    n = x.shape[0]
    rows = n if config.batch_size is None else config.batch_size
    widths = x.shape[1] + sum(step[1] for step in plan if step[0] == "linear")
    work = x.element_size() * (3 * rows * widths + 3 * centre.numel())
    return Problem(loss_and_grad, centre, centre, mask, init_loss, n, config.resolved_nbeta(n),
                   work_per_chain=work)  # fmt: skip
