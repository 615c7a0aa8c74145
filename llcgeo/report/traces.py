"""The loss trace of each chain of an estimate, as a figure: what R-hat and ESS summarize.

Each chain's ``nbeta (L(w_k) - L(w*))`` over the recorded draws (thinned to at most
``POINTS`` per chain) and, beside it, the running mean, whose end is that chain's estimate;
diverged chains are drawn too, and named.
"""

from __future__ import annotations

import numpy as np

from llcgeo.reconcile.model import Figure, Panel, Series

POINTS = 400


def trace_figure(estimate) -> Figure:
    """Two panels: the traces, and their running means, one colour per chain."""
    excess = estimate.nbeta * (np.asarray(estimate.loss_trace) - estimate.init_loss)
    step = max(1, excess.shape[1] // POINTS)
    draws = np.arange(excess.shape[1])
    kept = draws[::step]
    first = estimate.config.burnin
    traces, means = [], []
    for c, row in enumerate(excess):
        name = f"chain {c}" + (" (diverged)" if c in estimate.diverged_chains else "")
        running = np.cumsum(row) / (draws + 1)
        xs = tuple(float(first + k) for k in kept)
        traces.append(Series(name, xs, tuple(map(float, row[kept])), style="line", group=name))
        means.append(Series(name, xs, tuple(map(float, running[kept])), style="line", group=name))
    return Figure(
        "trace",
        (
            Panel("nbeta (L(w_k) - L(w*)) per chain", "step", "nbeta x excess loss", tuple(traces)),
            Panel("running mean: each chain's estimate so far", "step", "estimate", tuple(means)),
        ),
        caption=f"R-hat {estimate.rhat:.3f}, bulk ESS {estimate.ess:.0f}: chains that wander "
        "apart or drift show here first.",
    )
