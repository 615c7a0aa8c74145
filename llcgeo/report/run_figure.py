"""The figure of a scanned training run: three panels over one training-step axis.

Top, the whole model's LLC at each checkpoint where it was estimated; middle, each reader's
measured wrLLC with the prediction for what was measured beside it (a line where exact, a shaded
interval where only bounds are proven); bottom, each norm's certified drop as a band, from its
readers' predicted wrLLC up to what they would have on Gaussian features. The step axis is
logarithmic where the steps span ``LOG_SPAN`` or more (symmetric-logarithmic, linear below
the first positive step, where step 0 is among them). The report layer's
:class:`~llcgeo.reconcile.model.Figure` has neither bands nor that axis, so this draws with
matplotlib itself, as :mod:`llcgeo.report.figures` does: its own Agg canvas, no pyplot.
"""

from __future__ import annotations

import io
from fractions import Fraction

SIZE = (10.0, 9.0)  # inches: three panels stacked, legends beside them
DPI = 100
LOG_SPAN = 100  # the largest step over the smallest positive one, from which the axis is log
HEADROOM = 1.3  # a panel of wrLLCs reaches this times its largest prediction; beyond, a marker
STEP_TICKS = 12  # at most this many checkpoints: each step is a tick of its own
TITLE = "Training run: the whole model's LLC, each reader's wrLLC, each norm's certified drop"


