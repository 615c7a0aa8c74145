"""``calibrate``: SGLD settings for any model, from its Hessian spectrum and the exact theory.

The spectrum at the model's parameters comes from :func:`llcgeo.numerics.paths.curvature.
hessian_spectrum` (exact on the linear path, Lanczos elsewhere); the settings, each with its
reason, from :func:`llcgeo.theory.calibration.recommend`. A centre that is not a minimum of
the population loss is refused with what to do: its gradient is more than ``GRADIENT_NOISE``
times the sampling noise of a mean gradient at a true parameter, ``sqrt(2 L(w*) tr(H) / n)``
(the Gauss-Newton size of one sample's gradient, averaged over ``n``). A true parameter passes,
although its posterior is shifted by that noise, as singular learning theory expects. Hessian
eigenvalues within ``HESSIAN_NOISE`` times ``sqrt(2 L(w*) h_max / n)`` of 0 are the residual's
noise in the curvature (a singular true parameter has them) and count as flat. Where more
directions are flat than the path certifies (a singular model, which has no quadratic
expectation), gamma and the chain length come from a sweep extrapolated as the singular suite
extrapolates, measured at the settings handed back (:func:`singular_recommendation`), or the
model is refused with the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from llcgeo.config import SINGULAR_MODES, TARGETS, SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.limits import with_budget
from llcgeo.reconcile.stats import Extrapolation, extrapolate_to_zero
from llcgeo.theory.calibration import ESS_MARGIN, Recommendation, recommend
from llcgeo.thresholds import ESS_MIN, RHAT_LIMIT, Z_AGREE

GRADIENT_NOISE = 10.0  # times the sampling noise of a mean gradient at a true parameter
# a singular model's gamma sweep (singular="sweep", or "auto" on unexplained flat directions):
# the singular suite's localization term b gamma / sqrt(nbeta) is first order in gamma only well
# below sqrt(nbeta), so the sweep starts at GAMMA_START sqrt(nbeta) (or the quadratic choice, if
# smaller) and runs GAMMA_POINTS gammas GAMMA_RATIO apart, one decade, every one at the chosen
# eps. No lower: a smaller gamma lets the chains wander along the flat valleys' exactly flat
# orbits (a reduced-rank regression's B G^-1, G A) far from w*, and they do not settle.
GAMMA_START = 0.1
GAMMA_POINTS = 3
GAMMA_RATIO = math.sqrt(10.0)
# the flat valleys mix slowly and the energy's ESS does not see it (their share of its variance
# is small): the sweep's chains are doubled from SINGULAR_STEPS until doubling moves no estimate,
# and refused past SINGULAR_MAX_STEPS
SINGULAR_STEPS = 16_000
SINGULAR_MAX_STEPS = 256_000
HESSIAN_NOISE = 3.0  # times sqrt(2 L(w*) h_max / n), the noise of a Hessian eigenvalue


@dataclass(frozen=True)
class Calibration:
    """The recommended ``config`` (the caller's with eps, gamma, chains, steps and burn-in
    replaced), the :class:`Recommendation` behind it, and the spectrum it came from."""

    config: SGLDConfig
    recommendation: Recommendation
    spectrum: np.ndarray
    nbeta: float


@with_budget
def calibrate(
    model,
    inputs,
    targets,
    *,
    config: SGLDConfig | None = None,
    param_masks=None,
    loss="gaussian",
    device="auto",
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
    itself, ``"sweep"`` always runs it (:func:`singular_recommendation`): a gamma sweep
    extrapolated to gamma -> 0 as the singular suite extrapolates, the settings measured and
    vouched for, or refused with the figures. ``"warn"`` keeps the quadratic choice and says
    so. Every chain length also meets the verdicts' bulk-ESS rule (``ESS_MIN``,
    ``ESS_MARGIN`` times over): from the exact autocorrelation time of the energy where the
    quadratic model holds, from the sweep's measured ESS where it does not."""
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
    post = problem.posterior
    with thread_policy(config.chains * post.start.numel(), post.start.device):
        spectrum = hessian_spectrum(problem, steps=lanczos_steps)
        _, gradient = post.loss_and_grad(post.centre.expand(1, -1).clone(), None)
    moving = gradient[0] if post.mask is None else gradient[0][post.mask]
    noise = math.sqrt(2 * post.init_loss * float(np.abs(spectrum).sum()) / post.n)
    _check_minimum(float(torch.linalg.vector_norm(moving)), noise)
    curvature_noise = HESSIAN_NOISE * math.sqrt(
        2 * post.init_loss * float(np.abs(spectrum).max()) / post.n
    )
    r = recommend(
        spectrum, nbeta=post.nbeta, bias=bias, localization=localization, se=se,
        chains=config.chains, noise=curvature_noise,
        quadratic=problem.exact.hessian_eigenvalues is not None,  # the linear path: quadratic
        certified=problem.exact.certified_flat, ess=ESS_MARGIN * ESS_MIN,
    )  # fmt: skip
    if singular == "sweep" or (singular == "auto" and _unexplained_flat(problem, r) > 0):
        r = singular_recommendation(problem, r, localization=localization, se=se, seed=seed,
                                    progress=progress)  # fmt: skip
    tuned = replace(
        config, eps=r.eps, gamma=r.gamma, steps=r.steps, burnin=r.burnin, chains=r.chains
    )
    return Calibration(tuned, r, spectrum, post.nbeta)


