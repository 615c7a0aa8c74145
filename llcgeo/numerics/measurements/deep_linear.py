"""Deep linear networks ``y = W_L ... W_1 x`` on manifold data, measured at the true parameter.

The teacher has true rank ``r``: each layer is ``1.5 Q_1 E Q_2`` with ``E`` the partial identity of
rank ``min(r, rows, cols)`` and ``Q_1``, ``Q_2`` random orthogonal matrices, so the product has
rank ``r`` in a generic direction. Targets are ``y = teacher(x) + sigma N(0, I)``; SGLD (or MALA)
is centred at the teacher's weights, the true parameter of singular learning theory, and runs
on the product-of-linear-maps fast path, whose cost does not depend on ``n``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.numerics.device import make_generator, stream
from llcgeo.numerics.estimate import estimate_llc
from llcgeo.numerics.measurements.manifold_data import sample
from llcgeo.numerics.paths.product import Statistics, grid_problem
from llcgeo.numerics.result import LLCEstimate

CPU = torch.device("cpu")
F64 = torch.float64
LAYER_SCALE = 1.5
CHUNK = 1 << 18  # rows drawn at a time for a data set's statistics: memory bounded at any n


def deep_linear_teacher(widths: Sequence[int], rank: int, generator) -> torch.nn.Sequential:
    """A bias-free ``nn.Sequential`` from ``widths[0]`` to ``widths[-1]`` of true rank ``rank``."""
    layers = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        pattern = torch.zeros(fan_out, fan_in, dtype=F64)
        k = min(rank, fan_in, fan_out)
        pattern[:k, :k] = torch.eye(k, dtype=F64)
        weight = _orthogonal(fan_out, generator) @ pattern @ _orthogonal(fan_in, generator)
        layer = torch.nn.Linear(fan_in, fan_out, bias=False, dtype=F64)
        with torch.no_grad():
            layer.weight.copy_(LAYER_SCALE * weight)
        layers.append(layer)
    return torch.nn.Sequential(*layers)


def _orthogonal(size: int, generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=F64))
    return q * torch.sign(torch.diagonal(r))  # the sign fix makes Q Haar-distributed


def measure_deep_linear(
    manifold,
    hidden: Sequence[int],
    outputs: int,
    rank: int,
    n: int,
    config: SGLDConfig,
    *,
    seed: int,
    sigma: float = 0.5,
    device="auto",
) -> LLCEstimate:
    """The estimated learning coefficient of a rank-``rank`` deep linear teacher with these
    widths, on ``n`` points of ``manifold``'s data."""
    widths = (manifold.d, *hidden, outputs)
    generator = make_generator(stream(seed, "data"), CPU)
    x = sample(manifold, n, generator=generator)
    teacher = deep_linear_teacher(widths, rank, make_generator(stream(seed, "teacher"), CPU))
    noise = torch.randn(n, outputs, generator=make_generator(stream(seed, "noise"), CPU), dtype=F64)
    with torch.no_grad():
        y = teacher(x) + sigma * noise
    return estimate_llc(teacher, x, y, config=config, device=device, seed=seed)


def product_statistics(manifold, teacher: torch.nn.Sequential, n: int, *, seed: int,
                       sigma: float = 0.5) -> Statistics:  # fmt: skip
    """The :class:`~llcgeo.numerics.paths.product.Statistics` of ``n`` teacher-student points
    (``y = teacher(x) + sigma N(0, I)``, ``x`` from ``manifold``): ``S = X^T X / n`` and the
    gradient at the teacher ``C = -sigma X^T E / n``, accumulated ``CHUNK`` rows at a time
    from the ``data`` and ``noise`` streams of ``seed``, so memory stays bounded at any ``n``."""
    data, noise = (make_generator(stream(seed, name), CPU) for name in ("data", "noise"))
    d, m = manifold.d, teacher[-1].out_features
    second, cross = torch.zeros(d, d, dtype=F64), torch.zeros(d, m, dtype=F64)
    for start in range(0, n, CHUNK):
        rows = min(CHUNK, n - start)
        x = sample(manifold, rows, generator=data)
        second += x.T @ x
        cross += x.T @ torch.randn(rows, m, generator=noise, dtype=F64)
    return Statistics(second / n, -sigma * cross / n)


def curvatures_at_truth(teacher: torch.nn.Sequential, statistics: Statistics) -> np.ndarray:
    """The Hessian's eigenvalues (ascending) of one data set's loss at the teacher, in the
    weights of every layer: the curved directions, and those flat to second order."""
    posterior = grid_problem(teacher, [(statistics, 1.0)], 1).posterior

    def loss(w: torch.Tensor) -> torch.Tensor:
        return posterior.loss_and_grad(w[None], None)[0][0]

    hessian = torch.autograd.functional.hessian(loss, posterior.centre)
    return np.linalg.eigvalsh(hessian.numpy())
