"""Run a sweep of experiments through the results store, then write the report.

Every job of every experiment is listed first; jobs already in the store are reused, the rest
run on an executor (:mod:`llcgeo.report.executors`: in this process, local processes or Dask)
and each is stored the moment it comes back, so an interrupted sweep loses at most the cases in
flight and a rerun of the same command computes nothing it has already done. The output folder
is locked for the run, so two runs never compute the same case twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llcgeo
from llcgeo.errors import SpecError
from llcgeo.limits import with_budget
from llcgeo.numerics.device import resolve_device
from llcgeo.reconcile.experiment import Experiment, check_scale
from llcgeo.reconcile.model import ExperimentResult
from llcgeo.report.executors import InProcess, Task
from llcgeo.report.files import prepare_folder
from llcgeo.report.render import DEFAULT_TITLE, ReportMeta, ReportPaths, check_name, write_report
from llcgeo.report.store import ResultStore, StoredCase, code_fingerprint, exclusive

PHASES = ("plan", "problem", "start", "done")


@dataclass(frozen=True)
class ProgressEvent:
    """What a sweep is doing, for a progress display.

    ``phase`` is "plan" (once, after the store was read: ``reused`` of ``total`` found),
    "problem" (an untrusted stored file, in ``message``), "start" (in-process only) or "done"
    (case ``index`` of ``total``, 1-based, counting cases in the order they finish).
    ``remaining`` estimates the seconds left: each experiment's pending cases at the mean time
    of its own cases finished in this run (an experiment with none yet: the mean of all), over
    the executor's workers; ``None`` before the first case finishes.
    """

    phase: str
    index: int
    total: int
    experiment: str
    elapsed: float
    remaining: float | None
    reused: int = 0
    message: str = ""


@dataclass(frozen=True)
class Report:
    """A finished sweep: where its report is, what each experiment concluded, what it cost."""

    paths: ReportPaths
    results: tuple[ExperimentResult, ...]
    computed: int
    reused: int
    problems: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class _Planned:
    experiment: Experiment
    job: Any
    key: str
    stored: StoredCase | None


Progress = Callable[[ProgressEvent], None]


@with_budget
def run_experiments(
    experiments: Sequence[Experiment],
    *,
    out: str | Path,
    scale: str,
    device: str = "auto",
    title: str = DEFAULT_TITLE,
    preamble: str = "",
    progress: Progress | None = None,
    executor=None,
) -> Report:
    """Run (or reuse) every job of ``experiments`` at ``scale`` on ``executor`` (default: in
    this process) and write the report to ``out``."""
    start = time.perf_counter()
    folder = prepare_folder(out)
    scale, device = check_scale(scale), str(resolve_device(device))
    _check_experiments(experiments)
    notify = progress or (lambda event: None)
    with exclusive(folder):
        store = ResultStore(folder / "store", f"{llcgeo.__version__}+{code_fingerprint()}")
        plan = _plan(experiments, scale, store, notify, start)
        cases, computed = _execute(plan, device, store, notify, start, executor or InProcess())
        results = tuple(_summarize(e, cases) for e in experiments)
        meta = ReportMeta(
            title=title,
            preamble=preamble,
            version=llcgeo.__version__,
            device=device,
            scale=scale,
            wall_seconds=time.perf_counter() - start,
            computed=computed,
            reused=len(plan) - computed,
            problems=tuple(store.problems),
        )
        paths = write_report(results, cases, folder, meta)
    return Report(paths, results, computed, meta.reused, meta.problems, meta.wall_seconds)


def _check_experiments(experiments: Sequence[Experiment]) -> None:
    if not experiments:
        raise SpecError("no experiments to run")
    names = [check_name(e.name) for e in experiments]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SpecError(f"experiment names must be unique; repeated: {', '.join(repeated)}")


def _readable(experiment: Experiment, store: ResultStore, stored: StoredCase | None):
    """The stored case if its record loads as the experiment's record type; else a problem
    noted in the store, and ``None`` so that the case is computed again."""
    if stored is None:
        return None
    try:
        experiment.load(stored.record)
    except (KeyError, TypeError, ValueError) as err:
        store.problems.append(
            f"{experiment.name}/{stored.key}: its record does not load ({err}); recomputing"
        )
        return None
    return stored


def _plan(experiments, scale: str, store: ResultStore, notify: Progress, start: float):
    plan = []
    for experiment in experiments:
        for job in experiment.jobs(scale):
            key = experiment.job_key(job, store.version)
            problems = len(store.problems)
            stored = _readable(experiment, store, store.load(experiment.name, key, job))
            for message in store.problems[problems:]:
                notify(_event("problem", 0, 0, experiment.name, start, message=message))
            plan.append(_Planned(experiment, job, key, stored))
    reused = sum(p.stored is not None for p in plan)
    notify(_event("plan", 0, len(plan), "", start, reused=reused))
    return plan


def _execute(plan: list[_Planned], device: str, store, notify, start: float, executor):
    cases = {i: p.stored for i, p in enumerate(plan) if p.stored is not None}
    tasks = [
        Task(i, p.experiment.run, p.job, device) for i, p in enumerate(plan) if p.stored is None
    ]
    clock = _Clock(plan, executor.workers)
    if isinstance(executor, InProcess) and tasks:
        first = plan[tasks[0].index].experiment.name
        notify(_event("start", len(plan) - len(tasks) + 1, len(plan), first, start))
    for done, (index, record, seconds) in enumerate(executor.results(tasks), start=1):
        planned = plan[index]
        name = planned.experiment.name
        cases[index] = store.save(name, planned.key, planned.job, record, seconds=seconds)
        clock.finished(name, seconds)
        finished = len(plan) - len(tasks) + done
        notify(_event("done", finished, len(plan), name, start, remaining=clock.remaining()))
        if isinstance(executor, InProcess) and done < len(tasks):
            following = plan[tasks[done].index].experiment.name
            notify(_event("start", finished + 1, len(plan), following, start,
                          remaining=clock.remaining()))  # fmt: skip
    return [cases[i] for i in range(len(plan))], len(tasks)


class _Clock:
    """Time left, per experiment from its own finished cases, shared among the workers."""

    def __init__(self, plan: list[_Planned], workers: int):
        self.pending: dict[str, int] = {}
        for p in plan:
            if p.stored is None:
                name = p.experiment.name
                self.pending[name] = self.pending.get(name, 0) + 1
        self.spent: dict[str, list[float]] = {name: [] for name in self.pending}
        self.workers = max(1, workers)

    def finished(self, experiment: str, seconds: float) -> None:
        self.spent[experiment].append(seconds)
        self.pending[experiment] -= 1

    def remaining(self) -> float | None:
        every = [s for times in self.spent.values() for s in times]
        if not every:
            return None
        overall = sum(every) / len(every)
        total = sum(
            left * (sum(self.spent[name]) / len(self.spent[name]) if self.spent[name] else overall)
            for name, left in self.pending.items()
        )
        return total / self.workers


def _event(phase, index, total, experiment, start, **extra) -> ProgressEvent:
    extra.setdefault("remaining", None)
    elapsed = time.perf_counter() - start
    return ProgressEvent(phase, index, total, experiment, elapsed, **extra)


def _summarize(experiment: Experiment, cases: list[StoredCase]) -> ExperimentResult:
    records = [experiment.load(c.record) for c in cases if c.experiment == experiment.name]
    return experiment.summarize(records)
