"""One check of a model against its data, shared by :func:`llcgeo.estimate_llc` and
:func:`llcgeo.scan`, run before a path is chosen or a graph traced: a mistaken pairing is one
sentence naming both sides, never an error from deep inside torch or a silent wrong number.

What it refuses: fewer than two samples; a parameter that is NaN or infinite (named); inputs
whose feature width, rank or kind (integers against floats) differ from what the model's first
layer, or an exported program's signature, takes (both figures said); token ids outside an
embedding's rows; targets the named loss would misread (:func:`~llcgeo.numerics.paths.losses.
check_targets`); and any failure of the model or loss on two samples, in one line.

>>> from torch import nn
>>> check_pairing(nn.Linear(3, 2), torch.zeros(4, 5), torch.zeros(4, 2), "gaussian")
Traceback (most recent call last):
...
llcgeo.errors.EstimationError: the inputs have 5 features a sample but ... takes 3
"""

from __future__ import annotations

import contextlib

import torch
from torch import fx

from llcgeo.errors import EstimationError
from llcgeo.numerics.paths.data import Data, take, to_device
from llcgeo.numerics.paths.losses import check_gaussian_targets, named_loss, per_sample_loss
from llcgeo.numerics.paths.module import probe

EMBEDDINGS = (torch.nn.Embedding, torch.nn.EmbeddingBag)


def check_pairing(model: torch.nn.Module, x: Data, y: torch.Tensor, loss, output_fn=None) -> int:
    """Refuse a model and data that do not pair (see the module's note); the elements of
    activation each sample makes, as :func:`~llcgeo.numerics.paths.module.probe` counts them."""
    if y.shape[0] < 2:
        raise EstimationError(f"the data have {y.shape[0]} sample; an estimate needs at least 2")
    finite_parameters(model)
    inputs_fit(model, x)
    named = named_loss(loss)
    if named == "gaussian":
        check_gaussian_targets(y)
    _token_ids_in_range(_exported_tables(model, x), x)
    first, targets = _probe_rows(model, x, y)
    try:
        with _embedding_inputs(model) as seen, _evaluation_mode(model):
            activations = probe(model, first, targets, per_sample_loss(loss), named, output_fn)
    except _IdsOutside as outside:
        _token_ids_in_range(_tables(first, outside.seen), x)
        module, ids = outside.seen[-1]
        raise EstimationError(
            f"an embedding of the model, {_short(module)}, is given ids "
            f"{int(ids.min())}..{int(ids.max())}, outside its {module.num_embeddings} rows"
        ) from None
    _token_ids_in_range(_tables(first, seen), x)
    return activations


class _IdsOutside(EstimationError):
    """An embedding met ids outside its rows on the probe (``seen``: what each read)."""

    def __init__(self, seen):
        super().__init__("token ids outside an embedding's rows")
        self.seen = seen


def finite_parameters(model: torch.nn.Module) -> None:
    """Refuse a parameter or buffer holding NaN or infinity, by name."""
    named = [*model.named_parameters(), *model.named_buffers()]
    for name, value in named:
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise EstimationError(f"the model's {name!r} holds NaN or infinite values")


def inputs_fit(model: torch.nn.Module, x: Data) -> None:
    """Refuse inputs whose shape or kind differ from what the model declares it takes."""
    signature = _exported_inputs(model)
    if signature:
        _fits_signature(signature, x)
    elif isinstance(x, torch.Tensor):
        _fits_first_layer(model, x)


def _exported_inputs(model) -> dict[str, torch.Tensor]:
    """An exported program's user inputs, by name, as their traced example values."""
    graph = getattr(model, "graph", None)
    if graph is None:
        return {}
    nodes = [n for n in graph.nodes if n.op == "placeholder"]
    values = {n.target: n.meta.get("val") for n in nodes}
    return values if all(isinstance(v, torch.Tensor) for v in values.values()) else {}


def _fits_signature(signature: dict[str, torch.Tensor], x: Data) -> None:
    given = x if isinstance(x, dict) else dict(zip(signature, [x]))
    if len(given) != len(signature) or set(given) != set(signature):
        raise EstimationError(
            f"the model takes the inputs {sorted(signature)}, got {sorted(given)}"
        )
    for name, value in signature.items():
        _fits(given[name], value, f"the model's export of {name!r}")


def _fits(tensor: torch.Tensor, example: torch.Tensor, what: str) -> None:
    wanted = ["n", *(d if isinstance(d, int) else "*" for d in example.shape[1:])]
    shape = f"({', '.join(str(d) for d in wanted)})"
    static = [(i, d) for i, d in enumerate(example.shape) if i and isinstance(d, int)]
    if tensor.dim() != example.dim() or any(tensor.shape[i] != d for i, d in static):
        raise EstimationError(f"the inputs have shape {tuple(tensor.shape)} but {what} takes "
                              f"{shape}")  # fmt: skip
    if example.is_floating_point() != tensor.is_floating_point():
        kind = "floats" if example.is_floating_point() else "integers (token ids)"
        raise EstimationError(f"the inputs are {_kind(tensor)} but {what} takes {kind}")


