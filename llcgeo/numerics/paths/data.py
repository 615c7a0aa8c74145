"""The data of an estimate in one form: inputs (a tensor, or a dict of tensors for a forward
that takes several arguments) and targets, on the CPU, integers kept as integers.

Token ids and class labels stay ``int64``; every floating tensor becomes ``float64`` here and
the run's dtype on the device (:func:`to_device`). An iterable of ``(inputs, targets)``
batches, such as a ``DataLoader``, is joined into one dataset: the estimate's ``L(w*)`` is the
exact full-batch loss, so all of it is needed.

>>> x, y = checked_data({"ids": [[1, 2], [3, 4]]}, [0, 1])
>>> x["ids"].dtype, y.dtype, sample_count(x)
(torch.int64, torch.int64, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch.utils._pytree import tree_leaves, tree_map

from llcgeo.errors import EstimationError

Data = torch.Tensor | dict[str, torch.Tensor]
INTEGERS = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def checked_data(inputs, targets) -> tuple[Data, torch.Tensor]:
    """Inputs and targets with the same, non-zero number of rows and finite floats;
    ``targets=None`` reads ``inputs`` as an iterable of ``(inputs, targets)`` batches."""
    if targets is None:
        inputs, targets = _joined(inputs)
    x = _as_data(inputs, "inputs")
    y = _as_tensor(targets, "targets")
    if sample_count(x) is None or y.dim() == 0:
        raise EstimationError(
            f"inputs and targets need one leading sample dimension, got {_shapes(x)} and "
            f"{tuple(y.shape)}"
        )
    if sample_count(x) != y.shape[0]:
        raise EstimationError(
            f"inputs have {sample_count(x)} samples but targets have {y.shape[0]} "
            f"(shapes {_shapes(x)} and {tuple(y.shape)})"
        )
    if y.shape[0] == 0:
        raise EstimationError("the dataset is empty: inputs and targets have no samples")
    return x, y


def _joined(batches) -> tuple[Data, torch.Tensor]:
    if isinstance(batches, (torch.Tensor, np.ndarray, Mapping)) or not isinstance(
        batches, Iterable
    ):
        raise EstimationError(
            "targets are missing: give targets, or inputs as an iterable of (inputs, targets) "
            "batches such as a DataLoader"
        )
    xs, ys = [], []
    for i, batch in enumerate(batches):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise EstimationError(f"batch {i} of the data is not an (inputs, targets) pair")
        xs.append(_as_data(batch[0], f"inputs of batch {i}"))
        ys.append(_as_tensor(batch[1], f"targets of batch {i}"))
    if not xs:
        raise EstimationError("the dataset is empty: the iterable gave no batches")
    try:
        return _concatenated(xs), torch.cat(ys)
    except (RuntimeError, TypeError, KeyError):
        raise EstimationError("the batches differ in their keys, shapes or dtypes") from None


def _concatenated(xs: list[Data]) -> Data:
    if isinstance(xs[0], dict):
        return {key: torch.cat([x[key] for x in xs]) for key in xs[0]}
    return torch.cat(xs)


def _as_data(value, name: str) -> Data:
    if isinstance(value, Mapping):
        if not value or not all(isinstance(k, str) for k in value):
            raise EstimationError(f"{name} as a dict must map argument names to tensors")
        return {k: _as_tensor(v, f"{name}[{k!r}]") for k, v in value.items()}
    return _as_tensor(value, name)


def _as_tensor(value, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value if torch.is_tensor(value) else np.asarray(value))
    except (TypeError, ValueError, RuntimeError):
        raise EstimationError(f"{name} must be a tensor or an array of numbers") from None
    tensor = tensor.detach().to("cpu")
    if tensor.dtype in INTEGERS:
        return tensor.to(torch.int64)
    if not tensor.is_floating_point():
        raise EstimationError(f"{name} must hold real numbers or integers, got {tensor.dtype}")
    # a sum is finite whenever every entry is; only a non-finite sum (or an overflow of one)
    # needs the entry-by-entry look
    if not torch.isfinite(tensor.sum()) and not torch.isfinite(tensor).all():
        raise EstimationError(f"{name} contain NaN or infinite values")
    return tensor.to(torch.float64)


def sample_count(x: Data) -> int | None:
    """The common number of rows of every tensor in ``x`` (``None`` if they differ or a
    tensor has no rows)."""
    counts = {t.shape[0] if t.dim() else None for t in tree_leaves(x)}
    return counts.pop() if len(counts) == 1 else None


def _shapes(x: Data):
    return tree_map(lambda t: tuple(t.shape), x)


def gather(data: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``data[index]`` for an index tensor of any shape (``index_select``: a third of advanced
    indexing's time on a step's few hundred rows)."""
    flat = index.reshape(-1).to(data.device)  # a no-op where the index is already there
    return data.index_select(0, flat).view(*index.shape, *data.shape[1:])


def take(x: Data, index: torch.Tensor) -> Data:
    """The rows ``index`` of every tensor of ``x``."""
    return tree_map(lambda t: gather(t, index), x)


def to_device(x: Data, device, dtype: torch.dtype) -> Data:
    """``x`` on ``device``, floating tensors in ``dtype``, integers as they are."""
    return tree_map(lambda t: t.to(device, dtype if t.is_floating_point() else t.dtype), x)


def is_matrix(x: Data) -> bool:
    """Whether ``x`` is one floating ``(n, d)`` tensor: what the linear fast paths take."""
    return isinstance(x, torch.Tensor) and x.dim() == 2 and x.is_floating_point()
