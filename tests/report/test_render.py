"""An end-to-end report from toy experiments, and the pieces it is built from."""

from __future__ import annotations

import base64
import csv
import json
import re

import pytest

from llcgeo.errors import SpecError
from llcgeo.reconcile.model import Claim, ExperimentResult, Figure, Panel, Series
from llcgeo.report import ReportMeta, run_experiments, write_report
from llcgeo.report.figures import draw
from llcgeo.report.formatting import flatten, format_cell

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory, toy):
    out = tmp_path_factory.mktemp("report")
    experiments = [
        toy("good").experiment(),
        toy("bad", xs=(1, 2, 3), offsets={3: 0.25}).experiment(),
    ]
    return run_experiments(
        experiments, out=out, scale="small", device="cpu", preamble="**Thresholds** `|z| <= 3`"
    )


def test_every_file_is_written(report):
    paths = report.paths
    for path in (paths.markdown, paths.html, paths.results_json, paths.claims_csv):
        assert path.stat().st_size > 0
    assert [p.name for p in paths.figures] == ["good.png", "bad.png"]
    assert all(p.read_bytes().startswith(PNG_SIGNATURE) for p in paths.figures)
    assert not list(paths.folder.glob(".*.tmp"))


def test_html_is_self_contained_with_embedded_figures(report):
    page = report.paths.html.read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(data) for data in embedded] == [
        p.read_bytes() for p in report.paths.figures
    ]
    assert not re.search(r"src=\"(?!data:)|href=\"(?!#)", page)  # links within the page only
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_text_is_escaped_in_html(report):
    page = report.paths.html.read_text()
    assert "Toy good &lt;squares&gt;" in page and "<squares>" not in page
    assert "y = x^2 &amp; nothing else" in page
    assert "<strong>Thresholds</strong> <code>|z| &lt;= 3</code>" in page


def test_markdown_opens_with_the_claim_table_then_overview_and_preamble(report):
    text = report.paths.markdown.read_text()
    summary = text.index("## Summary")
    assert summary < text.index("This report checks") < text.index("**Thresholds**")
    assert (
        "| Experiment | Claim | Prediction | Tested against | Measurement | Statistic | Verdict "
        "| See |" in text
    )
    assert "llcgeo " in text and "device cpu" in text and "scale small" in text
    assert "wall time" in text and "7 cases computed, 0 reused" in text
    assert "![Toy good &lt;squares>](good.png)" in text and "## Toy good &lt;squares>" in text


def test_each_claim_links_to_its_experiments_section_figure_and_cases(report):
    page = report.paths.html.read_text()
    table = page[page.index("<table>"):page.index("</table>")]
    targets = re.findall(r'href="#([^"]+)"', page)
    assert set(targets) == set(re.findall(r'id="([^"]+)"', page))  # every link lands, all linked
    for name in ("good", "bad"):
        assert f'<a href="#{name}">' in table and f'<h2 id="{name}">' in page
        assert f'<a href="#{name}-figure">figure</a> <a href="#{name}-cases">cases</a>' in table
        figure = page.index(f'<p id="{name}-figure"><img')
        assert page.index(f'<h2 id="{name}">') < figure < page.index(f'<h3 id="{name}-cases">')
    markdown = report.paths.markdown.read_text()
    assert '<a id="good-cases"></a>' in markdown and "[figure](#good-figure)" in markdown


def test_non_agree_verdicts_show_their_reasons(report):
    for text in (report.paths.markdown.read_text(), report.paths.html.read_text()):
        assert "y is off by 0.25" in text
        assert "Claims not in agreement" in text and "Cases not in agreement" in text
        assert "row 3 (x=3)" in text


def test_json_holds_every_case(report):
    data = json.loads(report.paths.results_json.read_text())
    cases = data["cases"]
    assert [c["experiment"] for c in cases] == ["good"] * 4 + ["bad"] * 3
    assert len({c["key"] for c in cases}) == 7
    assert cases[-1]["record"]["y"] == 9.25 and cases[-1]["job"]["offset"] == 0.25
    assert data["device"] == "cpu" and data["scale"] == "small"


def test_one_tidy_csv_per_experiment_holds_its_cases_flattened(report):
    good, bad = report.paths.cases_csv
    assert (good.name, bad.name) == ("cases_good.csv", "cases_bad.csv")
    with good.open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4 and rows[0]["record.tags.x"] == "1"
    with bad.open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3
    assert rows[-1]["record.reasons"] == '["y is off by 0.25"]'
    assert rows[-1]["job.x"] == "3"


def test_claims_are_in_the_json_and_in_their_own_csv(report):
    data = json.loads(report.paths.results_json.read_text())
    claims = data["claims"]
    assert claims and {c["experiment"] for c in claims} <= {"good", "bad"}
    assert all(c["verdict"] in ("agree", "disagree", "inconclusive") for c in claims)
    with report.paths.claims_csv.open() as stream:
        rows = list(csv.DictReader(stream))
    assert [r["claim"] for r in rows] == [c["claim"] for c in claims]
    assert list(rows[0]) == [
        "experiment", "claim", "prediction", "reference", "measurement", "statistic", "verdict",
        "note",
    ]  # fmt: skip


