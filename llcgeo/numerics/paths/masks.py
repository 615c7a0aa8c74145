"""Weight refinement: devinterp's ``param_masks`` turned into one flat mask over all parameters.

``param_masks`` maps parameter names to boolean tensors of the parameter's shape (``True``
where the entry moves) or to ``None`` (the whole parameter moves); parameters it does not name
stay fixed. The flat mask follows the order of ``named_parameters()``, each entry row-major.

>>> shapes = {"weight": torch.Size([2, 3]), "bias": torch.Size([2])}
>>> flatten_masks(shapes, {"bias": None}).tolist()
[False, False, False, False, False, False, True, True]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from llcgeo.errors import EstimationError
from llcgeo.manifolds import LinearLayer, check_refine


def _checked(name: str, mask, shape: torch.Size) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool)
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise EstimationError(f"param_masks[{name!r}] must be a boolean tensor or None")
    if mask.shape != shape:
        raise EstimationError(
            f"param_masks[{name!r}] has shape {tuple(mask.shape)} but the parameter has shape "
            f"{tuple(shape)}"
        )
    return mask.detach().cpu()


def flatten_masks(shapes: Mapping[str, torch.Size], param_masks,
                  device="cpu") -> torch.Tensor | None:  # fmt: skip
    """The flat boolean mask of ``param_masks`` over parameters of the given ``shapes`` (in
    order), on ``device``, or ``None`` when every entry moves (``param_masks is None``). Built
    once per problem, where the problem is (:func:`llcgeo.numerics.paths.choose.model_problem`):
    the paths and the kernels use it as it is."""
    if param_masks is None:
        return None
    if not isinstance(param_masks, Mapping):
        raise EstimationError(f"param_masks must be a dict name -> mask, got {param_masks!r}")
    if not param_masks:
        raise EstimationError("param_masks names no parameter; pass None to move every entry")
    unknown = sorted(set(param_masks) - set(shapes))
    if unknown:
        raise EstimationError(
            f"param_masks names {unknown}, which the model does not have; its parameters are "
            f"{list(shapes)}"
        )
    parts = [
        _checked(name, param_masks[name], shape).reshape(-1)
        if name in param_masks
        else torch.zeros(shape.numel(), dtype=torch.bool)
        for name, shape in shapes.items()
    ]
    flat = torch.cat(parts)
    if not flat.any():
        raise EstimationError("param_masks leave no entry free to move")
    return flat.to(device)


def moving_index(mask: torch.Tensor | None, size: int, device) -> torch.Tensor:
    """The flat indices (on ``device``) of the entries ``mask`` moves, all ``size`` of them for
    ``None``: found once, so that a step reads and writes them with ``index_select`` and
    ``index_copy_`` (a boolean mask would be turned into indices, a device sync, every step).

    >>> moving_index(torch.tensor([True, False, True]), 3, "cpu").tolist()
    [0, 2]
    """
    if mask is None:
        return torch.arange(size, device=device)
    return mask.to(device).nonzero().flatten()


def refine_masks(layer: LinearLayer, refine: str, d: int) -> dict[str, torch.Tensor] | None:
    """The ``param_masks`` of a refinement of ``y = W x (+ b)`` (``W`` of shape ``m x d``):
    ``None`` for "all", the weight for "weight", the bias for "bias".

    >>> sorted(refine_masks(LinearLayer(2, bias=True), "bias", 3))
    ['bias']
    """
    check_refine(refine, layer)
    if refine == "all":
        return None
    if refine == "weight":
        return {"weight": torch.ones(layer.m, d, dtype=torch.bool)}
    return {"bias": torch.ones(layer.m, dtype=torch.bool)}
