"""The report of a scanned training run: Markdown, HTML, JSON, CSV and its figure.

The whole model's LLC stands in a table beside the settings calibrated for each checkpoint;
each reader's rows are the scan's (:mod:`llcgeo.report.scan`), one block a checkpoint; a
section says where the calibrated settings changed along training (a value shown to
``SHOWN_DIGITS`` significant digits that differs from the checkpoint before).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from fractions import Fraction

from llcgeo.reconcile.model import VERDICTS
from llcgeo.report import document as doc
from llcgeo.report.files import OutputPaths, prepare_folder, write_all_atomic
from llcgeo.report.formatting import format_seconds
from llcgeo.report.render import csv_text
from llcgeo.report.run_figure import draw_run
from llcgeo.report.scan import COLUMNS, Scan
from llcgeo.scanner import NOT_MEASURED
from llcgeo.serialize import dumps_output

WHOLE_COLUMNS = ("step", "checkpoint", "measured LLC", "R-hat / ESS", "eps", "gamma", "nbeta",
                 "chains x draws", "burn-in", "note")  # fmt: skip
RUN_COLUMNS = ("step", "checkpoint", *COLUMNS, "eps", "gamma", "steps")
SHOWN_DIGITS = 3
WHOLE_SETTINGS = ("eps", "gamma", "nbeta", "chains", "steps", "burnin")
READER_SETTINGS = ("eps", "gamma", "nbeta", "steps")


RunPaths = OutputPaths  # run.md, run.html, run.json, run.csv, run.png


def write(run, out) -> RunPaths:
    """Write the run's report into ``out``: every file, or on a failure none."""
    folder = prepare_folder(out)
    paths = OutputPaths.named(folder, "run")
    png = draw_run(run)
    blocks = _blocks(run, png)
    write_all_atomic({
        paths.markdown: doc.to_markdown(blocks),
        paths.html: doc.to_html(blocks, "llcgeo scan of a training run"),
        paths.json: dumps_output(_plain(run)),
        paths.csv: csv_text(table(run), list(RUN_COLUMNS)),
        paths.figure: png,
    })  # fmt: skip
    return paths


def table(run) -> list[dict]:
    """One dict a row in ``RUN_COLUMNS``: each checkpoint's whole model, then its readers."""
    rows = []
    for c in run.checkpoints:
        rows.append(_whole_row(c))
        for r, cells in zip(c.scan.rows, Scan(c.scan).table()):
            rows.append({"step": str(c.step), "checkpoint": c.name, **cells,
                         "eps": _shown(r.eps), "gamma": _shown(r.gamma),
                         "steps": _shown(r.steps)})  # fmt: skip
    return rows


def _whole_row(c) -> dict:
    cells = dict.fromkeys(RUN_COLUMNS, "-")
    e, config = c.model.estimate, c.model.config
    cells.update({"step": str(c.step), "checkpoint": c.name, "reader": "whole model",
                  "verdict": "-" if e is not None else "not measured"})  # fmt: skip
    if e is not None:
        cells.update({"measured LLC": f"{e.mean:.2f} +- {e.se:.2f}",
                      "R-hat / ESS": f"{e.rhat:.3f} / {e.ess:.0f}"})  # fmt: skip
    if config is not None:
        cells.update({"eps": _shown(config.eps), "gamma": _shown(config.gamma),
                      "nbeta": _shown(config.nbeta), "steps": str(config.steps)})  # fmt: skip
    return cells


def _whole_cells(c) -> tuple[str, ...]:
    e, config = c.model.estimate, c.model.config
    measured = "-" if e is None else f"{e.mean:.2f} +- {e.se:.2f}"
    chains = "-" if e is None else f"{e.rhat:.3f} / {e.ess:.0f}"
    if config is None:
        settings = ("-",) * 5
    else:
        settings = (_shown(config.eps), _shown(config.gamma), _shown(config.nbeta),
                    f"{config.chains} x {config.draws}", str(config.burnin))  # fmt: skip
    note = c.model.refused or "; ".join(c.model.warnings)
    return (str(c.step), c.name, measured, chains, *settings, note)


def _shown(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.{SHOWN_DIGITS}g}"


def settings_changes(run) -> tuple[str, ...]:
    """Where each calibrated setting (the whole model's, each measured reader's) changed from
    one checkpoint to the next, and which stayed the same throughout."""
    series: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for c in run.checkpoints:
        measured = [(r.reader, r, READER_SETTINGS) for r in c.scan.rows if r.estimate is not None]
        if c.model.config is not None:
            measured.insert(0, ("whole model", c.model.config, WHOLE_SETTINGS))
        for what, source, names in measured:
            for name in names:
                series[(what, name)].append((c.step, _shown(getattr(source, name))))
    changed, steady = [], defaultdict(list)
    for (what, name), values in series.items():
        moves = [(s, v) for i, (s, v) in enumerate(values) if i == 0 or v != values[i - 1][1]]
        if len(moves) > 1:
            changed.append(f"{what}, {name}: " + "; ".join(
                f"{v} {'at' if i == 0 else 'from'} step {s}" for i, (s, v) in enumerate(moves)))
        else:
            steady[what].append(f"{name} {values[0][1]}")
    return (*changed, *(f"{what}: the same at every checkpoint it was measured at ("
                        f"{', '.join(names)})" for what, names in steady.items()))  # fmt: skip


