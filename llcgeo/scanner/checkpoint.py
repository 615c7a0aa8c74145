"""What a scan of a training run keeps of one checkpoint, and how checkpoints are told apart.

A checkpoint's record is its scan (the rows :func:`llcgeo.scan` gives it), the whole model's LLC
at settings calibrated for it, and the loss traces of every chain behind each estimate, thinned
to at most ``KEPT_DRAWS`` draws a chain (enough for R-hat, ESS and a trace plot). Records are
frozen dataclasses that pass through plain JSON (:func:`checkpoint_of` reads one back), so a
record computed now and one read from the store are the same.

Two fingerprints: :func:`fingerprint` (the parameters' and buffers' bytes and the model's
structure) keys a checkpoint in the store, so a changed file is measured again;
:func:`architecture` (names, shapes and the traced graph's operations, not values) must be the
first checkpoint's for every other, so that rows of one reader across training are rows of
the same reader.

>>> t = Trace.of([[1.0, 2.0, 3.0, 4.0]], init_loss=0.5, nbeta=2.0, burnin=1, diverged=(),
...              kept=2)
>>> t.loss, t.stride
(((1.0, 3.0),), 2)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from llcgeo.config import KEPT_DRAWS, SGLDConfig
from llcgeo.reconcile.model import EstimateSummary
from llcgeo.scanner.rows import ScanResult
from llcgeo.serialize import from_jsonable


@dataclass(frozen=True)
class Trace:
    """The loss ``L(w_k)`` of each chain at every ``stride``-th draw after the burn-in (diverged
    chains included, and named), with what turns it into the estimate:
    ``nbeta (mean L(w_k) - init_loss)``."""

    loss: tuple[tuple[float, ...], ...]
    init_loss: float
    nbeta: float
    burnin: int
    stride: int
    diverged: tuple[int, ...] = ()

    @classmethod
    def of(cls, loss_trace, *, init_loss, nbeta, burnin, diverged, kept=KEPT_DRAWS) -> Trace:
        """Every ``ceil(draws / kept)``-th draw of each chain of ``loss_trace`` (chains x draws;
        ``kept=None``: every draw)."""
        trace = np.asarray(loss_trace, dtype=np.float64)
        stride = 1 if kept is None else max(1, -(-trace.shape[1] // kept))
        thinned = tuple(tuple(map(float, chain[::stride])) for chain in trace)
        return cls(thinned, float(init_loss), float(nbeta), int(burnin), stride,
                   tuple(int(c) for c in diverged))  # fmt: skip

    @classmethod
    def of_estimate(cls, estimate, kept=KEPT_DRAWS) -> Trace:
        """An :class:`~llcgeo.numerics.result.LLCEstimate`'s trace, thinned as :meth:`of` does."""
        return cls.of(estimate.loss_trace, init_loss=estimate.init_loss, nbeta=estimate.nbeta,
                      burnin=estimate.config.burnin, diverged=estimate.diverged_chains,
                      kept=kept)  # fmt: skip

    def array(self) -> np.ndarray:
        """The kept losses as a (chains, draws) array."""
        return np.asarray(self.loss, dtype=np.float64)


@dataclass(frozen=True)
class WholeModel:
    """The whole model's LLC at one checkpoint: the estimate (``None`` where ``refused`` says
    why), the calibrated settings it ran at (``nbeta`` resolved) and the calibration's reasons
    for them, the estimate's warnings, and its chains' trace."""

    estimate: EstimateSummary | None = None
    config: SGLDConfig | None = None
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    refused: str = ""
    trace: Trace | None = None


@dataclass(frozen=True)
class CheckpointResult:
    """One checkpoint of a run: its step, name and fingerprint, its scan, the whole model's LLC
    and one trace a scan row (``None`` where the row was not measured)."""

    step: int
    name: str
    fingerprint: str
    scan: ScanResult
    model: WholeModel
    traces: tuple[Trace | None, ...]


def checkpoint_of(record: dict) -> CheckpointResult:
    """A :class:`CheckpointResult` from its plain-JSON record (a worker's, or the store's)."""
    return from_jsonable(CheckpointResult, record)


# --- telling checkpoints apart -----------------------------------------------------------------


def fingerprint(module: torch.nn.Module) -> str:
    """A hash of every parameter's and buffer's name, dtype, shape and bytes, and of the model's
    structure (a traced program's code, or the module's own description)."""
    return digest((*module.named_parameters(), *module.named_buffers()), _structure(module))


def digest(named, salt: str = "") -> str:
    """A hash of ``salt`` and each ``(name, tensor)``'s name, dtype, shape and bytes."""
    hashed = hashlib.sha256(salt.encode())
    for name, tensor in named:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        hashed.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        hashed.update(flat.view(torch.uint8).numpy().tobytes())
    return hashed.hexdigest()[:20]


def architecture(module: torch.nn.Module) -> dict[str, Any]:
    """What every checkpoint of a run must share with the first: each parameter's and buffer's
    shape, by name, and the operations of the model's graph (or its modules' kinds)."""
    graph = getattr(module, "graph", None)
    if graph is not None:
        operations = tuple(f"{n.op} {n.target}" for n in graph.nodes)
    else:
        operations = tuple(f"{name or 'model'} {type(m).__qualname__}"
                           for name, m in module.named_modules())  # fmt: skip
    shapes = {name: tuple(t.shape) for name, t in (*module.named_parameters(),
                                                   *module.named_buffers())}  # fmt: skip
    return {"shapes": shapes, "operations": operations}


def architecture_difference(first: dict, other: dict) -> str | None:
    """The first way ``other`` is not ``first``'s architecture, in words; ``None`` when it is."""
    a, b = first["shapes"], other["shapes"]
    missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if missing or extra:
        return f"it has no {missing[0]!r}" if missing else f"it has {extra[0]!r}, which is new"
    for name in a:
        if a[name] != b[name]:
            return f"{name!r} has shape {b[name]}, not {a[name]}"
    ops, theirs = first["operations"], other["operations"]
    for index, (x, y) in enumerate(zip(ops, theirs)):
        if x != y:
            return f"its graph's operation {index} is {y!r}, not {x!r}"
    if len(ops) != len(theirs):
        return f"its graph has {len(theirs)} operations, not {len(ops)}"
    return None


def _structure(module: torch.nn.Module) -> str:
    code = getattr(module, "code", None)
    kind = f"{type(module).__module__}.{type(module).__qualname__}"
    return kind + "\n" + (code if isinstance(code, str) else repr(module))