def _fits_first_layer(model: torch.nn.Module, x: torch.Tensor) -> None:
    first = _first_layer(model)
    if isinstance(first, torch.nn.Linear):
        if not x.is_floating_point():
            raise EstimationError(
                f"the inputs are integers but the model's first layer, {_short(first)}, takes "
                "floats: give float features (inputs.float()), or token ids to a model that "
                "embeds them"
            )
        if x.shape[-1] != first.in_features:
            raise EstimationError(
                f"the inputs have {x.shape[-1]} features a sample but the model's first layer, "
                f"{_short(first)}, takes {first.in_features}"
            )
    if isinstance(first, EMBEDDINGS):
        if x.is_floating_point():
            raise EstimationError(
                f"the inputs are floats but the model's first layer, {_short(first)}, takes "
                "token ids: give integer inputs"
            )
        _token_ids_in_range([("inputs", first.num_embeddings)], x)


def _first_layer(model: torch.nn.Module):
    """The layer the inputs meet first, where the model's structure says so (a layer itself,
    or the head of a ``Sequential``); ``None`` where only its ``forward`` knows."""
    while isinstance(model, torch.nn.Sequential) and len(model):
        model = model[0]
    return model if isinstance(model, (torch.nn.Linear, *EMBEDDINGS)) else None


def _probe_rows(model: torch.nn.Module, x: Data, y: torch.Tensor) -> tuple[Data, torch.Tensor]:
    """Two samples of ``x``, and the targets, where the model's parameters are and in their
    floating dtype."""
    held = next(iter(model.parameters()), None)
    device = None if held is None else held.device
    dtype = torch.float64 if held is None or not held.is_floating_point() else held.dtype
    return to_device(take(x, torch.arange(2)), device, dtype), to_device(y, device, dtype)


@contextlib.contextmanager
def _evaluation_mode(model: torch.nn.Module):
    """``model`` in evaluation mode while the block runs (a probe must not move batch norm's
    running statistics, nor draw a dropout mask), each module's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    for module, _ in modes:  # not model.eval(): an exported program's module refuses it
        module.training = False
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def _embedding_inputs(model: torch.nn.Module):
    """The tensors each embedding module is called on while the block runs."""
    seen: list[tuple[torch.nn.Module, torch.Tensor]] = []

    def record(module, inputs):
        if inputs and torch.is_tensor(inputs[0]) and inputs[0].is_floating_point():
            raise EstimationError(f"an embedding of the model, {_short(module)}, is given "
                                  "floats: give it token ids (integers)")  # fmt: skip
        seen.append((module, inputs[0]))
        ids = inputs[0] if inputs and torch.is_tensor(inputs[0]) else None
        rows = module.num_embeddings
        if ids is not None and ids.numel() and (ids.min() < 0 or ids.max() >= rows):
            raise _IdsOutside(seen)  # before the embedding fails with torch's IndexError

    handles = [m.register_forward_pre_hook(record) for m in model.modules()
               if isinstance(m, EMBEDDINGS)]  # fmt: skip
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _tables(first: Data, seen) -> list[tuple[str, int]]:
    """``(input name, rows)`` of every embedding module seen reading the probe's rows of an
    input as they are."""
    named = first if isinstance(first, dict) else {"inputs": first}
    return [(k, m.num_embeddings) for m, t in seen for k, v in named.items() if _same(t, v)]


def _same(a, b) -> bool:
    """Whether an embedding read the probe's own rows of an input (not a value made from it)."""
    return torch.is_tensor(a) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


def _exported_tables(model, x: Data) -> list[tuple[str, int]]:
    """``(input name, rows)`` of an exported program's ``embedding`` calls on its inputs."""
    graph = getattr(model, "graph", None)
    found = []
    for node in [] if graph is None else graph.nodes:
        reads = node.args[1] if len(node.args) > 1 else None
        if node.target is torch.ops.aten.embedding.default and _is_input(reads):
            key = reads.target if isinstance(x, dict) else "inputs"
            found.append((key, int(node.args[0].meta["val"].shape[0])))
    return found


def _token_ids_in_range(tables, x: Data) -> None:
    named = x if isinstance(x, dict) else {"inputs": x}
    for key, rows in tables:
        low, high = int(named[key].min()), int(named[key].max())
        if low < 0 or high >= rows:
            where = "the inputs" if key == "inputs" else f"inputs[{key!r}]"
            raise EstimationError(
                f"the token ids of {where} range over {low}..{high}, but the model's embedding "
                f"has {rows} rows (ids 0..{rows - 1})"
            )


def _is_input(node) -> bool:
    return isinstance(node, fx.Node) and node.op == "placeholder"


def _kind(tensor: torch.Tensor) -> str:
    return "floats" if tensor.is_floating_point() else "integers"


def _short(module: torch.nn.Module) -> str:
    if isinstance(module, torch.nn.Linear):
        return f"Linear({module.in_features}, {module.out_features})"
    return f"{type(module).__name__}({module.extra_repr()})"
