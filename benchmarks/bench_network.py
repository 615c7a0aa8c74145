"""llcgeo on an MLP and on a transformer, against the floor and against its peers.

The floor is a hand-written batched SGLD step of the same products (``benchmarks/floor.py``):
for the MLP its backward written out, for the transformer torch.func's own ``vmap`` of
``grad_and_value`` (no step is written by hand there). The peers are devinterp 2.0.1 and
canonical-interp 0.1.5, with and without ``torch.compile`` (its ``sgld_step`` is compiled either
way). Every run starts at the same parameters on the same data; the printout gives each
estimate, its wall time (the best of ``--repeats`` after a warm-up run), its chain-steps per
second, llcgeo's time as a multiple of the floor's (the closer to 1 the better) and llcgeo's
speed as a multiple of each peer's.

``--model mlp``: an MLP ``32 -> 64 -> 64 -> 10`` (ReLU) at a teacher's parameters, ``n``
Gaussian inputs with the teacher's outputs plus noise 0.1, the Gaussian loss; ``gamma = 100``,
4 chains x 500 draws after 100 burn-in steps, minibatch 256.
``--model transformer``: 2 pre-LayerNorm blocks, d_model 64, 4 heads, sequence 32,
vocabulary 64 (:class:`llcgeo.numerics.measurements.networks.TinyTransformer`), trained
briefly on the look-one-back task of
:func:`~llcgeo.numerics.measurements.training.sequence_task`, the token cross-entropy; 4 chains
x 500 draws, minibatch 64.

devinterp and canonical-interp are the optional ``bench`` extra. canonical-interp 0.1.5
imports ``itertools.batched`` (Python 3.12); on 3.11 that one name is shimmed before the import.

    python benchmarks/bench_network.py
    python benchmarks/bench_network.py --model transformer --repeats 1
    python benchmarks/bench_network.py --device cuda --skip devinterp
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import sys
import warnings
from typing import NamedTuple

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm loads: the peers' bars flood stdout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from bench_sgld import best_of, devinterp_on, gaussian_per_sample, sgld_arguments  # noqa: E402
from floor import flat_parameters, mlp_step, run_floor, vmap_step  # noqa: E402

from llcgeo import SGLDConfig, estimate_llc  # noqa: E402
from llcgeo.numerics.measurements.networks import TinyTransformer
from llcgeo.numerics.measurements.training import sequence_task, train
from llcgeo.numerics.paths.losses import cross_entropy  # noqa: E402

SETTINGS = {  # per model: the loss, the defaults its comparison fixes
    "mlp": dict(gamma=100.0, batch_size=256, loss="gaussian"),
    "transformer": dict(gamma=100.0, batch_size=64, loss="cross_entropy"),
}
# torch.compile's inductor fails on the transformer on a CPU (BackendCompilerFailed, after
# holding about 20 GB): that peer runs only when asked for by name
NOT_BY_DEFAULT = {"transformer": ("compiled",)}


class Task(NamedTuple):
    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    per_sample: object  # the per-sample loss: (outputs, targets) -> (batch,)
    floor_step: object  # the floor's (w, xb, yb) -> (batch losses, gradients)
    floor_name: str


def mlp_task(args) -> Task:
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
    return Task(model, x, y, gaussian_per_sample, mlp_step(model), "hand-written step")


def transformer_task(args) -> Task:
    torch.manual_seed(args.seed)
    model = TinyTransformer(64, 64, 32, "layernorm", blocks=2, heads=4)
    ids, labels = sequence_task(args.n, 32, 64, seed=args.seed)
    train(model, ids, labels, steps=args.train_steps, lr=3e-3, batch=64, seed=args.seed)
    model = model.to(getattr(torch, args.dtype)).eval()
    loss = cross_entropy()
    return Task(model, ids, labels, loss, vmap_step(model, loss), "torch.func vmap step")


def _on(task: Task, device: str) -> Task:
    return task._replace(model=task.model.to(device), x=task.x.to(device), y=task.y.to(device))


def _mean_se(per_chain) -> tuple[float, float]:
    per_chain = torch.as_tensor(per_chain).detach().to(torch.float64)
    return float(per_chain.mean()), float(per_chain.std() / math.sqrt(len(per_chain)))


def _config(args) -> SGLDConfig:
    return SGLDConfig(eps=args.eps, gamma=args.gamma, chains=args.chains,
                      steps=args.burnin + args.draws, burnin=args.burnin,
                      batch_size=args.batch_size, dtype=args.dtype)  # fmt: skip


def run_llcgeo(task: Task, args):
    config = _config(args)

    def run():
        return estimate_llc(task.model, task.x, task.y, config=config, device=args.device,
                            seed=args.seed, loss=SETTINGS[args.model]["loss"])  # fmt: skip

    run()  # warm-up
    e, seconds = best_of(args.repeats, run)
    return e.mean, e.se, seconds, config.resolved_nbeta(args.n)


def run_floor_on(task: Task, nbeta: float, args):
    centre = flat_parameters(task.model)
    with torch.no_grad():
        init_loss = float(task.per_sample(task.model(task.x), task.y).double().mean())

    def run():
        return run_floor(task.floor_step, centre, task.x, task.y, chains=args.chains,
                         steps=args.burnin + args.draws, burnin=args.burnin,
                         batch_size=args.batch_size, eps=args.eps, gamma=args.gamma,
                         nbeta=nbeta, init_loss=init_loss, seed=args.seed)  # fmt: skip

    run()  # warm-up
    return min((run() for _ in range(args.repeats)), key=lambda r: r[2])


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


def run_canonical(task: Task, nbeta, args, compiled: bool):
    estimator_type = _import_canonical()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(task.x, task.y), batch_size=args.batch_size, shuffle=True,
        drop_last=True,
    )  # fmt: skip

    def criterion(outputs, targets):
        return task.per_sample(outputs, targets).mean()

    def run():
        estimator = estimator_type(
            draws=args.draws, chains=args.chains, burnin_steps=args.burnin, steps_bw_draws=1,
            learning_rate=args.eps, localization=args.gamma, nbeta=nbeta,
            dtype=getattr(torch, args.dtype),
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.estimate_llc(
                task.model, loader, criterion_fn=criterion, seed=args.seed, compile=compiled,
                show_progress=False,
            )  # fmt: skip
        return estimator.get_metrics()["llcs"]

    run()  # warm-up: compilation happens here
    per_chain, seconds = best_of(args.repeats, run)
    return (*_mean_se(per_chain), seconds)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=tuple(SETTINGS), default="mlp")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    sgld_arguments(parser, gamma=None, batch_size=None)
    parser.add_argument("--burnin", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=300, help="the transformer's")
    parser.add_argument("--repeats", type=int, default=2, help="timings are the best of these")
    parser.add_argument("--skip", choices=("floor", "devinterp", "canonical", "compiled"),
                        action="append", default=[])  # fmt: skip
    parser.add_argument("--also", choices=("compiled",), action="append", default=[],
                        help="run a comparison this model leaves out by default")  # fmt: skip
    args = parser.parse_args()
    args.skip += [k for k in NOT_BY_DEFAULT.get(args.model, ()) if k not in args.also]
    for name, value in SETTINGS[args.model].items():
        if name != "loss" and getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    args = arguments()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, {args.device}")
    task = _on((mlp_task if args.model == "mlp" else transformer_task)(args), args.device)
    size = sum(p.numel() for p in task.model.parameters())
    print(
        f"{args.model} ({size} parameters), n = {args.n}, {args.chains} chains x {args.draws} "
        f"draws (+{args.burnin} burn-in), minibatch {args.batch_size}, eps = {args.eps}, "
        f"gamma = {args.gamma}, {args.dtype}"
    )
    mean, se, ours, nbeta = run_llcgeo(task, args)
    steps = args.chains * (args.burnin + args.draws)

    def line(name, mean, se, seconds, ratio=""):
        print(f"{name:<26} llc {mean:8.2f} +- {se:5.2f}  {seconds:8.3f} s  "
              f"{steps / seconds:9.0f} chain-steps/s{ratio}", flush=True)  # fmt: skip

    line("llcgeo", mean, se, ours)
    others = {
        "floor": (task.floor_name, lambda: run_floor_on(task, nbeta, args)),
        "devinterp": ("devinterp 2.0.1", lambda: devinterp_on(
            task.model, task.x, task.y, _config(args), nbeta, args, task.per_sample)),
        "canonical": ("canonical-interp", lambda: run_canonical(task, nbeta, args, False)),
        "compiled": ("canonical-interp compiled", lambda: run_canonical(task, nbeta, args, True)),
    }  # fmt: skip
    for key, (name, run) in others.items():
        if key in args.skip:
            continue
        try:
            mean, se, seconds = run()
        except Exception as err:  # a peer that is missing or fails here is reported, not fatal
            print(f"{name}: not run ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
            continue
        ratio = (f"   llcgeo takes {ours / seconds:5.2f}x its time" if key == "floor"
                 else f"   llcgeo {seconds / ours:5.2f}x as fast")  # fmt: skip
        line(name, mean, se, seconds, ratio)


if __name__ == "__main__":
    main()
