"""SGLD as an ``init``/``step`` pair, all chains advancing together as one batch dimension.

The update is devinterp's, localized at the centre ``w*``::

    w <- w - (eps/2) (nbeta * grad L_batch(w) + gamma (w - w*)) + sqrt(eps) * noise_level * N(0, I)

It is split as blackjax splits its SG-MCMC samplers: a *gradient estimator*
(:func:`localized_gradient`) gives the drift ``grad U(w) = nbeta grad L_batch(w) + gamma (w - w*)``
of the localized, tempered potential; the *integrator* (:func:`build_kernel`) takes one Langevin
step along it, with the step size ``eps`` given at every call (a schedule, or one ``eps`` per
chain, needs no new kernel). Positions are tensors of shape ``(chains, P)``. Entries whose mask
is ``False`` never move (devinterp's ``param_masks``); an optional projection (e.g.
:func:`bounding_box`) is applied after the step. The drift function also returns the loss at the
position the step *starts* from, so a trace of ``info.loss`` over steps ``k`` holds ``L(w_k)``.

With ``watch=True`` each step also reports, in its info, the Metropolis acceptance probability
(:mod:`llcgeo.numerics.sampling.acceptance`) of the step that ended where it starts: the state
carries the previous start's potential and gradient, so no extra gradient is spent and any eps
schedule is honoured.

What is pure: ``init``, ``localized_gradient`` and ``bounding_box`` build functions that neither
keep nor change state; ``step`` returns a new state and never writes to the old one, but it
draws its noise from the ``torch.Generator`` it is given, which it advances.

>>> quadratic = lambda w, batch: (0.5 * w.square().sum(1), w)
>>> drift = localized_gradient(quadratic, nbeta=1.0, gamma=1.0, centre=torch.zeros(2))
>>> step = build_kernel(drift)
>>> state = init(torch.zeros(3, 2))
>>> state, info = step(state, None, 1e-2, torch.Generator().manual_seed(0))
>>> state.position.shape, info.loss.tolist(), state.step
(torch.Size([3, 2]), [0.0, 0.0, 0.0], 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

from llcgeo.errors import EstimationError
from llcgeo.numerics.sampling.acceptance import Evaluation, acceptance_probability

LossAndGrad = Callable[[torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]


class SGLDState(NamedTuple):
    """Where the chains are: ``position`` of shape ``(chains, P)`` and the steps taken;
    ``previous`` (when acceptance is watched) the last step's start, with its eps."""

    position: torch.Tensor
    step: int
    previous: tuple[Evaluation, float | torch.Tensor] | None = None


class SGLDInfo(NamedTuple):
    """What one step saw: ``loss`` (per chain) at the position the step started from, and, where
    a Metropolis test is watched or applied, ``acceptance`` (per chain): its probability for
    the step that ended there (SGLD), or whether this step's proposal was accepted (MALA)."""

    loss: torch.Tensor
    acceptance: torch.Tensor | None = None


def init(position: torch.Tensor) -> SGLDState:
    """The state at ``position`` (``(chains, P)``), before any step."""
    if position.dim() != 2:
        raise EstimationError(f"position must have shape (chains, P), got {tuple(position.shape)}")
    return SGLDState(position, 0)


class Drift(NamedTuple):
    """``grad U(w) = scale * grad + pull * (w - centre)``, kept as its parts so that the
    integrator can fuse the whole step into a few passes over memory (small runs are dominated
    by the cost of launching each operation); ``centre`` is ``None`` where it is zero."""

    grad: torch.Tensor
    scale: float
    pull: float
    centre: torch.Tensor | None


def drift_vector(w: torch.Tensor, d: Drift) -> torch.Tensor:
    """The drift ``scale * grad + pull * (w - centre)`` as one tensor."""
    away = w if d.centre is None else w - d.centre
    return d.scale * d.grad + d.pull * away


def potential(w: torch.Tensor, loss: torch.Tensor, d: Drift) -> torch.Tensor:
    """``U(w) = scale * loss + pull/2 |w - centre|^2`` per chain (``loss`` the excess loss)."""
    away = w if d.centre is None else w - d.centre
    pull = d.pull.reshape(-1) if isinstance(d.pull, torch.Tensor) else d.pull  # one per chain
    return d.scale * loss + 0.5 * pull * away.square().sum(dim=1)