def test_write_report_alone_needs_no_run(tmp_path):
    rows = ({"row": "softmax", "verdict": "inconclusive", "why": "ESS 21 < 100"},)
    result = ExperimentResult(
        "plain",
        "Plain",
        "No figure.",
        (Claim("a claim", "1", "1.2", "inconclusive"),),
        rows=rows,
    )
    paths = write_report([result], [], tmp_path, ReportMeta(title="T"))
    text = paths.markdown.read_text()
    assert paths.figures == () and "the experiment gave no reason" in text
    assert "row 1 (softmax): **inconclusive**: ESS 21 < 100" in text
    assert paths.cases_csv == ()
    assert paths.claims_csv.read_text().splitlines()[1].startswith("plain,a claim,1,,1.2,,")


def test_draw_handles_scales_and_rejects_bad_series():
    good = Series("p", (1.0, 10.0), (2.0, float("nan")), yerr=(0.1, 0.2))
    panel = Panel("t", "x", "y", (good,), xscale="log", yscale="log")
    assert draw(Figure("f", (panel,))).startswith(PNG_SIGNATURE)
    with pytest.raises(SpecError, match="style"):
        draw(Figure("f", (Panel("t", "x", "y", (Series("s", (1.0,), (1.0,), style="bars"),)),)))
    with pytest.raises(SpecError, match="different lengths"):
        draw(Figure("f", (Panel("t", "x", "y", (Series("s", (1.0, 2.0), (1.0,)),)),)))


def test_cells_and_flattening():
    assert format_cell(list(range(10))) == "[0, 1, 2, …] (10 values)"
    assert len(format_cell("x" * 500)) == 80
    assert format_cell({"kappa": "1/2", "n": 100}) == "kappa=1/2, n=100"
    assert flatten({"a": {"b": {"c": 1}}, "l": (1, 2)}) == {"a.b.c": 1, "l": "[1, 2]"}


def test_figure_without_panels_is_rejected_by_draw_and_skipped_by_the_report(tmp_path):
    with pytest.raises(SpecError, match="no panels"):
        draw(Figure("empty", ()))
    result = ExperimentResult("e", "E", "d", (), rows=(), figure=Figure("empty", ()))
    assert write_report([result], [], tmp_path).figures == ()


def test_claim_columns_name_every_field_of_a_claim_once():
    import dataclasses

    from llcgeo.reconcile.model import CLAIM_COLUMNS, Claim

    assert sorted(CLAIM_COLUMNS) == sorted(f.name for f in dataclasses.fields(Claim))


def test_grouped_series_share_a_colour_and_markers_are_never_joined():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as Canvas

    from llcgeo.reconcile.model import Panel, Series
    from llcgeo.report.figures import _draw_panel

    canvas = Canvas()
    FigureCanvasAgg(canvas)
    axes = canvas.subplots()
    panel = Panel("t", "x", "y", (
        Series("a measured", (0.0, 1.0), (1.0, 2.0), (0.1, 0.1), group="a"),
        Series("b measured", (0.0, 1.0), (2.0, 3.0), (0.1, 0.1), group="b"),
        Series("a exact", (0.0, 1.0), (1.0, 2.0), style="markers", group="a"),
        Series("a threshold", (0.5,), (), style="vline", group="a"),
    ), xticks=("first", "second"))  # fmt: skip
    _draw_panel(axes, panel)
    lines = {line.get_label(): line for line in axes.get_lines()}
    measured_a = axes.containers[0].lines[0].get_color()
    assert lines["a exact"].get_color() == measured_a == lines["a threshold"].get_color()
    assert axes.containers[1].lines[0].get_color() != measured_a
    assert lines["a exact"].get_linestyle() == "None"
    assert [t.get_text() for t in axes.get_xticklabels()] == ["first", "second"]


def test_a_case_csv_has_one_column_a_field():
    from types import SimpleNamespace

    from llcgeo import manifolds as mf
    from llcgeo.config import SGLDConfig
    from llcgeo.reconcile.model import Case
    from llcgeo.report.render import cases_csv
    from llcgeo.serialize import to_jsonable

    case = Case(mf.LayerNormImage(3), mf.LinearLayer(2), config=SGLDConfig(), tags=(("k", 1),))
    job = to_jsonable(case)
    record = {"type": "CaseResult", "key": "abc", "case": job, "tags": {"k": 1}, "z": 0.5}
    stored = SimpleNamespace(experiment="e", key="abc", job=job, record=record)
    header = cases_csv([stored]).splitlines()[0].split(",")
    assert len(header) == len(set(header))
    assert not [h for h in header if h.startswith(("record.case.", "record.key", "job.tags"))]
    assert {"job.manifold.type", "job.config.eps", "record.tags.k", "record.z"} <= set(header)
    assert "job.config.type" not in header and "record.type" not in header
