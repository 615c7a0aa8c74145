"""A model's SGLD estimate beside its exact quadratic model's, run on the same noise.

With one seed, the chains on the real loss and on ``1/2 (w - w*)^T H (w - w*)``
(:func:`~llcgeo.numerics.paths.problem.quadratic_problem`) see the very same noise, so the
difference of the two estimates is what the loss's terms beyond the quadratic add: the coupled
measurement of the network suite (a trained head) and of the scanner (any reader).
"""

from __future__ import annotations

import time
from typing import NamedTuple

from llcgeo.config import SGLDConfig
from llcgeo.numerics.device import resolve_device, thread_policy
from llcgeo.numerics.estimate import estimate_problem
from llcgeo.numerics.measurements.heads import SMOOTHING
from llcgeo.numerics.measurements.training import TrainedHead, head_module
from llcgeo.numerics.paths.choose import model_problem
from llcgeo.numerics.paths.losses import cross_entropy
from llcgeo.numerics.paths.problem import quadratic_problem
from llcgeo.numerics.result import LLCEstimate


class HeadMeasurement(NamedTuple):
    """The head's SGLD estimate on its real loss and on its exact quadratic model, run with
    the same seed (so the same noise): their difference is what the terms beyond the quadratic
    add."""

    estimate: LLCEstimate
    quadratic: LLCEstimate


def measure_head(trained: TrainedHead, hessian, config: SGLDConfig, *, moving_bias, seed, device):
    """Both estimates of :class:`HeadMeasurement` for ``trained``'s head, the weight moving
    (and the bias where ``moving_bias``), under the smoothed cross-entropy."""
    head, masks = head_module(trained, moving_bias=moving_bias)
    loss = cross_entropy(SMOOTHING)
    return measure_with_quadratic(head, trained.features, trained.labels, loss, hessian, config,
                                  masks=masks, seed=seed, device=device)  # fmt: skip


def measure_with_quadratic(model, inputs, targets, loss, hessian, config: SGLDConfig, *,
                           masks=None, seed, device, progress=None) -> HeadMeasurement:  # fmt: skip
    """``model``'s estimate at its parameters and, with the same seed (the same noise), the
    estimate on its exact quadratic model ``hessian`` (on the entries ``masks`` move);
    ``progress(done, total)`` counts the steps of both runs."""
    target = resolve_device(device)
    with thread_policy(config.chains * hessian.shape[0], target):
        problem = model_problem(model, inputs, targets, config, masks, loss, target)
        real = estimate_problem(problem, config, seed=seed, progress=_part(progress, 0, 2),
                                started=time.perf_counter())  # fmt: skip
        quadratic = quadratic_problem(hessian, problem)
        model = estimate_problem(quadratic, config, seed=seed, progress=_part(progress, 1, 2),
                                 started=time.perf_counter())  # fmt: skip
    return HeadMeasurement(real, model)


def _part(progress, index: int, parts: int):
    """``progress`` for the ``index``-th of ``parts`` equal runs, as a share of them all."""
    if progress is None:
        return None
    return lambda done, total: progress(index * total + done, parts * total)