def masked(v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``v`` with the entries ``mask`` freezes set to 0 (no tensor of zeros made a call)."""
    return v if mask is None else torch.where(mask, v, 0.0)


def evaluation(w: torch.Tensor, loss: torch.Tensor, d: Drift, mask) -> Evaluation:
    """The potential and masked gradient at ``w`` for a Metropolis test."""
    return Evaluation(w, potential(w, loss, d), masked(drift_vector(w, d), mask))


DriftFn = Callable[[torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, Drift]]


def localized_gradient(
    loss_and_grad: LossAndGrad, *, nbeta: float, gamma: float, centre: torch.Tensor
) -> DriftFn:
    """``(w, batch) -> (L_batch(w) - L(w*), drift)`` with ``drift`` the gradient
    ``nbeta grad L_batch(w) + gamma (w - w*)`` of the localized, tempered potential
    ``U(w) = nbeta L(w) + gamma/2 |w - w*|^2`` (see :class:`Drift`).

    ``centre`` (shape ``(P,)``) is ``w*``; the linear path works in offsets from ``w*``, so there
    it is zero and no subtraction is spent on it.
    """
    centre_or_none = centre if bool(centre.any()) else None

    def drift(w: torch.Tensor, batch):
        loss, grad = loss_and_grad(w, batch)
        return loss, Drift(grad, nbeta, gamma, centre_or_none)

    return drift


def bounding_box(centre: torch.Tensor, box: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The projection that clamps ``w - w*`` to ``[-box, box]`` entry by entry."""

    def project(w: torch.Tensor) -> torch.Tensor:
        return (w - centre).clamp_(-box, box).add_(centre)

    return project


Kernel = Callable[[SGLDState, "torch.Tensor | None", "float | torch.Tensor", torch.Generator],
                  tuple[SGLDState, SGLDInfo]]  # fmt: skip


def build_kernel(
    drift: DriftFn,
    *,
    noise_level: float = 1.0,
    mask: torch.Tensor | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    watch: bool = False,
) -> Kernel:
    """``step(state, batch, eps, generator) -> (state, info)``: one Langevin step
    ``w - (eps/2) drift(w) + sqrt(eps) noise_level xi`` for every chain.

    ``eps`` is a number, or a tensor of shape ``(chains, 1)`` giving each chain its own step
    size (and then the drift's ``pull``, gamma, may be one too: a calibration grid runs as one
    batch); ``mask`` (bool, ``(P,)``) marks the entries that move; ``watch`` reports the
    Metropolis acceptance probability of each step in the next step's info.
    """

    def step(state: SGLDState, batch, eps, generator: torch.Generator):
        w = state.position
        loss, d = drift(w, batch)
        new = _langevin(w, d, eps, noise_level, generator)
        if mask is not None:
            new = torch.where(mask, new, w)
        if project is not None:
            new = project(new)
        if not watch:
            return SGLDState(new, state.step + 1), SGLDInfo(loss)
        here = evaluation(w, loss, d, mask)
        before = state.previous
        accepted = None if before is None else acceptance_probability(before[0], here, before[1])
        return SGLDState(new, state.step + 1, (here, eps)), SGLDInfo(loss, accepted)

    return step


def _langevin(w: torch.Tensor, d: Drift, eps, noise_level: float, generator) -> torch.Tensor:
    """``w - (eps/2)(scale grad + pull (w - centre)) + sqrt(eps) noise_level xi``, fused into a
    few in-place passes over one new tensor (small runs pay per operation, not per entry)."""
    new = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
    if isinstance(eps, torch.Tensor):
        new.mul_(eps.sqrt() * noise_level).addcmul_(d.grad, eps, value=-0.5 * d.scale)
        new.addcmul_(w, 1.0 - 0.5 * d.pull * eps)
        if d.centre is not None:
            new.add_(d.centre * (0.5 * d.pull * eps))
        return new
    rate = 0.5 * eps
    new.mul_(math.sqrt(eps) * noise_level).add_(d.grad, alpha=-(rate * d.scale))
    new.add_(w, alpha=1.0 - rate * d.pull)
    if d.centre is not None:
        new.add_(d.centre, alpha=rate * d.pull)
    return new


def minibatches(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    draw: str = "epochs",
    chains: int = 1,
) -> Iterator[torch.Tensor]:
    """Endless index batches of shape ``(chains, batch_size)``, each chain its own (as each of
    devinterp's chains iterates its own shuffled loader), so that the chains stay independent
    and their spread measures the estimate's error. ``draw="epochs"``: a fresh permutation of
    ``range(n)`` per chain each epoch, cut into ``n // batch_size`` batches (the incomplete last
    batch is dropped, as torch's ``DataLoader(drop_last=True)``); ``"independent"``: each batch
    drawn anew, with replacement.

    >>> batches = minibatches(5, 2, torch.Generator().manual_seed(0), torch.device("cpu"))
    >>> [tuple(next(batches).shape) for _ in range(3)]
    [(1, 2), (1, 2), (1, 2)]
    """
    if batch_size > n:
        raise EstimationError(f"batch_size ({batch_size}) is larger than the dataset (n = {n})")
    if draw == "independent":
        while True:
            yield torch.randint(n, (chains, batch_size), generator=generator, device=device)
    per_epoch = n // batch_size
    while True:  # a linear-time shuffle a chain (an argsort of random keys takes n log n)
        order = torch.stack(
            [torch.randperm(n, generator=generator, device=device) for _ in range(chains)]
        )
        for i in range(per_epoch):
            yield order[:, i * batch_size : (i + 1) * batch_size]


class ChainRun(NamedTuple):
    """The raw output of :func:`run_chains`: the recorded losses, each chain's worst loss over
    all steps, the final state, and (where a Metropolis test was watched or applied) each
    chain's mean acceptance over its steps."""

    trace: torch.Tensor
    peak: torch.Tensor
    final: NamedTuple
    acceptance: torch.Tensor | None = None


def run_chains(step, state, batches, *, eps, steps: int, burnin: int, generator, progress=None):
    """Run ``steps`` steps of size ``eps`` (a number, or ``(chains, 1)``: one per chain);
    record ``info.loss`` for steps ``burnin..steps-1``.

    ``batches`` is an iterator of index batches, or ``None`` for full batch. ``peak`` is the
    largest loss of each chain over *all* steps (NaN if any was NaN), for divergence checks.
    ``progress(done, total)``, when given, is called about a hundred times.
    """
    position = state.position
    losses = torch.empty(position.shape[0], steps, dtype=position.dtype, device=position.device)
    accepted, seen = torch.zeros_like(losses[:, 0]), 0  # a tensor sum: no device sync a step
    every = max(1, steps // 100)
    for k in range(steps):
        batch = None if batches is None else next(batches)
        state, info = step(state, batch, eps, generator)
        losses[:, k] = info.loss
        if info.acceptance is not None:
            accepted += info.acceptance
            seen += 1
        if progress is not None and ((k + 1) % every == 0 or k + 1 == steps):
            progress(k + 1, steps)
    rate = accepted / seen if seen else None
    return ChainRun(losses[:, burnin:], losses.amax(dim=1), state, rate)
