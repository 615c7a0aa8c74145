"""``llcgeo.scan``: the normalization claim on any trained network, and its report.

>>> import torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3, bias=False), nn.Linear(3, 2))
>>> x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
>>> s = scan(model, x, model(x).detach(), measure=False)
>>> [(r.reader, r.certificate.quotient, r.high) for r in s.rows]
[('2.weight', 6, '3')]
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

from llcgeo.errors import SpecError
from llcgeo.limits import with_budget
from llcgeo.reconcile.model import VERDICTS, Figure, Panel, Series
from llcgeo.report import document as doc
from llcgeo.report.executors import Task
from llcgeo.report.figures import draw
from llcgeo.report.files import OutputPaths, prepare_folder, write_all_atomic
from llcgeo.report.render import csv_text
from llcgeo.scanner import (
    NOT_MEASURED,
    ScanResult,
    ScanRow,
    ScanSettings,
    row_of,
    run_scan,
    scan_pair,
)
from llcgeo.scanner.training import scanned
from llcgeo.serialize import dumps_output

COLUMNS = ("norm", "reader", "shape", "certified flat", "quotient", "predicted wrLLC",
           "measured on", "Hessian rank", "gap", "its wrLLC", "measured LLC", "R-hat / ESS",
           "nbeta", "expected at the settings", "sampler check", "shift", "verdict")  # fmt: skip


ScanPaths = OutputPaths  # scan.md, scan.html, scan.json, scan.csv, scan.png


class Scan:
    """A scan's rows (one per norm and reader), its norms, ``report(folder)`` and, for a scan
    run in this process, ``to_arviz()``: each measured row's loss traces."""

    def __init__(self, result: ScanResult, traces: dict | None = None):
        self.result = result
        self.traces = traces  # row index -> Trace; None where the rows ran on an executor

    def to_arviz(self) -> dict:
        """Each measured row's chains as ArviZ ``InferenceData``, keyed by the reader's name."""
        from llcgeo.report.arviz import to_arviz

        if self.traces is None:
            raise SpecError("a scan run on an executor keeps no traces; scan in this process "
                            "(no executor) to export them")  # fmt: skip
        return {self.rows[i].reader: to_arviz(t) for i, t in sorted(self.traces.items())}

    @property
    def rows(self) -> tuple[ScanRow, ...]:
        return self.result.rows

    @property
    def norms(self):
        return self.result.norms

    def table(self) -> list[dict]:
        """One readable dict a row, in ``COLUMNS``."""
        return [_cells(r) for r in self.rows]

    def report(self, out) -> ScanPaths:
        """Write ``scan.md``, ``scan.html``, ``scan.json``, ``scan.csv`` and ``scan.png`` into
        ``out`` (all of them or, on a failure, none)."""
        folder = prepare_folder(out)
        png = draw(_figure(self.rows)) if self.rows else None
        blocks = _blocks(self.result, png)
        paths = OutputPaths.named(folder, "scan")
        files = {
            paths.markdown: doc.to_markdown(blocks),
            paths.html: doc.to_html(blocks, "llcgeo scan"),
            paths.json: dumps_output(dataclasses.asdict(self.result)),
            paths.csv: csv_text(self.table(), list(COLUMNS)),
        }
        if png is not None:
            files[paths.figure] = png
        write_all_atomic(files)
        return paths


@with_budget
def scan(model, inputs, targets=None, *, loss="gaussian", device="auto", progress=None,
         sampling=None, measure: bool = True, executor=None, **settings) -> Scan:  # fmt: skip
    """Every normalization of ``model``, every linear map that reads it, each certified,
    predicted, measured and judged (:mod:`llcgeo.scanner`). ``settings`` are the fields of
    :class:`~llcgeo.scanner.ScanSettings`; ``measure=False`` stops after the certificates.
    ``progress(done, total, row)`` follows the readers, ``sampling(reader)`` (a factory of
    ``(done, total)`` callbacks) each reader's chains in this process. ``executor`` (one of
    :mod:`llcgeo.report.executors`) runs the pairs there instead, each a task, the same
    numbers for the same seed."""
    chosen = ScanSettings.of(**settings, measure=measure)
    if executor is not None:
        return Scan(run_scan(model, inputs, targets, loss=loss, settings=chosen, device=device,
                             progress=progress, run_pairs=_on(executor)))  # fmt: skip
    result, traces = scanned(model, inputs, targets, loss, chosen, device, progress=progress,
                             sampling=sampling, kept=None)  # in memory: every draw
    return Scan(result, {i: t for i, t in enumerate(traces) if t is not None})


