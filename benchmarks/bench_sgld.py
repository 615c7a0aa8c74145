"""llcgeo's batched SGLD against devinterp's on the same problem, and llcgeo's throughput.

Problem: a linear layer ``y = W x + b`` fitted (least squares) to teacher-student data on the
LayerNorm image, ``d = m = 32``, ``n = 10 000``; SGLD with ``eps = 1e-4``, ``gamma = 1``,
``nbeta = n / log n``, 4 chains x 500 draws, minibatch 256 (and llcgeo's full-batch
sufficient-statistics path). Both libraries start at the same ``w*`` on the same data; the
printout gives both estimates, both wall times, their ratios, and the exact full-batch
expectation of the estimator from ``llcgeo.theory``. devinterp is the optional ``bench`` extra
(``pip install llcgeo[bench]``); without it only llcgeo's figures are printed.

    python benchmarks/bench_sgld.py                 # comparison + CPU throughput
    python benchmarks/bench_sgld.py --device cuda   # the same on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm loads: devinterp's bars flood stdout

import torch

from llcgeo.manifolds import LayerNormImage, LinearLayer
from llcgeo.numerics import SGLDConfig, estimate_llc, teacher_student
from llcgeo.numerics.paths.linear import Layout, design_matrix, hessian_eigenvalues, second_moment
from llcgeo.theory import expected_sgld_estimate


def best_of(repeats: int, run):
    """``run()``'s result and its shortest wall time over ``repeats`` runs (a shared machine's
    load only ever adds time)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return result, min(times)


def run_llcgeo(fit, config: SGLDConfig, args):
    layer = fit.as_linear()
    warm = _tiny(config)
    estimate_llc(layer, fit.inputs[:64], fit.targets[:64], config=warm, device=args.device)
    e, seconds = best_of(
        args.repeats,
        lambda: estimate_llc(
            layer, fit.inputs, fit.targets, config=config, device=args.device, seed=args.seed
        ),
    )
    return e.mean, e.se, seconds


def _tiny(config: SGLDConfig) -> SGLDConfig:
    """A few steps to warm up allocators and kernels before timing."""
    batch = None if config.batch_size is None else min(config.batch_size, 32)
    return dataclasses.replace(config, steps=5, burnin=0, batch_size=batch)


class _IndexDataset(torch.utils.data.Dataset):
    """devinterp 2 feeds ``input_ids`` rows; each row here names one sample (twice, since a
    row needs length >= 2), and the loss function looks the sample up."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"input_ids": torch.tensor([i, i])}


def run_devinterp(fit, config: SGLDConfig, nbeta: float, args):
    dtype = torch.float32 if config.dtype == "float32" else torch.float64
    x, y = fit.inputs.to(args.device, dtype), fit.targets.to(args.device, dtype)
    model = fit.as_linear().to(args.device, dtype)
    return devinterp_on(model, x, y, config, nbeta, args)


def gaussian_per_sample(outputs, targets):
    return 0.5 * (outputs - targets).square().sum(dim=1)


def devinterp_on(model, x, y, config: SGLDConfig, nbeta: float, args, loss=gaussian_per_sample):
    """devinterp 2's ``llc`` on ``model`` with the per-sample ``loss`` (the Gaussian loss by
    default) on ``(x, y)`` at ``config``'s settings: ``(mean, se, best wall time)``."""
    from devinterp.slt.llc import llc

    def loss_fn(model, input_ids):  # per-"token" loss of shape (batch, 1)
        rows = input_ids[:, 0]
        return loss(model(x[rows]), y[rows]).unsqueeze(1)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return llc(
                model,
                _IndexDataset(x.shape[0]),
                {},
                lr=config.eps,
                n_beta=nbeta,
                loss_fn=loss_fn,
                num_chains=config.chains,
                num_draws=config.draws,
                num_burnin_steps=config.burnin,
                batch_size=config.batch_size,
                localization=config.gamma,
                device=getattr(args, "device", "cpu"),
                init_seed=args.seed,
            )

    result, seconds = best_of(args.repeats, run)
    per_chain = result["llc_per_chain"].values
    se = float(per_chain.std(ddof=1) / math.sqrt(len(per_chain)))
    return float(per_chain.mean()), se, seconds


