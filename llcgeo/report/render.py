"""Write a report from finished experiments: Markdown, HTML, one PNG each, JSON and CSV.

Nothing here runs an experiment: :func:`write_report` takes the summaries and the stored cases
and writes, each file atomically, into the output folder::

    report.md  report.html  <experiment>.png ...  results.json  claims.csv
    cases_<experiment>.csv ...

``results.json`` holds the claims with their verdicts and every case; ``claims.csv`` has one row
a claim; each ``cases_<experiment>.csv`` one row a case of that experiment, with only the
columns its cases have.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from llcgeo.errors import SpecError
from llcgeo.reconcile.model import CLAIM_COLUMNS, VERDICTS, ExperimentResult
from llcgeo.report import document as doc
from llcgeo.report.figures import draw
from llcgeo.report.files import prepare_folder, write_all_atomic
from llcgeo.report.formatting import flatten, format_cell, format_seconds
from llcgeo.report.store import StoredCase
from llcgeo.serialize import dumps_output

DEFAULT_TITLE = (
    "Normalization geometry and the local learning coefficient: theory against measurement"
)
# Row fields that explain a verdict, and that name a row, in the order they are looked for.
REASON_KEYS = ("reasons", "why", "reason", "note")
LABEL_KEYS = ("label", "row", "name")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class ReportMeta:
    """What the report says about the run that made it (all optional)."""

    title: str = DEFAULT_TITLE
    preamble: str = ""
    version: str = ""
    device: str = ""
    scale: str = ""
    wall_seconds: float | None = None
    computed: int = 0
    reused: int = 0
    problems: tuple[str, ...] = ()
    generated: str = field(
        default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    )


@dataclass(frozen=True)
class ReportPaths:
    """Where each file of a report was written."""

    folder: Path
    markdown: Path
    html: Path
    results_json: Path
    claims_csv: Path
    cases_csv: tuple[Path, ...]
    figures: tuple[Path, ...]


def check_name(name: str) -> str:
    """Experiment names become file and folder names, so they must be plain."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise SpecError(
            f"experiment name {name!r} must start with a letter or digit and hold only "
            "letters, digits, '_', '.' and '-'"
        )
    return name


def write_report(
    results: Sequence[ExperimentResult],
    cases: Sequence[StoredCase],
    out: str | Path,
    meta: ReportMeta | None = None,
) -> ReportPaths:
    """Write every file of the report for ``results`` (with ``cases`` behind them) into ``out``."""
    meta = meta or ReportMeta()
    folder = prepare_folder(out)
    for result in results:
        check_name(result.name)
    images = {
        r.name: tuple(doc.Image(_file(r, f), r.title, draw(f), _anchor(r, f)) for f in _figures(r))
        for r in results
    }
    blocks = report_blocks(results, cases, meta, images)
    paths = ReportPaths(
        folder=folder,
        markdown=folder / "report.md",
        html=folder / "report.html",
        results_json=folder / "results.json",
        claims_csv=folder / "claims.csv",
        cases_csv=tuple(folder / f"cases_{name}.csv" for name in _experiments(cases)),
        figures=tuple(folder / image.file for shown in images.values() for image in shown),
    )
    files = {folder / image.file: image.png for shown in images.values() for image in shown}
    files[paths.markdown] = doc.to_markdown(blocks)
    files[paths.html] = doc.to_html(blocks, meta.title)
    files[paths.results_json] = results_json(cases, meta, results)
    files[paths.claims_csv] = claims_csv(results)
    for name, path in zip(_experiments(cases), paths.cases_csv):
        files[path] = cases_csv([c for c in cases if c.experiment == name])
    write_all_atomic(files)  # the whole set or, on a failure, the previous one
    return paths


def report_blocks(
    results: Sequence[ExperimentResult],
    cases: Sequence[StoredCase],
    meta: ReportMeta,
    images: dict[str, tuple[doc.Image, ...]],
) -> list:
    blocks = [doc.Heading(meta.title, 1), doc.Paragraph(_run_line(meta, cases))]
    blocks += _summary(results, images)
    blocks.append(doc.Paragraph(_overview(results, cases, bool(meta.preamble))))
    if meta.preamble:
        blocks.append(doc.Paragraph(meta.preamble))
    if meta.problems:
        blocks.append(doc.Heading("Results-store problems"))
        blocks.append(doc.Paragraph("These stored cases could not be trusted and were recomputed:"))
        blocks.append(doc.Bullets(meta.problems))
    for result in results:
        blocks += experiment_blocks(result, images.get(result.name, ()))
    return blocks


