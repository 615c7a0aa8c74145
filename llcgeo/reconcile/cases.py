"""Reconcile one case: the exact prediction, the measurement, a z-score and a verdict.

The reference a full-batch measurement is held against is the *exact* expectation of the SGLD
estimator for this very sample (its Hessian eigenvalues, in float64), these settings and this
chain length, with the exact standard error of a mean over the chains kept. A minibatch run is
held against the exact expectation of minibatch SGLD for independently drawn batches of its size
(:func:`llcgeo.theory.minibatch_expectation`, the batch noise in the drift included) with the
measured standard error and a Student-t limit. That is exact for ``batches="independent"``; for
``"epochs"`` (devinterp's loader) the disjoint batches of an epoch raise the recorded loss above
it, so the mode says the reference is approximate. Where the layer is too wide for the data's
fourth moment, the reference is the asymptotic LLC, and marked so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import llcgeo
from llcgeo.limits import with_budget
from llcgeo.numerics.measurements.teacher_student import case_problem, measure_problem
from llcgeo.reconcile.model import Case, CaseResult
from llcgeo.reconcile.verdict import decide
from llcgeo.theory import (
    SGLDExpectation,
    expectation_at,
    minibatch_expectation,
    predicted_llc,
)

FULL_BATCH = "full batch: against the exact expectation"
MINIBATCH = {
    "independent": "minibatch, independent batches: against the exact minibatch expectation",
    "epochs": (
        "minibatch, epochs: against the minibatch expectation for independent batches, which "
        "the epochs' disjoint batches exceed (approximate)"
    ),
}
MALA = "full batch, MALA: against the exact posterior (no step-size bias)"
MINIBATCH_ASYMPTOTIC = "minibatch: against the asymptotic LLC only (too wide for the exact one)"


def is_full_batch(case: Case) -> bool:
    return case.config.batch_size is None or case.config.batch_size >= case.n


def _expectation(case: Case, measurement) -> SGLDExpectation:
    return expectation_at(measurement.hessian_eigenvalues, case.config, measurement.nbeta)


def _z(mean: float, reference: float, se: float) -> float:
    if not (math.isfinite(mean) and math.isfinite(se)) or se <= 0:
        return math.nan
    return (mean - reference) / se


def _asymptotic_note(expected: float, llc: float) -> tuple[str, ...]:
    """A note (not a verdict) when these settings keep the estimator far from the LLC."""
    if abs(expected - llc) <= 0.1 * max(abs(llc), 1.0):
        return ()
    return (
        f"at these settings the estimator's expectation ({expected:.4g}) is more than 10% away "
        f"from the asymptotic LLC ({llc:.4g}): lower eps, lengthen the chains or raise n",
    )


@dataclass(frozen=True)
class Reference:
    """What a measurement is held against: a value, its standard error, and why."""

    value: float
    se: float
    mode: str
    expected: float | None = None
    expected_se: float | None = None
    problems: tuple[str, ...] = ()  # make the verdict inconclusive
    notes: tuple[str, ...] = ()  # inform, leave the verdict alone
    dof: int | None = None  # the standard error was estimated from dof + 1 chains


def _minibatch_reference(case: Case, measurement, llc: float) -> Reference:
    est, dof = measurement.estimate, measurement.estimate.chains_kept - 1
    if measurement.data_moments is None:
        return Reference(llc, est.se, MINIBATCH_ASYMPTOTIC, dof=dof)
    mean, stable = minibatch_expectation(measurement.data_moments, case.config, measurement.nbeta)
    problems = () if stable else ("the minibatch chain's second moments diverge at this eps",)
    return Reference(
        mean,
        est.se,
        MINIBATCH[case.config.batches],
        mean,
        None,
        problems,
        _asymptotic_note(mean, llc),
        dof=dof,
    )


def reference_for(case: Case, measurement, llc: float) -> Reference:
    """The exact expectation on the full-batch path; the exact minibatch expectation (or the
    asymptotic LLC, for a layer too wide for it) on a minibatch."""
    est = measurement.estimate
    if not is_full_batch(case):
        return _minibatch_reference(case, measurement, llc)
    expectation = _expectation(case, measurement)
    if case.config.traits.metropolis:  # exact for any eps: only the chains' length biases it
        posterior = expectation.exact_posterior
        note = _asymptotic_note(posterior, llc)
        return Reference(posterior, est.se, MALA, posterior, None, (), note, est.chains_kept - 1)
    se = expectation.standard_error(max(est.chains_kept, 1))
    unstable = () if expectation.stable else ("eps (nbeta h_max + gamma) >= 4: unstable step",)
    return Reference(
        expectation.mean,
        se,
        FULL_BATCH,
        expectation.mean,
        se,
        unstable,
        _asymptotic_note(expectation.mean, llc),
    )


def _beyond(reasons: tuple[str, ...], warnings) -> tuple[str, ...]:
    """The estimate's warnings that say more than the verdict's reasons (a rule the verdict
    names is not repeated: its warning only adds what to do)."""
    return tuple(w for w in warnings if not any(w.startswith(r) for r in reasons))


@with_budget
def reconcile_case(case: Case, *, device: str = "auto", progress=None, problem=None) -> CaseResult:
    """Predict, measure and judge one case (see :mod:`llcgeo.reconcile.verdict`); ``problem``,
    when given, is the case's own
    (:func:`llcgeo.numerics.measurements.teacher_student.case_problem`), built once for a
    calibration before the measurement."""
    prediction = predicted_llc(case.manifold, case.layer, case.refine)
    if problem is None:
        problem = case_problem(case.manifold, case.layer, case.refine, case.n, case.config,
                               seed=case.seed, sigma=case.sigma, device=device)  # fmt: skip
    measurement = measure_problem(problem, case.config, seed=case.seed, progress=progress)
    est = measurement.estimate
    ref = reference_for(case, measurement, float(prediction.llc))
    z = _z(est.mean, ref.value, ref.se)
    verdict, why = decide(
        z=z,
        diverged=len(est.diverged_chains),
        chains=case.config.chains,
        rhat=est.rhat,
        ess=est.ess,
        problems=ref.problems,
        dof=ref.dof,
    )
    return CaseResult(
        key=case.key(llcgeo.__version__),
        case=case.describe(),
        tags=dict(case.tags),
        predicted_llc=float(prediction.llc),
        predicted_llc_exact=str(prediction.llc),
        llc_unconstrained=float(prediction.llc_unconstrained),
        expected_estimate=ref.expected,
        expected_se=ref.expected_se,
        llc_mean=float(est.mean),
        llc_se=float(est.se),
        per_chain=tuple(float(v) for v in est.per_chain),
        diverged_chains=tuple(est.diverged_chains),
        rhat=float(est.rhat),
        ess=float(est.ess),
        z=float(z),
        verdict=verdict,
        reasons=why + _beyond(why, est.warnings) + ref.notes,
        mode=ref.mode,
        seconds=float(est.seconds),
        device=est.device,
        version=llcgeo.__version__,
    )
