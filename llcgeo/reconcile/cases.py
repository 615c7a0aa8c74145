"""Reconcile one case: the exact prediction, the measurement, a z-score and a verdict.

The reference a full-batch measurement is held against is the *exact* expectation of the SGLD
estimator for this very sample (its Hessian eigenvalues, in float64), these settings and this
chain length, with the exact standard error of a mean over the chains kept. A minibatch run has
no exact expectation here: it is held against the asymptotic LLC with its measured standard
error, and marked so.
"""

from __future__ import annotations

import math

import llcgeo
from llcgeo.numerics import measure_linear
from llcgeo.reconcile.model import Case, CaseResult
from llcgeo.reconcile.verdict import decide
from llcgeo.theory import SGLDExpectation, expected_sgld_estimate, predicted_llc

FULL_BATCH = "full batch: against the exact expectation"
MINIBATCH = "minibatch: against the asymptotic LLC only"


def is_full_batch(case: Case) -> bool:
    return case.config.batch_size is None or case.config.batch_size >= case.n


def _expectation(case: Case, measurement) -> SGLDExpectation:
    cfg = case.config
    return expected_sgld_estimate(
        measurement.hessian_eigenvalues,
        measurement.nbeta,
        cfg.gamma,
        cfg.eps,
        cfg.steps,
        cfg.burnin,
        cfg.noise_level,
    )


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


def reconcile_case(case: Case, *, device: str = "auto", progress=None) -> CaseResult:
    """Predict, measure and judge one case (see :mod:`llcgeo.reconcile.verdict`)."""
    prediction = predicted_llc(case.manifold, case.layer, case.refine)
    measurement = measure_linear(
        case.manifold,
        case.layer,
        case.refine,
        case.n,
        case.config,
        seed=case.seed,
        sigma=case.sigma,
        device=device,
        progress=progress,
    )
    est = measurement.estimate
    kept = case.config.chains - len(est.diverged_chains)
    reasons: list[str] = []
    if is_full_batch(case):
        expectation = _expectation(case, measurement)
        expected, expected_se = expectation.mean, expectation.standard_error(max(kept, 1))
        reference, reference_se, mode = expected, expected_se, FULL_BATCH
        if not expectation.stable:
            reasons.append("eps (nbeta h_max + gamma) >= 4: the step is unstable")
        notes = _asymptotic_note(expected, float(prediction.llc))
    else:
        expected = expected_se = None
        reference, reference_se, mode = float(prediction.llc), est.se, MINIBATCH
        notes = ()
    z = _z(est.mean, reference, reference_se)
    verdict, why = decide(
        z=z,
        diverged=len(est.diverged_chains),
        chains=case.config.chains,
        rhat=est.rhat,
        ess=est.ess,
    )
    if reasons:
        verdict = "inconclusive"
    return CaseResult(
        key=case.key(llcgeo.__version__),
        case=case.describe(),
        tags={k: v for k, v in case.tags},
        predicted_llc=float(prediction.llc),
        predicted_llc_exact=str(prediction.llc),
        llc_unconstrained=float(prediction.llc_unconstrained),
        expected_estimate=expected,
        expected_se=expected_se,
        llc_mean=float(est.mean),
        llc_se=float(est.se),
        per_chain=tuple(float(v) for v in est.per_chain),
        diverged_chains=tuple(est.diverged_chains),
        rhat=float(est.rhat),
        ess=float(est.ess),
        z=float(z),
        verdict=verdict,
        reasons=tuple(reasons) + why + tuple(est.warnings) + notes,
        mode=mode,
        seconds=float(est.seconds),
        device=est.device,
        version=llcgeo.__version__,
    )