def _blocks(run, png: bytes) -> list:
    blocks = [doc.Heading("llcgeo scan of a training run", 1), doc.Paragraph(_summary(run)),
              doc.Image("run.png", "the run's LLC, readers and certified drops by step", png),
              doc.Heading("The whole model"), doc.Paragraph(_WHOLE),
              doc.Table(WHOLE_COLUMNS, tuple(_whole_cells(c) for c in run.checkpoints)),
              doc.Heading("Where the calibrated settings changed"), doc.Paragraph(_CHANGES),
              doc.Bullets(settings_changes(run) or ("nothing was measured",)),
              doc.Heading("Certified drop per norm"), doc.Bullets(_drops(run)),
              doc.Heading("Readers, checkpoint by checkpoint"),
              doc.Paragraph(_READERS)]  # fmt: skip
    for c in run.checkpoints:
        named = "" if c.name == f"step {c.step}" else f" ({c.name})"
        blocks += [doc.Heading(f"Step {c.step}{named}", 3),
                   doc.Table(COLUMNS, tuple(tuple(row.values()) for row in Scan(c.scan).table()))]
    reasons = tuple(f"step {c.step}, {r.reader}: {r.reason}" for c in run.checkpoints
                    for r in c.scan.rows if r.reason)  # fmt: skip
    if reasons:
        blocks += [doc.Heading("Why each verdict"), doc.Bullets(reasons)]
    if run.problems:
        blocks += [doc.Heading("Store problems"), doc.Bullets(run.problems)]
    return blocks


def _summary(run) -> str:
    rows = [r for c in run.checkpoints for r in c.scan.rows]
    kinds = (*VERDICTS, NOT_MEASURED)
    counts = ", ".join(f"{sum(r.verdict == v for r in rows)} {v}" for v in kinds)
    first = run.checkpoints[0].scan
    return (f"{len(run.checkpoints)} checkpoints, steps {run.steps[0]} to {run.steps[-1]}; "
            f"{len(first.norms)} norms and {len(first.rows)} readers at each: {counts} in all. "
            f"Loss {first.loss} on {first.n} samples, seed {first.settings.seed}. "
            f"{run.computed} checkpoints measured by this run, {run.reused} reused from the "
            f"store; {format_seconds(run.seconds)}.")  # fmt: skip


def _drops(run) -> tuple[str, ...]:
    lines = []
    for norm in run.checkpoints[0].scan.norms:
        drops = [(c.step, next(n for n in c.scan.norms if n.name == norm.name).certified_drop)
                 for c in run.checkpoints]  # fmt: skip
        values = {d for _, d in drops}
        shown = (f"{drops[0][1]} at every checkpoint" if len(values) == 1 else
                 "; ".join(f"{d} at step {s}" for s, d in drops))  # fmt: skip
        lines.append(f"{norm.name} ({norm.kind}, width {norm.width}, read by "
                     f"{', '.join(norm.readers)}): {shown} "
                     f"(= {float(Fraction(drops[-1][1])):.4g} at the last)")  # fmt: skip
    return tuple(lines)


def _plain(run) -> dict:
    """The run for ``run.json``: every checkpoint's scan and whole-model estimate, without the
    traces (they stay in the store, and :meth:`ScanRun.to_arviz` exports them)."""
    return {"checkpoints": [{"step": c.step, "name": c.name, "fingerprint": c.fingerprint,
                             "scan": dataclasses.asdict(c.scan),
                             "model": dataclasses.asdict(dataclasses.replace(c.model, trace=None))}
                            for c in run.checkpoints],
            "computed": run.computed, "reused": run.reused, "problems": list(run.problems),
            "seconds": run.seconds}  # fmt: skip


_WHOLE = (
    "The LLC of the whole model at each checkpoint: llcgeo.estimate_llc at the settings "
    "llcgeo.calibrate gives for that checkpoint (from its Hessian spectrum and the exact theory), "
    "on the scan's samples and with its seed. A checkpoint that is not a minimum of the loss "
    "(early in training) has no LLC to estimate, and the note says so in calibrate's words."
)
_CHANGES = (
    "Each checkpoint is calibrated for itself: the whole model by llcgeo.calibrate, each reader "
    "by the scan from its own Hessian (its eps and gamma in the coordinates that whiten it). A "
    f"setting is said to change where its value, to {SHOWN_DIGITS} significant digits, is not "
    "the one at the checkpoint before."
)
_READERS = (
    "Each checkpoint's rows are those llcgeo.scan gives it with the same settings and seed (the "
    "columns are explained in the scan's own report): certified-flat directions, the exact "
    "prediction or its proven interval, the measured wrLLC and the verdict."
)
