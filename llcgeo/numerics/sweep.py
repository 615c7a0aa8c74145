"""An eps x gamma grid of SGLD runs as one batch: every chain carries its own step size and
localization in the same tensor step, so a grid costs one run with more chains, not one run a
point. Full batch only (each grid point must see the same loss)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from llcgeo.config import SGLDConfig
from llcgeo.numerics.paths.problem import Problem
from llcgeo.numerics.plan import check_run
from llcgeo.numerics.runner import chain_summary, numpy_of, run_problem


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
    progress=None,
) -> list[GridPoint]:
    """Every (eps, gamma) of the grid with ``chains`` chains each, all in one batch of
    :func:`~llcgeo.numerics.runner.run_problem` (its memory check, thread policy and random
    streams), each point summarized as any estimate is (:func:`chain_summary`)."""
    points = [(float(e), float(g)) for g in gamma_grid for e in eps_grid]
    config = SGLDConfig(eps=points[0][0], gamma=points[0][1], chains=chains * len(points),
                        steps=steps, burnin=burnin)  # validates the run's sizes  # fmt: skip
    device, dtype = problem.posterior.start.device, problem.posterior.start.dtype

    def per_chain(values) -> torch.Tensor:
        column = [v for v in values for _ in range(chains)]
        return torch.tensor(column, dtype=dtype, device=device)[:, None]

    check_run(problem, config, seed=seed)
    run = run_problem(problem, config, seed=seed, eps=per_chain(e for e, _ in points),
                      gamma=per_chain(g for _, g in points), progress=progress)  # fmt: skip
    trace, peak = numpy_of(run.trace), numpy_of(run.peak)
    finite = torch.isfinite(run.final.position).all(dim=1).cpu().numpy()
    return [
        _point(points[i], chain_summary(problem, trace[rows], peak[rows], finite[rows]))
        for i in range(len(points))
        for rows in [slice(i * chains, (i + 1) * chains)]
    ]


def _point(setting: tuple[float, float], c) -> GridPoint:
    return GridPoint(setting[0], setting[1], c.mean, c.se, c.rhat, c.ess, int(c.diverged.sum()))
