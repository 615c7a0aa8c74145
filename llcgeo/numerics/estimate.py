"""``estimate_llc``: the LLC of any model at its current parameters, by batched SGLD.

The model becomes a :class:`~llcgeo.numerics.paths.problem.Problem` on the fastest path that
gives the general path's numbers (:mod:`llcgeo.numerics.paths.choose` says which), the run is
planned (:mod:`llcgeo.numerics.plan`), run and summarized (:mod:`llcgeo.numerics.runner`).

>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(500, 3, generator=g, dtype=torch.float64)
>>> layer = torch.nn.Linear(3, 2, dtype=torch.float64)
>>> y = layer(x).detach()
>>> e = estimate_llc(layer, x, y, config=SGLDConfig(eps=1e-4, chains=2, steps=300, burnin=100),
...                  device="cpu")
>>> e.per_chain.shape, e.diverged_chains
((2,), ())
"""

from __future__ import annotations

import time

import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError
from llcgeo.limits import with_budget
from llcgeo.numerics.device import resolve_device, thread_policy
from llcgeo.numerics.paths.choose import checked_model, model_problem
from llcgeo.numerics.paths.curvature import top_eigenvalue
from llcgeo.numerics.paths.data import checked_data
from llcgeo.numerics.paths.module import LOW_PRECISION, parameter_shapes
from llcgeo.numerics.paths.pairing import check_pairing
from llcgeo.numerics.paths.preconditioned import preconditioned
from llcgeo.numerics.paths.problem import Problem
from llcgeo.numerics.plan import check_run
from llcgeo.numerics.result import LLCEstimate
from llcgeo.numerics.runner import run_problem, summarize
from llcgeo.numerics.sampling.diagnostics import stability_warning
from llcgeo.thresholds import Z_AGREE

DEFAULT_CONFIG = SGLDConfig()


@with_budget
def estimate_llc(
    model: torch.nn.Module,
    inputs,
    targets,
    *,
    config: SGLDConfig = DEFAULT_CONFIG,
    param_masks=None,
    loss="gaussian",
    device="auto",
    seed: int = 0,
    progress=None,
    output_fn=None,
    preconditioner=None,
) -> LLCEstimate:
    """``nbeta * (mean_k L(w_k) - L(w*))`` averaged over chains, ``w*`` the model's parameters.

    ``inputs`` is a tensor or array, or a dict of them (passed to ``forward`` as keyword
    arguments); with ``targets=None`` it is an iterable of ``(inputs, targets)`` batches such as
    a ``DataLoader``, joined into one dataset. Integer inputs and targets (token ids, class
    labels) are kept as integers. ``loss`` is ``"gaussian"`` (``1/2 |y - f(x)|^2`` per sample),
    ``"cross_entropy"`` (logits against labels, :func:`llcgeo.numerics.paths.losses.cross_entropy`)
    or a callable ``loss(outputs, targets) -> per-sample losses``; the loss is averaged over
    samples. The model is sampled in evaluation mode (dropout off, batch norm on its running
    statistics; the result's warnings say so where it matters). ``param_masks`` restricts the
    entries that move (devinterp's semantics); ``progress(done, total)`` is called as it runs.
    ``output_fn`` maps what ``forward`` returns to the tensor the loss reads, for a model whose
    output is a tuple or a dict (``lambda out: out[0]``; canonical-interp's ``unpack_fn``).
    ``preconditioner``, a matrix ``P`` with one row for each entry that moves (``param_masks``,
    in ``named_parameters()`` order), samples ``w = w* + P u`` instead: ``eps`` and ``gamma``
    act on ``u`` (:mod:`llcgeo.numerics.paths.preconditioned`; ``llcgeo.scanner.reusable`` gives the
    one a scan row used).

    The run is planned before its first step (:mod:`llcgeo.numerics.plan`): one that would
    need more memory or time than the budget (2 GB and 10 minutes; ``budget=``, a
    :class:`llcgeo.limits.Budget`, or ``LLCGEO_MAX_MEMORY_GB`` and ``LLCGEO_TIME_LIMIT`` raise
    them) is refused with the figures. An estimate below zero by more than three standard
    errors is refused too: the loss then falls below its value at the parameters, which are not
    a minimum, and no LLC describes them.
    On a minibatch, the loss recorded at ``w_k`` is the minibatch loss (as devinterp does);
    ``L(w*)`` is always the exact full-batch loss.
    """
    started = time.perf_counter()
    target = resolve_device(device)
    shapes = parameter_shapes(checked_model(model, config))
    x, y = checked_data(inputs, targets)
    check_pairing(model, x, y, loss, output_fn)
    if preconditioner is not None:
        model, param_masks = preconditioned(model, param_masks, preconditioner), None
        shapes = parameter_shapes(model)
    with thread_policy(config.chains * sum(s.numel() for s in shapes.values()), target):
        problem = model_problem(model, x, y, config, param_masks, loss, target,
                                output_fn)  # fmt: skip
        estimate = estimate_problem(problem, config, seed=seed, progress=progress,
                                    started=started)  # fmt: skip
    return _low_precision_checked(model, estimate)


