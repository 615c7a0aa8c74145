"""The Hessian spectrum of any model's loss at its centre, from gradients alone.

Lanczos iteration with full reorthogonalization on Hessian-vector products. Each product is a
central difference of two full-batch gradients, ``(g(w + h v) - g(w - h v)) / 2h``, evaluated as
two "chains" of the model's :class:`~llcgeo.numerics.paths.problem.Posterior`, so every model
path (the linear and product fast paths, the general path) serves unchanged; on a quadratic loss
the difference is exact up to rounding. ``k`` steps give ``k`` Ritz values: the extremes converge
first, and with ``k`` equal to the number of parameters the whole spectrum is found.
"""

from __future__ import annotations

import numpy as np
import torch

from llcgeo.errors import EstimationError
from llcgeo.numerics.paths.masks import moving_index
from llcgeo.numerics.paths.problem import Problem

STEP = 1e-4  # the difference step, relative to the centre's scale
CLOSED = 1e-7  # a residual below this fraction of the operator's scale: the Krylov space closed


def hessian_spectrum(
    problem: Problem, *, steps: int = 100, seed: int = 0, rows: torch.Tensor | None = None
) -> np.ndarray:
    """Ritz values (ascending) of the Hessian of the full-batch loss at the posterior's centre
    (of the loss on the samples ``rows`` where given), restricted to the entries its mask
    moves; the path's own where it knows them exactly (the linear path)."""
    known = problem.exact.hessian_eigenvalues
    if known is not None:
        return np.sort(np.asarray(known, dtype=np.float64))
    posterior = problem.posterior
    centre = posterior.centre.to(torch.float64)
    moving = moving_index(posterior.mask, centre.numel(), centre.device)
    size = moving.numel()
    h = STEP * max(1.0, float(centre.abs().max()))
    batch = None if rows is None else rows.to(centre.device).expand(2, -1)

    def product(v: torch.Tensor) -> torch.Tensor:
        full = torch.zeros_like(centre).index_copy_(0, moving, v)
        points = torch.stack([centre + h * full, centre - h * full]).to(posterior.start.dtype)
        _, grad = posterior.loss_and_grad(points, batch)
        grad = grad.to(torch.float64)
        return ((grad[0] - grad[1]) / (2 * h)).index_select(0, moving)

    return _lanczos(product, size, min(steps, size), seed)


PROBE_STEPS = 8  # Lanczos steps for the top eigenvalue: the extremes converge first


def top_eigenvalue(problem: Problem, *, batch_size: int | None, seed: int = 0):
    """``(h_max, exact)``: the largest Hessian eigenvalue, exact on the linear path, else the
    top Ritz value of ``PROBE_STEPS`` Lanczos steps (a lower bound, close for the extremes).
    A minibatch run's is taken on one batch of random rows: the Hessian a step sees (its top
    eigenvalue is on average at least the full batch's), at the cost of a few steps."""
    known, n = problem.exact.hessian_eigenvalues, problem.posterior.n
    if known is not None:
        return float(np.max(known, initial=0.0)), True
    rows = None
    if batch_size is not None and n > batch_size:
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(n, generator=generator)[:batch_size]
    spectrum = hessian_spectrum(problem, steps=PROBE_STEPS, seed=seed, rows=rows)
    return float(spectrum[-1]), False


def _lanczos(product, size: int, steps: int, seed: int) -> np.ndarray:
    """Ritz values of ``steps`` Lanczos steps. When the Krylov space closes (an invariant
    subspace: a repeated eigenvalue hides the rest of the spectrum) the iteration restarts from a
    fresh direction orthogonal to everything found, so multiplicities are counted too."""
    generator = torch.Generator().manual_seed(seed)
    basis = [_fresh(generator, size, [])]
    alphas, betas = [], []
    scale = 0.0
    for k in range(steps):
        w = product(basis[-1])
        if not torch.isfinite(w).all():
            raise EstimationError("the loss's gradient is not finite near the centre")
        alphas.append(float(w @ basis[-1]))
        scale = max(scale, abs(alphas[-1]), float(w.norm()))
        if k == steps - 1:
            break
        w = _orthogonalized(w, basis)
        beta = float(w.norm())
        if beta <= CLOSED * scale:
            betas.append(0.0)  # a new, uncoupled block
            basis.append(_fresh(generator, size, basis))
        else:
            betas.append(beta)
            basis.append(w / beta)
    return np.linalg.eigvalsh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))


def _orthogonalized(w: torch.Tensor, basis) -> torch.Tensor:
    stacked = torch.stack(basis)
    for _ in range(2):  # twice is enough in floating point
        w = w - stacked.T @ (stacked @ w)
    return w


def _fresh(generator, size: int, basis) -> torch.Tensor:
    v = torch.randn(size, generator=generator, dtype=torch.float64)
    if basis:
        v = _orthogonalized(v, basis)
    return v / v.norm()
