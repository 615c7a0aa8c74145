"""The samplers, by name: each an ``init(position) -> state`` and a ``build(drift, config,
mask, project) -> step``, as blackjax pairs its algorithms, and whether its step on an exactly
quadratic loss is the affine map :mod:`llcgeo.numerics.sampling.affine` drives in one product a
step. :func:`llcgeo.numerics.runner.run_problem` looks a sampler up here and never branches on
its name; what a sampler *is* (Metropolis-adjusted, has an exact reference, bounded by the
stability limit) is :data:`llcgeo.config.SAMPLER_TRAITS`, which validation and the verdicts read
without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from llcgeo.config import SGLDConfig
from llcgeo.numerics.sampling.mala import build_mala_kernel, init_mala
from llcgeo.numerics.sampling.rmsprop import build_rmsprop_kernel, init_rmsprop
from llcgeo.numerics.sampling.sgld import build_kernel, init


class Sampler(NamedTuple):
    """``init(position)`` and ``build(drift, config, mask, project)``; ``affine``: on an exactly
    quadratic loss its step is the affine map that :func:`~llcgeo.numerics.sampling.affine.
    run_affine` drives, drawing the same noise (so the runner may run it that way)."""

    init: Callable[[Any], Any]
    build: Callable[..., Callable]
    affine: bool = False


def _sgld(drift, config: SGLDConfig, mask, project):
    return build_kernel(drift, noise_level=config.noise_level, mask=mask, project=project,
                        watch=config.acceptance)  # fmt: skip


def _mala(drift, config: SGLDConfig, mask, project):
    return build_mala_kernel(drift, mask=mask)  # the config forbids a box and a noise level


def _rmsprop(drift, config: SGLDConfig, mask, project):
    return build_rmsprop_kernel(drift, decay=config.rmsprop_decay, floor=config.rmsprop_floor,
                                noise_level=config.noise_level, mask=mask)  # fmt: skip


KERNELS: dict[str, Sampler] = {
    "sgld": Sampler(init, _sgld, affine=True),
    "mala": Sampler(init_mala, _mala),
    "rmsprop": Sampler(init_rmsprop, _rmsprop),
}  # a test holds its names to config.SAMPLERS
