"""Judging a hypothesis file's claims: the exact derivation, the measured cases, one verdict
per claim, and the file's figure.

A claim *agrees* only when it equals the exact prediction, every case behind it agrees with the
exact expectation of the estimator, and the measurement singles the claim out over the value
the opposite geometry would give (:func:`alternative_llc`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any

from llcgeo.hypotheses.schema import ClaimSpec, Hypothesis
from llcgeo.reconcile.design import case_experiment
from llcgeo.reconcile.experiment import Experiment
from llcgeo.reconcile.model import CaseResult, Claim, ExperimentResult, Figure, Panel, Series
from llcgeo.reconcile.stats import cases_verdict, reference_text, singles_out, statistic_text


def hypothesis_experiment(hypothesis: Hypothesis) -> Experiment:
    """The hypothesis as an experiment for :func:`llcgeo.report.run_experiments` (its cases are
    fixed by the file, whatever the scale)."""
    cases = hypothesis.cases()
    return case_experiment(
        hypothesis.name,
        hypothesis.title,
        lambda scale: cases,
        partial(summarize_hypothesis, hypothesis),
    )


@dataclass(frozen=True)
class _Measured:
    """A measured quantity, the exact value the derivation gives, and the alternative a
    different geometry would give (``None`` when no geometry would change it)."""

    value: float
    se: float
    exact: Fraction
    alternative: Fraction | None
    cases: tuple[CaseResult, ...]


def summarize_hypothesis(hypothesis: Hypothesis, records) -> ExperimentResult:
    """One :class:`Claim` per claim of the file, from the exact prediction and the records."""
    results = {r.tags.get("role"): r for r in records}
    claims = tuple(judge_claim(hypothesis, spec, results) for spec in hypothesis.claims)
    return ExperimentResult(
        name=hypothesis.name,
        title=hypothesis.title,
        description=hypothesis.description or f"Claims of {hypothesis.source}.",
        claims=claims,
        rows=tuple(_row(role, r) for role, r in results.items()),
        figure=_figure(hypothesis.name, results),
        notes=(f"From {hypothesis.source}: {_describe(hypothesis)}.",),
    )


def judge_claim(hypothesis: Hypothesis, spec: ClaimSpec, results: Mapping) -> Claim:
    """``agree`` only when the claim equals the exact prediction, every case behind it agrees
    with that prediction, and the measurement singles it out over the alternative."""
    measured = _measured(hypothesis, spec.key, results)
    exact = hypothesis.prediction.flat if spec.key == "flat" else measured.exact
    shown = _exact_text(exact)
    measurement = _measurement_text(measured)
    case_verdict = cases_verdict([r for r in measured.cases if r is not None])[0]
    tested = _tested(measured)
    if spec.value != exact:
        note = f"The exact derivation gives {shown}, not the claimed {_exact_text(spec.value)}."
        return Claim(_claim_text(hypothesis, spec), shown, measurement, "disagree", note, *tested)
    verdict, note = _measurement_verdict(measured, case_verdict)
    if spec.key == "flat":
        how = "" if hypothesis.sees_hull else " (chosen automatically, as the file's does not)"
        note = (
            "Flatness is measured through the LLC it implies for a layer with a bias, which sees "
            f"the affine hull{how}. {note}"
        )
    return Claim(_claim_text(hypothesis, spec), shown, measurement, verdict, note, *tested)


def _tested(measured: _Measured) -> tuple[str, str]:
    """The claim's (reference, statistic): each case against its exact expectation, and the
    measurement against the alternative geometry's value where there is one."""
    cases = [r for r in measured.cases if r is not None]
    if not cases:
        return "", ""
    reference, statistic = reference_text(cases), statistic_text(cases)
    if measured.alternative is not None and math.isfinite(measured.se) and measured.se > 0:
        gap = abs(measured.value - float(measured.alternative)) / measured.se
        reference += f"; the alternative {_exact_text(measured.alternative)}"
        statistic += f"; {gap:.1f} SE from the alternative"
    return reference, statistic


def _measurement_text(measured: _Measured) -> str:
    if not (math.isfinite(measured.value) and math.isfinite(measured.se)):
        return "none (no finite estimate: see the note)"
    return f"{measured.value:.3f} ± {measured.se:.3f}"


def _case_reasons(cases: Sequence[CaseResult]) -> str:
    """Why the cases that do not agree do not: the reasons each states, hints included."""
    flagged = [r for r in cases if r.verdict != "agree"]
    reasons = dict.fromkeys(reason for r in flagged for reason in r.reasons)
    return "; ".join(reasons) or "its z-score is beyond the threshold"