def _unexplained_flat(problem, r: Recommendation) -> int:
    """Directions flat at ``w*`` that the path does not certify as exactly flat: on an
    exactly quadratic loss (the linear path) none; elsewhere those beyond the path's known
    symmetries (``Exact.certified_flat``)."""
    if problem.exact.hessian_eigenvalues is not None:
        return 0
    return round(problem.posterior.free_parameters - 2 * r.llc) - problem.exact.certified_flat


def singular_recommendation(problem, r: Recommendation, *,
                            localization: float = TARGETS.localization, se: float = TARGETS.se,
                            seed: int = 0, progress=None) -> Recommendation:  # fmt: skip
    """``r`` with gamma, the chain length and the expectation of a singular model, where no
    quadratic expectation exists. At ``r.eps``, gamma is swept (:func:`gamma_grid`), refused
    at once where the estimate falls too steeply with gamma (:func:`refuse_too_steep`), else
    with chains doubled until they settle (:func:`settled_sweep`); the estimates are fitted as
    ``E0 + b gamma / sqrt(nbeta)`` (the singular suite's localization term) and carried to
    gamma -> 0; the largest gamma whose deficit, by the fit and by its own estimate, is within
    ``localization`` of ``E0`` is chosen (:func:`vouched_gamma`), its chains
    lengthened for the ESS rule and the ``se`` target. Anything it cannot vouch for is refused
    with a :class:`~llcgeo.errors.SpecError` that gives the figures."""
    nbeta = problem.posterior.nbeta
    run = sweep_runner(problem, r.eps, gamma_grid(nbeta, r.gamma), chains=r.chains, seed=seed,
                       progress=progress)  # fmt: skip
    first = run(SINGULAR_STEPS)
    refuse_too_steep(first, nbeta, localization)
    points, steps = settled_sweep(run, first)
    fit = gamma_extrapolation(points, nbeta)
    chosen = vouched_gamma(points, fit, nbeta, localization)
    total = _singular_steps(chosen, steps, se * abs(fit.limit))
    reasons = (
        r.reasons[0],
        _flat_reason(problem, r),
        f"gamma = {chosen.gamma:.3g}: {_sweep_text(points, steps)}; fitted as E0 + b gamma / "
        f"sqrt(nbeta) and carried to gamma -> 0, E0 = {fit.limit:.3g} +- {fit.limit_se:.2g} "
        f"(b = {fit.slope:.3g} +- {fit.slope_se:.2g}); the largest gamma whose deficit is "
        f"within {localization:.0%} of E0, by the fit (3 SE of b added) and by its own "
        "estimate (3 combined SE allowed)",
        f"burn-in = {steps // 5}, steps = {total}: the sweep's chains settled at {steps} steps "
        f"(from half of it, no estimate, nor their mean, moved by 3 SE), lengthened for a bulk "
        f"ESS of {ESS_MARGIN * ESS_MIN:g} and a standard error of {se:.0%} (measured there: ESS "
        f"{chosen.ess:.0f}, {chosen.mean:.3g} +- {chosen.se:.2g}, the expected value)",
    )
    return replace(r, gamma=chosen.gamma, steps=total, burnin=steps // 5, expected=chosen.mean,
                   standard_error=chosen.se, reasons=reasons)  # fmt: skip


