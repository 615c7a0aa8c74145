"""``calibrate``: SGLD settings for any model, from its Hessian spectrum and the exact theory.

The spectrum at the model's parameters comes from :func:`llcgeo.numerics.paths.curvature.
hessian_spectrum` (exact on the linear path, Lanczos elsewhere); the settings, each with its
reason, from :func:`llcgeo.theory.calibration.recommend`. A centre that is not a minimum of
the population loss is refused with what to do: its gradient is more than ``GRADIENT_NOISE``
times the sampling noise of a mean gradient at a true parameter, ``sqrt(2 L(w*) tr(H) / n)``
(the Gauss-Newton size of one sample's gradient, averaged over ``n``). A true parameter passes,
although its posterior is shifted by that noise, as singular learning theory expects. Hessian
eigenvalues within ``HESSIAN_NOISE`` times ``sqrt(2 L(w*) h_max / n)`` of 0 are the residual's
noise in the curvature (a singular true parameter has them) and count as flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from llcgeo.config import TARGETS, SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.theory.calibration import Recommendation, recommend
from llcgeo.thresholds import Z_AGREE

GRADIENT_NOISE = 10.0  # times the sampling noise of a mean gradient at a true parameter
# a singular model's gamma sweep (singular="sweep"): the quadratic choice and this many decades
# below it, each point run this long (the flat valleys mix slowly)
GAMMA_DECADES = 4
SINGULAR_STEPS = 16_000
SINGULAR_MODES = ("auto", "warn", "sweep")
HESSIAN_NOISE = 3.0  # times sqrt(2 L(w*) h_max / n), the noise of a Hessian eigenvalue


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
    bias: float = TARGETS.bias,
    localization: float = TARGETS.localization,
    se: float = TARGETS.se,
    lanczos_steps: int = 100,
    singular: str = "auto",
    seed: int = 0,
) -> Calibration:
    """Settings whose exact step-size bias, localization bias and relative standard error stay
    below ``bias``, ``localization`` and ``se`` for ``model`` at its current parameters.

    Where directions are flat at ``w*`` (a singular model) the quadratic theory cannot set
    gamma: the loss rises along them at higher order, and a gamma chosen for the curved
    directions holds them down. ``singular="auto"`` (the default) notices: when more
    directions are flat than the model's path certifies (every flat direction of an exactly
    quadratic loss, a softmax head's shift symmetry), it runs the singular procedure by
    itself, ``"sweep"`` always runs it: gamma from the quadratic choice down ``GAMMA_DECADES``
    decades in one batch (``SINGULAR_STEPS`` steps a point, at the chosen eps), the largest
    gamma below which the estimate no longer rises (:func:`gamma_plateau`). ``"warn"`` keeps
    the quadratic choice and says so."""
    from llcgeo.numerics.device import resolve_device
    from llcgeo.numerics.paths.choose import model_problem

    config = config or SGLDConfig()
    problem = model_problem(model, inputs, targets, config, param_masks, loss,
                            resolve_device(device))  # fmt: skip
    return calibrate_problem(problem, config, bias=bias, localization=localization, se=se,
                             lanczos_steps=lanczos_steps, singular=singular, seed=seed)  # fmt: skip


def calibrate_problem(problem, config: SGLDConfig, *, bias: float = TARGETS.bias,
                      localization: float = TARGETS.localization, se: float = TARGETS.se,
                      lanczos_steps: int = 100, singular: str = "auto",
                      seed: int = 0, progress=None) -> Calibration:  # fmt: skip
    """:func:`calibrate` on a :class:`~llcgeo.numerics.paths.problem.Problem` already built (a case
    whose data a measurement will reuse); ``progress(done, total)`` follows a sweep's steps."""
    import torch

    from llcgeo.numerics.device import thread_policy
    from llcgeo.numerics.paths.curvature import hessian_spectrum

    if singular not in SINGULAR_MODES:
        raise SpecError(f"singular must be one of {SINGULAR_MODES}, got {singular!r}")
    with thread_policy(config.chains * problem.start.numel(), problem.start.device):
        spectrum = hessian_spectrum(problem, steps=lanczos_steps)
        centre = problem.centre.expand(1, -1).clone()
        _, gradient = problem.loss_and_grad(centre, None)
    moving = gradient[0] if problem.mask is None else gradient[0][problem.mask]
    noise = math.sqrt(2 * problem.init_loss * float(np.abs(spectrum).sum()) / problem.n)
    _check_minimum(float(torch.linalg.vector_norm(moving)), noise)
    curvature_noise = HESSIAN_NOISE * math.sqrt(
        2 * problem.init_loss * float(np.abs(spectrum).max()) / problem.n
    )
    r = recommend(
        spectrum, nbeta=problem.nbeta, bias=bias, localization=localization, se=se,
        chains=config.chains, noise=curvature_noise,
        quadratic=problem.hessian_eigenvalues is not None,  # the linear path: exactly quadratic
        certified=problem.certified_flat,
    )  # fmt: skip
    if singular == "sweep" or (singular == "auto" and _unexplained_flat(problem, r) > 0):
        r = _singular_gamma(problem, r, seed, progress)
    tuned = replace(
        config, eps=r.eps, gamma=r.gamma, steps=r.steps, burnin=r.burnin, chains=r.chains
    )
    return Calibration(tuned, r, spectrum, problem.nbeta)


