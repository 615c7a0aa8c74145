"""Where a sweep's cases run: in this process, in local worker processes, or on Dask.

Every executor takes the same :class:`Task` list and yields each finished task as ``(index,
record, seconds)`` in the order they finish; only the calling process writes the results store,
so the store stays correct whatever runs the cases. A task is an experiment's run function (a
module-level function, so it pickles by reference), a job (a frozen dataclass) and the device.
Each case seeds its own generators from its job, so every executor gives the same numbers for the
same seeds on the same device. Each task carries the budget (:class:`llcgeo.limits.Budget`) in
force where ``results`` is called, and runs under it wherever it runs: a worker process has
neither this process's context variables nor, on a remote cluster, its environment. In a
worker, torch gets ``cores // workers`` threads (:func:`llcgeo.numerics.device.use_threads`), so
several workers never oversubscribe the cores.

>>> tasks = [Task(0, max, 3, 5), Task(1, max, 7, 2)]  # run(job, device) = max(job, device)
>>> with InProcess() as executor:
...     [(i, r) for i, r, _ in executor.results(tasks)]
[(0, 5), (1, 7)]
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Any

from llcgeo.errors import SpecError
from llcgeo.limits import Budget, current_budget, using
from llcgeo.serialize import to_jsonable
from llcgeo.validate import integer

SCHEDULERS = ("auto", "inprocess", "processes", "dask")  # and a Dask scheduler's address


@dataclass(frozen=True)
class Task:
    """Run ``run(job, device)`` under ``budget``; ``index`` says which case of the plan it is.
    ``budget=None``: the executor's ``results`` gives it the one in force there."""

    index: int
    run: Callable[[Any, str], Any]
    job: Any
    device: str
    budget: Budget | None = None


Finished = tuple[int, Any, float]


def with_budget_in_force(tasks: Sequence[Task]) -> list[Task]:
    """``tasks``, each without a budget given the one in force now, for the worker to run
    under."""
    budget = current_budget()
    return [task if task.budget is not None else replace(task, budget=budget) for task in tasks]


def run_task(task: Task, threads: int | None = None) -> Finished:
    """In a worker: the task's plain-JSON record and its compute time, with ``threads`` torch
    threads when given."""
    if threads is not None:
        from llcgeo.numerics.device import use_threads

        use_threads(threads)
    began = time.perf_counter()
    with using(task.budget):
        record = to_jsonable(task.run(task.job, task.device))
    return task.index, record, time.perf_counter() - began


def worker_threads(workers: int) -> int:
    """Torch threads for each of ``workers`` processes on this machine: the cores, shared."""
    return max(1, (os.cpu_count() or 1) // workers)


PARENT_POLL = 1.0  # seconds between a worker's checks that its parent is alive


def leave_with(parent: int) -> None:
    """In a worker: exit once ``parent`` is gone (killed before it could shut its pool down),
    rather than wait for work as an orphan for ever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="llcgeo-parent-watch", daemon=True).start()


class InProcess:
    """One case after another in this process (the default)."""

    workers = 1

    def results(self, tasks: Sequence[Task]) -> Iterator[Finished]:
        return map(run_task, with_budget_in_force(tasks))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class LocalProcesses:
    """``workers`` fresh Python processes on this machine (spawned, so no torch thread state
    is inherited), each running whole cases."""

    def __init__(self, workers: int):
        self.workers = _check_workers(workers)
        self._pool = ProcessPoolExecutor(
            self.workers, get_context("spawn"), leave_with, (os.getpid(),)
        )

    def results(self, tasks: Sequence[Task]) -> Iterator[Finished]:
        threads = worker_threads(self.workers)
        tasks = with_budget_in_force(tasks)  # now: a generator's body would run on first next()
        futures = [self._pool.submit(run_task, task, threads) for task in tasks]
        return (future.result() for future in as_completed(futures))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """A Dask distributed cluster: a ``LocalCluster`` of ``workers`` single-threaded worker
    processes sized to this machine, or the existing scheduler at ``address``."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SpecError(
                'the Dask scheduler needs the dask extra: pip install -e ".[dask]"'
            ) from None
        self._cluster = None
        if address is None:
            self.workers = _check_workers(os.cpu_count() or 1 if workers is None else workers)
            self._cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                dashboard_address=None,
            )  # fmt: skip
            self._threads: int | None = worker_threads(self.workers)
            self._client = Client(self._cluster)
        else:
            self._client = _connect(Client, address)
            self.workers = max(1, len(self._client.scheduler_info()["workers"]))
            self._threads = None  # the cluster's own machines decide their threads

    def results(self, tasks: Sequence[Task]) -> Iterator[Finished]:
        from distributed import as_completed as dask_completed

        tasks = with_budget_in_force(tasks)
        futures = [self._client.submit(run_task, t, self._threads, pure=False) for t in tasks]
        return (finished for _, finished in dask_completed(futures, with_results=True))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _connect(client_type, address: str):
    try:
        return client_type(address, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise SpecError(f"cannot reach the Dask scheduler at {address!r}: {err}") from None


def _check_workers(workers: int) -> int:
    return integer(workers, "workers", 1)


def make_executor(scheduler: str = "auto", workers: int | None = None):
    """The executor a command line names: ``auto`` (local processes, one a core, where this
    machine has several cores; else this process), ``inprocess``, ``processes`` (``workers``
    local processes, default the cores), ``dask`` (a ``LocalCluster``), or a Dask scheduler
    address such as ``tcp://10.0.0.5:8786``."""
    if scheduler == "auto":
        cores = os.cpu_count() or 1 if workers is None else workers
        return InProcess() if cores <= 1 else LocalProcesses(cores)
    if scheduler == "inprocess":
        return InProcess()
    if scheduler == "processes":
        return LocalProcesses(os.cpu_count() or 1 if workers is None else workers)
    if scheduler == "dask":
        return DaskExecutor(None, workers)
    if "://" in scheduler or ":" in scheduler:
        return DaskExecutor(scheduler)
    raise SpecError(
        f"scheduler must be one of {SCHEDULERS} or a Dask scheduler address, got {scheduler!r}"
    )
