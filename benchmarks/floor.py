"""The floor the benchmarks measure llcgeo against: a hand-written batched SGLD step of the same
products, written here apart from the package so that it shares none of its code.

Every chain's parameters sit in one row of a ``(chains, P)`` tensor; a step takes each chain's
own minibatch (a fresh permutation a chain each epoch, as llcgeo and devinterp draw them),
computes the batch loss and its gradient with the function given, and makes the Langevin update
``w - (eps/2)(nbeta g + gamma (w - w*)) + sqrt(eps) xi`` in place. Nothing else: no checks, no
diagnostics, no plan. Its estimate, ``nbeta (mean loss - L(w*))``, is printed next to
llcgeo's as a check that both sample the same posterior.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap


def run_floor(grad_fn, centre, x, y, *, chains, steps, burnin, batch_size, eps, gamma, nbeta,
              init_loss, seed=0):  # fmt: skip
    """``(mean, se, seconds)`` of ``steps`` hand-written SGLD steps (``burnin`` discarded)."""
    g = torch.Generator(device=centre.device).manual_seed(seed)
    n = x.shape[0]
    w = centre.expand(chains, -1).clone()
    losses = torch.empty(chains, steps, dtype=centre.dtype, device=centre.device)
    per_epoch = n // batch_size
    started = time.perf_counter()
    for k in range(steps):
        if k % per_epoch == 0:
            order = torch.stack([torch.randperm(n, generator=g, device=centre.device)
                                 for _ in range(chains)])  # fmt: skip
        rows = order[:, (k % per_epoch) * batch_size : (k % per_epoch + 1) * batch_size]
        value, grad = grad_fn(w, x[rows], y[rows])
        losses[:, k] = value
        noise = torch.randn(w.shape, generator=g, dtype=w.dtype, device=w.device)
        w.mul_(1 - 0.5 * eps * gamma).add_(centre, alpha=0.5 * eps * gamma)
        w.add_(grad, alpha=-0.5 * eps * nbeta).add_(noise, alpha=math.sqrt(eps))
    per_chain = nbeta * (losses[:, burnin:].mean(dim=1).double() - init_loss)
    if centre.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return float(per_chain.mean()), float(per_chain.std() / math.sqrt(chains)), seconds


def linear_step(m: int, d: int, bias: bool):
    """``(w, xb, yb) -> (batch losses, gradients)`` of ``1/2 |y - W x - b|^2``, ``w`` laid out
    as ``nn.Linear``'s parameters (``W`` row-major, then ``b``)."""

    def step(w, xb, yb):
        chains, rows = xb.shape[0], xb.shape[1]
        weight = w[:, : m * d].view(chains, m, d)
        shift = w[:, m * d :].unsqueeze(1) - yb if bias else -yb
        errors = torch.baddbmm(shift, xb, weight.transpose(1, 2))
        value = 0.5 * errors.square().sum(dim=(1, 2)) / rows
        grad = torch.bmm(errors.transpose(1, 2), xb).view(chains, -1)
        if bias:
            grad = torch.cat([grad, errors.sum(dim=1)], dim=1)
        return value, grad / rows

    return step


def mlp_step(model: nn.Sequential):
    """The Gaussian loss of a ReLU MLP (``nn.Linear`` layers with biases between ``nn.ReLU``s):
    the forward pass with batched products, then its backward written out."""
    shapes = [
        (layer.out_features, layer.in_features) for layer in model if isinstance(layer, nn.Linear)
    ]
    sizes = [size for out, inp in shapes for size in (out * inp, out)]

    def step(w, xb, yb):
        chains, rows = xb.shape[0], xb.shape[1]
        parts = w.split(sizes, dim=1)
        weights = [parts[2 * i].view(chains, *shape) for i, shape in enumerate(shapes)]
        biases = [parts[2 * i + 1].unsqueeze(1) for i in range(len(shapes))]
        inputs, h = [], xb
        for i, (weight, bias) in enumerate(zip(weights, biases)):
            inputs.append(h)
            h = torch.baddbmm(bias, h, weight.transpose(1, 2))
            if i + 1 < len(shapes):
                h = h.clamp_min_(0)
        delta = h - yb
        value = 0.5 * delta.square().sum(dim=(1, 2)) / rows
        grads = []
        for i in reversed(range(len(shapes))):
            grads += [delta.sum(dim=1), torch.bmm(delta.transpose(1, 2), inputs[i]).flatten(1)]
            if i:
                delta = torch.bmm(delta, weights[i]).mul_(inputs[i] > 0)
        return value, torch.cat(grads[::-1], dim=1).div_(rows)

    return step


def vmap_step(model: nn.Module, per_sample_loss):
    """torch.func's own ``vmap`` of ``grad_and_value`` over ``functional_call``: the reference
    where no step is written by hand (a transformer)."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())

    def batch_loss(flat, xb, yb):
        parts = flat.split([s.numel() for s in shapes])
        params = {name: part.view(shape) for name, part, shape in zip(names, parts, shapes)}
        return per_sample_loss(functional_call(model, {**params, **buffers}, (xb,)), yb).mean()

    batched = vmap(grad_and_value(batch_loss))

    def step(w, xb, yb):
        grad, value = batched(w, xb, yb)
        return value, grad

    return step


def flat_parameters(model: nn.Module) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach()