def _measurement_verdict(measured: _Measured, case_verdict: str) -> tuple[str, str]:
    if case_verdict != "agree":
        return case_verdict, (
            f"A case behind this claim is {case_verdict} against the exact expectation of the "
            f"estimator: {_case_reasons(measured.cases)}."
        )
    if measured.alternative is None:
        return "inconclusive", (
            "The claim is exact, but with this layer no other geometry would change the measured "
            "quantity, so the measurement cannot single it out (a layer with a bias sees the "
            "affine hull)."
        )
    verdict, note = singles_out(
        measured.value, measured.se, claimed=float(measured.exact),
        alternative=float(measured.alternative),
    )  # fmt: skip
    return verdict, f"Measured {note}."


def alternative_llc(prediction) -> Fraction:
    """The LLC the opposite geometry would give: none lost where the prediction loses some,
    one direction per output (``m/2``) lost where it loses none."""
    from llcgeo.theory.symbolic import fraction

    llc, unconstrained = fraction(prediction.llc), fraction(prediction.llc_unconstrained)
    return unconstrained if llc != unconstrained else llc - Fraction(prediction.layer.m, 2)


def _measured(hypothesis: Hypothesis, key: str, results: Mapping) -> _Measured:
    from llcgeo.theory.symbolic import fraction

    p, m = hypothesis.prediction, Fraction(hypothesis.layer.m)
    llc, unconstrained = fraction(p.llc), fraction(p.llc_unconstrained)
    other = alternative_llc(p)
    here, gaussian = results["manifold"], results.get("gaussian")
    if key == "llc_drop":
        value, se = gaussian.llc_mean - here.llc_mean, math.hypot(gaussian.se, here.se)
        return _Measured(value, se, unconstrained - llc, unconstrained - other, (here, gaussian))
    if key == "llc_unconstrained":
        return _Measured(gaussian.llc_mean, gaussian.se, unconstrained, unconstrained - m / 2,
                         (gaussian,))  # fmt: skip
    if key == "hessian_rank":
        return _Measured(2 * here.llc_mean, 2 * here.se, 2 * llc, 2 * other, (here,))
    if key == "flat":
        return _flat_measured(hypothesis, results.get("flat", here))
    return _Measured(here.llc_mean, here.se, llc, other, (here,))


def _flat_measured(hypothesis: Hypothesis, result: CaseResult) -> _Measured:
    """Flatness through the LLC of a layer with a bias: the affine hull loses one direction
    per output (``m/2``) exactly when the support is flat, so the alternative always differs."""
    from llcgeo.theory import predicted_llc
    from llcgeo.theory.symbolic import fraction

    p = (
        hypothesis.prediction
        if hypothesis.sees_hull
        else predicted_llc(hypothesis.manifold, hypothesis.flat_layer, "all")
    )
    llc, half_m = fraction(p.llc), Fraction(hypothesis.layer.m, 2)
    other = llc + half_m if p.flat else llc - half_m
    return _Measured(result.llc_mean, result.se, llc, other, (result,))


def _exact_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _claim_text(hypothesis: Hypothesis, spec: ClaimSpec) -> str:
    text = f"{spec.key} = {spec.text}"
    if spec.key != "flat" and spec.text.replace(" ", "") != str(spec.value):
        text += f" (= {spec.value} at m = {hypothesis.layer.m}, d = {hypothesis.manifold.d})"
    return text


def _describe(hypothesis: Hypothesis) -> str:
    layer = hypothesis.layer
    return (
        f"{type(hypothesis.manifold).__name__} in d = {hypothesis.manifold.d}, a layer with "
        f"m = {layer.m}{' and a bias' if layer.bias else ''}, refine = {hypothesis.refine}, "
        f"n = {hypothesis.n}; exact LLC {hypothesis.prediction.llc} "
        f"(closed form {hypothesis.prediction.closed_form})"
    )


def _row(role: str, r: CaseResult) -> dict[str, Any]:
    return {
        "role": role,
        "predicted LLC": r.predicted_llc_exact,
        "expected estimate": r.expected_estimate,
        "measured": r.llc_mean,
        "se": r.se,
        "z": r.z,
        "R-hat": r.rhat,
        "ESS": r.ess,
        "verdict": r.verdict,
        "reasons": list(r.reasons),
    }


def _figure(name: str, results: Mapping) -> Figure:
    roles = list(results)

    def at(shift: float) -> tuple[float, ...]:  # side by side, so error bars do not hide points
        return tuple(i + shift for i in range(len(roles)))

    def values(field: str) -> tuple[float, ...]:
        return tuple(_nan_if_none(getattr(results[r], field)) for r in roles)

    series = (
        Series("asymptotic LLC", at(-0.1), values("predicted_llc"), style="markers"),
        Series("expected estimate", at(0.0), values("expected_estimate"), style="markers"),
        Series("measured (± SE)", at(0.1), values("llc_mean"), yerr=values("se")),
    )
    panel = Panel("LLC: predicted and measured", "case", "LLC", series, xticks=tuple(roles))
    caption = (
        "One column a case of the file ('manifold': the stated data; 'gaussian': the same layer "
        "on Gaussian data). The measurement should sit on its expected estimate."
    )
    return Figure(name, (panel,), caption=caption)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value
