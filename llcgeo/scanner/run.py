"""Running a scan: trace the network, find its (norm, reader) pairs, and make each pair's row here
or on worker processes; every row held to the model's own loss."""

from __future__ import annotations

import io
import math
import pickle
import time
import warnings
from dataclasses import replace
from fractions import Fraction

import torch

from llcgeo.errors import ScanError
from llcgeo.numerics.paths.data import checked_data, to_device
from llcgeo.numerics.paths.losses import per_sample_loss
from llcgeo.numerics.paths.module import copied
from llcgeo.numerics.paths.pairing import check_pairing
from llcgeo.scanner.files import program_from_bytes
from llcgeo.scanner.measure import scan_row
from llcgeo.scanner.reader import (
    evaluation_rows,
    subset,
)
from llcgeo.scanner.rows import NormSummary, PairJob, ScanResult, ScanRow, ScanSettings
from llcgeo.scanner.trace import Norm, Reader, export, find_norms

LOSS_TOLERANCE = 1e-6  # float64 sums of the same terms in another order differ far less
DEFAULT_SETTINGS = ScanSettings()


def run_scan(model, inputs, targets=None, *, loss="gaussian", settings=DEFAULT_SETTINGS,
             device="cpu", progress=None, sampling=None, run_pairs=None,
             keep=None) -> ScanResult:  # fmt: skip
    """Scan ``model`` on this data (the forms :func:`llcgeo.estimate_llc` takes); ``progress``
    is called with ``(done, total, row)`` after each reader; ``sampling(reader)``, when given,
    returns the ``(done, total)`` step callback of that reader's chains. ``run_pairs(jobs,
    device, progress)``, when given, runs the :class:`PairJob` list elsewhere (each with
    :func:`scan_pair`) and returns their rows in order. ``keep(pair, estimate)``, in this
    process only, receives the estimate behind each measured row (its traces), by the row's
    index."""
    started = time.perf_counter()
    if not isinstance(model, torch.nn.Module):
        raise ScanError(f"scan needs a torch.nn.Module, got {type(model).__name__}")
    x, y = checked_data(inputs, targets)
    check_pairing(model, x, y, loss)
    fn = per_sample_loss(loss)
    index = evaluation_rows(y.shape[0], settings.rows, settings.seed)
    x, y = subset(x, y, index)
    x = to_device(x, None, torch.float64)  # floating tensors only; on their own device
    program = export(copied(model).to(torch.float64), subset(x, y, torch.arange(2))[0])
    gm = program.module()
    norms = _with_readers(find_norms(gm))
    pairs = _pairs(norms)
    _check_only(settings.only, pairs)
    if run_pairs is None:
        rows = _here(gm, pairs, (x, y, fn), settings, device, (progress, sampling, keep))
    else:
        if keep is not None:
            raise ScanError("keep receives estimates in this process only, not from workers")
        blob = _saved(program)
        jobs = [PairJob(blob, x, y, sendable(fn), settings, i) for i in range(len(pairs))]
        rows = list(run_pairs(jobs, device, progress))
    own = own_loss(model, x, y, fn)
    rows = [_held_to_own_loss(row, own) for row in rows]
    summaries = tuple(_summary(norm, rows) for norm in norms)
    return ScanResult(tuple(rows), summaries, y.shape[0], _loss_name(loss), settings,
                      time.perf_counter() - started)  # fmt: skip


def own_loss(model: torch.nn.Module, x, y, loss) -> float:
    """The model's own mean loss on the data, in float64, from the module itself rather than
    the traced graph: what every row's loss at the trained point must equal."""
    copy = copied(model).to(torch.float64).eval()
    with torch.no_grad():
        return float(loss(copy(**x) if isinstance(x, dict) else copy(x), y).mean())