def draw_run(run) -> bytes:
    """The run's figure as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    canvas = Figure(figsize=SIZE, layout="constrained")
    FigureCanvasAgg(canvas)
    axes = canvas.subplots(3, 1, sharex=True)
    _whole(axes[0], run.checkpoints)
    _readers(axes[1], run.checkpoints)
    _drops(axes[2], run.checkpoints)
    _step_axis(axes[2], run.steps)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside
    canvas.suptitle(TITLE, fontsize="medium")
    buffer = io.BytesIO()
    canvas.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def step_scale(steps) -> tuple[str, dict]:
    """``(scale, options)`` for the step axis (see the module's note).

    >>> step_scale([0, 10, 1000]), step_scale([10, 1000]), step_scale([0, 5, 9])
    (('symlog', {'linthresh': 10, 'linscale': 0.5}), ('log', {}), ('linear', {}))
    """
    positive = [s for s in steps if s > 0]
    if len(positive) < 2 or max(positive) < LOG_SPAN * min(positive):
        return "linear", {}
    if min(steps) <= 0:
        return "symlog", {"linthresh": min(positive), "linscale": 0.5}
    return "log", {}


def _step_axis(ax, steps) -> None:
    scale, options = step_scale(steps)
    ax.set_xscale(scale, **options)
    if scale != "linear":  # a margin of a fifth of a decade, none past step 0
        low = min(steps) - 0.2 * options["linthresh"] if scale == "symlog" else min(steps) / 1.6
        ax.set_xlim(low, max(steps) * 1.6)
    if len(steps) <= STEP_TICKS:
        ax.set_xticks(list(steps), [str(s) for s in steps])
        ax.minorticks_off()
    ax.set_xlabel("training step")


def _whole(ax, checkpoints) -> None:
    """The whole model's LLC: filled where its chains pass the chain rules, hollow where they
    do not (an estimate that is no measurement yet, drawn so the eye does not trust it)."""
    done = [c for c in checkpoints if c.model.estimate is not None]
    (line,) = ax.plot([c.step for c in done], [c.model.estimate.mean for c in done], "-", lw=1)
    for mixed in (True, False):
        shown = [c for c in done if (not c.model.estimate.problems()) == mixed]
        if shown:
            ax.errorbar([c.step for c in shown], [c.model.estimate.mean for c in shown],
                        yerr=[c.model.estimate.se for c in shown], fmt="o", ms=5, capsize=3,
                        color=line.get_color(), mfc=None if mixed else "none",
                        label=WHOLE_LABELS[mixed])  # fmt: skip
    missing = [str(c.step) for c in checkpoints if c.model.estimate is None]
    if missing:
        ax.plot([], [], " ", label=f"no estimate at step {', '.join(missing)} (see the report)")
    ax.set_ylabel("LLC")
    ax.set_title("the whole model", fontsize="medium")


WHOLE_LABELS = {True: "measured (± SE), calibrated at each checkpoint",
                False: "hollow: its chains fail R-hat or ESS (see the report)"}  # fmt: skip


def _readers(ax, checkpoints) -> None:
    readers = [r.reader for r in checkpoints[0].scan.rows]
    rows = [r for c in checkpoints for r in c.scan.rows]
    top = HEADROOM * max([float(Fraction(r.block_high)) for r in rows] + [1.0])
    for reader in readers:
        pairs = [(c.step, r) for c in checkpoints for r in c.scan.rows if r.reader == reader]
        steps = [s for s, _ in pairs]
        low = [float(Fraction(r.low)) for _, r in pairs]
        high = [float(Fraction(r.block_high)) for _, r in pairs]
        (line,) = ax.plot(steps, high, "_--", lw=1, ms=10, label=f"{reader}: predicted")
        colour = line.get_color()
        bounded = [(s, a, b) for s, a, b in zip(steps, low, high) if a != b]
        if bounded:  # at its checkpoint only: between two, nothing is proven
            ax.vlines(*zip(*bounded), color=colour, lw=6, alpha=0.2,
                      label=f"{reader}: proven interval (predicted: its top)")  # fmt: skip
        measured = [(s, r.estimate.mean, r.estimate.se) for s, r in pairs
                    if r.estimate is not None]  # fmt: skip
        _capped(ax, measured, top, colour, f"{reader}: measured (± SE)")
    ax.set_ylim(top=top * 1.08)
    ax.set_ylabel("wrLLC")
    ax.set_title("each reader: measured against predicted", fontsize="medium")


def _drops(ax, checkpoints) -> None:
    bands = []
    for norm in checkpoints[0].scan.norms:
        steps, low, high, sums = [], [], [], []
        for c in checkpoints:
            summary = next(n for n in c.scan.norms if n.name == norm.name)
            rows = [r for r in c.scan.rows if r.norm == norm.name]
            predicted = float(sum(Fraction(r.high) for r in rows))
            steps.append(c.step)
            low.append(predicted)
            high.append(predicted + float(Fraction(summary.certified_drop)))
            sums.append(_measured_sum(rows))
        bands.append((norm.name, steps, low, high, sums))
    top = HEADROOM * max([h for *_, high, _ in bands for h in high] + [1.0])
    for name, steps, low, high, sums in bands:
        label = f"{name}: certified drop (band; {high[-1] - low[-1]:g} at the last)"
        band = ax.fill_between(steps, low, high, alpha=0.3, lw=0, label=label)
        colour = band.get_facecolor()[0][:3]
        ax.plot(steps, low, "-", color=colour, lw=1, marker="_",
                label=f"{name}: readers' prediction (band's foot)")  # fmt: skip
        shown = [(s, v, None) for s, v in zip(steps, sums) if v is not None]
        _capped(ax, shown, top, colour, f"{name}: readers' measured sum")
    ax.set_ylim(top=top * 1.08)
    ax.set_ylabel("wrLLC of the norm's readers")
    ax.set_title("each norm: the certified drop against Gaussian features", fontsize="medium")


def _capped(ax, points, top: float, colour, label: str) -> None:
    """``(step, value, standard error or None)`` as points; a value above ``top`` (an outlier
    that would flatten every other) as a triangle at the top, its value written beside it."""
    inside = [p for p in points if p[1] <= top]
    if inside:
        errors = None if any(e is None for *_, e in inside) else [e for *_, e in inside]
        ax.errorbar([s for s, *_ in inside], [v for _, v, _ in inside], yerr=errors, fmt="o",
                    ms=4, capsize=3, color=colour, label=label)  # fmt: skip
    for step, value, _ in (p for p in points if p[1] > top):
        ax.plot([step], [top], "^", color=colour, ms=7)
        ax.annotate(f"{value:.3g}", (step, top), textcoords="offset points", xytext=(6, -4),
                    fontsize="x-small", color=colour)  # fmt: skip


def _measured_sum(rows) -> float | None:
    """The readers' measured wrLLC summed, where every reader was measured whole."""
    if not rows or any(r.estimate is None or r.block is not None for r in rows):
        return None
    return sum(r.estimate.mean for r in rows)
