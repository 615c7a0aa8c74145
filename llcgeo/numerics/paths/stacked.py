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
from llcgeo.numerics.paths.data import gather
from llcgeo.numerics.paths.losses import CrossEntropy, gaussian_loss
from llcgeo.numerics.paths.problem import Footprint, Posterior, Problem

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
    :class:`~llcgeo.numerics.paths.losses.CrossEntropy`: losses that take ``(rows, K)`` outputs)."""
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

    by_hand = _backward_by_hand(plan, sizes, loss)

    def loss_and_grad(position: torch.Tensor, batch):
        if batch is None:
            xb = x.expand(position.shape[0], *x.shape)
            yb = y.expand(position.shape[0], *y.shape)
        else:
            xb, yb = gather(x, batch), gather(y, batch)
        if by_hand is not None:
            values, grad = by_hand(position, xb, yb)
            return values - init_loss, grad
        w = position.detach().requires_grad_(True)
        with torch.enable_grad():
            values = batch_loss(w, xb, yb)
            (grad,) = torch.autograd.grad(values.sum(), w)
        return values.detach() - init_loss, grad

    n = x.shape[0]
    rows = n if config.batch_size is None else config.batch_size
    widths = x.shape[1] + sum(step[1] for step in plan if step[0] == "linear")
    work = x.element_size() * (3 * rows * widths + 3 * centre.numel())
    posterior = Posterior(loss_and_grad, centre, centre, mask, init_loss, n,
                          config.resolved_nbeta(n))  # fmt: skip
    return Problem(posterior, footprint=Footprint(work))


def _chain_rule(module: nn.Module):
    """``(delta, pre, post) -> delta * act'(pre)`` of an elementwise activation, in place on
    ``delta`` where it is short to write (``None``: the identity); the other activations go
    through autograd."""
    if type(module) is nn.Identity:
        return None
    if type(module) is nn.ReLU:
        return lambda delta, pre, post: delta.mul_(post > 0)
    if type(module) is nn.Tanh:
        return lambda delta, pre, post: delta.mul_(1 - post * post)
    if type(module) is nn.Sigmoid:
        return lambda delta, pre, post: delta.mul_(post * (1 - post))
    if type(module) is nn.LeakyReLU:
        slope = module.negative_slope
        return lambda delta, pre, post: delta.mul_(torch.where(pre > 0, 1.0, slope).to(pre.dtype))
    raise KeyError(type(module).__name__)


FUNCTIONAL = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid}


def _output_gradient(loss, outputs: torch.Tensor, targets: torch.Tensor):
    """``(per-chain mean loss, its gradient in the outputs)`` for the Gaussian loss or the
    cross-entropy, by hand; ``None`` for any other loss."""
    rows = outputs.shape[1]
    if loss is gaussian_loss:
        residual = outputs - targets
        return 0.5 * residual.square().sum(dim=(1, 2)) / rows, residual / rows
    if not isinstance(loss, CrossEntropy):
        return None
    classes, s = outputs.shape[-1], loss.label_smoothing
    if targets.is_floating_point():
        wanted = (1 - s) * targets + s / classes
    else:
        wanted = torch.nn.functional.one_hot(targets, classes).to(outputs.dtype)
        wanted = (1 - s) * wanted + s / classes
    log_p = torch.log_softmax(outputs, dim=-1)
    values = -(wanted * log_p).sum(dim=(1, 2)) / rows
    return values, (log_p.exp() - wanted) / rows


def _backward_by_hand(plan, sizes, loss):
    """``(position, xb, yb) -> (per-chain loss, gradient)``: the forward pass keeping each
    layer's input, then its backward written out (``dW = delta^T h``, ``db = sum delta``,
    ``delta <- (delta W) act'``): the products a hand-written step makes, nothing more.
    ``None`` where an activation's derivative or the loss is not one of those written here."""
    if loss is not gaussian_loss and not isinstance(loss, CrossEntropy):
        return None
    try:
        derivatives = [_chain_rule(step[0]) if step[0] != "linear" else "linear" for step in plan]
    except KeyError:
        return None

    def run(position: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor):
        parts, h, saved = iter(position.split(sizes, dim=1)), xb, []
        for step, derivative in zip(plan, derivatives):
            if derivative == "linear":
                _, out, inp, has_bias = step
                weight = next(parts).view(-1, out, inp)
                bias = next(parts).view(-1, 1, out) if has_bias else None
                saved.append(("linear", h, weight, has_bias))
                h = torch.bmm(h, weight.transpose(1, 2)) if bias is None else torch.baddbmm(
                    bias, h, weight.transpose(1, 2))  # fmt: skip
            else:
                post = FUNCTIONAL.get(type(step[0]), step[0])(h)
                saved.append(("act", h, post, derivative))
                h = post
        values, delta = _output_gradient(loss, h, yb)
        grads = []
        for i, record in enumerate(reversed(saved)):
            if record[0] == "act":
                delta = delta if record[3] is None else record[3](delta, record[1], record[2])
                continue
            _, h_in, weight, has_bias = record
            if has_bias:
                grads.append(delta.sum(dim=1))
            grads.append(torch.bmm(delta.transpose(1, 2), h_in).flatten(1))
            if i + 1 < len(saved):
                delta = torch.bmm(delta, weight)
        return values, torch.cat(grads[::-1], dim=1)

    return run