def _low_precision_checked(model: torch.nn.Module, estimate: LLCEstimate) -> LLCEstimate:
    """A half-precision model's parameters are a minimum only to their own precision: sampled
    on an upcast copy, a negative estimate says the chains found lower loss beside them, and
    is refused rather than reported as a coefficient."""
    if estimate.mean >= 0 or not any(p.dtype in LOW_PRECISION for p in model.parameters()):
        return estimate
    raise EstimationError(
        f"the estimate is {estimate.mean:.3g} +- {estimate.se:.2g}, below zero: the model's "
        "parameters are half precision, a minimum only to their own precision, and the "
        "chains (on an upcast copy) found lower loss beside them; refit the model in float32 "
        "(model.float(), then a few optimizer steps) and estimate that"
    )


def estimate_problem(problem: Problem, config: SGLDConfig, *, seed, progress, started: float):
    """Sample ``problem`` with the random streams of ``seed`` and summarize it."""
    n = problem.posterior.n
    if config.batch_size is not None and config.batch_size > n:
        raise EstimationError(f"batch_size ({config.batch_size}) exceeds the n = {n} samples")
    problem = problem.noted(_stability(problem, config, seed))
    check_run(problem, config, seed=seed)
    run = run_problem(problem, config, seed=seed, progress=progress)
    estimate = summarize(problem, run, config, seed=seed, seconds=time.perf_counter() - started)
    return _not_below_zero(estimate)


def _not_below_zero(estimate: LLCEstimate) -> LLCEstimate:
    """``estimate``, unless it lies below zero by more than ``Z_AGREE`` standard errors: then
    the loss fell below its value at the centre, and no LLC describes the centre."""
    if not (estimate.mean + Z_AGREE * estimate.se < 0):
        return estimate
    raise EstimationError(
        f"the estimate is {estimate.mean:.3g} +- {estimate.se:.2g}, below zero: the chains found "
        "lower loss near the model's parameters than at them, so they are not a minimum of "
        "this loss (an untrained model, or one trained to another loss or precision); train "
        "or fit to a minimum first, or localize harder (a larger gamma)"
    )


def _stability(problem: Problem, config: SGLDConfig, seed: int) -> tuple[str, ...]:
    """A warning when the step is near the stability bound (plain SGLD: MALA's test and the
    RMSProp preconditioner change the bound)."""
    if not config.traits.stable_below_bound or config.traits.metropolis:
        return ()
    h_max, exact = top_eigenvalue(problem, batch_size=config.batch_size, seed=seed)
    nbeta = problem.posterior.nbeta
    text = stability_warning(config.eps, nbeta, config.gamma, h_max, lower=not exact)
    return () if text is None else (text,)