def theory_line(fit, args) -> str:
    """The exact expectation of the full-batch estimator at these settings, and the LLC."""
    s = second_moment(design_matrix(fit.inputs, bias=True))
    eigenvalues = hessian_eigenvalues(s, None, Layout(args.m, args.d, bias=True))
    nbeta = SGLDConfig().resolved_nbeta(args.n)
    e = expected_sgld_estimate(eigenvalues, nbeta, args.gamma, args.eps, args.draws, 0)
    return (
        f"nbeta = n/log n = {nbeta:.1f}; theory: full-batch expectation {e.mean:.2f} "
        f"(se over {args.chains} chains {e.standard_error(args.chains):.2f}), "
        f"LLC m d / 2 = {args.m * args.d / 2:g}"
    )


def compare(args) -> None:
    fit = teacher_student(
        LayerNormImage(args.d), LinearLayer(args.m, bias=True), args.n, seed=args.seed
    )
    full = SGLDConfig(
        eps=args.eps,
        gamma=args.gamma,
        chains=args.chains,
        steps=args.draws,
        burnin=0,
        dtype=args.dtype,
    )
    mini = dataclasses.replace(full, batch_size=args.batch_size)
    print(
        f"LayerNorm image + Linear({args.d}, {args.m}), n = {args.n}, {args.chains} chains x "
        f"{args.draws} draws, eps = {args.eps}, gamma = {args.gamma}, {args.dtype}, "
        f"{args.device}"
    )
    print(theory_line(fit, args))
    rows = []
    try:
        nbeta = mini.resolved_nbeta(args.n)
        rows.append(("devinterp minibatch", run_devinterp(fit, mini, nbeta, args)))
    except ImportError:
        print("devinterp is not installed (pip install 'llcgeo[bench]'): llcgeo figures only")
    rows.append(("llcgeo minibatch", run_llcgeo(fit, mini, args)))
    rows.append(("llcgeo full batch", run_llcgeo(fit, full, args)))
    base = rows[0][1][2] if rows[0][0].startswith("devinterp") else None
    for name, (mean, se, seconds) in rows:
        ratio = f"  {base / seconds:7.1f}x devinterp's speed" if base else ""
        print(f"{name:<20} llc {mean:8.2f} +- {se:5.2f}   {seconds:8.3f} s{ratio}")


def throughput(args) -> None:
    """Chain-steps per second at d = m = 256, 64 chains."""
    d, chains, steps = args.throughput_d, args.throughput_chains, args.throughput_steps
    fit = teacher_student(LayerNormImage(d), LinearLayer(d, bias=True), args.n, seed=args.seed)
    for batch in (args.batch_size, None):
        config = SGLDConfig(
            eps=1e-7, chains=chains, steps=steps, burnin=0, batch_size=batch, dtype=args.dtype
        )
        _, _, seconds = run_llcgeo(fit, config, args)
        label = "full batch" if batch is None else f"minibatch {batch}"
        print(
            f"throughput d = m = {d}, {chains} chains, {label:<13} {args.device}: "
            f"{chains * steps / seconds:10.0f} chain-steps/s ({seconds:.2f} s)"
        )


def sgld_arguments(parser: argparse.ArgumentParser, *, gamma, batch_size=256) -> None:
    """The comparison's data and SGLD settings, shared by the benchmarks against devinterp
    (a default of ``None``: the benchmark fills it in per problem)."""
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--eps", type=float, default=1e-4)
    parser.add_argument("--gamma", type=float, default=gamma)
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    sgld_arguments(parser, gamma=1.0)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--throughput-d", type=int, default=256)
    parser.add_argument("--throughput-chains", type=int, default=64)
    parser.add_argument("--throughput-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5, help="timings are the best of these")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip", choices=("compare", "throughput"), action="append", default=[])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    if "compare" not in args.skip:
        compare(args)
    if "throughput" not in args.skip:
        throughput(args)


if __name__ == "__main__":
    main()