def _figures(result: ExperimentResult) -> tuple:
    """The experiment's figures that have something to draw: its figure, then its extras."""
    return tuple(f for f in (result.figure, *result.extra_figures) if f is not None and f.panels)


def _anchor(result: ExperimentResult, figure) -> str:
    return doc.anchor_of(_file(result, figure).removesuffix(".png") + "-figure")


def _file(result: ExperimentResult, figure) -> str:
    return f"{result.name}.png" if figure is result.figure else f"{result.name}_{figure.name}.png"


def _run_line(meta: ReportMeta, cases: Sequence[StoredCase]) -> str:
    parts = [f"Generated {meta.generated}"]
    if meta.version:
        parts.append(f"llcgeo {meta.version}")
    if meta.device:
        parts.append(f"device {meta.device}")
    if meta.scale:
        parts.append(f"scale {meta.scale}")
    if meta.wall_seconds is not None:
        parts.append(
            f"wall time of this run {format_seconds(meta.wall_seconds)} "
            f"({meta.computed} cases computed, {meta.reused} reused from the results store)"
        )
    compute = sum(case.seconds for case in cases)
    parts.append(f"compute time of all {len(cases)} cases {format_seconds(compute)}")
    return "*" + "; ".join(parts) + ".*"


def _overview(results: Sequence[ExperimentResult], cases: Sequence[StoredCase], stated) -> str:
    claims = [claim for result in results for claim in result.claims]
    counts = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    titles = "; ".join(result.title for result in results) or "none"
    where = "stated below" if stated else "of each experiment"
    return (
        "This report checks claims about how the geometry of the data a linear layer "
        "y = W x (+ b) (or a softmax head, or a network built of such layers) is trained on "
        "changes its local learning coefficient (LLC). "
        "For each claim the exact prediction of the theory, derived symbolically, is set beside "
        "SGLD measurements of the LLC on data with that geometry, and a verdict records "
        f"whether they agree within the thresholds {where}. It covers {len(results)} "
        f"experiment(s) ({titles}) with {len(cases)} cases in all. Of its {len(claims)} claims, "
        f"{counts['agree']} agree, {counts['disagree']} disagree and {counts['inconclusive']} "
        "are inconclusive; the reasons for every verdict other than agree are given with it."
    )


SUMMARY_COLUMNS = (
    ("Experiment", "experiment"),
    ("Claim", "claim"),
    ("Prediction", "prediction"),
    ("Tested against", "reference"),
    ("Measurement", "measurement"),
    ("Statistic", "statistic"),
    ("Verdict", "verdict"),
)


def _summary(results: Sequence[ExperimentResult], images) -> list:
    """The claim table: each claim's experiment linked to its section, with links to the
    experiment's figure and cases beside it."""
    header = (*(title for title, _ in SUMMARY_COLUMNS), "See")
    rows = tuple(
        tuple(row[key] or "-" for _, key in SUMMARY_COLUMNS[1:])
        for row in claim_rows(results, title=True)
    )
    places = [_places(r, images.get(r.name, ())) for r in results for _ in r.claims]
    rows = tuple((first, *row, see) for (first, see), row in zip(places, rows, strict=True))
    blocks = [
        doc.Heading("Summary"),
        doc.Paragraph(
            "Prediction: the asymptotic value the theory gives. Tested against: what the "
            "measurement was held against, the exact expectation of the estimator at the run's "
            "eps, gamma and chain length where that applies. Statistic: the test and its limit."
        ),
        doc.Table(header, rows),
    ]
    flagged = [(r, c) for r in results for c in r.claims if c.verdict != "agree"]
    if flagged:
        items = tuple(
            f"**{c.verdict}**: {c.claim} ({r.title}): {_reason(c.note)}" for r, c in flagged
        )
        blocks += [doc.Paragraph("Claims not in agreement, and why:"), doc.Bullets(items)]
    return blocks


def _places(result: ExperimentResult, images) -> tuple[str, str]:
    """``(the experiment's title linked to its section, links to its figure and cases)``."""
    name = doc.anchor_of(result.name)
    links = [f"[figure](#{images[0].anchor})"] if images else []
    links += [f"[cases](#{name}-cases)"] if result.rows else []
    return f"[{result.title}](#{name})", " ".join(links) or "-"


def _reason(text) -> str:
    if isinstance(text, (list, tuple)):
        text = "; ".join(str(t) for t in text)
    return str(text) if text else "the experiment gave no reason"


