"""A guard CI runs: each fast path keeps its edge over the general path, and stays near the
floor (a hand-written batched step of the same products, ``benchmarks/floor.py``), on the same
problem in the same run. Ratios only: a shared machine's load moves both sides of each ratio.

    python benchmarks/guard.py            # exit status 1 if any ratio is past its bound

Bounds, generous against what is measured here (the closing figures of each line):
- the linear minibatch path at least 2x the general path on the same layer (measured 3.3-5.0x
  here, 2.8x once on CI's machine: the path is at the floor, so this ratio is the general path's
  distance from the floor, which moves with the machine; a fall back to the general path gives
  1x), and its chains at most 1.5x the floor's time (measured 0.85-1.0x), the tighter check;
- the linear full-batch path at least 20x the general path (measured 91-116x);
- the stacked-MLP path at least 1.5x the general (vmap) path (measured 1.8-2.3x), and at most 2x
  the floor's time (measured 1.09-1.53x with the sides in turn; 2.23x once on CI's machine with
  each side's runs one after the other);
- ``estimate_llc`` on a linear layer spending at most 20% of its time outside the chains (the
  problem's set-up, the plan, the summary; measured 10-12%).

Each time is the best of ``REPEATS`` runs after a warm-up: a shared machine's load only ever
adds time. The two sides of a ratio run in turn (one of each, ``REPEATS`` times), so a load that
comes and goes falls on both alike: run one side after the other, a slow spell on one side
alone moved a ratio by 2x on CI's machine.
"""

from __future__ import annotations

import os
import sys
import time

import torch

import llcgeo.numerics.runner as runner_module
from llcgeo import SGLDConfig, estimate_llc
from llcgeo.manifolds import LayerNormImage, LinearLayer
from llcgeo.numerics import teacher_student

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from floor import flat_parameters, linear_step, mlp_step, run_floor  # noqa: E402

REPEATS = 5


class Wrapped(torch.nn.Module):
    """The same model, not an ``nn.Sequential``: the general path takes it."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def interleaved(*runs) -> list:
    """The best result of each of ``runs`` (each returns its time, or a tuple led by it), after a
    warm-up of each, the runs taken in turn ``REPEATS`` times."""
    for run in runs:
        run()
    results = [[] for _ in runs]
    for _ in range(REPEATS):
        for out, run in zip(results, runs):
            out.append(run())
    return [min(r) for r in results]


def clocked(work):
    """``work`` as a run that returns its wall time."""

    def run() -> float:
        began = time.perf_counter()
        work()
        return time.perf_counter() - began

    return run


def linear_problem():
    fit = teacher_student(LayerNormImage(32), LinearLayer(32, bias=True), 10_000, seed=0)
    return fit.as_linear(), fit.inputs, fit.targets


def mlp_problem():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                torch.nn.ReLU(), torch.nn.Linear(64, 10))  # fmt: skip
    x = torch.randn(10_000, 32, generator=g)
    with torch.no_grad():
        y = model(x) + 0.1 * torch.randn(10_000, 10, generator=g)
    return model, x, y


def speedup(model, x, y, config: SGLDConfig) -> float:
    """The fast path's speed over the general path's on ``model`` at ``config``."""

    general, fast = interleaved(
        clocked(lambda: estimate_llc(Wrapped(model), x, y, config=config, device="cpu")),
        clocked(lambda: estimate_llc(model, x, y, config=config, device="cpu")))  # fmt: skip
    return general / fast


def against_floor(step, model, x, y, config: SGLDConfig) -> tuple[float, float, float]:
    """``(total, chains, floor)``: the best wall time of an ``estimate_llc`` call, of its main
    run of the chains within it, and of the floor's ``config.steps`` steps on the same problem,
    taken in turn."""
    spent, original = [], runner_module.run_chains

    def timed(*args, **kwargs):
        began = time.perf_counter()
        out = original(*args, **kwargs)
        if kwargs.get("steps") == config.steps:
            spent.append(time.perf_counter() - began)
        return out

    def estimate():
        began = time.perf_counter()
        estimate_llc(model, x, y, config=config, device="cpu")
        return time.perf_counter() - began, spent[-1]

    centre = flat_parameters(model).to(x.dtype)
    with torch.no_grad():
        init_loss = float(0.5 * (model(x) - y).square().sum(dim=1).mean())
    settings = dict(chains=config.chains, steps=config.steps, burnin=config.burnin,
                    batch_size=config.batch_size, eps=config.eps, gamma=config.gamma,
                    nbeta=config.resolved_nbeta(x.shape[0]), init_loss=init_loss)  # fmt: skip
    runner_module.run_chains = timed
    try:
        (total, chains), floor = interleaved(
            estimate, lambda: run_floor(step, centre, x, y, **settings)[2])
    finally:
        runner_module.run_chains = original
    return total, chains, floor


def main() -> int:
    layer, x, y = linear_problem()
    x, y = x.float(), y.float()
    layer = layer.float()
    minibatch = SGLDConfig(eps=1e-4, chains=4, steps=600, burnin=100, batch_size=256,
                           dtype="float32")  # fmt: skip
    full = SGLDConfig(eps=1e-4, chains=4, steps=300, burnin=50, dtype="float32")
    mlp, mx, my = mlp_problem()
    mlp_config = SGLDConfig(eps=1e-4, gamma=100.0, chains=4, steps=300, burnin=50,
                            batch_size=256, dtype="float32")  # fmt: skip
    total, chains, linear_floor = against_floor(linear_step(32, 32, True), layer, x, y, minibatch)
    mlp_total, _, mlp_floor = against_floor(mlp_step(mlp), mlp, mx, my, mlp_config)
    checks = [
        ("linear minibatch path / general path", speedup(layer, x, y, minibatch), 2.0, ">="),
        ("linear minibatch chains' time / the floor's", chains / linear_floor, 1.5, "<="),
        ("share of estimate_llc outside the chains (linear, minibatch)",
         1 - chains / total, 0.20, "<="),
        ("linear full-batch path / general path", speedup(layer, x, y, full), 20.0, ">="),
        ("stacked-MLP path / general (vmap) path", speedup(mlp, mx, my, mlp_config), 1.5, ">="),
        ("stacked-MLP estimate_llc time / the floor's", mlp_total / mlp_floor, 2.0, "<="),
    ]  # fmt: skip
    failed = False
    for name, value, bound, sense in checks:
        ok = value >= bound if sense == ">=" else value <= bound
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {value:.2f} (bound {sense} {bound:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
