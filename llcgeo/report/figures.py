"""Draw an experiment's :class:`~llcgeo.reconcile.model.Figure` as PNG bytes.

Each drawing builds its own ``matplotlib.figure.Figure`` on an Agg canvas; pyplot is never
imported, so no global figure state leaks from one drawing to the next.

A figure reads at a glance at the size it is written: each panel is a subfigure
``PANEL_SIZE`` wide, its legend below its axes (never over the data, never half the width), its
title on one line (a smaller font where a long one needs it), its categorical tick labels
wrapped, or turned upright, until no two overlap. Series of one panel are told apart in
greyscale too: each "points" series takes the next of ``POINT_MARKERS``, each "markers" series
the next of ``MARK_MARKERS``.

Styles: "points" (with optional error bars), "markers" (exact values, not joined), "line",
"dashed" (a line carried past the data: an extrapolation), "band" (``y +- yerr`` shaded: a
fit's uncertainty), "range" (a prediction: a bar across its x, and a vertical stroke over the
interval ``y +- yerr`` where it is only bounded) and "vline" (a vertical line at each x).

>>> from llcgeo.reconcile.model import Figure, Panel, Series
>>> line = Series("prediction", (1.0, 2.0), (0.5, 1.0), style="line")
>>> png = draw(Figure("toy", (Panel("LLC", "m", "LLC", (line,)),)))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import math
import re

from llcgeo.errors import SpecError
from llcgeo.reconcile.model import Figure, Panel, Series

STYLES = ("points", "markers", "line", "dashed", "band", "range", "vline")
PANEL_SIZE = (6.4, 3.8)  # inches per panel: its axes, title and ticks (legend rows add height)
LEGEND_ROW = 0.2  # inches a row of legend entries adds below the axes
LEGEND_CHARS = 100  # characters of entries (and their handles) a legend row holds in a panel
TITLE_SIZES = ("medium", "small", "x-small")  # tried in turn until the title fits on one line
TICK_WIDTHS = (14, 10, 7)  # characters a categorical tick label's line holds, tried in turn
POINT_MARKERS = ("o", "s", "^", "D", "v", "P")
MARK_MARKERS = ("x", "+", "*", "1")
DPI = 100


def draw(figure: Figure) -> bytes:
    """The figure's panels side by side, as a PNG."""
    buffer = io.BytesIO()
    # No "Software" stamp: the same figure then gives the same bytes on every run.
    render(figure).savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def render(figure: Figure):
    """The laid-out ``matplotlib.figure.Figure`` of ``figure`` (what :func:`draw` saves): each
    panel a subfigure with its axes and, below them, its legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as Canvas

    count = len(figure.panels)
    if not count:
        raise SpecError(f"figure {figure.name!r} has no panels to draw")
    rows = max(legend_shape(panel)[1] for panel in figure.panels)
    size = (PANEL_SIZE[0] * count, PANEL_SIZE[1] + LEGEND_ROW * rows)
    canvas = Canvas(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(canvas)
    subfigures = canvas.subfigures(1, count, squeeze=False)[0]
    for sub, panel in zip(subfigures, figure.panels, strict=True):
        axes = sub.subplots()
        _draw_panel(axes, panel)
        _legend(sub, axes, panel)
    canvas.draw_without_rendering()  # the layout, which the fitting below reads
    for sub, panel in zip(subfigures, figure.panels, strict=True):
        _fit(sub, panel)
    canvas.draw_without_rendering()
    return canvas


def save(figure: Figure, path) -> None:
    """Draw ``figure`` and write the PNG to ``path`` atomically (a command's ``--figure``)."""
    from pathlib import Path

    from llcgeo.report.files import write_atomic

    write_atomic(Path(path), draw(figure))


def legend_shape(panel: Panel) -> tuple[int, int]:
    """``(columns, rows)`` of the panel's legend below its axes (``(0, 0)``: none)."""
    labels = list(dict.fromkeys(s.label for s in panel.series if s.label))
    if not labels:
        return 0, 0
    columns = max(1, min(len(labels), LEGEND_CHARS // (max(map(len, labels)) + 8)))
    return columns, math.ceil(len(labels) / columns)


def _legend(sub, axes, panel: Panel) -> None:
    """The panel's legend below its axes, its entries in the order of its series."""
    columns, _ = legend_shape(panel)
    if not columns:
        return
    drawn = dict(zip(*reversed(axes.get_legend_handles_labels())))
    labels = [label for label in dict.fromkeys(s.label for s in panel.series) if label in drawn]
    sub.legend([drawn[label] for label in labels], labels, loc="outside lower center",
               ncols=columns, fontsize="small")  # fmt: skip


def _draw_panel(axes, panel: Panel) -> None:
    markers = {"points": iter(POINT_MARKERS * 4), "markers": iter(MARK_MARKERS * 6)}
    colours: dict[str, str] = {}
    for series in panel.series:
        _draw_series(axes, series, colours, markers)
    axes.set_title(" ".join(panel.title.split()), fontsize=TITLE_SIZES[0])
    axes.set_xlabel(panel.xlabel)
    axes.set_ylabel(panel.ylabel)
    axes.set_xscale(panel.xscale)
    axes.set_yscale(panel.yscale)
    axes.grid(True, alpha=0.3)
    if panel.xticks:
        axes.set_xticks(range(len(panel.xticks)))
        axes.set_xlim(-0.5, len(panel.xticks) - 0.5)  # room for marks set beside a tick
        axes.set_xticklabels([_wrapped(t, TICK_WIDTHS[0]) for t in panel.xticks],
                             fontsize="x-small")  # fmt: skip


def _wrapped(text: str, width: int) -> str:
    """``text`` with each of its lines wrapped at ``width`` characters, after a space or a dot
    (a dotted name breaks between its parts); its own line breaks are kept, and a word longer
    than ``width`` is left whole.

    >>> print(_wrapped("blocks.0.attention.in_proj\\n[inconclusive]", 12))
    blocks.0.
    attention.
    in_proj
    [inconclusive]
    """
    return "\n".join(_wrapped_line(line, width) for line in text.split("\n"))


def _wrapped_line(line: str, width: int) -> str:
    lines, current = [], ""
    for token in re.findall(r"[^\s.]*(?:\.|\s+|$)", line):
        if not token:
            continue
        if current and len((current + token).rstrip()) > width:
            lines.append(current.rstrip())
            current = token.lstrip()
        else:
            current += token
    return "\n".join([*lines, current.rstrip()])


def _fit(sub, panel: Panel) -> None:
    """The title in the largest of ``TITLE_SIZES`` that fits the panel's width on one line;
    the tick labels at the widest of ``TICK_WIDTHS`` at which no two overlap, else upright."""
    renderer = sub.figure.canvas.get_renderer()
    axes = sub.axes[0]
    room = sub.bbox.width
    for size in TITLE_SIZES:
        axes.title.set_fontsize(size)
        if axes.title.get_window_extent(renderer).width <= room:
            break
    if not panel.xticks:
        return
    for width in TICK_WIDTHS:
        axes.set_xticklabels([_wrapped(t, width) for t in panel.xticks], fontsize="x-small")
        if not overlapping(axes.get_xticklabels(), renderer):
            return
    axes.set_xticklabels([_wrapped(t, TICK_WIDTHS[0]) for t in panel.xticks],
                         fontsize="x-small", rotation=90)  # fmt: skip


def overlapping(texts, renderer) -> list[tuple[str, str]]:
    """The pairs of neighbouring, non-empty ``texts`` whose drawn extents overlap."""
    shown = [t for t in texts if t.get_visible() and t.get_text()]
    boxes = sorted(((t.get_window_extent(renderer), t.get_text()) for t in shown),
                   key=lambda box: box[0].x0)  # fmt: skip
    return [(a[1], b[1]) for a, b in zip(boxes, boxes[1:]) if a[0].overlaps(b[0])]


def _draw_series(axes, series: Series, colours: dict[str, str], markers: dict) -> None:
    if series.style not in STYLES:
        raise SpecError(f"series {series.label!r} has style {series.style!r}; use one of {STYLES}")
    lengths_differ = series.style != "vline" and len(series.x) != len(series.y)
    if lengths_differ or (series.yerr and len(series.yerr) != len(series.y)):
        raise SpecError(f"series {series.label!r} has x, y (and yerr) of different lengths")
    colour = {"color": colours[series.group]} if series.group in colours else {}
    used = _DRAWERS[series.style](axes, series, colour, markers)
    if series.group:
        colours.setdefault(series.group, used)


def _line(axes, series: Series, colour: dict, markers: dict) -> str:
    if series.style != "dashed":
        (artist,) = axes.plot(series.x, series.y, "-", label=series.label, **colour)
        return artist.get_color()
    from matplotlib import patheffects

    # over everything else, in a white casing: it stays visible on lines of its own colour
    casing = [patheffects.withStroke(linewidth=4, foreground="white")]
    (artist,) = axes.plot(series.x, series.y, "--", lw=2, zorder=4, path_effects=casing,
                          label=series.label, **colour)  # fmt: skip
    return artist.get_color()


def _marks(axes, series: Series, colour: dict, markers: dict) -> str:
    (artist,) = axes.plot(series.x, series.y, next(markers["markers"]), ls="none", ms=7, mew=1.5,
                          label=series.label, **colour)  # fmt: skip
    return artist.get_color()


def _points(axes, series: Series, colour: dict, markers: dict) -> str:
    container = axes.errorbar(series.x, series.y, yerr=series.yerr, fmt=next(markers["points"]),
                              ms=4, capsize=3, label=series.label, **colour)  # fmt: skip
    return container.lines[0].get_color()


def _range(axes, series: Series, colour: dict, markers: dict) -> str:
    container = axes.errorbar(series.x, series.y, yerr=series.yerr, fmt="_", ms=16, mew=2.5,
                              elinewidth=2.5, capsize=0, label=series.label, **colour)  # fmt: skip
    return container.lines[0].get_color()


def _band(axes, series: Series, colour: dict, markers: dict) -> str:
    spread = series.yerr or (0.0,) * len(series.y)
    low = [y - e for y, e in zip(series.y, spread)]
    high = [y + e for y, e in zip(series.y, spread)]
    from matplotlib.colors import to_hex

    patch = axes.fill_between(series.x, low, high, alpha=0.25, lw=0, label=series.label,
                              **colour)  # fmt: skip
    return to_hex(patch.get_facecolor()[0], keep_alpha=False)


def _vlines(axes, series: Series, colour: dict, markers: dict) -> str:
    used = colour.get("color", "0.35")  # a series' colour when grouped with it, else grey
    for i, x in enumerate(series.x):
        axes.axvline(x, color=used, ls="--", lw=1, label=series.label if i == 0 else None)
    return used


_DRAWERS = {"points": _points, "markers": _marks, "line": _line, "dashed": _line, "band": _band,
            "range": _range, "vline": _vlines}  # fmt: skip
