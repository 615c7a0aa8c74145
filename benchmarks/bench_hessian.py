"""Time and peak memory of a reader's whole Hessian on its quotient, against quotient size,
beside the floor of ``torch.func.hessian`` on the same loss where that fits.

The reader is ``Linear(d, m)`` after a LayerNorm of width ``d``, followed by GELU and a linear
map to two outputs (so the loss is not quadratic in the reader), on ``n`` samples; its quotient
has ``m (d - 1)`` directions without a bias. Each size runs in a fresh process, so that the peak
resident memory it reports is its own.

    python benchmarks/bench_hessian.py              # quotients of about 1k and 4k
    python benchmarks/bench_hessian.py --sizes 1024 4096 16384 --max-memory 16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

ROWS = 512


def measure(directions: int, floor: bool) -> dict:
    import torch
    from torch import nn
    from torch.func import functional_call, hessian

    from llcgeo.numerics.paths.module import as_buffers
    from llcgeo.scanner.reader import quotient_hessian

    d = m = round(math.sqrt(directions)) + 1
    torch.manual_seed(0)
    x = nn.functional.layer_norm(torch.randn(ROWS, d, dtype=torch.float64), (d,))
    reader, tail = nn.Linear(d, m, bias=False).double(), nn.Linear(m, 2).double()
    model = nn.Sequential(reader, nn.GELU(), tail)
    as_buffers(tail)  # the reader's weight is the only parameter
    y = torch.randn(ROWS, 2, dtype=torch.float64)
    # the quotient: each output row orthogonal to the ones vector (LayerNorm's plane)
    ones = torch.ones(d, 1, dtype=torch.float64) / math.sqrt(d)
    plane = torch.linalg.qr(torch.eye(d, dtype=torch.float64) - ones @ ones.T)[0][:, : d - 1]
    basis = torch.kron(torch.eye(m, dtype=torch.float64), plane.contiguous())

    def loss(out, target):
        return 0.5 * (out - target).square().sum(dim=1)

    began = time.perf_counter()
    quotient_hessian(model, x, y, loss, basis)
    out = {"directions": basis.shape[1], "seconds": time.perf_counter() - began}
    if floor:
        began = time.perf_counter()
        weight = reader.weight.detach()
        h = hessian(lambda w: loss(functional_call(model, {"0.weight": w}, (x,)), y).mean())(weight)
        h = h.reshape(weight.numel(), -1)
        (basis.T @ h @ basis).numpy()
        out["floor_seconds"] = time.perf_counter() - began
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--floor-up-to", type=int, default=4096,
                        help="torch.func.hessian only up to this many directions")  # fmt: skip
    parser.add_argument("--max-memory", default="8", help="GB, passed to the child's budget")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.floor)))
        return
    print("directions  quotient_hessian  torch.func.hessian  peak memory")
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", str(size)]
        if size <= args.floor_up_to:
            command.append("--floor")
        env = {"LLCGEO_MAX_MEMORY_GB": args.max_memory, "LLCGEO_TIME_LIMIT": "inf"}
        done = subprocess.run(command, capture_output=True, text=True, check=True,
                              env={**os.environ, **env})  # fmt: skip
        r = json.loads(done.stdout.strip().splitlines()[-1])
        floor = f"{r['floor_seconds']:.2f} s" if "floor_seconds" in r else "-"
        print(f"{r['directions']:>10}  {r['seconds']:>14.2f} s  {floor:>18}  "
              f"{r['peak_gb']:.2f} GB")


if __name__ == "__main__":
    main()