def experiment_blocks(result: ExperimentResult, images: tuple[doc.Image, ...]) -> list:
    """The section of one experiment: prose, claims, figure, flagged cases and its table."""
    name = doc.anchor_of(result.name)
    blocks = [doc.Heading(result.title, anchor=name), doc.Paragraph(result.description)]
    claims = tuple(
        f"**{c.verdict}**: {c.claim}. Predicted: {c.prediction}; "
        + (f"tested against: {c.reference}; " if c.reference else "")
        + f"measured: {c.measurement}"
        + (f" ({c.statistic})." if c.statistic else ".")
        + (f" {c.note}" if c.note else "")
        for c in result.claims
    )
    if claims:
        blocks += [doc.Heading("Claims", 3), doc.Bullets(claims)]
    if result.notes:
        blocks += [doc.Heading("Notes", 3), doc.Bullets(tuple(result.notes))]
    for figure, image in zip(_figures(result), images, strict=True):
        blocks.append(image)
        if figure.caption:
            blocks.append(doc.Paragraph(f"*Figure.* {figure.caption}"))
    blocks += _flagged_rows(result.rows)
    if result.rows:
        blocks += [doc.Heading(f"Cases ({len(result.rows)})", 3, f"{name}-cases"),
                   _rows_table(result.rows)]  # fmt: skip
    return blocks


def _flagged_rows(rows: Sequence[dict]) -> list:
    items = tuple(
        f"{_row_label(row, i)}: **{row['verdict']}**: {_reason(_first(row, REASON_KEYS))}"
        for i, row in enumerate(rows, start=1)
        if row.get("verdict", "agree") != "agree"
    )
    return [doc.Heading("Cases not in agreement", 3), doc.Bullets(items)] if items else []


def _row_label(row: dict, index: int) -> str:
    label = _first(row, LABEL_KEYS)
    if label is None and isinstance(row.get("tags"), dict) and row["tags"]:
        label = format_cell(row["tags"])
    return f"row {index}" + (f" ({label})" if label is not None else "")


def _first(row: dict, keys: tuple[str, ...]):
    return next((row[key] for key in keys if row.get(key) not in (None, "", [], ())), None)


def _rows_table(rows: Sequence[dict]) -> doc.Table:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = tuple(tuple(format_cell(row.get(c)) for c in columns) for row in rows)
    return doc.Table(tuple(columns), cells)


def claim_rows(results: Sequence[ExperimentResult], *, title: bool = False) -> list[dict]:
    """One plain row a claim: its experiment (name, or title), then the claim's fields."""
    return [
        {"experiment": r.title if title else r.name, **_ordered(dataclasses.asdict(claim))}
        for r in results
        for claim in r.claims
    ]


def _ordered(fields: dict) -> dict:
    return {key: fields[key] for key in CLAIM_COLUMNS}


def results_json(
    cases: Sequence[StoredCase], meta: ReportMeta, results: Sequence[ExperimentResult] = ()
) -> str:
    """The claims with their verdicts, and every case with its experiment, key, job and record;
    strict JSON (``null`` where a value does not exist, such as the mean of a run whose every
    chain diverged)."""
    data = {
        "version": meta.version,
        "generated": meta.generated,
        "scale": meta.scale,
        "device": meta.device,
        "claims": claim_rows(results),
        "cases": [
            {"experiment": c.experiment, "key": c.key, "job": c.job, "record": c.record}
            for c in cases
        ],
    }
    return dumps_output(data) + "\n"


def _experiments(cases: Sequence[StoredCase]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.experiment for c in cases))


def claims_csv(results: Sequence[ExperimentResult]) -> str:
    """One line a claim: experiment, then :data:`CLAIM_COLUMNS`."""
    return csv_text(claim_rows(results), ["experiment", *CLAIM_COLUMNS])


def cases_csv(cases: Sequence[StoredCase]) -> str:
    """One line a case (of one experiment): key, then ``job.*`` and ``record.*`` columns, one
    column a field: a record's copies of its job and key, the job's tags where the record lists
    them as columns, and the type tags of the job, its settings and the record (the same in
    every row) are left out; a manifold's type is kept."""
    return csv_text([_case_columns(c) for c in cases], ["key"])


_CONSTANT_TYPES = ("job.type", "record.type", "job.config.type", "job.layer.type")


def _case_columns(case: StoredCase) -> dict:
    job = dict(case.job)
    record = {k: v for k, v in case.record.items() if v != case.job and v != case.key}
    if "tags" in job and record.get("tags") == dict(map(tuple, job["tags"])):
        job.pop("tags")
    flat = flatten({"key": case.key, "job": job, "record": record})
    return {name: value for name, value in flat.items() if name not in _CONSTANT_TYPES}


def csv_text(rows: list[dict], empty: list[str]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row)) or empty
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
