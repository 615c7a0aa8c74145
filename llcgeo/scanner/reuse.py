"""A scan row's measurement, handed back in the network's own coordinates, to run again with
:func:`llcgeo.estimate_llc`.

The scan samples a reader at its refit, in the coordinates that whiten its Hessian. The same
measurement in the network's own terms is the network with the reader at its refit, the reader's
entries as ``param_masks``, and the preconditioner ``P`` (one row for each of those entries, in
``named_parameters()`` order) with ``w = w* + P u``; ``eps``, ``gamma`` and ``nbeta`` are those
of the row, acting on ``u``. ``estimate_llc(model, x, y, loss=..., config=config,
param_masks=masks, preconditioner=P, seed=seed)`` then estimates what the row measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from llcgeo.errors import ScanError
from llcgeo.numerics.paths.data import checked_data, to_device
from llcgeo.numerics.paths.losses import CrossEntropy, per_sample_loss
from llcgeo.numerics.paths.module import copied
from llcgeo.numerics.paths.pairing import check_pairing
from llcgeo.scanner.certify import image_spec
from llcgeo.scanner.measure import (
    _norm_parameters,
    _row_count,
    certified_row,
    prepare,
    settings_for,
)
from llcgeo.scanner.reader import WEIGHT, evaluation_rows, subset
from llcgeo.scanner.rows import ScanSettings
from llcgeo.scanner.trace import Reader, export, find_norms
from llcgeo.theory.calibration import network_nbeta


@dataclass(frozen=True)
class Reusable:
    """What :func:`llcgeo.estimate_llc` takes to repeat a row's measurement."""

    model: torch.nn.Module
    inputs: Any
    targets: torch.Tensor
    config: Any
    param_masks: dict
    preconditioner: torch.Tensor
    seed: int


def reusable(model, inputs, targets, reader: str, *, loss="gaussian", nbeta=None,
             **settings) -> Reusable:  # fmt: skip
    """The measurement of ``reader`` (its weight's name) as :func:`llcgeo.scan` with these
    ``settings`` makes it, at ``nbeta`` (the row's; by default the first it tries)."""
    chosen = ScanSettings.of(**settings)
    x, y = checked_data(inputs, targets)
    check_pairing(model, x, y, loss)
    x, y = subset(x, y, evaluation_rows(y.shape[0], chosen.rows, chosen.seed))
    x = to_device(x, None, torch.float64)
    gm = export(copied(model).to(torch.float64), subset(x, y, torch.arange(2))[0]).module()
    norm, found = _pair(gm, reader)
    fn = per_sample_loss(loss)
    spec = image_spec(norm, *_norm_parameters(gm, norm))
    row = certified_row(norm, found, spec, isinstance(fn, CrossEntropy), chosen.refine)
    p = prepare(row, gm, found, spec, (x, y, fn), chosen)
    nbeta = nbeta or chosen.nbeta or network_nbeta(_row_count(p.y, fn), chosen.nbeta_factor)
    config = settings_for(p, nbeta, chosen)
    refitted, masks, rows = _in_network(model, found, p)
    return Reusable(refitted, x, y, config, masks, p.moving_transform()[rows], chosen.seed)


def _pair(gm, weight: str):
    for norm in find_norms(gm):
        for reader in norm.readers:
            if reader.weight == weight:
                return norm, reader
    raise ScanError(f"no norm of the model is read by a linear map with weight {weight!r}")


def _in_network(model, reader: Reader, p):
    """The network in float64 with the reader at its refit, the reader's ``param_masks``, and
    the rows of the whitened basis in the order those entries take in ``named_parameters()``."""
    refitted = copied(model).to(torch.float64)
    moved = dict(p.model.named_parameters())
    weight = moved.get(WEIGHT, moved.get("weight")).detach()
    outputs, inputs = weight.shape
    order = torch.arange(weight.numel()).reshape(outputs, inputs)
    placed = {reader.weight: (weight.T if reader.transposed else weight,
                              order.T if reader.transposed else order)}  # fmt: skip
    bias = next((v for k, v in moved.items() if k not in (WEIGHT, "weight")), None)
    if bias is not None and p.row.bias:  # the reader's bias moves
        placed[reader.bias] = (bias.detach(), weight.numel() + torch.arange(bias.numel()))
    with torch.no_grad():
        for name, (value, _) in placed.items():
            refitted.get_parameter(name).copy_(value)
    names = [n for n, _ in refitted.named_parameters() if n in placed]
    rows = torch.cat([placed[n][1].reshape(-1) for n in names])
    masks = {n: torch.ones_like(refitted.get_parameter(n), dtype=torch.bool) for n in names}
    return refitted, masks, rows
