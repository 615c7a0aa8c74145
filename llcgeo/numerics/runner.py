"""The runner: a model's :class:`~llcgeo.numerics.paths.problem.Problem` joined to a sampler's
kernel, and the run it makes summarized as an :class:`~llcgeo.numerics.result.LLCEstimate`.

It stands above both rooms it joins: a path (:mod:`llcgeo.numerics.paths`) builds the problem
knowing no sampler, a kernel (:mod:`llcgeo.numerics.sampling`) steps positions knowing no model,
and :func:`run_problem` looks the sampler up in :data:`~llcgeo.numerics.sampling.kernels.KERNELS`
and draws the random streams. It reads the problem's
:class:`~llcgeo.numerics.paths.problem.Posterior` to sample, its footprint for the thread
policy and, from what the path knows exactly, only the quadratic the affine driver runs on.
Every estimator and sweep runs its chains here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError
from llcgeo.numerics.device import make_generator, stream, thread_policy
from llcgeo.numerics.paths.problem import Footprint, Posterior, Problem
from llcgeo.numerics.result import LLCEstimate
from llcgeo.numerics.sampling import diagnostics
from llcgeo.numerics.sampling.affine import affine_run_fits, run_affine
from llcgeo.numerics.sampling.kernels import KERNELS
from llcgeo.numerics.sampling.sgld import (
    ChainRun,
    bounding_box,
    localized_gradient,
    minibatches,
    run_chains,
)


def run_problem(problem: Problem, config: SGLDConfig, *, seed: int, progress=None,
                eps=None, gamma=None) -> ChainRun:  # fmt: skip
    """All ``config.chains`` chains of ``config.sampler`` from the posterior's ``start`` for
    ``config.steps`` steps, the Langevin noise from ``seed``'s ``sgld`` stream and minibatch
    indices from its own ``batches`` stream (so a change of batch size leaves the noise as it
    was). ``eps`` and ``gamma``, when given, are ``(chains, 1)`` tensors that give each chain its
    own (a grid run as one batch); else ``config``'s. A loss the path knows to be exactly
    quadratic runs as the affine map it is, where the sampler's step is that map."""
    posterior, chains = problem.posterior, config.chains
    _check_chains(problem.footprint, chains)
    device = posterior.start.device
    drift = localized_gradient(posterior.loss_and_grad, nbeta=posterior.nbeta,
                               gamma=config.gamma if gamma is None else gamma,
                               centre=posterior.centre)  # fmt: skip
    generator = make_generator(stream(seed, "sgld"), device)
    entries = _entries(posterior, problem.footprint, chains)
    sampler, quadratic = KERNELS[config.sampler], problem.exact.quadratic
    plain = eps is None and gamma is None
    if sampler.affine and plain and affine_run_fits(posterior, quadratic, config):
        with thread_policy(entries, device):
            return run_affine(posterior, quadratic, config, eps=config.eps, gamma=config.gamma,
                              steps=config.steps, burnin=config.burnin, generator=generator,
                              progress=progress)  # fmt: skip
    box = config.bounding_box
    project = None if box is None else bounding_box(posterior.centre, box)
    step = sampler.build(drift, config, posterior.mask, project)
    state = sampler.init(posterior.start.expand(chains, -1).clone())
    with thread_policy(entries, device):
        return run_chains(
            step, state, _batches(posterior, config, seed), eps=config.eps if eps is None else eps,
            steps=config.steps, burnin=config.burnin, generator=generator, progress=progress,
        )  # fmt: skip


def _check_chains(footprint: Footprint, chains: int) -> None:
    """Refuse a chain count other than the one the data are built for, where they are per
    chain."""
    if footprint.chains is not None and chains != footprint.chains:
        raise EstimationError(
            f"this problem carries data for {footprint.chains} chains, not {chains}"
        )


def _entries(posterior: Posterior, footprint: Footprint, chains: int) -> int:
    """The entries a step touches, for the thread policy: its working set (rows x classes,
    activations), not only its parameters."""
    start = posterior.start
    return chains * max(start.numel(), footprint.work_per_chain // start.element_size())


def _batches(posterior: Posterior, config: SGLDConfig, seed: int):
    if config.batch_size is None:
        return None
    device = posterior.start.device
    generator = make_generator(stream(seed, "batches"), device)
    return minibatches(
        posterior.n, config.batch_size, generator, device, config.batches, config.chains
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
    """:class:`ChainSummary` of the recorded excess losses ``(chains, draws)`` of ``problem``'s
    posterior, each chain's largest excess over all steps and whether its final position is
    finite."""
    posterior = problem.posterior
    threshold = diagnostics.divergence_threshold(
        posterior.init_loss, posterior.free_parameters, posterior.nbeta
    )
    bad = diagnostics.diverged(peak, finite, threshold)
    per_chain = posterior.nbeta * excess.mean(axis=1)
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

    Diverged chains (see :func:`llcgeo.numerics.sampling.diagnostics.diverged`) are left out of
    the mean, its standard error and the R-hat/ESS of the loss trace, and are named in
    ``warnings``, after the problem's own.
    """
    posterior, excess = problem.posterior, numpy_of(run.trace)
    finite = torch.isfinite(run.final.position).all(dim=1).cpu().numpy()
    c = chain_summary(problem, excess, numpy_of(run.peak), finite)
    kept = int((~c.diverged).sum())
    quality = diagnostics.quality_warnings(c.rhat, c.ess) if kept else ()
    acceptance = None if run.acceptance is None else numpy_of(run.acceptance)[~c.diverged]
    rate = float(acceptance.mean()) if acceptance is not None and acceptance.size else None
    return LLCEstimate(
        mean=c.mean, se=c.se, per_chain=c.per_chain, loss_trace=posterior.init_loss + excess,
        init_loss=posterior.init_loss, diverged_chains=tuple(int(i) for i in np.flatnonzero(
            c.diverged)), rhat=c.rhat, ess=c.ess, ess_tail=c.ess_tail, nbeta=posterior.nbeta,
        n=posterior.n, seed=seed, config=config, device=str(posterior.start.device),
        seconds=seconds,
        warnings=problem.warnings + diagnostics.divergence_warnings(c.diverged, c.threshold)
        + quality + diagnostics.acceptance_warnings(rate), acceptance_rate=rate,
    )  # fmt: skip
