"""Every executor runs a sweep unchanged and gives the same numbers, case for case.

Each case seeds its own generators from its job, so in-process, local processes and a Dask
LocalCluster of two worker processes must store identical records (all but the compute time).
"""

from __future__ import annotations

import json

import pytest

from llcgeo.errors import SpecError
from llcgeo.report import run_experiments
from llcgeo.report.executors import DaskExecutor, InProcess, LocalProcesses, make_executor
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
