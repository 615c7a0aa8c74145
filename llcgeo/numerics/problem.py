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
from llcgeo.errors import EstimationError
from llcgeo.numerics import diagnostics
from llcgeo.numerics.affine import Quadratic, affine_run_fits, run_affine
from llcgeo.numerics.device import make_generator, stream, thread_policy
from llcgeo.numerics.kernels import KERNELS
from llcgeo.numerics.result import LLCEstimate
from llcgeo.numerics.sgld import (
    ChainRun,
    LossAndGrad,
    bounding_box,
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
    path knows them exactly (the linear fast path), else ``None``. ``work_per_chain`` is what
    a step's temporaries (activations, logits, gathered rows) take per chain, for the plan.
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
    # the linear path's minibatch run: () -> linear.DataMoments, for a verdict that asks (the
    # fourth moment is O(n q^4): a plain estimate never pays for it)
    moments: Any = None
    work_per_chain: int = 0  # bytes of a step's temporaries per chain (numerics.plan)
    chains: int | None = None  # the chains it is built for, where its data are per chain
    certified_flat: int = 0  # directions the path knows the loss to be exactly flat along
    quadratic: Any = None  # affine.Quadratic where the loss is exactly that quadratic (small P)

    @property
    def free_parameters(self) -> int:
        return int(self.start.numel() if self.mask is None else self.mask.sum())


def run_problem(problem: Problem, config: SGLDConfig, *, seed: int, progress=None,
                eps=None, gamma=None) -> ChainRun:  # fmt: skip
    """All ``config.chains`` chains of ``config.sampler`` from ``problem.start`` for
    ``config.steps`` steps, the Langevin noise from ``seed``'s ``sgld`` stream and minibatch
    indices from its own ``batches`` stream (so a change of batch size leaves the noise as it
    was). ``eps`` and ``gamma``, when given, are ``(chains, 1)`` tensors that give each chain its
    own (a grid run as one batch); else ``config``'s."""
    chains, size = config.chains, problem.start.numel()
    if problem.chains is not None and chains != problem.chains:
        raise EstimationError(
            f"this problem carries data for {problem.chains} chains, not {chains}"
        )
    device = problem.start.device
    drift = localized_gradient(problem.loss_and_grad, nbeta=problem.nbeta,
                               gamma=config.gamma if gamma is None else gamma,
                               centre=problem.centre)  # fmt: skip
    generator = make_generator(stream(seed, "sgld"), device)
    # a step's size is its working set (rows x classes, activations), not only its parameters
    entries = chains * max(size, problem.work_per_chain // problem.start.element_size())
    if eps is None and gamma is None and affine_run_fits(problem, config):
        with thread_policy(entries, device):
            return run_affine(problem, config, eps=config.eps, gamma=config.gamma,
                              steps=config.steps, burnin=config.burnin, generator=generator,
                              progress=progress)  # fmt: skip
    box = config.bounding_box
    project = None if box is None else bounding_box(problem.centre, box)
    sampler = KERNELS[config.sampler]
    step = sampler.build(drift, config, problem.mask, project)
    state = sampler.init(problem.start.expand(chains, -1).clone())
    with thread_policy(entries, device):
        return run_chains(
            step, state, _batches(problem, config, seed), eps=config.eps if eps is None else eps,
            steps=config.steps, burnin=config.burnin, generator=generator, progress=progress,
        )  # fmt: skip


def _batches(problem: Problem, config: SGLDConfig, seed: int):
    if config.batch_size is None:
        return None
    device = problem.start.device
    generator = make_generator(stream(seed, "batches"), device)
    return minibatches(
        problem.n, config.batch_size, generator, device, config.batches, config.chains
    )


class ChainSummary(NamedTuple):
    """What a run's chains say, diverged chains left out: the estimate of each chain, its mean
    and standard error over the kept chains, which diverged (and above what excess), and the
    R-hat, bulk and tail ESS of the kept loss traces."""

    per_chain: np.ndarray
    mean: float
    se: float
    diverged: np.ndarray
    threshold: float
    rhat: float
    ess: float
    ess_tail: float


def chain_summary(problem: Problem, excess: np.ndarray, peak: np.ndarray, finite: np.ndarray):
    """:class:`ChainSummary` of the recorded excess losses ``(chains, draws)``, each chain's
    largest excess over all steps and whether its final position is finite."""
    threshold = diagnostics.divergence_threshold(
        problem.init_loss, problem.free_parameters, problem.nbeta
    )
    bad = diagnostics.diverged(peak, finite, threshold)
    per_chain = problem.nbeta * excess.mean(axis=1)
    mean, se = diagnostics.mean_and_se(per_chain, ~bad)
    kept = excess[~bad]
    if not len(kept):
        return ChainSummary(per_chain, mean, se, bad, threshold, *(float("nan"),) * 3)
    return ChainSummary(
        per_chain, mean, se, bad, threshold, diagnostics.rank_rhat(kept),
        diagnostics.ess_bulk(kept), diagnostics.ess_tail(kept),
    )  # fmt: skip


def numpy_of(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def summarize(problem: Problem, run: ChainRun, config: SGLDConfig, *, seed: int, seconds: float):
    """The :class:`LLCEstimate` of a run: per chain ``nbeta * mean_k (L(w_k) - L(w*))``.

    Diverged chains (see :func:`llcgeo.numerics.diagnostics.diverged`) are left out of the mean,
    its standard error and the R-hat/ESS of the loss trace, and are named in ``warnings``.
    """
    excess = numpy_of(run.trace)
    finite = torch.isfinite(run.final.position).all(dim=1).cpu().numpy()
    c = chain_summary(problem, excess, numpy_of(run.peak), finite)
    kept = int((~c.diverged).sum())
    quality = diagnostics.quality_warnings(c.rhat, c.ess) if kept else ()
    acceptance = None if run.acceptance is None else numpy_of(run.acceptance)[~c.diverged]
    rate = float(acceptance.mean()) if acceptance is not None and acceptance.size else None
    return LLCEstimate(
        mean=c.mean, se=c.se, per_chain=c.per_chain, loss_trace=problem.init_loss + excess,
        init_loss=problem.init_loss, diverged_chains=tuple(int(i) for i in np.flatnonzero(
            c.diverged)), rhat=c.rhat, ess=c.ess, ess_tail=c.ess_tail, nbeta=problem.nbeta,
        n=problem.n, seed=seed, config=config, device=str(problem.start.device), seconds=seconds,
        warnings=problem.warnings + diagnostics.divergence_warnings(c.diverged, c.threshold)
        + quality + diagnostics.acceptance_warnings(rate), acceptance_rate=rate,
    )  # fmt: skip


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

    work = 3 * int(moving.sum()) * h.element_size()
    full = torch.zeros(centre.numel(), centre.numel(), dtype=torch.float64, device=centre.device)
    index = moving.nonzero().flatten()
    full[index[:, None], index[None, :]] = hessian.to(full)
    exact = Quadratic(full, torch.zeros(centre.numel(), dtype=torch.float64))
    return like._replace(loss_and_grad=loss_and_grad, init_loss=0.0, warnings=(),
                         work_per_chain=work, quadratic=exact)  # fmt: skip
