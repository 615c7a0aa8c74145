"""Which path a model takes: :data:`FAST_PATHS`, a table from the kind of problem to a path.

A ``torch.nn.Linear`` with the Gaussian loss takes the sufficient-statistics fast path
(:mod:`~llcgeo.numerics.paths.linear`), with the cross-entropy on ``(n, d)`` features the
softmax-head path (:mod:`~llcgeo.numerics.paths.softmax`); a full-batch ``nn.Sequential`` of
bias-free ``nn.Linear`` layers, the product path (:mod:`~llcgeo.numerics.paths.product`);
another ``nn.Sequential`` of linear layers and elementwise activations on ``(n, d)`` inputs,
the stacked-MLP path (:mod:`~llcgeo.numerics.paths.stacked`); anything else the general path
(:mod:`~llcgeo.numerics.paths.module`). All build the same
:class:`~llcgeo.numerics.paths.problem.Problem`, so they give the same estimate; a product of
linear maps that cannot take its fast path (a bias, a minibatch, another loss) says so in the
problem's warnings.

>>> layer = torch.nn.Linear(3, 2, dtype=torch.float64)
>>> x = torch.randn(50, 3, dtype=torch.float64)
>>> y = layer(x).detach()
>>> kind = problem_kind(layer, x, y, SGLDConfig(), per_sample_loss("gaussian"), "gaussian")
>>> next(name for name, path in FAST_PATHS.items() if path.takes(kind))
'the linear path'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError
from llcgeo.numerics.device import resolve_dtype
from llcgeo.numerics.paths.data import checked_data, is_matrix, to_device
from llcgeo.numerics.paths.linear import linear_problem
from llcgeo.numerics.paths.losses import (
    LOSSES,
    CrossEntropy,
    check_gaussian_targets,
    check_targets,
    per_sample_loss,
)
from llcgeo.numerics.paths.masks import flatten_masks
from llcgeo.numerics.paths.module import module_problem, parameter_shapes, precision_note
from llcgeo.numerics.paths.problem import Problem
from llcgeo.numerics.paths.product import is_linear_product, product_problem
from llcgeo.numerics.paths.softmax import softmax_problem
from llcgeo.numerics.paths.stacked import is_stacked_mlp, stacked_problem


class Kind(NamedTuple):
    """What picks a model's path: its form (one ``nn.Linear``; an ``nn.Sequential`` of bias-free
    linear maps; one of linear layers and elementwise activations), its loss (the Gaussian, or
    the cross-entropy, read straight from ``forward`` on ``(n, d)`` inputs) and its batches."""

    linear: bool
    product: bool
    stacked: bool
    gaussian: bool
    entropy: bool
    full_batch: bool


class Path(NamedTuple):
    """A fast path: whether it ``takes`` a problem of this :class:`Kind`, and how it
    ``build``s it: ``build(model, x, y, config, mask, fn, target) -> Problem``."""

    takes: Callable[[Kind], bool]
    build: Callable[..., Problem]


def problem_kind(model, x, y, config: SGLDConfig, fn, named, output_fn=None) -> Kind:
    """The :class:`Kind` of ``model`` on this data under the per-sample loss ``fn`` (``named``
    its name in ``LOSSES``, or ``None``); Gaussian targets are checked here."""
    if named == "gaussian":
        check_gaussian_targets(y)
    plain = is_matrix(x) and output_fn is None
    entropy = isinstance(fn, CrossEntropy) and plain
    return Kind(type(model) is torch.nn.Linear, is_linear_product(model), is_stacked_mlp(model),
                named == "gaussian" and plain, entropy, config.batch_size is None)  # fmt: skip


def model_problem(model, inputs, targets, config, param_masks, loss, target,
                  output_fn=None) -> Problem:  # fmt: skip
    """The :class:`Problem` of ``model`` at its parameters on this data, on the first path of
    :data:`FAST_PATHS` that takes it, else the general path (a model whose output goes through
    ``output_fn`` takes the general path). The mask is built here, once, on ``target``."""
    shapes = parameter_shapes(checked_model(model, config))
    x, y = checked_data(inputs, targets)
    mask = flatten_masks(shapes, param_masks, device=target)
    fn, named = per_sample_loss(loss), loss if isinstance(loss, str) and loss in LOSSES else None
    kind = problem_kind(model, x, y, config, fn, named, output_fn)
    used = next((name for name, path in FAST_PATHS.items() if path.takes(kind)), GENERAL)
    if used == GENERAL:
        dtype = resolve_dtype(config.dtype)
        x, y = to_device(x, target, dtype), to_device(y, target, dtype)
        problem = module_problem(model, x, y, config, mask, fn, named, output_fn)
    else:
        problem = FAST_PATHS[used].build(model, x, y, config, mask, fn, target)
    notes = _why_not(model, kind, used) + precision_note(model, resolve_dtype(config.dtype))
    return problem.noted(notes)


def checked_model(model, config) -> torch.nn.Module:
    """``model``, refused unless it is an ``nn.Module`` and ``config`` an ``SGLDConfig``."""
    if not isinstance(model, torch.nn.Module):
        raise EstimationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, SGLDConfig):
        raise EstimationError(f"config must be an SGLDConfig, got {type(config).__name__}")
    return model


def _why_not(model, kind: Kind, used: str) -> tuple[str, ...]:
    """Why a stack of linear layers did not take the product path (nothing for other models)."""
    layers = list(model) if type(model) is torch.nn.Sequential else []
    linear = layers and all(type(layer) is torch.nn.Linear for layer in layers)
    if not linear or used == PRODUCT:
        return ()
    if any(layer.bias is not None for layer in layers):
        why = "a layer has a bias"
    elif not kind.gaussian:
        why = "the loss is not the Gaussian loss on (n, d) inputs"
    else:
        why = "minibatches need the data at every step"
    return (f"the product-of-linear-maps fast path was not taken ({why}): {used} used",)


def _linear(model: torch.nn.Linear, x, y, config: SGLDConfig, mask, fn, target) -> Problem:
    x, y = x.to(target), y.to(target)
    if x.shape[1] != model.in_features or y.shape != (x.shape[0], model.out_features):
        raise EstimationError(
            f"a Linear({model.in_features}, {model.out_features}) layer needs inputs "
            f"(n, {model.in_features}) and targets (n, {model.out_features}); got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    weight = model.weight.detach().to(x.device, torch.float64)
    theta = (
        weight
        if model.bias is None
        else torch.cat([weight, model.bias.detach().to(x.device, torch.float64)[:, None]], dim=1)
    )
    return linear_problem(x, y, theta, config, mask)


def _product(model: torch.nn.Sequential, x, y, config: SGLDConfig, mask, fn, target) -> Problem:
    x, y = x.to(target), y.to(target)
    d, m = model[0].in_features, model[-1].out_features
    if x.shape[1] != d or y.shape != (x.shape[0], m):
        raise EstimationError(
            f"a product of linear maps from {d} to {m} features needs inputs (n, {d}) and "
            f"targets (n, {m}); got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return product_problem(model, x, y, config, mask)


def _softmax(model: torch.nn.Linear, x, y, config: SGLDConfig, mask, fn, target) -> Problem:
    x, y = x.to(target, resolve_dtype(config.dtype)), y.to(target)
    if x.shape[1] != model.in_features or y.is_floating_point() or y.dim() != 1:
        raise EstimationError(
            f"a Linear({model.in_features}, {model.out_features}) softmax head needs features "
            f"(n, {model.in_features}) and integer labels (n,); got {tuple(x.shape)} and "
            f"{tuple(y.shape)} ({y.dtype})"
        )
    check_targets("cross_entropy", (model.out_features,), y)
    weight, bias = (None if p is None else p.detach().to(x) for p in (model.weight, model.bias))
    return softmax_problem(x, y, weight, bias, config, mask, fn.label_smoothing)


def _stacked(model: torch.nn.Sequential, x, y, config: SGLDConfig, mask, fn, target) -> Problem:
    dtype = resolve_dtype(config.dtype)
    x, y = to_device(x, target, dtype), to_device(y, target, dtype)
    linears = [layer for layer in model if type(layer) is torch.nn.Linear]
    d, k = linears[0].in_features, linears[-1].out_features
    if x.shape[1] != d:
        raise EstimationError(f"the network takes inputs of shape (n, {d}); got {tuple(x.shape)}")
    if isinstance(fn, CrossEntropy):
        check_targets("cross_entropy", (k,), y)
    elif y.shape != (x.shape[0], k):
        raise EstimationError(
            f"the network's outputs have shape (n, {k}) but the targets have shape {tuple(y.shape)}"
        )
    return stacked_problem(model, x, y, config, mask, fn)


PRODUCT, GENERAL = "the product path", "the general path"
# tried in order: the first that takes a problem builds it; none: the general path
FAST_PATHS: dict[str, Path] = {
    "the linear path": Path(lambda k: k.linear and k.gaussian, _linear),
    PRODUCT: Path(lambda k: k.product and k.gaussian and k.full_batch, _product),
    "the softmax-head path": Path(lambda k: k.linear and k.entropy, _softmax),
    "the stacked-MLP path": Path(lambda k: k.stacked and (k.gaussian or k.entropy), _stacked),
}
