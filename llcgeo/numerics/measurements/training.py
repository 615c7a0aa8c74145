"""The small networks trained from a seed, and their head refitted to its minimum.

Both models of :mod:`~llcgeo.numerics.measurements.networks` train here in seconds on a CPU:
the MLP on a real data set (the digits, given as arrays), the transformer on a synthetic
sequence task generated here (:func:`sequence_task`); Adam on the smoothed cross-entropy
(:data:`~llcgeo.numerics.measurements.heads.SMOOTHING`). :func:`trained_head` then takes the
final-norm features and refits the head to the minimum of its loss
(:func:`~llcgeo.numerics.measurements.heads.fit_head`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from llcgeo.numerics.device import thread_policy
from llcgeo.numerics.measurements.heads import F64, SMOOTHING, fit_head, linear_head, logits
from llcgeo.numerics.paths.losses import cross_entropy


def sequence_task(n: int, length: int, vocab: int, seed: int):
    """``(ids, labels)``: uniform random tokens; the label at position ``t`` is
    ``(x_t + x_{t-1}) mod vocab`` (``x_{-1} = 0``), so the model must look one token back."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(vocab, (n, length), generator=g)
    previous = torch.cat([torch.zeros(n, 1, dtype=ids.dtype), ids[:, :-1]], dim=1)
    return ids, (ids + previous) % vocab


def train(model: nn.Module, inputs, labels, *, steps: int, lr: float, batch: int | None, seed):
    """Adam on the smoothed cross-entropy, full batch or minibatches drawn from ``seed``;
    returns the final full-batch loss."""
    loss = cross_entropy(SMOOTHING)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        rows = slice(None) if batch is None else torch.randint(len(labels), (batch,), generator=g)
        optimizer.zero_grad()
        loss(model(inputs[rows]), labels[rows]).mean().backward()
        optimizer.step()
    with torch.no_grad():
        return float(loss(model(inputs), labels).mean())


class TrainedHead(NamedTuple):
    """A trained model's frozen features, labels, and its head at the minimum of its loss."""

    model: nn.Module
    features: torch.Tensor  # (rows, width), float64
    labels: torch.Tensor  # (rows,)
    weight: torch.Tensor
    bias: torch.Tensor | None
    train_loss: float
    accuracy: float
    grad_norm: float


def trained_head(build, inputs, labels, *, steps, lr, batch, seed, moving_bias):
    """Build the model with ``build()`` (its initial parameters drawn from ``seed``), train it
    in float64, take its final-norm features on ``inputs`` (rows = samples, or samples x
    positions) and refit its head to the minimum."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build().to(F64)
    inputs = inputs.to(F64) if inputs.is_floating_point() else inputs
    # one thread: the reductions then run in one order, so a seed gives the same network in
    # every process and on every executor
    with thread_policy(0, torch.device("cpu")):
        loss = train(model, inputs, labels, steps=steps, lr=lr, batch=batch, seed=seed)
        with torch.no_grad():
            z = model.features(inputs)
        z, flat = z.reshape(-1, z.shape[-1]), labels.reshape(-1)
        head = model.head
        weight, bias, grad_norm = fit_head(z, flat, head.weight, head.bias, moving_bias=moving_bias)
    accuracy = float((logits(z, weight, bias).argmax(1) == flat).double().mean())
    return TrainedHead(model, z, flat, weight, bias, loss, accuracy, grad_norm)


def head_module(trained: TrainedHead, *, moving_bias: bool):
    """``(nn.Linear at the fitted head, param_masks)``: the weight moves, the bias (where there
    is one) only where ``moving_bias``; for ``estimate_llc`` or ``calibrate`` on the features."""
    return linear_head(trained.weight, trained.bias, moving_bias=moving_bias)
