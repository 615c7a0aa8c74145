"""An eps x gamma grid of SGLD runs as one batch: every chain carries its own step size and
localization in the same tensor step, so a grid costs one run with more chains, not one run a
point. Full batch only (each grid point must see the same loss)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from llcgeo.errors import EstimationError
from llcgeo.numerics import diagnostics
from llcgeo.numerics.device import make_generator, stream
from llcgeo.numerics.problem import Problem
from llcgeo.numerics.sgld import build_kernel, init, localized_gradient


class GridPoint(NamedTuple):
    """One grid point's estimate over its chains (diverged chains left out and counted), and
    the exact expectation of the estimate where a caller knows it (None here)."""

    eps: float
    gamma: float
    mean: float
    se: float
    rhat: float
    ess: float
    diverged: int
    expected: float | None = None


def sweep(
    problem: Problem,
    eps_grid,
    gamma_grid,
    *,
    chains: int,
    steps: int,
    burnin: int,
    seed: int = 0,
) -> list[GridPoint]:
    """Every (eps, gamma) of the grid with ``chains`` chains each, all in one batch."""
    if not 0 <= burnin < steps:
        raise EstimationError(f"burnin ({burnin}) must be below steps ({steps})")
    points = [(float(e), float(g)) for g in gamma_grid for e in eps_grid]
    device, dtype = problem.start.device, problem.start.dtype
    eps = torch.tensor([e for e, _ in points for _ in range(chains)], dtype=dtype, device=device)
    gamma = torch.tensor([g for _, g in points for _ in range(chains)], dtype=dtype, device=device)
    drift = localized_gradient(
        problem.loss_and_grad, nbeta=problem.nbeta, gamma=gamma[:, None], centre=problem.centre
    )
    step = build_kernel(drift, mask=problem.mask)
    state = init(problem.start.expand(len(eps), -1).clone())
    generator = make_generator(stream(seed, "sgld"), device)
    losses = torch.empty(len(eps), steps, dtype=dtype, device=device)
    for k in range(steps):
        state, info = step(state, None, eps[:, None], generator)
        losses[:, k] = info.loss
    trace = losses.detach().to("cpu", torch.float64).numpy()
    return [_point(points[i], trace[i * chains : (i + 1) * chains], burnin, problem) for i in
            range(len(points))]  # fmt: skip


def _point(setting, trace: np.ndarray, burnin: int, problem: Problem) -> GridPoint:
    threshold = diagnostics.divergence_threshold(
        problem.init_loss, problem.free_parameters, problem.nbeta
    )
    bad = diagnostics.diverged(trace.max(axis=1), np.isfinite(trace[:, -1]), threshold)
    kept = trace[~bad, burnin:]
    mean, se = diagnostics.mean_and_se(problem.nbeta * trace[:, burnin:].mean(axis=1), ~bad)
    rhat = diagnostics.rank_rhat(kept) if len(kept) > 1 else float("nan")
    ess = diagnostics.ess_bulk(kept) if len(kept) > 1 else float("nan")
    return GridPoint(setting[0], setting[1], mean, se, rhat, ess, int(bad.sum()))
