"""Runs are planned before their first step: refused within seconds, with the figures and the
flags that raise the budget, or run as asked."""

from __future__ import annotations

import time

import pytest
import torch

from llcgeo import SGLDConfig, estimate_llc
from llcgeo.errors import SpecError
from llcgeo.limits import MEMORY_ENV, TIME_ENV
from llcgeo.numerics.paths.choose import model_problem
from llcgeo.numerics.plan import plan_run, planned_bytes

HANG = 60.0  # seconds: the refusals take well under one


def _labels(rows: int = 200, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 4, generator=g), torch.randint(0, 3, (rows,), generator=g)


def test_a_million_chains_of_a_softmax_head_are_refused_before_a_step():
    x, y = _labels()
    began = time.perf_counter()
    config = SGLDConfig(chains=10**6, steps=50, burnin=10)
    with pytest.raises(SpecError, match=r"1000000 chains x 50 steps.*--max-memory GB"):
        estimate_llc(torch.nn.Linear(4, 3), x, y, loss="cross_entropy", config=config)
    assert time.perf_counter() - began < HANG


def test_the_memory_of_a_step_grows_with_its_batch_and_chains():
    x, y = _labels()
    full = model_problem(torch.nn.Linear(4, 3), x, y, SGLDConfig(), None, "cross_entropy", "cpu")
    small = model_problem(torch.nn.Linear(4, 3), x, y, SGLDConfig(batch_size=10), None,
                          "cross_entropy", "cpu")  # fmt: skip
    assert full.footprint.work_per_chain > small.footprint.work_per_chain > 0
    assert planned_bytes(full, 8, 100) > planned_bytes(full, 4, 100) > planned_bytes(full, 4, 10)


def test_a_time_budget_refuses_a_long_run_and_a_larger_one_lets_it_run(monkeypatch):
    x, y = _labels()
    config = SGLDConfig(chains=2, steps=400, burnin=100)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    monkeypatch.setenv(TIME_ENV, "1e-6")
    with pytest.raises(SpecError, match=f"more than the budget.*{TIME_ENV}"):
        estimate_llc(model, x, y, loss="cross_entropy", config=config, device="cpu")
    monkeypatch.setenv(TIME_ENV, "inf")
    monkeypatch.setenv(MEMORY_ENV, "inf")
    problem = model_problem(model, x, y, config, None, "cross_entropy", "cpu")
    assert plan_run(problem, config, seed=0).seconds > 0


def test_the_planned_time_is_the_runs_own_order_of_magnitude():
    """The plan's time against the run it planned, timed in the same process. Loose (a factor
    of 20): the plan guards a budget against runs that would take orders of magnitude too
    long, and a shared machine's load moves both figures."""
    x, y = _labels(400)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    config = SGLDConfig(eps=1e-5, chains=16, steps=600, burnin=100, batch_size=64)
    problem = model_problem(model, x, y, config, None, "cross_entropy", "cpu")
    planned = plan_run(problem, config, seed=0).seconds
    from llcgeo.numerics.runner import run_problem

    began = time.perf_counter()
    run_problem(problem, config, seed=0)
    actual = time.perf_counter() - began
    assert actual / 20 < planned < 20 * actual
