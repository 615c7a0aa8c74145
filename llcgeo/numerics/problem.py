"""What every model path hands to the sampler, and how a run becomes an :class:`LLCEstimate`.

A :class:`Problem` is a loss with its gradient over flat parameter vectors ``(chains, P)``, a
centre ``w*``, the mask of entries that move and the exact full-batch loss at ``w*``. The paths
differ only in how they build it (:mod:`llcgeo.numerics.linear`, :mod:`llcgeo.numerics.module`);
sampling, diagnostics and the estimate are shared, so both give the same result.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.limits import check_memory, sampling_bytes
from llcgeo.numerics import diagnostics
from llcgeo.numerics.acceptance import AcceptanceWatch
from llcgeo.numerics.mala import MALAState, build_mala_kernel, init_mala
from llcgeo.numerics.result import LLCEstimate
from llcgeo.numerics.rmsprop import build_rmsprop_kernel, init_rmsprop
from llcgeo.numerics.sgld import (
    ChainRun,
    LossAndGrad,
    bounding_box,
    build_kernel,
    init,
    localized_gradient,
    minibatches,
    run_chains,
)


class Problem(NamedTuple):
    """``loss_and_grad(w, batch)`` returns ``(L_batch(w) - L(w*), grad L_batch(w))`` per chain,
    with ``batch`` a tensor of sample indices or ``None`` for the full batch.

    ``start`` is the chains' common starting position (``w*`` in the path's coordinates),
    ``centre`` the localization centre, ``init_loss`` the exact full-batch ``L(w*)``;
    ``hessian_eigenvalues`` (float64, ascending) those of the block the mask moves, where the
    path knows them exactly (the linear fast path), else ``None``.
    """

    loss_and_grad: LossAndGrad
    start: torch.Tensor
    centre: torch.Tensor
    mask: torch.Tensor | None
    init_loss: float
    n: int
    nbeta: float
    warnings: tuple[str, ...] = ()
    hessian_eigenvalues: np.ndarray | None = None
    data_moments: Any = None  # linear.DataMoments on a minibatch run of the linear path

    @property
    def free_parameters(self) -> int:
        return int(self.start.numel() if self.mask is None else self.mask.sum())


def run_problem(problem: Problem, config: SGLDConfig, generator, progress=None) -> ChainRun:
    """All ``config.chains`` chains from ``problem.start`` for ``config.steps`` steps."""
    chains, size = config.chains, problem.start.numel()
    check_memory(
        sampling_bytes(chains=chains, steps=config.steps, parameters=size),
        f"sampling {chains} chains x {config.steps} steps of {size} parameters",
    )
    drift = localized_gradient(
        problem.loss_and_grad, nbeta=problem.nbeta, gamma=config.gamma, centre=problem.centre
    )
    start = problem.start.expand(config.chains, -1).clone()
    if config.sampler == "mala":
        step, state = build_mala_kernel(drift, mask=problem.mask), init_mala(start)
        return run_chains(step, state, None, config, generator, progress)
    batches = _batches(problem, config, generator)
    if config.sampler == "rmsprop":
        step = build_rmsprop_kernel(
            drift,
            decay=config.rmsprop_decay,
            floor=config.rmsprop_floor,
            noise_level=config.noise_level,
            mask=problem.mask,
        )
        return run_chains(step, init_rmsprop(start), batches, config, generator, progress)
    box = config.bounding_box
    watch = AcceptanceWatch(drift, eps=config.eps, mask=problem.mask) if config.acceptance else None
    step = build_kernel(
        drift if watch is None else watch,
        noise_level=config.noise_level,
        mask=problem.mask,
        project=None if box is None else bounding_box(problem.centre, box),
    )
    run = run_chains(step, init(start), batches, config, generator, progress)
    return run if watch is None else run._replace(acceptance=watch.rate)


def _batches(problem: Problem, config: SGLDConfig, generator):
    if config.batch_size is None:
        return None
    device = problem.start.device
    return minibatches(
        problem.n, config.batch_size, generator, device, config.batches, config.chains
    )


def summarize(problem: Problem, run: ChainRun, config: SGLDConfig, *, seed: int, seconds: float):
    """The :class:`LLCEstimate` of a run: per chain ``nbeta * mean_k (L(w_k) - L(w*))``.

    Diverged chains (see :func:`llcgeo.numerics.diagnostics.diverged`) are left out of the mean,
    its standard error and the R-hat/ESS of the loss trace, and are named in ``warnings``.
    """
    excess = run.trace.detach().to("cpu", torch.float64).numpy()
    threshold = diagnostics.divergence_threshold(
        problem.init_loss, problem.free_parameters, problem.nbeta
    )
    finite = torch.isfinite(run.final.position).all(dim=1).cpu().numpy()
    bad = diagnostics.diverged(
        run.peak.detach().to("cpu", torch.float64).numpy(), finite, threshold
    )
    per_chain = problem.nbeta * excess.mean(axis=1)
    mean, se = diagnostics.mean_and_se(per_chain, ~bad)
    kept = excess[~bad]
    rhat = diagnostics.rank_rhat(kept) if len(kept) else float("nan")
    ess = diagnostics.ess_bulk(kept) if len(kept) else float("nan")
    quality = diagnostics.quality_warnings(rhat, ess, len(kept)) if len(kept) else ()
    return LLCEstimate(
        mean=mean,
        se=se,
        per_chain=per_chain,
        loss_trace=problem.init_loss + excess,
        init_loss=problem.init_loss,
        diverged_chains=tuple(int(i) for i in np.flatnonzero(bad)),
        rhat=rhat,
        ess=ess,
        ess_tail=diagnostics.ess_tail(kept) if len(kept) else float("nan"),
        nbeta=problem.nbeta,
        n=problem.n,
        seed=seed,
        config=config,
        device=str(problem.start.device),
        seconds=seconds,
        warnings=problem.warnings
        + diagnostics.divergence_warnings(bad, threshold)
        + quality
        + diagnostics.acceptance_warnings(run.acceptance),
        acceptance_rate=_acceptance(run.final) if run.acceptance is None else run.acceptance,
    )


def _acceptance(final) -> float | None:
    """MALA's share of accepted proposals over all chains and steps (None for SGLD)."""
    if not isinstance(final, MALAState) or final.step == 0:
        return None
    return float(final.accepted.sum()) / (final.step * final.accepted.numel())


def quadratic_problem(hessian: torch.Tensor, like: Problem) -> Problem:
    """The quadratic model ``1/2 (w - w*)^T H (w - w*)`` of ``like``'s loss, ``H`` given on the
    entries ``like.mask`` moves, in ``like``'s coordinates: run with ``like``'s config and seed,
    its chains see the very same noise, so the difference of the two estimates is what the
    loss's terms beyond the quadratic add."""
    centre = like.centre
    moving = torch.ones_like(centre, dtype=torch.bool) if like.mask is None else like.mask
    h = hessian.to(centre.device, centre.dtype)

    def loss_and_grad(position: torch.Tensor, batch):
        if batch is not None:
            raise ValueError("the quadratic model is full batch")
        delta = (position - centre)[:, moving]
        pulled = delta @ h
        grad = torch.zeros_like(position)
        grad[:, moving] = pulled
        return 0.5 * (pulled * delta).sum(dim=1), grad

    return like._replace(loss_and_grad=loss_and_grad, init_loss=0.0, warnings=())