def _on(executor):
    """``run_pairs`` for :func:`~llcgeo.scanner.run_scan`: each pair a task of ``executor``."""

    def run_pairs(jobs, device, progress):
        tasks = [Task(job.pair, scan_pair, job, device) for job in jobs]
        rows = [None] * len(jobs)
        for done, (index, record, _) in enumerate(executor.results(tasks), start=1):
            rows[index] = row_of(record)
            if progress is not None:
                progress(done, len(jobs), rows[index])
        return rows

    return run_pairs


def _number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _prediction(r: ScanRow) -> str:
    return r.high if r.exact else f"[{r.low}, {r.high}]"


def _measured_on(r: ScanRow) -> str:
    """The directions the Hessian and the chains saw: the quotient, or a block of it."""
    if r.rank is None:
        return "-"
    if r.block is None:
        return "the quotient"
    return f"{r.block} ({r.block_outputs} output{'s' if r.block_outputs > 1 else ''})"


def _block_prediction(r: ScanRow) -> str:
    """The wrLLC of what was measured: exact, or the interval its Hessian's rank proves."""
    if r.rank is None:
        return "-"
    return r.block_high if r.low == r.block_high else f"[{r.low}, {r.block_high}]"


def _cells(r: ScanRow) -> dict:
    e = r.estimate
    measured = "-" if e is None else f"{e.mean:.2f} +- {e.se:.2f}"
    chains = "-" if e is None else f"{e.rhat:.3f} / {e.ess:.0f}"
    return dict(zip(COLUMNS, (
        r.norm, r.reader + (" (tied)" if r.tied else ""),
        f"{r.outputs} x {r.inputs}" + (" + bias" if r.bias else ""), str(r.certificate.flat),
        str(r.certificate.quotient), _prediction(r), _measured_on(r), _number(r.rank),
        _number(r.gap, 2), _block_prediction(r), measured, chains, _number(r.nbeta, 3),
        _number(r.expected), r.sampler or "-", _number(r.shift, 2), r.verdict,
    )))  # fmt: skip


def _figure(rows) -> Figure:
    """Each reader's predicted wrLLC (a bar; a stroke over the interval where only bounds are
    proven), its measured LLC (a dot, +- SE) and the estimator's exact expectation at the
    settings (a cross: the sampler check), at one tick a reader, with its verdict beneath. The
    prediction drawn is the one the dot is held to: a block's own wrLLC where a block was
    sampled, the whole reader's otherwise, its interval included. A
    reader is named by its weight without the ``weight`` suffix, cut to the fewest trailing
    dotted parts no other reader's name ends with (``blocks.1.mlp.0.weight`` -> ``1.mlp.0``)."""
    parts = [r.reader.removesuffix(".weight").removesuffix("_weight").split(".") for r in rows]

    def short(i: int) -> str:
        tails = (parts[i][-k:] for k in range(1, len(parts[i]) + 1))
        unique = (t for t in tails if all(p[-len(t):] != t for j, p in enumerate(parts) if j != i))
        return ".".join(next(unique, parts[i]))

    xs = tuple(float(i) for i in range(len(rows)))
    lows = [float(Fraction(r.low)) for r in rows]
    highs = [float(Fraction(_compared(r))) for r in rows]
    measured = [(x + 0.12, r) for x, r in zip(xs, rows) if r.estimate is not None]
    series = (
        Series("predicted (exact, or proven interval)", tuple(x - 0.12 for x in xs),
               tuple((a + b) / 2 for a, b in zip(lows, highs)),
               tuple((b - a) / 2 for a, b in zip(lows, highs)), style="range"),
        Series("measured LLC (± SE)", tuple(x for x, _ in measured),
               tuple(r.estimate.mean for _, r in measured),
               tuple(r.estimate.se for _, r in measured)),
        Series("exact expectation (sampler check)",
               tuple(x for x, _ in measured), tuple(r.expected for _, r in measured),
               style="markers"),
    )  # fmt: skip
    ticks = tuple(f"{short(i)}\n[{r.verdict}]" for i, r in enumerate(rows))
    panel = Panel("Each reader's wrLLC: predicted against measured", "reader [verdict]",
                  "wrLLC", series, xticks=ticks)  # fmt: skip
    return Figure("scan", (panel,), caption="Predicted against measured, reader by reader; "
                  "each reader's verdict under its name.")  # fmt: skip


