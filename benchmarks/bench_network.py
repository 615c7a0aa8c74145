"""llcgeo's general path against devinterp and canonical-interp on the same MLP.

Problem: an MLP ``32 -> 64 -> 64 -> 10`` (ReLU) at a teacher's parameters, ``n = 10 000``
samples of Gaussian inputs with the teacher's outputs plus noise 0.1, the Gaussian loss
``1/2 |y - f(x)|^2``; SGLD with ``eps = 1e-4``, ``gamma = 100``, ``nbeta = n / log n``,
4 chains x 500 draws after 100 burn-in steps, minibatch 256. All three start at the same
parameters on the same data; the printout gives each estimate, its wall time (the best of
``--repeats`` after a warm-up run) and llcgeo's speed as a multiple of each.

devinterp 2.0.1 and canonical-interp are the optional ``bench`` extra. canonical-interp 0.1.5
imports ``itertools.batched`` (Python 3.12); on 3.11 that one name is shimmed before the import.
It runs with and without ``torch.compile`` (its ``sgld_step`` is compiled either way).

    python benchmarks/bench_network.py
    python benchmarks/bench_network.py --skip devinterp --repeats 3
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import sys
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm loads: the peers' bars flood stdout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from bench_sgld import best_of, devinterp_on, sgld_arguments  # noqa: E402

from llcgeo import SGLDConfig, estimate_llc  # noqa: E402


def problem(args):
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    ).to(dtype)  # fmt: skip
    x = torch.randn(args.n, 32, generator=g, dtype=dtype)
    with torch.no_grad():
        y = model(x) + 0.1 * torch.randn(args.n, 10, generator=g, dtype=dtype)
    return model, x, y


def gaussian(outputs, targets):
    return 0.5 * (outputs - targets).square().sum(dim=1).mean()


def _mean_se(per_chain) -> tuple[float, float]:
    per_chain = torch.as_tensor(per_chain).detach().to(torch.float64)
    return float(per_chain.mean()), float(per_chain.std() / math.sqrt(len(per_chain)))


def _config(args) -> SGLDConfig:
    return SGLDConfig(eps=args.eps, gamma=args.gamma, chains=args.chains,
                      steps=args.burnin + args.draws, burnin=args.burnin,
                      batch_size=args.batch_size, dtype=args.dtype)  # fmt: skip


def run_llcgeo(model, x, y, args):
    config = _config(args)

    def run():
        return estimate_llc(model, x, y, config=config, device="cpu", seed=args.seed)

    run()  # warm-up
    e, seconds = best_of(args.repeats, run)
    return e.mean, e.se, seconds, config.resolved_nbeta(args.n)


def run_devinterp(model, x, y, nbeta, args):
    return devinterp_on(model, x, y, _config(args), nbeta, args)


def _import_canonical():
    if not hasattr(itertools, "batched"):  # Python 3.12's, which canonical-interp imports

        def batched(iterable, n):
            it = iter(iterable)
            while chunk := tuple(itertools.islice(it, n)):
                yield chunk

        itertools.batched = batched
    logging.getLogger("canonical_interp").setLevel(logging.ERROR)
    from canonical_interp import LLCEstimator

    return LLCEstimator


def run_canonical(model, x, y, nbeta, args, compiled: bool):
    estimator_type = _import_canonical()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=args.batch_size, shuffle=True,
        drop_last=True,
    )  # fmt: skip

    def run():
        estimator = estimator_type(
            draws=args.draws, chains=args.chains, burnin_steps=args.burnin, steps_bw_draws=1,
            learning_rate=args.eps, localization=args.gamma, nbeta=nbeta,
            dtype=getattr(torch, args.dtype),
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.estimate_llc(
                model, loader, criterion_fn=gaussian, seed=args.seed, compile=compiled,
                show_progress=False,
            )  # fmt: skip
        return estimator.get_metrics()["llcs"]

    run()  # warm-up: compilation happens here
    per_chain, seconds = best_of(args.repeats, run)
    return (*_mean_se(per_chain), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sgld_arguments(parser, gamma=100.0)
    parser.add_argument("--burnin", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2, help="timings are the best of these")
    parser.add_argument(
        "--skip", choices=("devinterp", "canonical", "compiled"), action="append", default=[]
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    model, x, y = problem(args)
    print(
        f"MLP 32-64-64-10 at its teacher, n = {args.n}, {args.chains} chains x {args.draws} "
        f"draws (+{args.burnin} burn-in), minibatch {args.batch_size}, eps = {args.eps}, "
        f"gamma = {args.gamma}, {args.dtype}"
    )
    mean, se, ours, nbeta = run_llcgeo(model, x, y, args)
    rows = [("llcgeo", mean, se, ours)]
    peers = [
        ("devinterp 2.0.1", lambda: run_devinterp(model, x, y, nbeta, args)),
        ("canonical-interp", lambda: run_canonical(model, x, y, nbeta, args, False)),
        ("canonical-interp compiled", lambda: run_canonical(model, x, y, nbeta, args, True)),
    ]
    skipped = {"devinterp": 0, "canonical": 1, "compiled": 2}
    for i, (name, run) in enumerate(peers):
        if i in {skipped[s] for s in args.skip}:
            continue
        try:
            rows.append((name, *run()))
        except Exception as err:  # a peer that is missing or fails here is reported, not fatal
            print(f"{name}: not run ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
    for name, mean, se, seconds in rows:
        ratio = "" if name == "llcgeo" else f"   llcgeo is {seconds / ours:6.1f}x faster"
        print(f"{name:<26} llc {mean:8.2f} +- {se:5.2f}   {seconds:8.3f} s{ratio}")


if __name__ == "__main__":
    main()
