"""``estimate_llc``: the LLC of any model at its current parameters, by batched SGLD.

A ``torch.nn.Linear`` with the Gaussian loss takes the sufficient-statistics fast path
(:mod:`llcgeo.numerics.linear`), with the cross-entropy on ``(n, d)`` features the
softmax-head path (:mod:`llcgeo.numerics.softmax`); a full-batch ``nn.Sequential`` of
bias-free ``nn.Linear`` layers, the product path (:mod:`llcgeo.numerics.product`); another
``nn.Sequential`` of linear layers and elementwise activations on ``(n, d)`` inputs, the
stacked-MLP path (:mod:`llcgeo.numerics.stacked`); anything else the general path
(:mod:`llcgeo.numerics.module`). All build the same
:class:`~llcgeo.numerics.problem.Problem`, so they give the same estimate; a product of
linear maps that cannot take its fast path (a bias, a minibatch, another loss) says so in the
estimate's warnings.

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
from llcgeo.numerics.curvature import top_eigenvalue
from llcgeo.numerics.data import checked_data, is_matrix, to_device
from llcgeo.numerics.device import (
    resolve_device,
    resolve_dtype,
    thread_policy,
)
from llcgeo.numerics.diagnostics import stability_warning
from llcgeo.numerics.linear import linear_problem
from llcgeo.numerics.losses import (
    LOSSES,
    CrossEntropy,
    check_gaussian_targets,
    check_targets,
    per_sample_loss,
)
from llcgeo.numerics.masks import flatten_masks
from llcgeo.numerics.module import (
    LOW_PRECISION,
    module_problem,
    parameter_shapes,
    precision_note,
)
from llcgeo.numerics.pairing import check_pairing
from llcgeo.numerics.plan import check_run
from llcgeo.numerics.preconditioned import preconditioned
from llcgeo.numerics.problem import Problem, run_problem, summarize
from llcgeo.numerics.product import is_linear_product, product_problem
from llcgeo.numerics.result import LLCEstimate
from llcgeo.numerics.softmax import softmax_problem
from llcgeo.numerics.stacked import is_stacked_mlp, stacked_problem
from llcgeo.thresholds import Z_AGREE

DEFAULT_CONFIG = SGLDConfig()


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
    ``"cross_entropy"`` (logits against labels, :func:`llcgeo.numerics.losses.cross_entropy`)
    or a callable ``loss(outputs, targets) -> per-sample losses``; the loss is averaged over
    samples. The model is sampled in evaluation mode (dropout off, batch norm on its running
    statistics; the result's warnings say so where it matters). ``param_masks`` restricts the
    entries that move (devinterp's semantics); ``progress(done, total)`` is called as it runs.
    ``output_fn`` maps what ``forward`` returns to the tensor the loss reads, for a model whose
    output is a tuple or a dict (``lambda out: out[0]``; canonical-interp's ``unpack_fn``).
    ``preconditioner``, a matrix ``P`` with one row for each entry that moves (``param_masks``,
    in ``named_parameters()`` order), samples ``w = w* + P u`` instead: ``eps`` and ``gamma``
    act on ``u`` (:mod:`llcgeo.numerics.preconditioned`; ``llcgeo.scanner.reusable`` gives the
    one a scan row used).

    The run is planned before its first step (:mod:`llcgeo.numerics.plan`): one that would
    need more memory or time than the budget (2 GB and 10 minutes; ``LLCGEO_MAX_MEMORY_GB``
    and ``LLCGEO_TIME_LIMIT`` raise them) is refused with the figures. An estimate below zero
    by more than three standard errors is refused too: the loss then falls below its value at
    the parameters, which are not a minimum, and no LLC describes them.
    On a minibatch, the loss recorded at ``w_k`` is the minibatch loss (as devinterp does);
    ``L(w*)`` is always the exact full-batch loss.
    """
    started = time.perf_counter()
    target = resolve_device(device)
    shapes = parameter_shapes(_checked_model(model, config))
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


def _checked_model(model, config) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise EstimationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, SGLDConfig):
        raise EstimationError(f"config must be an SGLDConfig, got {type(config).__name__}")
    return model


def model_problem(model, inputs, targets, config, param_masks, loss, target,
                  output_fn=None) -> Problem:  # fmt: skip
    """The :class:`Problem` of ``model`` at its parameters on this data, on the fastest path
    that gives the general path's numbers (see the module's note; a model whose output goes
    through ``output_fn`` takes the general path)."""
    shapes = parameter_shapes(_checked_model(model, config))
    x, y = checked_data(inputs, targets)
    problem = _fastest_problem(model, x, y, config, flatten_masks(shapes, param_masks), loss,
                               target, output_fn)  # fmt: skip
    notes = precision_note(model, resolve_dtype(config.dtype))
    return problem._replace(warnings=problem.warnings + notes)


