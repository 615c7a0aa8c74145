"""Draw an experiment's :class:`~llcgeo.reconcile.model.Figure` as PNG bytes.

Each drawing builds its own ``matplotlib.figure.Figure`` on an Agg canvas; pyplot is never
imported, so no global figure state leaks from one drawing to the next.

>>> from llcgeo.reconcile.model import Figure, Panel, Series
>>> line = Series("prediction", (1.0, 2.0), (0.5, 1.0), style="line")
>>> png = draw(Figure("toy", (Panel("LLC", "m", "LLC", (line,)),)))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import textwrap

from llcgeo.errors import SpecError
from llcgeo.reconcile.model import Figure, Panel, Series

STYLES = ("points", "markers", "line", "vline")
PANEL_SIZE = (6.4, 3.8)  # inches per panel, its legend beside it
TITLE_WIDTH = 48  # characters a title line holds at this size
TICK_WIDTH = 12  # characters a categorical tick label's line holds
DPI = 100


def draw(figure: Figure) -> bytes:
    """The figure's panels side by side, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as Canvas

    count = len(figure.panels)
    if not count:
        raise SpecError(f"figure {figure.name!r} has no panels to draw")
    canvas = Canvas(figsize=(PANEL_SIZE[0] * count, PANEL_SIZE[1]), layout="constrained")
    FigureCanvasAgg(canvas)
    for axes, panel in zip(canvas.subplots(1, count, squeeze=False)[0], figure.panels, strict=True):
        _draw_panel(axes, panel)
    buffer = io.BytesIO()
    # No "Software" stamp: the same figure then gives the same bytes on every run.
    canvas.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def save(figure: Figure, path) -> None:
    """Draw ``figure`` and write the PNG to ``path`` atomically (a command's ``--figure``)."""
    from pathlib import Path

    from llcgeo.report.files import write_atomic

    write_atomic(Path(path), draw(figure))


def _draw_panel(axes, panel: Panel) -> None:
    colours: dict[str, str] = {}
    for series in panel.series:
        _draw_series(axes, series, colours)
    axes.set_title(textwrap.fill(panel.title, TITLE_WIDTH), fontsize="medium")
    axes.set_xlabel(panel.xlabel)
    axes.set_ylabel(panel.ylabel)
    axes.set_xscale(panel.xscale)
    axes.set_yscale(panel.yscale)
    axes.grid(True, alpha=0.3)
    if panel.xticks:
        axes.set_xticks(range(len(panel.xticks)))
        labels = [textwrap.fill(t, TICK_WIDTH) for t in panel.xticks]
        axes.set_xticklabels(labels, fontsize="x-small")
    if any(series.label for series in panel.series):
        # beside the axes, never over the data
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))


def _draw_series(axes, series: Series, colours: dict[str, str]) -> None:
    if series.style not in STYLES:
        raise SpecError(f"series {series.label!r} has style {series.style!r}; use one of {STYLES}")
    lengths_differ = series.style != "vline" and len(series.x) != len(series.y)
    if lengths_differ or (series.yerr and len(series.yerr) != len(series.y)):
        raise SpecError(f"series {series.label!r} has x, y (and yerr) of different lengths")
    colour = {"color": colours[series.group]} if series.group in colours else {}
    if series.style == "line":
        (artist,) = axes.plot(series.x, series.y, "-", label=series.label, **colour)
        used = artist.get_color()
    elif series.style == "markers":
        (artist,) = axes.plot(series.x, series.y, "x", ms=7, mew=1.5, label=series.label, **colour)
        used = artist.get_color()
    elif series.style == "vline":
        used = _vlines(axes, series, colour)
    else:
        container = axes.errorbar(
            series.x,
            series.y,
            yerr=series.yerr,
            fmt="o",
            ms=4,
            capsize=3,
            label=series.label,
            **colour,
        )
        used = container.lines[0].get_color()
    if series.group:
        colours.setdefault(series.group, used)


def _vlines(axes, series: Series, colour: dict) -> str:
    used = colour.get("color", "0.35")  # a series' colour when grouped with it, else grey
    for i, x in enumerate(series.x):
        axes.axvline(x, color=used, ls="--", lw=1, label=series.label if i == 0 else None)
    return used
