"""What the first ``estimate_llc`` call of a fresh process costs beyond a warm one.

Problem: ``bench_sgld.py``'s, a linear layer ``y = W x + b`` fitted to teacher-student data on
the LayerNorm image, ``d = m = 32`` (``n = 2 000`` here: the run is short so that what the first
call adds stands out); 4 chains x 200 steps, full batch. Each repeat is a fresh Python process
(``python -c``), which times ``import llcgeo``, the first call and a second (warm) call on the
same data, and names the top-level modules the first call imported. A first call that costs
many warm calls is paying for imports or one-time set-up that a user waits through.

    python benchmarks/bench_first_call.py               # 3 fresh processes on the CPU
    python benchmarks/bench_first_call.py --device cuda --repeats 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time
started = time.perf_counter()
import torch
import llcgeo
from llcgeo import SGLDConfig, estimate_llc
from llcgeo.manifolds import LayerNormImage, LinearLayer
from llcgeo.numerics import teacher_student
imported = time.perf_counter() - started
fit = teacher_student(LayerNormImage({d}), LinearLayer({m}, bias=True), {n}, seed=0)
layer, config = fit.as_linear(), SGLDConfig(eps=1e-4, chains=4, steps=200, burnin=0)
def call():
    began = time.perf_counter()
    estimate_llc(layer, fit.inputs, fit.targets, config=config, device={device!r}, seed=0)
    return time.perf_counter() - began
before = set(sys.modules)
first = call()
new = sorted(set(sys.modules) - before)
warm = min(call() for _ in range(3))
print(json.dumps({{"import": imported, "first": first, "warm": warm, "new": new}}))
"""


def fresh_run(args) -> dict:
    """One fresh process's figures (its last stdout line, JSON)."""
    code = CHILD.format(d=args.d, m=args.m, n=args.n, device=args.device)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes to run")
    args = parser.parse_args()
    print(f"Linear({args.d}, {args.m}) on the LayerNorm image, n = {args.n}, {args.device}")
    for k in range(args.repeats):
        r = fresh_run(args)
        print(
            f"process {k + 1}: import {r['import']:.3f} s, first call {r['first']:.3f} s, "
            f"warm call {r['warm']:.3f} s (best of 3), first / warm {r['first'] / r['warm']:.2f}"
        )
        print(f"  imported by the first call: {_modules(r['new'])}")


def _modules(names: list[str]) -> str:
    """``k modules`` and their packages (the first two parts of each name, private ones left
    out): enough to see which heavy package a first call loads."""
    if not names:
        return "nothing"
    packages = sorted({".".join(n.split(".")[:2]) for n in names if not n.startswith("_")})
    return f"{len(names)} modules: {', '.join(packages[:12])}{' ...' if len(packages) > 12 else ''}"


if __name__ == "__main__":
    main()
