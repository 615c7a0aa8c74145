"""Every figure reads at a glance at the size it is written: its title on one line within its
panel, no two tick labels overlapping, its legend below the axes and inside the figure, its axes
named; the scan's and the singular suite's figures tell their series apart in greyscale."""

import dataclasses
import json
import math
from pathlib import Path

import pytest

from llcgeo.reconcile.model import EstimateSummary, Figure, Panel, Series
from llcgeo.report.figures import overlapping, render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "reports" / "example"


def layout_problems(figure: Figure) -> list[str]:
    """What a reader would trip over in ``figure`` as drawn, one sentence each."""
    canvas = render(figure)
    renderer = canvas.canvas.get_renderer()
    whole = canvas.bbox
    problems = []
    for sub, panel in zip(canvas.subfigs, figure.panels, strict=True):
        (axes,) = sub.axes
        title = axes.title
        box = title.get_window_extent(renderer)
        if "\n" in title.get_text() or box.x0 < sub.bbox.x0 - 1 or box.x1 > sub.bbox.x1 + 1:
            problems.append(f"{panel.title!r}: the title does not fit on one line")
        for name, labels in (("x", axes.get_xticklabels()), ("y", axes.get_yticklabels())):
            for a, b in overlapping(labels, renderer):
                problems.append(f"{panel.title!r}: {name} tick labels {a!r} and {b!r} overlap")
        if not axes.get_xlabel() or not axes.get_ylabel():
            problems.append(f"{panel.title!r}: an axis has no label")
        for legend in sub.legends:
            drawn = legend.get_window_extent(renderer)
            if drawn.overlaps(axes.get_window_extent(renderer)):
                problems.append(f"{panel.title!r}: the legend covers the axes")
            if drawn.x0 < whole.x0 or drawn.x1 > whole.x1 or drawn.y0 < whole.y0:
                problems.append(f"{panel.title!r}: the legend runs off the figure")
    return problems


# --- figures built from small records ----------------------------------------------------------

LONG_TICKS = ("softmax, no bias", "softmax + bias", "softmax + bias, W alone",
              "softmax + bias, b alone", "biased LayerNorm, no bias",
              "biased LayerNorm + bias", "biased LayerNorm + bias, W alone")  # fmt: skip


def categorical() -> Figure:
    xs = tuple(float(i) for i in range(len(LONG_TICKS)))
    series = (Series("measured", xs, (6.0,) * len(xs), (0.1,) * len(xs)),
              Series("exact expectation", xs, (6.05,) * len(xs), style="markers"),
              Series("asymptotic LLC", xs, (6.0,) * len(xs), style="markers"))  # fmt: skip
    return Figure("c", (Panel("The smuggled bias of softmax outputs", "case", "LLC estimate",
                              series, xticks=LONG_TICKS),))  # fmt: skip


def crowded() -> Figure:
    """Two log-scale panels, twelve legend entries each, long titles (the Lipschitz figure)."""
    depths = (1.0, 2.0, 4.0, 8.0, 16.0)

    def panel(title):
        series = []
        for net in ("relu, layernorm", "relu, none", "relu, rmsnorm", "tanh, layernorm",
                    "tanh, none", "tanh, rmsnorm"):  # fmt: skip
            series.append(Series(net, depths, tuple(2**d for d in depths), group=net))
            series.append(Series(f"{net}: bound", depths, tuple(3**d for d in depths),
                                 style="line", group=net))  # fmt: skip
        return Panel(title, "depth", "|| d f / d x ||", tuple(series), yscale="log")

    return Figure(
        "l",
        (
            panel("Input Lipschitz constant (width 128, input variance 1)"),
            panel("Parameter Lipschitz constant (width 128, input variance 1)"),
        ),
    )


def every_style() -> Figure:
    xs = (0.0, 1.0, 2.0)
    series = (Series("points", xs, (1.0, 2.0, 3.0), (0.1,) * 3),
              Series("markers", xs, (1.1, 2.1, 3.1), style="markers"),
              Series("line", xs, (1.0, 2.0, 3.0), style="line", group="fit"),
              Series("", (0.0, 0.5), (1.0, 1.5), style="dashed", group="fit"),
              Series("band", xs, (1.0, 2.0, 3.0), (0.2, 0.1, 0.3), style="band", group="fit"),
              Series("range", xs, (1.5, 2.5, 3.5), (0.5, 0.0, 1.0), style="range"),
              Series("threshold", (1.5,), (), style="vline"))  # fmt: skip
    return Figure("s", (Panel("Every style at once", "x", "y", series),))


def scan_rows(names):
    from llcgeo.scanner.certify import Certificate
    from llcgeo.scanner.rows import ScanRow

    rows = []
    for i, name in enumerate(names):
        measured = i % 3 != 2
        estimate = EstimateSummary(30.0 + i, 0.2, 1.01, 800.0, 0, 1.0) if measured else None
        rows.append(ScanRow(f"layer_norm_{i}", "layernorm", name, 64, 64, True, False, False,
                            Certificate(4160, 4096, 4160, "affine hull 63"), "affine hull 63",
                            low="32" if measured else "0", high="2048",
                            rank=64 if measured else None, estimate=estimate,
                            expected=30.5 + i if measured else math.nan,
                            verdict=("agree", "disagree", "not measured")[i % 3],
                            block=64, block_outputs=1))  # fmt: skip
    return rows


TRANSFORMER = [f"blocks.{b}.{part}" for b in range(4)
               for part in ("attention.in_proj_weight", "attention.out_proj.weight",
                            "mlp.0.weight")] + ["head.weight"]  # fmt: skip


