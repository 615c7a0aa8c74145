"""An eps x gamma grid of SGLD (or MALA) runs as one batch: every chain carries its own step
size and localization in the same tensor step, so a grid costs one run with more chains, not one
run a point. Full batch only (each grid point must see the same loss). :func:`sweep_settings`
runs any list of settings the same way, one a group of chains (a problem whose chains carry
their own data, say: the singular suite's groups)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from llcgeo.config import SGLDConfig
from llcgeo.numerics.paths.problem import Problem
from llcgeo.numerics.plan import check_run
from llcgeo.numerics.runner import chain_summary, numpy_of, run_problem


class GridPoint(NamedTuple):
    """One grid point's estimate over its chains (diverged chains left out and counted), the
    exact expectation of the estimate where a caller knows it (None here), and the share of
    proposals a Metropolis test accepted over the kept chains (None for SGLD)."""

    eps: float
    gamma: float
    mean: float
    se: float
    rhat: float
    ess: float
    diverged: int
    expected: float | None = None
    acceptance: float | None = None


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
    sampler: str = "sgld",
) -> list[GridPoint]:
    """Every (eps, gamma) of the grid with ``chains`` chains each, gamma-major
    (:func:`sweep_settings`)."""
    points = [(e, g) for g in gamma_grid for e in eps_grid]
    return sweep_settings(problem, points, chains=chains, steps=steps, burnin=burnin, seed=seed,
                          progress=progress, sampler=sampler)  # fmt: skip


def sweep_settings(problem: Problem, settings, *, chains: int, steps: int, burnin: int,
                   seed: int = 0, progress=None, sampler: str = "sgld") -> list[GridPoint]:
    """Each ``(eps, gamma)`` of ``settings`` with ``chains`` chains, in that order, all in one
    batch of :func:`~llcgeo.numerics.runner.run_problem` (its memory check, thread policy and
    random streams), each summarized as any estimate is (:func:`chain_summary`)."""
    points = [(float(e), float(g)) for e, g in settings]
    config = SGLDConfig(eps=points[0][0], gamma=points[0][1], chains=chains * len(points),
                        steps=steps, burnin=burnin, sampler=sampler)  # validates the sizes
    device, dtype = problem.posterior.start.device, problem.posterior.start.dtype

    def per_chain(values) -> torch.Tensor:
        column = [v for v in values for _ in range(chains)]
        return torch.tensor(column, dtype=dtype, device=device)[:, None]

    check_run(problem, config, seed=seed)
    run = run_problem(problem, config, seed=seed, eps=per_chain(e for e, _ in points),
                      gamma=per_chain(g for _, g in points), progress=progress)  # fmt: skip
    trace, peak = numpy_of(run.trace), numpy_of(run.peak)
    finite = torch.isfinite(run.final.position).all(dim=1).cpu().numpy()
    accepted = None if run.acceptance is None else numpy_of(run.acceptance)
    out = []
    for i, setting in enumerate(points):
        rows = slice(i * chains, (i + 1) * chains)
        c = chain_summary(problem, trace[rows], peak[rows], finite[rows])
        rate = None if accepted is None else float(accepted[rows][~c.diverged].mean())
        out.append(GridPoint(*setting, c.mean, c.se, c.rhat, c.ess, int(c.diverged.sum()),
                             acceptance=rate))  # fmt: skip
    return out
