"""Write ``docs/benchmarks.md`` from the benchmarks' own output.

Each benchmark below runs in a fresh process from the repository root; the page gives, for each,
what it measures, the command exactly as run, its wall time and exit status, and its standard
output verbatim. The page opens with the date, the machine and the mode. A comparison that needs
a peer library (devinterp, canonical-interp) that is not installed is not run: the page lists it
as skipped. Nothing on the page is typed by hand: to change a figure, rerun this script.

    python benchmarks/make_docs.py             # each benchmark at its own settings (an hour or so)
    python benchmarks/make_docs.py --quick     # shorter settings, no load test (about 10 minutes)
    python benchmarks/make_docs.py --only sgld --only theory --out /tmp/benchmarks.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
REPORT_OUT = "{tmp}"  # a fresh folder for each run of the main job, filled in when it runs
FRESH = '"$(mktemp -d)"'  # how the page shows that folder: a command to paste as it stands
PEERS = {
    "devinterp": ("devinterp", "pip install devinterp==2.0.1"),
    "canonical": ("canonical_interp", "pip install --no-deps canonical-interp"),
}
# bench_network.py's --skip names for each peer (canonical-interp compiled is a second row)
NETWORK_SKIPS = {"devinterp": ("devinterp",), "canonical": ("canonical", "compiled")}


@dataclass(frozen=True)
class Benchmark:
    """One command and what it measures; ``quick``: the command in quick mode (``None``: the
    same as in full mode; ``()``: not run in quick mode); ``peers``: the libraries its
    comparisons need."""

    name: str
    what: str
    command: tuple[str, ...]
    quick: tuple[str, ...] | None = None
    peers: tuple[str, ...] = ()


PY = ("python",)
BENCHMARKS = (
    Benchmark("main job", "`llcgeo report`: all suites at `--scale small`, from scratch, into a "
              "fresh folder (the main job CI runs)", ("llcgeo", "report", "--out", REPORT_OUT)),
    Benchmark("sweeps", "the main job beside one CPU-bound process per core (the ratio of the "
              "loaded to the idle wall time), and on each executor: in-process, 2 local "
              "processes, a 2-worker Dask LocalCluster",
              (*PY, "benchmarks/bench_sweeps.py"),
              quick=(*PY, "benchmarks/bench_sweeps.py", "--suite", "singular", "--repeats", "1",
                     "--skip", "busy")),
    Benchmark("guard", "the speed guard CI runs: each fast path against the general path and "
              "against the floor (a hand-written batched step), ratios within one run",
              (*PY, "benchmarks/guard.py")),
    Benchmark("sgld", "batched SGLD on a linear layer (LayerNorm data, d = m = 32, n = 10 000, "
              "4 chains x 500 draws, minibatch 256) against devinterp, and the throughput at "
              "d = m = 256, 64 chains", (*PY, "benchmarks/bench_sgld.py"),
              quick=(*PY, "benchmarks/bench_sgld.py", "--repeats", "2"), peers=("devinterp",)),
    Benchmark("network MLP", "an MLP 32-64-64-10 against the floor and the peers (n = 10 000, "
              "4 chains x 500 draws + 100 burn-in, minibatch 256)",
              (*PY, "benchmarks/bench_network.py"),
              quick=(*PY, "benchmarks/bench_network.py", "--repeats", "1"),
              peers=("devinterp", "canonical")),
    Benchmark("network transformer", "a 2-block pre-LN transformer against the vmap floor and "
              "the peers", (*PY, "benchmarks/bench_network.py", "--model", "transformer",
                            "--repeats", "1"),
              quick=(*PY, "benchmarks/bench_network.py", "--model", "transformer", "--repeats",
                     "1", "--n", "256", "--draws", "50", "--burnin", "10", "--train-steps",
                     "50"), peers=("devinterp", "canonical")),
    Benchmark("sweep", "an eps x gamma grid of 6 x 4 points as one batch, against 24 separate "
              "runs", (*PY, "benchmarks/bench_sweep.py")),
    Benchmark("first call", "what the first `estimate_llc` call of a fresh process costs beyond "
              "a warm one", (*PY, "benchmarks/bench_first_call.py"),
              quick=(*PY, "benchmarks/bench_first_call.py", "--repeats", "1")),
    Benchmark("theory", "exact predictions: named families at d = 1024, random and structured "
              "degree-4 hypersurfaces in d = 12", (*PY, "benchmarks/bench_theory.py")),
    Benchmark("hessian", "a scanned reader's whole Hessian on its quotient (float64): an inner "
              "reader's from its row-wise structure and by batched Hessian-vector products, a "
              "head's from its structure (and by the products beside it); time and peak memory "
              "against quotient size, beside torch.func.hessian where that fits",
              (*PY, "benchmarks/bench_hessian.py", "--sizes", "1024", "4096", "16384",
               "--max-memory", "16"),
              quick=(*PY, "benchmarks/bench_hessian.py", "--sizes", "1024")),
    Benchmark("network suite", "the `network` suite alone: 4 digits heads and 2 transformer "
              "heads, trained, their exact Hessians, 16 chains each beside the quadratic model",
              ("llcgeo", "report", "--suite", "network", "--out", REPORT_OUT), quick=()),
    Benchmark("singular suite", "the `singular` suite alone: deep linear networks on three "
              "geometries, MALA at several n as one batch, SGLD beside it",
              ("llcgeo", "report", "--suite", "singular", "--out", REPORT_OUT), quick=()),
    Benchmark("paper suite at full scale", "the `paper` suite at `--scale full` on the CPU",
              ("llcgeo", "report", "--suite", "paper", "--scale", "full", "--device", "cpu",
               "--out", REPORT_OUT), quick=()),
    Benchmark("large n", "n = 10 000 000 on a cone (an implicit manifold: Newton projection in "
              "chunks), 2 chains x 50 steps", ("llcgeo", "estimate", "--manifold", "implicit",
              "--equation", "x**2+y**2-z**2", "--variables", "x,y,z", "--m", "1", "--n",
              "10000000", "--chains", "2", "--steps", "50", "--burnin", "10", "--max-memory",
              "4"), quick=()),
)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    benchmark: Benchmark
    command: tuple[str, ...]
    seconds: float
    status: str
    output: str
    skipped: tuple[str, ...]
    load: float  # the 1-minute load average when it began


def missing_peers() -> dict[str, str]:
    """Each peer that is not installed, with the line that installs it."""
    return {peer: how for peer, (module, how) in PEERS.items()
            if importlib.util.find_spec(module) is None}  # fmt: skip


def planned(b: Benchmark, quick: bool, missing: dict[str, str]):
    """``(command, skipped rows)`` of ``b`` in this mode with these peers missing."""
    command = list(b.quick if quick and b.quick is not None else b.command)
    skipped = tuple(f"{b.name}: the {peer} comparison ({peer} is not installed: {missing[peer]})"
                    for peer in b.peers if peer in missing)  # fmt: skip
    if "benchmarks/bench_network.py" in command:
        for peer in (p for p in b.peers if p in missing):
            for name in NETWORK_SKIPS[peer]:
                command += ["--skip", name]
    return tuple(command), skipped


def run(b: Benchmark, quick: bool, missing: dict[str, str], timeout: float) -> Outcome:
    """Run ``b`` from the repository root, its output kept as it is."""
    command, skipped = planned(b, quick, missing)
    load = os.getloadavg()[0]
    env = {**os.environ, "MPLBACKEND": "Agg", "TQDM_DISABLE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable if c == "python" else c.replace(REPORT_OUT, tmp) for c in command]
        began = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)  # fmt: skip
            status = "ok" if done.returncode == 0 else f"exit status {done.returncode}"
            output = done.stdout + (_tail(done.stderr) if done.returncode else "")
        except subprocess.TimeoutExpired as stopped:
            status, output = f"stopped after {timeout:g} s", _text(stopped.stdout)
    shown = tuple(FRESH if c == REPORT_OUT else c for c in command)
    return Outcome(b, shown, time.perf_counter() - began, status, output, skipped, load)


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _tail(stderr: str, lines: int = 20) -> str:
    kept = stderr.strip().splitlines()[-lines:]
    return "\n[stderr, last lines]\n" + "\n".join(kept) if kept else ""


def machine() -> str:
    """The machine, in one sentence: system, CPU, cores, memory, load, Python, torch, GPU."""
    import torch

    names = [line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or "unknown CPU"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, "
            f"{memory:.0f} GiB of memory, {gpu}; load average {load} when the run began; "
            f"Python {platform.python_version()}, torch {torch.__version__}")  # fmt: skip


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def revision() -> str:
    def git(*args):
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" with uncommitted changes" if git("status", "--porcelain") else "")


def page(outcomes: list[Outcome], args, began: datetime, where: str, left_out) -> str:
    mode = ("quick: shorter settings than each benchmark's own defaults, and no load test "
            "(each command below says what ran)" if args.quick
            else "full: each benchmark at its own settings")  # fmt: skip
    lines = [
        "# Benchmarks",
        "",
        f"*Generated by `{_invocation(args)}` on {began:%Y-%m-%d %H:%M} UTC, llcgeo at "
        f"{revision()}. Machine: {where}. Mode: {mode}.*",
        "",
        "Every figure on this page is a benchmark's own output, copied by "
        "[`benchmarks/make_docs.py`](../benchmarks/make_docs.py); to change one, rerun it. "
        "Wall times on a shared machine vary from run to run (by up to 1.5x here), so the "
        "benchmarks report the best of several runs, and the guard compares ratios within one "
        "run. No GPU figures are given unless the machine line names a GPU.",
        "",
        f"| benchmark | wall time | status | load average when it began ({os.cpu_count()} "
        "cores) |",
        "|---|---|---|---|",
        *(f"| [{o.benchmark.name}](#{_anchor(o.benchmark.name)}) | {o.seconds:.0f} s | "
          f"{o.status} | {o.load:.1f} |" for o in outcomes),
        "",
    ]  # fmt: skip
    skipped = [s for o in outcomes for s in o.skipped]
    skipped += [f"{name}: not run in quick mode" for name in left_out]
    if skipped:
        lines += ["Not run, so not shown (no figure stands in for them):", ""]
        lines += [f"- {s}" for s in skipped] + [""]
    for o in outcomes:
        lines += _section(o)
    return "\n".join(lines) + "\n"


def _section(o: Outcome) -> list[str]:
    what = o.benchmark.what[:1].upper() + o.benchmark.what[1:]
    return [f"## {o.benchmark.name}", "", what + ".", "", "```bash",
            " ".join(c if c == FRESH else shlex.quote(c) for c in o.command), "```", "",
            f"{o.seconds:.0f} s wall, {o.status}, begun at a load average of {o.load:.1f}. "
            "Its output:", "", "```text",
            o.output.rstrip() or "(no output)", "```", ""]  # fmt: skip


def _anchor(title: str) -> str:
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return kept.replace(" ", "-")


def _invocation(args) -> str:
    parts = ["python benchmarks/make_docs.py"] + (["--quick"] if args.quick else [])
    parts += [f"--only {shlex.quote(n)}" for n in args.only]
    return " ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter settings, no load test")
    names = "; ".join(b.name for b in BENCHMARKS)
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these ({names})")  # fmt: skip
    parser.add_argument("--out", type=Path, default=PAGE)
    parser.add_argument("--timeout", type=float, help="seconds a benchmark may run "
                        "(default 600 in quick mode, 3600 in full)")  # fmt: skip
    args = parser.parse_args()
    unknown = set(args.only) - {b.name for b in BENCHMARKS}
    if unknown:
        parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    left_out = [b.name for b in chosen if args.quick and b.quick == ()]
    chosen = [b for b in chosen if b.name not in left_out]
    timeout = args.timeout or (600.0 if args.quick else 3600.0)
    began, where, missing = datetime.now(timezone.utc), machine(), missing_peers()
    outcomes = []
    for b in chosen:
        print(f"make_docs: {b.name} ...", file=sys.stderr, flush=True)
        outcomes.append(run(b, args.quick, missing, timeout))
        print(f"make_docs: {b.name}: {outcomes[-1].status}, {outcomes[-1].seconds:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page(outcomes, args, began, where, left_out))
    print(f"make_docs: wrote {args.out}", file=sys.stderr)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