def _flat_reason(problem, r: Recommendation) -> str:
    free = problem.posterior.free_parameters
    return (
        f"{round(free - 2 * r.llc)} of {free} directions are flat at w* ("
        f"{problem.exact.certified_flat} of them certified exactly flat by a symmetry): a singular "
        "model, whose flat directions rise at higher order, so gamma and the chain length come "
        "from a sweep (no exact expectation exists)"
    )


def gamma_grid(nbeta: float, quadratic_gamma: float) -> list[float]:
    """``GAMMA_POINTS`` gammas ``GAMMA_RATIO`` apart from ``GAMMA_START sqrt(nbeta)`` (the
    quadratic choice where that is smaller: the curved directions need no more), largest
    first."""
    top = min(quadratic_gamma, GAMMA_START * math.sqrt(nbeta))
    return [top / GAMMA_RATIO**k for k in range(GAMMA_POINTS)]


def sweep_runner(problem, eps: float, gammas, *, chains: int, seed: int = 0, progress=None):
    """``run(steps) -> points``: the gamma sweep at ``eps`` (:func:`llcgeo.numerics.sweep.
    sweep`, a fifth of the steps burn-in), refused where a chain diverges or an estimate is not
    positive (:func:`_refuse_broken`)."""
    from llcgeo.numerics.sweep import sweep

    def run(steps: int) -> list:
        points = sweep(problem, [eps], gammas, chains=chains, steps=steps, burnin=steps // 5,
                       seed=seed, progress=progress)  # fmt: skip
        _refuse_broken(points, eps)
        return points

    return run


def settled_sweep(run, first: list) -> tuple[list, int]:
    """``(points, steps)``: the sweep ``run`` at the first doubled chain length, from
    ``SINGULAR_STEPS`` (``first``), whose estimates have settled (:func:`settled`) against those
    at half of it (the same seed, so the longer chains continue the shorter ones' random
    numbers); refused past ``SINGULAR_MAX_STEPS`` steps."""
    steps, points = SINGULAR_STEPS, first
    while 2 * steps <= SINGULAR_MAX_STEPS:
        longer = run(2 * steps)
        if settled(points, longer):
            return longer, 2 * steps
        steps, points = 2 * steps, longer
    raise SpecError(
        f"the estimates of this singular model still move at {steps} steps, the most calibrate "
        f"runs ({_sweep_text(points, steps)}): its flat valleys mix too slowly at eps "
        f"{points[0].eps:.3g}; choose the settings by hand, with longer chains"
    )


def refuse_too_steep(points: list, nbeta: float, localization: float) -> None:
    """Refuse, before any longer chains are run, a sweep whose estimate falls so steeply with
    gamma that even at its smallest gamma the fit lies more than ``localization`` below its
    limit, 3 SE taken off the slope: longer chains would only steepen it, since chains warming
    up from w* fall short most where gamma is smallest."""
    fit = gamma_extrapolation(points, nbeta)
    x = min(p.gamma for p in points) / math.sqrt(nbeta)
    if x * (-fit.slope - Z_AGREE * fit.slope_se) > localization * abs(fit.limit):
        raise SpecError(
            f"the estimate of this singular model falls too steeply with gamma to be carried to "
            f"gamma -> 0 ({_sweep_text(points, SINGULAR_STEPS)}; E0 = {fit.limit:.3g} +- "
            f"{fit.limit_se:.2g}, b = {fit.slope:.3g} +- {fit.slope_se:.2g}): even its smallest "
            f"gamma falls more than {localization:.0%} short; choose the settings by hand"
        )


def gamma_extrapolation(points: list, nbeta: float) -> Extrapolation:
    """The sweep's estimates fitted against ``gamma / sqrt(nbeta)`` and carried to 0."""
    x = [p.gamma / math.sqrt(nbeta) for p in points]
    return extrapolate_to_zero(x, [p.mean for p in points], [p.se for p in points])