def _unexplained_flat(problem, r: Recommendation) -> int:
    """Directions flat at ``w*`` that the path does not certify as exactly flat: on an
    exactly quadratic loss (the linear path) none; elsewhere those beyond the path's known
    symmetries (``Problem.certified_flat``)."""
    if problem.hessian_eigenvalues is not None:
        return 0
    return round(problem.free_parameters - 2 * r.llc) - problem.certified_flat


def _singular_gamma(problem, r: Recommendation, seed: int, progress=None) -> Recommendation:
    """``r`` with gamma, the chain length and the expectation from a gamma sweep."""
    from llcgeo.numerics.sweep import sweep

    grid = [r.gamma / 10**k for k in range(GAMMA_DECADES + 1)]
    burnin = SINGULAR_STEPS // 5
    points = sweep(problem, [r.eps], grid, chains=r.chains, steps=SINGULAR_STEPS,
                   burnin=burnin, seed=seed, progress=progress)  # fmt: skip
    gamma = gamma_plateau(points, r.eps)
    shown = ", ".join(f"{p.gamma:.3g}: {p.mean:.3g} +- {p.se:.2g}" for p in points)
    if gamma is None:
        raise SpecError(
            f"the estimate of this singular model keeps rising as gamma falls ({shown}): no "
            "plateau within four decades; allow longer chains, or choose gamma by hand"
        )
    chosen = next(p for p in points if p.gamma == gamma)
    flat = round(problem.free_parameters - 2 * r.llc)
    reasons = (
        r.reasons[0],
        f"{flat} of {problem.free_parameters} directions are flat at w* ("
        f"{problem.certified_flat} of them certified exactly flat by a symmetry): a singular "
        "model, whose flat directions rise at higher order, so gamma comes from a sweep",
        f"gamma = {gamma:.3g} (the quadratic theory's {r.gamma:.3g} holds the flat directions "
        f"down): a sweep at eps {r.eps:.3g} (gamma: estimate {shown}); below {gamma:.3g} the "
        "estimate no longer rises",
        f"burn-in = {burnin}, steps = {SINGULAR_STEPS}: the sweep's chains, long enough for the "
        f"flat valleys to mix; the expected value {chosen.mean:.3g} +- {chosen.se:.2g} is that "
        "point's, measured (no exact expectation exists for a singular model)",
    )
    return replace(
        r, gamma=gamma, steps=SINGULAR_STEPS, burnin=burnin, expected=chosen.mean,
        standard_error=chosen.se, reasons=reasons,
    )  # fmt: skip


def _check_minimum(gradient_norm: float, noise: float) -> None:
    if gradient_norm > GRADIENT_NOISE * noise:
        raise SpecError(
            f"the model's parameters are not a minimum of the loss: the gradient there has norm "
            f"{gradient_norm:.3g}, {gradient_norm / max(noise, 1e-300):.3g} times the sampling "
            "noise of a gradient at a true parameter; train further (or fit exactly) before "
            "estimating the LLC"
        )


def sweep_grid(
    model, inputs, targets, eps_grid, gamma_grid, *, config: SGLDConfig | None = None,
    loss="gaussian", param_masks=None, device="cpu", seed: int = 0,
) -> list:  # fmt: skip
    """Every (eps, gamma) of the grid as :class:`llcgeo.numerics.sweep.GridPoint`, all chains
    in one batch (``config`` gives the chains a point, the steps and the burn-in), each with its
    exact expectation where the loss is exactly quadratic (the linear path)."""
    from llcgeo.numerics.device import resolve_device
    from llcgeo.numerics.paths.choose import model_problem

    config = config or SGLDConfig()
    problem = model_problem(
        model, inputs, targets, config, param_masks, loss, resolve_device(device)
    )
    return grid_points(problem, eps_grid, gamma_grid, config, seed=seed)