def _fastest_problem(model, x, y, config, mask, loss, target, output_fn) -> Problem:
    fn = per_sample_loss(loss)
    named = loss if isinstance(loss, str) and loss in LOSSES else None
    if named == "gaussian":
        check_gaussian_targets(y)
    gaussian = named == "gaussian" and is_matrix(x) and output_fn is None
    if type(model) is torch.nn.Linear and gaussian:
        return _linear(model, x.to(target), y.to(target), config, mask)
    if is_linear_product(model) and gaussian and config.batch_size is None:
        return _product_path(model, x.to(target), y.to(target), config, mask)
    dtype = resolve_dtype(config.dtype)
    entropy = isinstance(fn, CrossEntropy) and is_matrix(x) and output_fn is None
    if type(model) is torch.nn.Linear and entropy:
        return _softmax_path(model, x.to(target, dtype), y.to(target), config, mask, fn)
    x, y = to_device(x, target, dtype), to_device(y, target, dtype)
    if is_stacked_mlp(model) and (gaussian or entropy):
        problem, used = _stacked_path(model, x, y, config, mask, fn), "the stacked-MLP path"
    else:
        problem = module_problem(model, x, y, config, mask, fn, named, output_fn)
        used = "the general path"
    return problem._replace(warnings=problem.warnings + _why_not(model, gaussian, config, used))


def _why_not(model, gaussian: bool, config: SGLDConfig, used: str) -> tuple[str, ...]:
    """Why a stack of linear layers did not take the product path (nothing for other models)."""
    layers = list(model) if type(model) is torch.nn.Sequential else []
    if not layers or not all(type(layer) is torch.nn.Linear for layer in layers):
        return ()
    if any(layer.bias is not None for layer in layers):
        why = "a layer has a bias"
    elif not gaussian:
        why = "the loss is not the Gaussian loss on (n, d) inputs"
    else:
        why = "minibatches need the data at every step"
    return (f"the product-of-linear-maps fast path was not taken ({why}): {used} used",)


def _stacked_path(model: torch.nn.Sequential, x, y, config: SGLDConfig, mask, fn) -> Problem:
    linears = [layer for layer in model if type(layer) is torch.nn.Linear]
    d, k = linears[0].in_features, linears[-1].out_features
    if x.shape[1] != d:
        raise EstimationError(f"the network takes inputs of shape (n, {d}); got {tuple(x.shape)}")
    if isinstance(fn, CrossEntropy):
        check_targets("cross_entropy", (k,), y)
    elif y.shape != (x.shape[0], k):
        raise EstimationError(
            f"the network's outputs have shape (n, {k}) but the targets have shape {tuple(y.shape)}"
        )
    return stacked_problem(model, x, y, config, mask, fn)


def _softmax_path(model: torch.nn.Linear, x, y, config: SGLDConfig, mask, fn) -> Problem:
    if x.shape[1] != model.in_features or y.is_floating_point() or y.dim() != 1:
        raise EstimationError(
            f"a Linear({model.in_features}, {model.out_features}) softmax head needs features "
            f"(n, {model.in_features}) and integer labels (n,); got {tuple(x.shape)} and "
            f"{tuple(y.shape)} ({y.dtype})"
        )
    check_targets("cross_entropy", (model.out_features,), y)
    weight, bias = (None if p is None else p.detach().to(x) for p in (model.weight, model.bias))
    return softmax_problem(x, y, weight, bias, config, mask, fn.label_smoothing)


def _product_path(model: torch.nn.Sequential, x, y, config: SGLDConfig, mask) -> Problem:
    d, m = model[0].in_features, model[-1].out_features
    if x.shape[1] != d or y.shape != (x.shape[0], m):
        raise EstimationError(
            f"a product of linear maps from {d} to {m} features needs inputs (n, {d}) and "
            f"targets (n, {m}); got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return product_problem(model, x, y, config, mask)


def estimate_problem(problem: Problem, config: SGLDConfig, *, seed, progress, started: float):
    """Sample ``problem`` with the random streams of ``seed`` and summarize it."""
    if config.batch_size is not None and config.batch_size > problem.n:
        raise EstimationError(
            f"batch_size ({config.batch_size}) exceeds the n = {problem.n} samples"
        )
    problem = problem._replace(warnings=problem.warnings + _stability(problem, config, seed))
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
    text = stability_warning(config.eps, problem.nbeta, config.gamma, h_max, lower=not exact)
    return () if text is None else (text,)


def _linear(model: torch.nn.Linear, x, y, config: SGLDConfig, mask) -> Problem:
    if x.shape[1] != model.in_features or y.shape != (x.shape[0], model.out_features):
        raise EstimationError(
            f"a Linear({model.in_features}, {model.out_features}) layer needs inputs "
            f"(n, {model.in_features}) and targets (n, {model.out_features}); got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    weight = model.weight.detach().to(x.device, torch.float64)
    theta = (
        weight
        if model.bias is None
        else torch.cat([weight, model.bias.detach().to(x.device, torch.float64)[:, None]], dim=1)
    )
    return linear_problem(x, y, theta, config, mask)
