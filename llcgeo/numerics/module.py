"""The general path: any ``torch.nn.Module`` with any per-sample loss.

Each chain holds one flat parameter vector (``named_parameters()`` order, row-major); a step
evaluates ``mean_i loss(f_w(x_i), y_i)`` and its gradient for all chains at once with
``torch.func.functional_call`` under ``torch.func.vmap``. The model itself is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch.func import functional_call, grad_and_value, vmap

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError
from llcgeo.numerics.problem import Problem

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gaussian_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``1/2 |y - f(x)|^2`` per sample (summed over output entries): the Gaussian negative
    log-likelihood up to a constant.

    >>> gaussian_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])).tolist()
    [2.5]
    """
    if outputs.shape != targets.shape:
        raise EstimationError(
            f"the model's outputs have shape {tuple(outputs.shape)} but the targets have shape "
            f"{tuple(targets.shape)}"
        )
    return 0.5 * (outputs - targets).square().reshape(outputs.shape[0], -1).sum(dim=1)


def per_sample_loss(loss) -> PerSampleLoss:
    """``"gaussian"`` or a callable ``loss(outputs, targets) -> (batch,)``."""
    if loss == "gaussian":
        return gaussian_loss
    if callable(loss):
        return loss
    raise EstimationError(f"loss must be 'gaussian' or a callable, got {loss!r}")


def probe(model: torch.nn.Module, x, y, loss: PerSampleLoss) -> None:
    """Apply model and loss to two samples, turning shape errors into clear messages."""
    try:
        with torch.no_grad():
            values = loss(model(x[:2]), y[:2])
    except RuntimeError as err:
        raise EstimationError(
            f"the model cannot be applied to inputs of shape {tuple(x.shape)} with targets of "
            f"shape {tuple(y.shape)}: {err}"
        ) from None
    if not isinstance(values, torch.Tensor) or values.shape != (min(2, x.shape[0]),):
        shape = getattr(values, "shape", type(values).__name__)
        raise EstimationError(f"loss must return one value per sample, got shape {shape}")


def module_problem(model: torch.nn.Module, x, y, config: SGLDConfig, mask, loss) -> Problem:
    """The :class:`Problem` of ``model`` around its current parameters on data ``x``, ``y``
    (already on the device in ``config.dtype``)."""
    model = copy.deepcopy(model).to(device=x.device, dtype=x.dtype)
    probe(model, x, y, loss)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    centre = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    buffers = dict(model.named_buffers())

    def batch_loss(flat: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        params = dict(zip(shapes, _unflatten(flat, shapes), strict=True))
        return loss(functional_call(model, {**params, **buffers}, (xb,)), yb).mean()

    shared = vmap(grad_and_value(batch_loss), in_dims=(0, None, None))
    own = vmap(grad_and_value(batch_loss), in_dims=(0, 0, 0))  # each chain its own batch
    with torch.no_grad():
        init_loss = float(batch_loss(centre, x, y))

    def loss_and_grad(position: torch.Tensor, batch):
        if batch is None:
            grad, value = shared(position, x, y)
        else:
            grad, value = own(position, x[batch], y[batch])
        return value - init_loss, grad

    mask = None if mask is None else mask.to(x.device)
    nbeta = config.resolved_nbeta(x.shape[0])
    return Problem(loss_and_grad, centre, centre, mask, init_loss, x.shape[0], nbeta)


def _unflatten(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    parts = flat.split([shape.numel() for shape in shapes.values()])
    return [part.view(shape) for part, shape in zip(parts, shapes.values(), strict=True)]


def parameter_shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    """Name -> shape of every parameter, in ``named_parameters()`` order."""
    shapes = {name: p.shape for name, p in model.named_parameters()}
    if not shapes:
        raise EstimationError("the model has no parameters to sample")
    return shapes
