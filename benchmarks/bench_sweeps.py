"""The main job on a busy machine, and on each executor.

1. ``llcgeo report`` (all suites, small scale, a fresh output folder each run) on an idle
   machine, then with one CPU-bound process per core running beside it (started and stopped
   here): the ratio of the two wall times. The aim is at most 2.5.
2. The same report in-process (``--workers 1``), on 2 local worker processes (the default on
   2 cores), and on a 2-worker Dask LocalCluster: wall times and speed-ups over in-process.

    python benchmarks/bench_sweeps.py [--suite all] [--repeats 2] [--skip busy|executors]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time


def _burn(stop) -> None:  # a competing CPU-bound job
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x = (x * 31 + i) % 1_000_003


def report_seconds(suite: str, *extra: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "llcgeo.cli", "report", "--suite", suite,
                   "--out", out, "--quiet", *extra]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def busy(suite: str) -> tuple[float, float]:
    idle = report_seconds(suite)
    stop = multiprocessing.Event()
    load = [multiprocessing.Process(target=_burn, args=(stop,)) for _ in range(os.cpu_count() or 1)]
    for p in load:
        p.start()
    try:
        loaded = report_seconds(suite)
    finally:
        stop.set()
        for p in load:
            p.join()
    return idle, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="all")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip", choices=("busy", "executors"), action="append", default=[])
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; llcgeo report --suite {args.suite}")
    for run in range(0 if "busy" in args.skip else args.repeats):
        idle, loaded = busy(args.suite)
        print(f"run {run + 1}: idle {idle:.1f} s, beside {os.cpu_count()} CPU-bound processes "
              f"{loaded:.1f} s: ratio {loaded / idle:.2f}")  # fmt: skip
    for run in range(0 if "executors" in args.skip else args.repeats):
        base = report_seconds(args.suite, "--workers", "1")
        procs = report_seconds(args.suite, "--workers", "2")
        dask = report_seconds(args.suite, "--scheduler", "dask", "--workers", "2")
        print(f"run {run + 1}: in-process {base:.1f} s; 2 processes {procs:.1f} s "
              f"({base / procs:.2f}x); Dask LocalCluster, 2 workers {dask:.1f} s "
              f"({base / dask:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