def _held_to_own_loss(row: ScanRow, own: float) -> ScanRow:
    """``row``, refused where its loss at the trained point is not the model's own: a number
    about another loss is no number about this model."""
    if row.loss_before is None or math.isclose(row.loss_before, own, rel_tol=LOSS_TOLERANCE,
                                               abs_tol=LOSS_TOLERANCE):  # fmt: skip
        return row
    return replace(row, verdict="inconclusive", estimate=None, quadratic=None,
                   reason=f"refused: the scan's loss at the trained point is "
                   f"{row.loss_before:.6g} but the model's own loss on the data is {own:.6g}; "
                   "the reader was not isolated faithfully: please report this")  # fmt: skip


def _pairs(norms: list[Norm]) -> list[tuple[Norm, Reader]]:
    return [(norm, reader) for norm in norms for reader in norm.readers]


def _check_only(only: tuple[str, ...], pairs) -> None:
    """A name in ``only`` that no reader has (a typo would sample nothing, silently)."""
    readers = [reader.weight for _, reader in pairs]
    unknown = [name for name in only if name not in readers]
    if unknown:
        raise ScanError(f"only= names {', '.join(map(repr, unknown))}, which no reader of this "
                        f"network has; its readers: {', '.join(readers) or 'none'}")  # fmt: skip


def _here(gm, pairs, data, settings, device, hooks) -> list[ScanRow]:
    x, y, fn = data
    progress, sampling, keep = hooks
    rows = []
    for index, (norm, reader) in enumerate(pairs):
        steps = None if sampling is None else sampling(reader.weight)
        kept = None if keep is None else lambda estimate, i=index: keep(i, estimate)
        rows.append(scan_row(gm, norm, reader, x, y, fn, settings, device, steps, kept))
        if progress is not None:
            progress(len(rows), len(pairs), rows[-1])
    return rows


def scan_pair(job: PairJob, device: str) -> ScanRow:
    """The row of ``job``'s pair, in a worker: the program loaded from its bytes and traced
    pairs found again (the same graph, so the same pairs in the same order)."""
    with warnings.catch_warnings():
        # torch's own deprecation, raised by loading and copying its programs
        warnings.filterwarnings("ignore", ".*treespec", FutureWarning)
        gm = program_from_bytes(job.program, "the scan's traced program").module()
        norm, reader = _pairs(find_norms(gm))[job.pair]
        return scan_row(gm, norm, reader, job.x, job.y, job.loss, job.settings, device, None)


def _saved(program) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def sendable(loss):
    """``loss``, refused in one line where it cannot be sent to worker processes (it does not
    pickle: a lambda or a local function)."""
    try:
        pickle.dumps(loss)
    except (pickle.PicklingError, AttributeError, TypeError):
        raise ScanError(
            "the loss cannot be sent to worker processes (it does not pickle: a lambda or a "
            "local function); give a module-level function or a named loss, or scan in this "
            "process (no executor; --scheduler inprocess on the command line)"
        ) from None
    return loss


def _loss_name(loss) -> str:
    return loss if isinstance(loss, str) else repr(loss)


def _with_readers(norms: list[Norm]) -> list[Norm]:
    if not norms:
        raise ScanError(
            "the model has no normalization layer scan knows (LayerNorm, RMSNorm, their "
            "functional forms, or a norm registered with llcgeo.scanner.register_norm)"
        )
    if not any(norm.readers for norm in norms):
        uses = "; ".join(f"{n.node}: {', '.join(n.other_uses) or n.note or 'unused'}"
                         for n in norms)  # fmt: skip
        raise ScanError(f"no norm of the model is read by a linear map ({uses})")
    return norms


def _summary(norm: Norm, rows) -> NormSummary:
    mine = [r for r in rows if r.norm == norm.node]
    drop = sum((Fraction(r.certificate.drop, 2) for r in mine), Fraction(0))
    return NormSummary(norm.node, norm.kind, norm.width, tuple(r.reader for r in mine),
                       tuple(norm.other_uses), str(drop), norm.note)  # fmt: skip
