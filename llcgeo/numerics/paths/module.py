"""The general path: any ``torch.nn.Module`` with any per-sample loss.

Each chain holds one flat parameter vector (``named_parameters()`` order, row-major); a step
evaluates ``mean_i loss(f_w(x_i), y_i)`` and its gradient for all chains at once with
``torch.func.functional_call`` under ``torch.func.vmap``. Inputs given as a dict are passed
as keyword arguments of ``forward``. The model itself is never modified: a copy is sampled in
evaluation mode, because a posterior over parameters needs a loss that is a fixed function of
them (dropout draws a new mask per call; batch norm in training mode couples the samples).
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch
from torch.func import functional_call, grad_and_value, vmap

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError, LLCGeoError, in_brief
from llcgeo.numerics.device import resolve_dtype
from llcgeo.numerics.paths.data import Data, gather, sample_count, take
from llcgeo.numerics.paths.losses import check_targets
from llcgeo.numerics.paths.problem import Footprint, Posterior, Problem

# layers that behave differently in training: the estimate samples the model in eval mode
TRAINING_DEPENDENT = (
    torch.nn.modules.dropout._DropoutNd,
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)


def probe(model: torch.nn.Module, x: Data, y, loss, named, output_fn=None) -> int:
    """Apply model and loss to two samples, turning shape and argument errors into clear
    messages (``named`` is the loss's name, or ``None`` for a callable); the elements of
    activation each sample makes (the outputs of the model's leaf modules), for the plan."""
    first = take(x, torch.arange(min(2, sample_count(x))))
    with _activations(model) as counted:
        raw = _applied(lambda: _forward(model, first), x, y)
    outputs = _outputs_of(raw, output_fn, x, y)
    count = sample_count(first)
    if outputs.dim() == 0 or outputs.shape[0] != count:
        raise EstimationError(
            f"the model's outputs for {count} samples have shape {tuple(outputs.shape)}: their "
            "first axis must be the samples (check output_fn, or the model's forward)"
        )
    check_targets(named, outputs.shape[1:], y)
    values = _applied(lambda: loss(outputs, y[:2]), x, y)
    if not isinstance(values, torch.Tensor) or values.shape != (sample_count(first),):
        shape = getattr(values, "shape", type(values).__name__)
        raise EstimationError(f"loss must return one value per sample, got shape {shape}")
    return max(1, sum(counted) // sample_count(first))


def _outputs_of(raw, output_fn, x: Data, y) -> torch.Tensor:
    """The tensor the loss reads: the model's output, through ``output_fn`` when given."""
    outputs = raw if output_fn is None else _applied(lambda: output_fn(raw), x, y)
    if isinstance(outputs, torch.Tensor):
        return outputs
    if output_fn is None:
        raise EstimationError(
            f"the model returns a {type(raw).__name__}, not a tensor; pass output_fn, a "
            "function from its output to the tensor the loss reads (output_fn=lambda out: "
            "out[0] for a tuple, lambda out: out['logits'] for a dict), or wrap the model"
        )
    raise EstimationError(f"output_fn must return a tensor, got {type(outputs).__name__}")


@contextlib.contextmanager
def _activations(model: torch.nn.Module):
    """Forward hooks that count the elements each leaf module outputs while the block runs."""
    counted: list[int] = []

    def count(module, inputs, output):
        parts = output if isinstance(output, (tuple, list)) else (output,)
        counted.append(sum(p.numel() for p in parts if isinstance(p, torch.Tensor)))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        yield counted
    finally:
        for handle in handles:
            handle.remove()


def _applied(call, x: Data, y):
    try:
        with torch.no_grad():
            return call()
    except LLCGeoError:
        raise  # already says what is wrong, in the package's words
    except (RuntimeError, TypeError, IndexError, KeyError, AttributeError, ValueError,
            AssertionError) as err:  # fmt: skip
        raise EstimationError(
            f"the model and loss cannot be applied to inputs {_described(x)} with targets of "
            f"shape {tuple(y.shape)} ({y.dtype}): {in_brief(err, 300)}"
        ) from None


def _forward(model, x: Data, params=None):
    args, kwargs = ((), x) if isinstance(x, dict) else ((x,), {})
    if params is None:
        return model(*args, **kwargs)
    return functional_call(model, params, args, kwargs)


def _described(x: Data) -> str:
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {tuple(v.shape)} {v.dtype}" for k, v in x.items()) + "}"
    return f"of shape {tuple(x.shape)} ({x.dtype})"


def evaluation_mode_note(model: torch.nn.Module) -> tuple[str, ...]:
    """What sampling in evaluation mode changes for this model (nothing to say for most)."""
    if not model.training:
        return ()
    kinds = sorted({type(m).__name__ for m in model.modules() if isinstance(m, TRAINING_DEPENDENT)})
    if not kinds:
        return ()
    return (
        f"the model was sampled in evaluation mode ({', '.join(kinds)}: dropout off, batch "
        "norm on its running statistics), so the loss is a fixed function of the parameters",
    )


def module_problem(
    model: torch.nn.Module, x: Data, y, config: SGLDConfig, mask, loss, named=None,
    output_fn=None,
) -> Problem:  # fmt: skip
    """The :class:`Problem` of ``model`` around its current parameters on data ``x``, ``y``
    (already on the device, floats in ``config.dtype``), in evaluation mode; ``output_fn``
    maps the model's output to the tensor the loss reads."""
    device, dtype = y.device, resolve_dtype(config.dtype)
    notes = evaluation_mode_note(model)
    model = copied(model).to(device=device, dtype=dtype).eval()
    activations = probe(model, x, y, loss, named, output_fn)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    centre = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    buffers = dict(model.named_buffers())

    def batch_loss(flat: torch.Tensor, xb: Data, yb: torch.Tensor) -> torch.Tensor:
        params = named_parts(flat, shapes)
        outputs = _forward(model, xb, {**params, **buffers})
        return loss(outputs if output_fn is None else output_fn(outputs), yb).mean()

    shared = vmap(grad_and_value(batch_loss), in_dims=(0, None, None))
    own = vmap(grad_and_value(batch_loss), in_dims=(0, 0, 0))  # each chain its own batch
    with torch.no_grad():
        init_loss = float(batch_loss(centre, x, y))

    def loss_and_grad(position: torch.Tensor, batch):
        if batch is None:
            grad, value = shared(position, x, y)
        else:
            grad, value = own(position, take(x, batch), gather(y, batch))
        return value - init_loss, grad

    n = y.shape[0]
    rows = n if config.batch_size is None else config.batch_size
    work = centre.element_size() * (3 * rows * activations + 3 * centre.numel())
    posterior = Posterior(loss_and_grad, centre, centre, mask, init_loss, n,
                          config.resolved_nbeta(n))  # fmt: skip
    return Problem(posterior, footprint=Footprint(work), warnings=notes)


def copied(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model``. Copying an exported program's module rebuilds its input
    treespec through torch's own deprecated ``LeafSpec`` path, a warning about torch's code
    that the user cannot act on: silenced here, where the package triggers it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*treespec", FutureWarning)
        return copy.deepcopy(model)


def named_parts(flat: torch.Tensor, shapes: dict) -> dict[str, torch.Tensor]:
    """``flat`` cut into the tensors of ``shapes`` (``{name: shape}``, in the order of the
    parameters it was flattened from)."""
    parts = flat.split([shape.numel() for shape in shapes.values()])
    return {name: part.view(shape) for (name, shape), part
            in zip(shapes.items(), parts, strict=True)}  # fmt: skip


LOW_PRECISION = (torch.float16, torch.bfloat16)


def precision_note(model: torch.nn.Module, dtype: torch.dtype) -> tuple[str, ...]:
    """What sampling in ``dtype`` does for a model held in half precision: its parameters are
    read exactly (every half-precision number is a float32 and float64 number), and the loss
    differences SGLD records, far below half precision's resolution, are computed in
    ``dtype``."""
    kinds = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()
                    if p.dtype in LOW_PRECISION})  # fmt: skip
    if not kinds:
        return ()
    return (
        f"the model's parameters are {', '.join(kinds)}; it was sampled in "
        f"{str(dtype).removeprefix('torch.')} (half precision cannot resolve the excess loss "
        "SGLD records), and its parameters are a minimum only to their own precision",
    )


def parameter_shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    """Name -> shape of every parameter, in ``named_parameters()`` order."""
    shapes = {name: p.shape for name, p in model.named_parameters()}
    if not shapes:
        raise EstimationError("the model has no parameters to sample")
    return shapes


def as_buffers(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its parameters turned into buffers of the same names (in place): frozen,
    for ``functional_call`` to supply them."""
    for name, p in list(model.named_parameters()):
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        delattr(module, leaf)
        module.register_buffer(leaf, p.detach())
    return model