def grid_points(problem, eps_grid, gamma_grid, config: SGLDConfig, *, seed: int = 0,
                progress=None) -> list:  # fmt: skip
    """:func:`sweep_grid` on a :class:`~llcgeo.numerics.paths.problem.Problem` already built."""
    from llcgeo.numerics.sweep import sweep
    from llcgeo.theory import expected_sgld_estimate

    points = sweep(problem, eps_grid, gamma_grid, chains=config.chains, steps=config.steps,
                   burnin=config.burnin, seed=seed, progress=progress)  # fmt: skip
    exact = problem.hessian_eigenvalues
    if exact is None:
        return points
    return [
        p._replace(expected=expected_sgld_estimate(
            exact, problem.nbeta, p.gamma, p.eps, config.steps, config.burnin).mean)
        for p in points
    ]  # fmt: skip


def plateau(points: list, gamma: float, z: float = Z_AGREE) -> float | None:
    """The largest eps below which the estimates at ``gamma`` all agree (within ``z`` combined
    standard errors) with the one at the smallest eps: where the estimate stops depending on
    eps. None when even the two smallest disagree."""
    row = [p for p in points if p.gamma == gamma and not p.diverged]
    return _plateau(sorted(row, key=lambda p: p.eps), "eps", z)


def gamma_plateau(points: list, eps: float, z: float = Z_AGREE) -> float | None:
    """The largest gamma below which the estimates at ``eps`` all agree with the one at the
    smallest gamma: where localization stops holding the estimate down."""
    row = [p for p in points if p.eps == eps and not p.diverged]
    return _plateau(sorted(row, key=lambda p: p.gamma), "gamma", z)


def _plateau(row: list, key: str, z: float) -> float | None:
    if not row:
        return None
    base, last = row[0], None
    for p in row[1:]:
        if abs(p.mean - base.mean) > z * math.hypot(p.se, base.se):
            break
        last = getattr(p, key)
    return last


EPS_FACTORS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)  # the evidence grid around the chosen eps
GAMMA_FACTORS = (0.1, 1.0, 10.0)  # ... and the chosen gamma


def evidence(problem, calibration: Calibration, *, seed: int = 0, progress=None) -> list:
    """The estimate on a grid around the chosen settings (``EPS_FACTORS`` x
    ``GAMMA_FACTORS``), all in one batch at the chosen chain length: what the figure of
    ``llcgeo calibrate`` shows."""
    c = calibration.config
    return grid_points(problem, [f * c.eps for f in EPS_FACTORS],
                       [f * c.gamma for f in GAMMA_FACTORS], c, seed=seed,
                       progress=progress)  # fmt: skip


def evidence_figure(points: list, calibration: Calibration):
    """Estimate against eps, one colour per gamma, the theory's exact curve beside each where
    the loss is quadratic, the chosen eps marked and the plateau's end named in the caption."""
    from llcgeo.reconcile.model import Figure, Panel, Series

    c = calibration.config
    series = []
    for gamma in sorted({p.gamma for p in points}):
        row = sorted((p for p in points if p.gamma == gamma), key=lambda p: p.eps)
        xs, group = tuple(p.eps for p in row), f"gamma {gamma:.3g}"
        series.append(Series(f"SGLD, {group} (± SE)", xs, tuple(p.mean for p in row),
                             tuple(p.se for p in row), group=group))  # fmt: skip
        if all(p.expected is not None for p in row):
            exact = tuple(p.expected for p in row)
            series.append(Series(f"exact, {group}", xs, exact, style="line", group=group))
    ends = (min(p.eps for p in points), max(p.eps for p in points))
    llc = calibration.recommendation.llc
    series.append(Series(f"LLC {llc:g} (the curved directions)", ends, (llc, llc), style="line"))
    series.append(Series("chosen eps", (c.eps,), (), style="vline"))
    end = plateau(points, gamma=c.gamma)
    panel = Panel("LLC estimate against the step size", "eps", "estimate", tuple(series),
                  xscale="log")  # fmt: skip
    caption = (
        f"Chosen: eps {c.eps:.3g}, gamma {c.gamma:.3g} ({c.chains} chains x {c.draws} draws). "
        "The estimate rises with eps (the step-size bias) and falls with gamma (the "
        "localization bias); "
        + ("the plateau at the chosen gamma reaches eps "
           f"{end:.3g}." if end else "no plateau at the chosen gamma: even the two smallest "
           "eps disagree.")
    )  # fmt: skip
    return Figure("calibration", (panel,), caption=caption)
