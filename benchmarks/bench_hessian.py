"""Time and peak memory of a reader's whole Hessian on its quotient, against quotient size,
beside the floor of ``torch.func.hessian`` on the same loss where that fits.

Two readers, each after a LayerNorm of width ``d`` (no bias, so the quotient has ``m (d - 1)``
directions), on ``n`` samples:

* ``inner``: ``Linear(d, m)`` followed by GELU and a linear map to two outputs, so the loss is
  not quadratic in the reader: its row-wise structure (``rowwise_hessian``: ``m`` products in
  the reader's outputs), beside Hessian-vector products in its weights (``quotient_hessian``);
* ``head``: ``Linear(d, m)`` whose logits the smoothed cross-entropy reads, ``m - 1`` output
  directions: the head's structure (``head_hessian``), beside the products on the same head.

Each Hessian is then whitened as the scan whitens it: by a Cholesky factor where one proves the
rank full (``full_rank_whitening``), timed beside the eigendecomposition it replaces
(``spectral_whitening``); "no factor" where none exists and the scan counts the rank by the
eigendecomposition. Each size runs in a fresh process, so that the peak resident memory it
reports is its own.

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


def measure(reader: str, directions: int, floor: bool) -> dict:
    import numpy as np
    import torch
    from torch import nn
    from torch.func import functional_call, hessian

    from llcgeo.numerics.paths.losses import cross_entropy, gaussian_loss
    from llcgeo.scanner.certify import complement, factored_basis
    from llcgeo.scanner.reader import (
        WEIGHT,
        frozen_upstream,
        head_hessian,
        quotient_hessian,
        reader_model,
    )
    from llcgeo.scanner.rowwise import rowwise_hessian
    from llcgeo.scanner.trace import find_norms, trace

    d = m = round(math.sqrt(directions)) + 1 + (reader == "head")
    torch.manual_seed(0)
    x = nn.functional.layer_norm(torch.randn(ROWS, d, dtype=torch.float64), (d,))
    plane = torch.from_numpy(complement(np.ones((1, d)), d))  # LayerNorm's plane
    if reader == "head":
        model, loss = nn.Linear(d, m, bias=False).double(), cross_entropy(0.1)
        y = torch.randint(m, (ROWS,))
        factors = (complement(np.ones((1, m)), m), plane.numpy())
        basis = torch.from_numpy(factored_basis(*factors, d))
        weights = {"weight": model.weight}
    else:  # the network traced as scan traces it, the reader's upstream frozen
        network = nn.Sequential(nn.LayerNorm(d, elementwise_affine=False),
                                nn.Linear(d, m, bias=False), nn.GELU(),
                                nn.Linear(m, 2))  # fmt: skip
        raw = torch.randn(ROWS, d, dtype=torch.float64)
        gm = trace(network.double(), raw[:2])
        ((norm_reader,),) = [n.readers for n in find_norms(gm)]
        model, x = frozen_upstream(reader_model(gm, norm_reader, torch.float64, False), raw)
        y, loss = torch.randn(ROWS, 2, dtype=torch.float64), gaussian_loss
        factors = (np.eye(m), plane.numpy())
        basis = torch.from_numpy(factored_basis(*factors, d))
        weights = {WEIGHT: model.get_parameter(WEIGHT)}

    out = {"reader": reader, "directions": basis.shape[1]}
    began = time.perf_counter()
    if reader == "head":
        structured = head_hessian(model, x, y, loss, factors)
    else:
        structured = rowwise_hessian(model, x, y, loss, factors, norm_reader.node)
    out["structured_seconds"] = time.perf_counter() - began
    _timed_whitening(out, structured)
    if reader == "inner" or floor:
        out["seconds"] = _timed(lambda: quotient_hessian(model, x, y, loss, basis))
    if floor:
        ((name, weight),) = weights.items()
        args, kwargs = ((), x) if isinstance(x, dict) else ((x,), {})

        def whole():
            h = hessian(lambda w: loss(functional_call(model, {name: w}, args, kwargs),
                                       y).mean())(weight.detach())  # fmt: skip
            h = h.reshape(weight.numel(), -1)
            return (basis.T @ h @ basis).numpy()

        out["floor_seconds"] = _timed(whole)
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def _timed_whitening(out: dict, hessian) -> None:
    """The whitening the scan takes (a Cholesky factor where it proves the rank full) beside
    the eigendecomposition it replaces there."""
    from llcgeo.scanner.block import full_rank_whitening, spectral_whitening

    began = time.perf_counter()
    out["factored"] = full_rank_whitening(hessian) is not None
    out["whitening_seconds"] = time.perf_counter() - began
    out["eigh_seconds"] = _timed(lambda: spectral_whitening(hessian))


def _timed(work) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--readers", nargs="+", default=["inner", "head"],
                        choices=["inner", "head"])  # fmt: skip
    parser.add_argument("--floor-up-to", type=int, default=4096,
                        help="torch.func.hessian (and a head's products) only up to this many "
                             "directions")  # fmt: skip
    parser.add_argument("--max-memory", default="8", help="GB, passed to the child's budget")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reader", default="inner", help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.reader, args.child, args.floor)))
        return
    print("reader  directions  structured  products (quotient_hessian)  torch.func.hessian  "
          "whitened by Cholesky  by eigh  peak memory")  # fmt: skip
    for reader in args.readers:
        for size in args.sizes:
            print(_line(_child(reader, size, size <= args.floor_up_to, args.max_memory)),
                  flush=True)  # fmt: skip


def _child(reader: str, size: int, floor: bool, memory: str) -> dict:
    command = [sys.executable, __file__, "--child", str(size), "--reader", reader]
    if floor:
        command.append("--floor")
    env = {"LLCGEO_MAX_MEMORY_GB": memory, "LLCGEO_TIME_LIMIT": "inf"}
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, **env})  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _line(r: dict) -> str:
    def seconds(key):
        return f"{r[key]:.2f} s" if key in r else "-"

    return (f"{r['reader']:>6}  {r['directions']:>10}  {seconds('structured_seconds'):>10}  "
            f"{seconds('seconds'):>27}  {seconds('floor_seconds'):>18}  {_cholesky(r):>20}  "
            f"{seconds('eigh_seconds'):>7}  {r['peak_gb']:.2f} GB")


def _cholesky(r: dict) -> str:
    """The factor's time, or why the scan would not take it (no factor: the rank is counted)."""
    return f"{r['whitening_seconds']:.2f} s" if r["factored"] else "no factor"


if __name__ == "__main__":
    main()