def _compared(r: ScanRow) -> str:
    """The upper end of the prediction a row's measurement is held to: its block's where one
    was sampled, the whole reader's where none was (a block not sampled proves only the lower
    end of the reader's interval)."""
    return r.block_high if r.estimate is not None else r.high


def _blocks(result: ScanResult, png: bytes | None) -> list:
    kinds = (*VERDICTS, NOT_MEASURED)
    counts = ", ".join(f"{sum(r.verdict == v for r in result.rows)} {v}" for v in kinds)
    blocks = [
        doc.Heading("llcgeo scan", 1),
        doc.Paragraph(
            f"{len(result.norms)} norms, {len(result.rows)} readers: {counts}. Loss "
            f"{result.loss} on {result.n} samples; {result.seconds:.0f} s."
        ),
        doc.Paragraph(_EXPLAINED),
        doc.Table(COLUMNS, tuple(tuple(_cells(r).values()) for r in result.rows)),
    ]
    if png is not None:
        blocks.append(doc.Image("scan.png", "predicted against measured", png))
    blocks.append(doc.Heading("Norms"))
    blocks.append(doc.Bullets(tuple(_norm_line(n) for n in result.norms)))
    reasons = tuple(f"{r.reader}: {r.reason}" for r in result.rows if r.reason)
    if reasons:
        blocks += [doc.Heading("Why each verdict"), doc.Bullets(reasons)]
    return blocks


def _norm_line(n) -> str:
    readers = ", ".join(n.readers) or "no linear reader"
    others = f"; also used by {', '.join(n.other_uses)} (not linear maps of it alone)"
    return (f"{n.name} ({n.kind}, width {n.width}): read by {readers}; certified drop against "
            f"Gaussian features {n.certified_drop}" + (others if n.other_uses else "")
            + (f"; {n.note}" if n.note else ""))  # fmt: skip


_EXPLAINED = (
    "Certified flat: the reader's directions that vanish on the norm's exact image (from its "
    "trained gain and bias), flat whatever the rest of the network is. Quotient: the rest. "
    "The predicted wrLLC is exact (half the quotient) where the Hessian on the quotient, at the "
    "reader's refitted minimum with the rest frozen, has full rank; otherwise the interval "
    "from half its rank to half the quotient. A quotient beyond the Hessian budget is measured "
    "on a block of it (its first outputs): the block's rank bounds the whole's from below, "
    "and the block's own wrLLC (its wrLLC) is what the chains measure. Measured LLC: SGLD in "
    "the coordinates that whiten that Hessian (w = w* + P u; eps and gamma act on u), at "
    "settings whose exact expectation on the quadratic model is at least 97% of the LLC, "
    "nbeta raised where the loss beyond its quadratic model moved the estimate by more than "
    "5%. The verdict holds the measured LLC to the prediction (within 5% plus 3 standard "
    "errors, or inside the proven interval), on chains that pass R-hat, ESS and divergence; "
    "the sampler check (the same chains on the exact quadratic model against the estimator's "
    "exact expectation there) must pass too. llcgeo.scanner.reusable gives a row's model, "
    "settings and preconditioner for llcgeo.estimate_llc."
)
