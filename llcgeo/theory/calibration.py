"""SGLD settings chosen from the exact theory of the estimator on a quadratic loss.

Near a minimum the loss is ``1/2 sum_i h_i delta_i^2`` (Hessian eigenvalues ``h_i``). Each
direction is then an AR(1) chain (:mod:`llcgeo.theory.sgld`) with ``a_i = nbeta h_i + gamma``, and
every bias the settings add has a closed form:

* **step size**: the infinite-chain estimate is the exact-posterior one times
  ``1 / (1 - eps a_i / 4)`` per direction, so ``eps = 4 t / ((1 + t) a_max)`` keeps this bias
  below ``t`` in every direction (and ``eps a_max`` far inside the stability bound 4);
* **localization**: the exact posterior gives ``nbeta h_i / (2 a_i)`` per direction against the
  LLC's ``1/2``, a deficit of ``gamma / a_i``; ``gamma = t' nbeta h_min / (1 - t')`` keeps it
  below ``t'`` for the flattest direction that moves (``h_min``, the smallest eigenvalue above
  ``thresholds.FLAT`` of the largest);
* **burn-in**: a direction's variance relaxes as ``exp(-eps a t)``, so
  ``BURNIN_TIMES / (eps a_min)`` steps leave ``exp(-BURNIN_TIMES)`` of it;
* **draws**: the exact variance of the estimate gives the chain length that reaches a target
  standard error with the chains asked for; where a bulk ESS is asked for too (``llcgeo
  calibrate`` asks for the verdicts' ``ESS_MIN``, ``ESS_MARGIN`` times over), the energy's exact
  autocorrelation time (:func:`llcgeo.theory.sgld.energy_autocorrelation_time`) gives the draws
  that reach it, and the longer of the two is taken.

:func:`recommend` returns the settings and, for each, the reason in words and numbers; a
direction of negative curvature (not a minimum) or a budget that cannot reach the target is
refused with what to do.

>>> r = recommend([2.0, 1.0, 0.5], nbeta=1000.0)
>>> round(r.eps * (1000.0 * 2.0 + r.gamma), 4)  # 4 t / (1 + t) for t = 0.05
0.1905
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llcgeo.config import NBETA_FACTOR, TARGETS
from llcgeo.errors import SpecError
from llcgeo.theory.sgld import energy_autocorrelation_time, expected_sgld_estimate
from llcgeo.thresholds import FLAT, STABILITY_BOUND
from llcgeo.validate import between, integer, positive

BURNIN_TIMES = 5.0  # relaxation times of the slowest direction spent before recording
# those runs choose their own draws (only eps, gamma and the burn-in are taken), so the
# standard-error target and the step budget only have to be met, never bind
NETWORK_SE, NETWORK_MAX_STEPS = 0.5, 10**7
NEGATIVE = 1e-6  # a negative eigenvalue beyond this fraction of the largest: not a minimum
# a most negative eigenvalue of at least this share of the largest: a spectrum that is noise,
# symmetric about 0, as at a zero-rank truth (curvature there is a positive-definite block)
NOISE_LIKE = 0.9
# the bulk ESS calibrated chains aim at, over the verdicts' ESS_MIN: the autocorrelation time is
# exact for the quadratic model, but a measured ESS scatters about its expectation (the scanner
# sizes its chains with the same margin)
ESS_MARGIN = 2.0


@dataclass(frozen=True)
class Recommendation:
    """Settings and why: ``expected`` and ``standard_error`` are the exact mean and standard
    error of the estimate at these settings; ``llc`` the regular LLC they approximate
    (``moving / 2``)."""

    eps: float
    gamma: float
    burnin: int
    steps: int
    chains: int
    expected: float
    standard_error: float
    llc: float
    reasons: tuple[str, ...]


def _curvatures(eigenvalues: Sequence[float], noise: float) -> tuple[np.ndarray, float]:
    """The eigenvalues with those within ``noise`` of 0 set flat, and the smallest moving one."""
    h = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if h.size == 0 or not np.all(np.isfinite(h)) or h.max() <= noise:
        raise SpecError(
            "the Hessian has no positive eigenvalue (beyond its noise): either w* is not a "
            "minimum, or every direction is flat there (a singular point such as a zero-rank "
            "truth), and no curvature sets eps; choose eps by hand, or sweep it"
        )
    floor = max(noise, FLAT * h.max())
    if -h.min() >= NOISE_LIKE * h.max():
        raise SpecError(
            f"every eigenvalue of the Hessian is of one size in both signs ({h.min():.3g} to "
            f"{h.max():.3g}): the data's noise, not curvature. w* looks like a singular point "
            "where no direction is curved (a zero-rank truth, say), and no curvature sets eps; "
            "choose eps by hand, or sweep it"
        )
    if h.min() < -max(noise, NEGATIVE * h.max()):
        raise SpecError(
            f"the Hessian has a negative eigenvalue ({h.min():.3g}, against {h.max():.3g}) beyond "
            f"its sampling noise ({noise:.3g}): w* is a saddle of the loss, where the quadratic "
            "theory behind these settings does not hold; train (or fit) to a minimum first (at "
            "a singular true parameter the Hessian's noise can be larger than estimated here)"
        )
    h = np.where(h > floor, h, 0.0)
    return h, float(h[h > 0].min())


def recommend(
    eigenvalues: Sequence[float],
    *,
    nbeta: float,
    bias: float = TARGETS.bias,
    localization: float = TARGETS.localization,
    se: float = TARGETS.se,
    chains: int = 4,
    max_steps: int = 200_000,
    noise: float = 0.0,
    quadratic: bool = False,
    max_burnin: int | None = None,
    certified: int = 0,
    ess: float = 0.0,
) -> Recommendation:
    """Settings whose exact step-size bias, localization bias and relative standard error stay
    below ``bias``, ``localization`` and ``se`` (fractions of the LLC), with ``chains`` chains
    and at most ``max_steps`` steps. Eigenvalues within ``noise`` of 0 (the sampling noise of a
    Hessian estimated from data) count as flat directions; ``quadratic`` says the loss is
    exactly quadratic (a linear layer), so flat directions add nothing and need no warning;
    ``certified`` counts the flat directions a symmetry makes exactly flat (no warning for
    them either). ``ess``: the bulk ESS of the energy the chains must reach together (0: no
    rule), from its exact autocorrelation time.
    ``max_burnin`` caps the burn-in: gamma is then raised until the slowest direction relaxes
    within it, and the localization deficit is what that gamma gives (stated in the reasons)."""
    positive(nbeta, "nbeta")
    for value, name in ((bias, "bias"), (localization, "localization"), (se, "se")):
        between(value, f"{name} (a fraction of the LLC)", 0, 1, open_low=True, open_high=True)
    integer(chains, "chains", 1)
    h, h_min = _curvatures(eigenvalues, noise)
    gamma = localization * nbeta * h_min / (1 - localization)
    eps = step_for_bias(bias, nbeta * float(h.max()) + gamma)
    for _ in range(0 if max_burnin is None else 3):  # converges: gamma << nbeta h_max
        gamma = max(gamma, BURNIN_TIMES / (eps * max_burnin) - nbeta * h_min)
        eps = step_for_bias(bias, nbeta * float(h.max()) + gamma)
    a_max, a_min = nbeta * float(h.max()) + gamma, nbeta * h_min + gamma
    burnin = max(100, math.ceil(BURNIN_TIMES / (eps * a_min)))
    if max_burnin is not None:
        burnin = min(burnin, max(100, max_burnin))
    if burnin >= max_steps:
        raise SpecError(
            f"the slowest direction (h_min = {h_min:.3g}) needs a burn-in of {burnin} steps, "
            f"beyond the budget of {max_steps}: allow more steps, or accept a larger "
            "localization bias (a larger gamma relaxes it faster)"
        )
    llc = float(np.sum(h > 0)) / 2
    steps, moments = _steps_for(h, nbeta, gamma, eps, burnin, chains, se * llc, max_steps)
    tau = energy_autocorrelation_time(h, nbeta, gamma, eps)
    if burnin + math.ceil(ess * tau / chains) > steps:
        steps = _steps_for_ess(ess, tau, burnin, chains, max_steps)
        moments = expected_sgld_estimate(h, nbeta, gamma, eps, steps, burnin)
    reasons = (
        f"eps = {eps:.3g}: the step-size bias 1/(1 - eps a/4) - 1 is at most {bias:.0%} in every "
        f"direction (a_max = nbeta h_max + gamma = {a_max:.3g}; eps a_max = {eps * a_max:.3g}, "
        "stable below 4)",
        f"gamma = {gamma:.3g}: the localization deficit gamma / (nbeta h + gamma) is at most "
        f"{gamma / a_min:.0%}, reached by the flattest moving direction (h_min = {h_min:.3g})"
        + (
            ""
            if gamma / a_min <= localization * 1.0001
            else f", above the target {localization:.0%} so that burn-in fits in {max_burnin} steps"
        ),
        f"burn-in = {burnin} steps: {BURNIN_TIMES:g} relaxation times 1/(eps a_min) of the slowest "
        f"direction (a_min = {a_min:.3g})",
        f"steps = {steps}: {steps - burnin} draws give a standard error of "
        f"{moments.standard_error(chains):.3g} with {chains} chains (target {se:.0%} of the LLC "
        f"{llc:g})" + _ess_note(ess, tau, steps - burnin, chains),
        *(() if quadratic else _singular_warning(h, certified)),
    )
    return Recommendation(
        eps, gamma, burnin, steps, chains, moments.mean, moments.standard_error(chains), llc,
        reasons,
    )  # fmt: skip


def network_nbeta(rows: int, factor: float = NBETA_FACTOR) -> float:
    """``factor n / log n`` for a loss averaged over ``n = rows`` rows (``rows >= 2``).

    >>> round(network_nbeta(1000), 1)
    7238.2
    """
    integer(rows, "rows", 2)
    return factor * rows / math.log(rows)


def network_recommendation(
    spectrum: Sequence[float],
    *,
    nbeta: float,
    chains: int,
    max_burnin: int,
    localization: float | None = None,
) -> Recommendation:
    """:func:`recommend` as the network suite and the scanner call it: the burn-in capped at
    ``max_burnin``, and the standard-error target and step budget loose (``NETWORK_SE``,
    ``NETWORK_MAX_STEPS``), since those runs set their own draws; ``localization`` defaults to
    ``TARGETS.localization``.

    >>> r = network_recommendation([2.0, 1.0], nbeta=1000.0, chains=4, max_burnin=500)
    >>> r.burnin <= 500
    True
    """
    localization = TARGETS.localization if localization is None else localization
    return recommend(
        spectrum, nbeta=nbeta, localization=localization, se=NETWORK_SE, chains=chains,
        max_steps=NETWORK_MAX_STEPS, max_burnin=max_burnin,
    )  # fmt: skip


def step_for_bias(bias: float, a_max: float) -> float:
    """The eps whose step-size bias ``1 / (1 - eps a_max / B) - 1`` is ``bias`` (``B`` the
    stability bound): ``eps = B bias / ((1 + bias) a_max)``."""
    return STABILITY_BOUND * bias / ((1 + bias) * a_max)


def _singular_warning(h: np.ndarray, certified: int) -> tuple[str, ...]:
    flat = int(np.sum(h == 0)) - certified
    if flat <= 0:
        return ()
    return (
        f"warning: {flat} of {h.size} directions are flat at w* beyond the {certified} a "
        "symmetry certifies. If the loss rises along them "
        "at higher order (a singular model) they add to the LLC beyond the quadratic count, "
        "and this gamma, set for the curved directions, keeps them from it, so the estimate "
        "falls short; choose gamma (and the chain length) by a sweep then",
    )


def _steps_for_ess(ess: float, tau: float, burnin: int, chains: int, max_steps: int) -> int:
    """The burn-in and the draws whose bulk ESS, ``chains draws / tau``, reaches ``ess``."""
    steps = burnin + math.ceil(ess * tau / chains)
    if steps > max_steps:
        raise SpecError(
            f"a bulk ESS of {ess:g} needs {steps} steps with {chains} chains (the energy's "
            f"autocorrelation time is {tau:.3g} steps), beyond the budget of {max_steps}: allow "
            "more steps or chains"
        )
    return steps


def _ess_note(ess: float, tau: float, draws: int, chains: int) -> str:
    if ess <= 0:
        return ""
    return (f", and a bulk ESS of {chains * draws / tau:.0f} (the energy's autocorrelation time "
            f"{tau:.3g} steps; asked: {ess:g})")  # fmt: skip


def _steps_for(h, nbeta, gamma, eps, burnin, chains, target_se, max_steps):
    """The fewest steps (doubling the draws) whose exact standard error reaches the target."""
    draws = max(100, burnin)
    while True:
        steps = burnin + draws
        moments = expected_sgld_estimate(h, nbeta, gamma, eps, steps, burnin)
        if moments.standard_error(chains) <= target_se:
            return steps, moments
        if steps >= max_steps:
            raise SpecError(
                f"{max_steps} steps reach a standard error of {moments.standard_error(chains):.3g}"
                f", not the target {target_se:.3g}: allow more steps or chains, or a larger "
                "standard error"
            )
        draws = min(2 * draws, max_steps - burnin)
