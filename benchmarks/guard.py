"""A guard CI runs: each fast path keeps its edge over the general path on the same problem, in
the same run (ratios only: a shared machine's load moves both sides of each ratio).

    python benchmarks/guard.py            # exit status 1 if any ratio falls below its bound

Bounds (generous: each path measured several times faster than its bound here):
the linear minibatch path at least 5x the general path on the same linear layer, the linear
full-batch path at least 20x, the stacked-MLP path at least 1.5x the general (vmap) path on the
same MLP, and ``estimate_llc`` on a linear layer spending at most 20% of its time outside the
chains (the problem's set-up, the plan, the summary).
"""

from __future__ import annotations

import sys
import time

import torch

import llcgeo.numerics.problem as problem_module
from llcgeo import SGLDConfig, estimate_llc
from llcgeo.manifolds import LayerNormImage, LinearLayer
from llcgeo.numerics import teacher_student

REPEATS = 2


class Wrapped(torch.nn.Module):
    """The same model, not an ``nn.Sequential``: the general path takes it."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def best(run) -> float:
    run()  # warm-up
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def linear_problem():
    fit = teacher_student(LayerNormImage(32), LinearLayer(32, bias=True), 10_000, seed=0)
    return fit.as_linear(), fit.inputs, fit.targets


def mlp_problem():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                torch.nn.ReLU(), torch.nn.Linear(64, 10)).double()  # fmt: skip
    x = torch.randn(10_000, 32, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x) + 0.1 * torch.randn(10_000, 10, generator=g, dtype=torch.float64)
    return model, x, y


def speedup(model, x, y, config: SGLDConfig) -> float:
    """The fast path's speed over the general path's on ``model`` at ``config``."""

    def fast():
        estimate_llc(model, x, y, config=config, device="cpu")

    def general():
        estimate_llc(Wrapped(model), x, y, config=config, device="cpu")

    return best(general) / best(fast)


def share_outside_the_chains(model, x, y, config: SGLDConfig) -> float:
    """The share of an ``estimate_llc`` call spent outside its main run of the chains."""
    spent = []
    original = problem_module.run_chains

    def timed(*args, **kwargs):
        began = time.perf_counter()
        out = original(*args, **kwargs)
        if kwargs.get("steps") == config.steps:
            spent.append(time.perf_counter() - began)
        return out

    problem_module.run_chains = timed
    try:
        estimate_llc(model, x, y, config=config, device="cpu")  # warm-up
        shares = []
        for _ in range(REPEATS):
            spent.clear()
            began = time.perf_counter()
            estimate_llc(model, x, y, config=config, device="cpu")
            total = time.perf_counter() - began
            shares.append(1 - spent[-1] / total)
        return min(shares)
    finally:
        problem_module.run_chains = original


def main() -> int:
    torch.set_num_threads(torch.get_num_threads())
    layer, x, y = linear_problem()
    minibatch = SGLDConfig(eps=1e-4, chains=4, steps=300, burnin=50, batch_size=256,
                           dtype="float32")  # fmt: skip
    full = SGLDConfig(eps=1e-4, chains=4, steps=300, burnin=50, dtype="float32")
    mlp, mx, my = mlp_problem()
    mlp_config = SGLDConfig(eps=1e-4, gamma=100.0, chains=4, steps=150, burnin=30,
                            batch_size=256, dtype="float32")  # fmt: skip
    checks = [
        ("linear minibatch path / general path", speedup(layer, x, y, minibatch), 5.0, ">="),
        ("linear full-batch path / general path", speedup(layer, x, y, full), 20.0, ">="),
        ("stacked-MLP path / general (vmap) path", speedup(mlp, mx, my, mlp_config), 1.5, ">="),
        ("share of estimate_llc outside the chains (linear, minibatch)",
         share_outside_the_chains(layer, x, y, minibatch.__class__(**{
             **minibatch.__dict__, "steps": 600, "burnin": 100})), 0.20, "<="),
    ]  # fmt: skip
    failed = False
    for name, value, bound, sense in checks:
        ok = value >= bound if sense == ">=" else value <= bound
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {value:.2f} (bound {sense} {bound:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