def singular_grid():
    from llcgeo.suites import singular

    job = singular.GridJob((3,), (10**4, 10**5, 10**6), (1.0, 4.0), 2, chains=8, steps=100)
    exact = {"gaussian": 6.0, "layernorm": 5.0, "rmsnorm": 6.0}
    points = tuple(
        singular.GridPoint(g, n, gamma, k, 1e-5, EstimateSummary(
            exact[g] + 3 / math.log(n) + 0.02 * k, 0.05, 1.0, 5000.0, 0, 0.0, 0.7))
        for g in singular.GEOMETRIES for n in job.ns for k in range(2) for gamma in job.gammas
    )  # fmt: skip
    return singular.GridRecord(job, points, 0.0)


def synthetic_figures():
    from llcgeo.report.scan import _figure
    from llcgeo.suites import singular

    grid = singular.summarize_grid([singular_grid()]).figure
    return {
        "categorical": categorical(),
        "crowded": crowded(),
        "every style": every_style(),
        "scan, one reader": _figure(scan_rows(["head.weight"])),
        "scan, a transformer's readers": _figure(scan_rows(TRANSFORMER)),
        "singular": grid,
    }


@pytest.mark.parametrize("name", ["categorical", "crowded", "every style", "scan, one reader",
                                  "scan, a transformer's readers", "singular"])  # fmt: skip
def test_a_figure_reads_at_its_written_size(name):
    assert layout_problems(synthetic_figures()[name]) == []


def test_a_legend_counts_each_label_once():
    """Sixteen chains drawn under one label take one legend row, not sixteen."""
    from llcgeo.report.figures import PANEL_SIZE, legend_shape

    steps = (0.0, 1.0, 2.0)
    chains = tuple(Series("head (16 chains)", steps, (k, k, k), style="line", group="head")
                   for k in range(16))  # fmt: skip
    panel = Panel("each chain's running estimate", "step", "wrLLC so far", chains)
    assert legend_shape(panel) == (1, 1)
    height = render(Figure("t", (panel,))).get_size_inches()[1]
    assert height < PANEL_SIZE[1] + 0.5


def test_the_scan_figure_names_each_reader_briefly_with_its_verdict():
    from llcgeo.report.scan import _figure

    figure = _figure(scan_rows(TRANSFORMER))
    ticks = figure.panels[0].xticks
    assert ticks[0] == "0.attention.in_proj\n[agree]" and ticks[-1] == "head\n[agree]"
    assert ticks[1].endswith("[disagree]") and ticks[2] == "0.mlp.0\n[not measured]"


def test_the_scan_figure_tells_predicted_from_measured_by_shape():
    from llcgeo.report.scan import _figure

    canvas = render(_figure(scan_rows(["a.weight", "b.weight"])))
    axes = canvas.subfigs[0].axes[0]
    drawn = dict(zip(*reversed(axes.get_legend_handles_labels())))
    shapes = [(h.lines[0] if hasattr(h, "lines") else h).get_marker() for h in drawn.values()]
    assert len(drawn) == 3 and len(set(shapes)) == 3, shapes


def test_the_singular_figure_shows_the_data_range_and_the_extrapolated_band():
    from llcgeo.suites import singular

    (panel,) = singular.summarize_grid([singular_grid()]).figure.panels
    styles = [s.style for s in panel.series]
    assert styles.count("band") == styles.count("dashed") == len(singular.GEOMETRIES)
    band = next(s for s in panel.series if s.style == "band")
    assert band.x[0] == 0.0 and min(band.yerr) > 0
    # the fit's error grows away from the data: largest at the extrapolated end
    assert band.yerr[0] == max(band.yerr)
    (measured,) = [s for s in panel.series if s.style == "vline"]
    assert measured.x == (pytest.approx(1 / math.log(10**6)), pytest.approx(1 / math.log(10**4)))


# --- the committed example report, every figure rebuilt from its own records -------------------


def example_figures():
    from llcgeo.report.render import _figures
    from llcgeo.suites import suite

    cases = json.loads((EXAMPLE / "results.json").read_text())["cases"]
    figures = {}
    for experiment in suite("all"):
        records = [experiment.load(c["record"]) for c in cases
                   if c["experiment"] == experiment.name]  # fmt: skip
        if records:
            for figure in _figures(experiment.summarize(records)):
                figures[f"{experiment.name}: {figure.name}"] = figure
    return figures


def example_scan_figures():
    from llcgeo.report.scan import _figure
    from llcgeo.scanner import ScanRow
    from llcgeo.serialize import from_output  # scan.json writes non-finite floats as null

    def rows(folder):
        written = json.loads((folder / "scan.json").read_text())["rows"]
        return [from_output(ScanRow, r) for r in written]

    return {folder.name: _figure(rows(folder)) for folder in sorted((EXAMPLE / "scan").iterdir())
            if (folder / "scan.json").is_file()}  # fmt: skip


@pytest.mark.slow
def test_every_figure_of_the_example_report_reads_at_its_written_size():
    figures = {**example_figures(), **example_scan_figures()}
    assert len(figures) >= 12
    problems = {name: found for name, f in figures.items() if (found := layout_problems(f))}
    assert problems == {}


def test_the_scan_figure_draws_the_prediction_each_row_is_held_to():
    """A sampled block is drawn against its own wrLLC; a block not sampled proves only the
    reader's lower end, so the reader's whole interval is drawn."""
    from llcgeo.report.scan import _figure

    rows = scan_rows(["a.weight", "b.weight", "c.weight"])  # sampled, sampled, not sampled
    rows[2] = dataclasses.replace(rows[2], low="32", rank=64)  # ranked, not sampled
    (predicted, *_), = (p.series for p in _figure(rows).panels)
    intervals = [(c - h, c + h) for c, h in zip(predicted.y, predicted.yerr)]
    assert intervals == [(32.0, 32.0), (32.0, 32.0), (32.0, 2048.0)]
