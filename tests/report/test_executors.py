"""Every executor runs a sweep unchanged and gives the same numbers, case for case.

Each case seeds its own generators from its job, so in-process, local processes and a Dask
LocalCluster of two worker processes must store identical records (all but the compute time).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from llcgeo.errors import SpecError
from llcgeo.report import run_experiments
from llcgeo.report.executors import (
    PARENT_POLL,
    DaskExecutor,
    InProcess,
    LocalProcesses,
    make_executor,
)
from llcgeo.suites import select, suite


def _records(out, executor) -> dict:
    experiments = select(suite("paper"), ["threshold"])
    with executor:
        run_experiments(experiments, out=out, scale="small", device="cpu", executor=executor)
    data = json.loads((out / "results.json").read_text())
    return {
        case["key"]: {k: v for k, v in case["record"].items() if k != "seconds"}
        for case in data["cases"]
    }


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    return _records(tmp_path_factory.mktemp("inprocess"), InProcess())


@pytest.mark.slow
def test_local_processes_give_the_in_process_numbers(tmp_path, in_process):
    assert _records(tmp_path, LocalProcesses(2)) == in_process


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_in_process_numbers(tmp_path, in_process):
    pytest.importorskip("distributed")
    records = _records(tmp_path, DaskExecutor(workers=2))
    assert len(records) == 7 and records == in_process


def test_scheduler_names_are_checked():
    with pytest.raises(SpecError, match="scheduler must be one of"):
        make_executor("threads")
    with pytest.raises(SpecError, match="workers must be at least 1"):
        make_executor("processes", 0)


PARENT = """
import os, sys, time
from llcgeo.report.executors import LocalProcesses
pool = LocalProcesses(2)
pids = {pool._pool.submit(os.getpid).result() for _ in range(8)}
print(*pids, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "\\tZ" not in next(line for line in status if line.startswith("State:"))
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_local_workers_leave_when_their_parent_is_killed():
    """A report killed outright (no chance to shut its pool down) leaves no idle workers."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert pids and all(_alive(p) for p in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60 * PARENT_POLL  # a bound against a hang, not a timing
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
