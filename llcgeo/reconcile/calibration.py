"""``calibrate``: SGLD settings for any model, from its Hessian spectrum and the exact theory.

The spectrum at the model's parameters comes from :func:`llcgeo.numerics.curvature.
hessian_spectrum` (exact on the linear path, Lanczos elsewhere); the settings, each with its
reason, from :func:`llcgeo.theory.calibration.recommend`. A centre that is not a minimum (a
gradient that moves the posterior by more than its own width) is refused with what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from llcgeo.config import SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.theory.calibration import FLAT, Recommendation, recommend

OFF_CENTRE = 1.0  # posterior widths the gradient at the centre may move the minimum by


@dataclass(frozen=True)
class Calibration:
    """The recommended ``config`` (the caller's with eps, gamma, chains, steps and burn-in
    replaced), the :class:`Recommendation` behind it, and the spectrum it came from."""

    config: SGLDConfig
    recommendation: Recommendation
    spectrum: np.ndarray
    nbeta: float


def calibrate(
    model,
    inputs,
    targets,
    *,
    config: SGLDConfig | None = None,
    param_masks=None,
    loss="gaussian",
    device="cpu",
    bias: float = 0.05,
    localization: float = 0.05,
    se: float = 0.02,
    lanczos_steps: int = 100,
) -> Calibration:
    """Settings whose exact step-size bias, localization bias and relative standard error stay
    below ``bias``, ``localization`` and ``se`` for ``model`` at its current parameters."""
    import torch

    from llcgeo.numerics.curvature import hessian_spectrum
    from llcgeo.numerics.device import resolve_device
    from llcgeo.numerics.estimate import model_problem

    config = config or SGLDConfig()
    target = resolve_device(device)
    problem = model_problem(model, inputs, targets, config, param_masks, loss, target)
    spectrum = hessian_spectrum(problem, steps=lanczos_steps)
    centre = problem.centre.expand(1, -1).clone()
    _, gradient = problem.loss_and_grad(centre, None)
    moving = gradient[0] if problem.mask is None else gradient[0][problem.mask]
    _check_minimum(float(torch.linalg.vector_norm(moving)), spectrum, problem.nbeta)
    r = recommend(
        spectrum, nbeta=problem.nbeta, bias=bias, localization=localization, se=se,
        chains=config.chains,
    )  # fmt: skip
    tuned = replace(
        config, eps=r.eps, gamma=r.gamma, steps=r.steps, burnin=r.burnin, chains=r.chains
    )
    return Calibration(tuned, r, spectrum, problem.nbeta)


def _check_minimum(gradient_norm: float, spectrum: np.ndarray, nbeta: float) -> None:
    """The minimum of the local quadratic lies ``|g| / h`` from the centre along a direction of
    curvature ``h``, where the posterior is ``1 / sqrt(nbeta h)`` wide."""
    moving = spectrum[spectrum > FLAT * max(float(spectrum.max()), 0.0)]
    if not moving.size:
        return  # recommend() says why there is nothing to calibrate
    widths = gradient_norm * math.sqrt(nbeta / float(moving.min()))
    if widths > OFF_CENTRE:
        raise SpecError(
            f"the model's parameters are not a minimum of the loss: the gradient there (norm "
            f"{gradient_norm:.3g}) moves the posterior's centre by {widths:.3g} of its widths; "
            "train further (or fit exactly) before estimating the LLC"
        )
