"""A run planned before its first step: the memory it will hold and the time it will take,
held against the budget of :mod:`llcgeo.limits` (2 GB and 10 minutes unless raised).

Memory comes from the sizes: the chains' state, the loss trace and its copies
(:func:`llcgeo.limits.sampling_bytes`), and each chain's share of a step's temporaries, which
every model path states in its problem's :class:`~llcgeo.numerics.paths.problem.Footprint`
(``work_per_chain``: batch activations, logits, gathered rows). Time comes from measurement: a
few real steps at one chain and at a few chains, each after a warm-up step, give the cost of a
step as ``a + b chains``, extrapolated to the run. A probe costs a handful of steps of a chain
or a few, so a run that is refused costs seconds, not its own length.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import NamedTuple

from llcgeo.config import SGLDConfig
from llcgeo.limits import check_budget, sampling_bytes

PROBE_STEPS = 2  # timed steps at each chain count, after one warm-up step
PROBE_CHAINS = 8  # the larger of the two chain counts the cost is measured at


class Plan(NamedTuple):
    """What a run will cost: bytes at its peak, seconds in all, seconds a step."""

    nbytes: float
    seconds: float
    step_seconds: float


def planned_bytes(problem, chains: int, steps: int) -> float:
    """The peak memory of ``chains`` chains of ``problem`` for ``steps`` steps."""
    size = problem.posterior.start.numel()
    return sampling_bytes(chains=chains, steps=steps, parameters=size) + chains * int(
        problem.footprint.work_per_chain
    )


def plan_run(problem, config: SGLDConfig, *, seed: int) -> Plan:
    """The :class:`Plan` of ``config``'s run of ``problem`` (memory first: a run too large to
    hold is refused before any step is timed)."""
    from llcgeo.numerics.runner import run_problem

    nbytes = planned_bytes(problem, config.chains, config.steps)
    check_budget(nbytes, None, _what(problem, config))

    def step_cost(chains: int) -> float:
        probe = replace(config, chains=chains, steps=1, burnin=0, acceptance=False)
        run_problem(problem, probe, seed=seed)  # warm-up: allocations, first-call costs
        began = time.perf_counter()
        run_problem(problem, replace(probe, steps=PROBE_STEPS), seed=seed)
        return (time.perf_counter() - began) / PROBE_STEPS

    built_for = problem.footprint.chains
    if built_for is not None:  # data per chain: only the run's own chains fit it
        per_step = step_cost(built_for)
        return Plan(nbytes, per_step * config.steps, per_step)
    few = min(config.chains, PROBE_CHAINS)
    at_few = step_cost(few)
    per_step = at_few
    if config.chains > few:
        slope = max(at_few - step_cost(1), 0.0) / (few - 1)
        per_step = at_few + slope * (config.chains - few)
    return Plan(nbytes, per_step * config.steps, per_step)


def check_run(problem, config: SGLDConfig, *, seed: int) -> Plan:
    """:func:`plan_run`, refused with one line when it exceeds the budget."""
    plan = plan_run(problem, config, seed=seed)
    check_budget(plan.nbytes, plan.seconds, _what(problem, config))
    return plan


def _what(problem, config: SGLDConfig) -> str:
    return (
        f"sampling {config.chains} chains x {config.steps} steps of "
        f"{problem.posterior.start.numel()} parameters"
    )