def vouched_gamma(points: list, fit: Extrapolation, nbeta: float, localization: float):
    """The point of the largest gamma whose deficit is at most ``localization`` of the limit
    both by the fit (``|b| gamma / sqrt(nbeta)``, 3 SE of it added) and by its own estimate (3
    combined SE allowed: the noise, not the deficit), and whose chains pass R-hat; refused
    where none is."""
    allowed = localization * abs(fit.limit)
    for p in sorted(points, key=lambda p: -p.gamma):
        x = p.gamma / math.sqrt(nbeta)
        fitted = x * (abs(fit.slope) + Z_AGREE * fit.slope_se)
        own = abs(p.mean - fit.limit) - Z_AGREE * math.hypot(p.se, fit.limit_se)
        if max(fitted, own) <= allowed and p.rhat <= RHAT_LIMIT:
            return p
    raise SpecError(
        f"no gamma of the sweep can be vouched for: carried to gamma -> 0 the estimate is "
        f"{fit.limit:.3g} +- {fit.limit_se:.2g}, and no gamma is within {localization:.0%} of "
        f"it both by the fit (b = {fit.slope:.3g} +- {fit.slope_se:.2g}) and by its own estimate "
        f"with R-hat at most {RHAT_LIMIT:g} ({_sweep_text(points, None)}); choose the settings "
        "by hand"
    )


def _singular_steps(p, steps: int, target_se: float) -> int:
    """``steps`` lengthened, draws alone, for the measured point to reach a bulk ESS of
    ``ESS_MARGIN ESS_MIN`` and a standard error of ``target_se`` (both scale with the draws)."""
    draws = steps - steps // 5
    longer = max(1.0, ESS_MARGIN * ESS_MIN / max(p.ess, 1.0), (p.se / target_se) ** 2)
    return steps // 5 + math.ceil(draws * longer)


def settled(short: list, long: list) -> bool:
    """Whether doubling the chains moved no estimate by 3 combined SE, nor their mean shift by
    3 of its SE: chains still warming into the flat valleys rise at every gamma together, which
    their mean shows before any one estimate does."""
    shifts = [q.mean - p.mean for p, q in zip(short, long)]
    spread = math.sqrt(sum(p.se**2 + q.se**2 for p, q in zip(short, long))) / len(shifts)
    alone = all(abs(d) <= Z_AGREE * math.hypot(p.se, q.se)
                for d, p, q in zip(shifts, short, long))  # fmt: skip
    return alone and abs(sum(shifts) / len(shifts)) <= Z_AGREE * spread


def _refuse_broken(points: list, eps: float) -> None:
    """Refuse a sweep with diverged chains, or with an estimate at or below 0: the chains
    found loss below w*'s, so w* is no minimum at this temperature and has no LLC to give."""
    bad = [p for p in points if p.diverged]
    if bad:
        raise SpecError(
            f"chains diverged in the gamma sweep of this singular model at eps {eps:.3g} (gamma "
            f"{', '.join(f'{p.gamma:.3g}' for p in bad)}): choose the settings by hand"
        )
    if any(p.mean <= 0 for p in points):
        raise SpecError(
            f"the gamma sweep of this singular model gives estimates at or below 0 "
            f"({_sweep_text(points, None)}): its chains find loss below that at the model's "
            "parameters, which are no minimum of the loss; train further (or fit exactly) "
            "before estimating the LLC"
        )


def _sweep_text(points: list, steps: int | None) -> str:
    shown = ", ".join(f"{p.gamma:.3g}: {p.mean:.3g} +- {p.se:.2g}" for p in points)
    return f"a sweep at {steps} steps (gamma: estimate {shown})" if steps else \
        f"gamma: estimate {shown}"


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
    loss="gaussian", param_masks=None, device="auto", seed: int = 0,
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
    exact = problem.exact.hessian_eigenvalues
    if exact is None:
        return points
    return [
        p._replace(expected=expected_sgld_estimate(
            exact, problem.posterior.nbeta, p.gamma, p.eps, config.steps, config.burnin).mean)
        for p in points
    ]  # fmt: skip


def plateau(points: list, gamma: float, z: float = Z_AGREE) -> float | None:
    """The largest eps below which the estimates at ``gamma`` all agree (within ``z`` combined
    standard errors) with the one at the smallest eps: where the estimate stops depending on
    eps. None when even the two smallest disagree."""
    row = [p for p in points if p.gamma == gamma and not p.diverged]
    return _plateau(sorted(row, key=lambda p: p.eps), "eps", z)


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
