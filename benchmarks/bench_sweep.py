"""A 6 x 4 eps x gamma grid as one batch against 24 separate runs of the same chains.

Linear layer d = m = 8 with a bias, n = 10 000, full batch, 4 chains a point, 2 000 steps.

    python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import time

import torch

from llcgeo.config import SGLDConfig
from llcgeo.numerics import estimate_llc
from llcgeo.numerics.paths.choose import model_problem
from llcgeo.numerics.paths.linear import design_matrix
from llcgeo.numerics.sweep import sweep

EPS = (1e-5, 2e-5, 4e-5, 8e-5, 1.6e-4, 3.2e-4)
GAMMA = (1.0, 10.0, 100.0, 1000.0)


def fitted(n=10_000, d=8, m=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    layer = torch.nn.Linear(d, m, dtype=torch.float64)
    y = layer(x).detach() + 0.5 * torch.randn(n, m, generator=g, dtype=torch.float64)
    theta = torch.linalg.lstsq(design_matrix(x, True), y).solution.T
    with torch.no_grad():
        layer.weight.copy_(theta[:, :d])
        layer.bias.copy_(theta[:, d])
    return layer, x, y


def main() -> None:
    layer, x, y = fitted()
    problem = model_problem(layer, x, y, SGLDConfig(), None, "gaussian", "cpu")
    for run in range(2):
        start = time.perf_counter()
        sweep(problem, EPS, GAMMA, chains=4, steps=2000, burnin=400)
        batched = time.perf_counter() - start
        start = time.perf_counter()
        for gamma in GAMMA:
            for eps in EPS:
                config = SGLDConfig(eps=eps, gamma=gamma, chains=4, steps=2000, burnin=400)
                estimate_llc(layer, x, y, config=config, device="cpu")
        separate = time.perf_counter() - start
        print(f"run {run + 1}: one batch {batched:.2f} s; 24 separate runs {separate:.2f} s "
              f"({separate / batched:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
