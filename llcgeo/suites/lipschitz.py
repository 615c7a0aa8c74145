"""Lipschitz control by normalization (Than 2025): layer-wise bounds against measured constants.

Prediction (:mod:`llcgeo.theory.lipschitz`): at every input the input and parameter Lipschitz
constants lie below layer-wise products, which grow like ``(2 s s_act)**L`` without
normalization and like ``(2 s_act / sqrt(m))**L`` with one, whatever the weight scale ``s``;
mean field gives the typical growth. Measurement
(:mod:`llcgeo.numerics.measurements.lipschitz`): power iteration on the Jacobians of random MLPs,
for several depths, widths and input variances.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from llcgeo.numerics.measurements.lipschitz import LipschitzSpec, measure_lipschitz
from llcgeo.reconcile.experiment import Experiment, check_scale, load_record
from llcgeo.reconcile.model import Claim, ExperimentResult, Figure, Panel, Series
from llcgeo.reconcile.verdict import Z_AGREE, passed
from llcgeo.serialize import to_jsonable
from llcgeo.theory.lipschitz import (
    bound_log_growth,
    log_input_bound,
    log_parameter_bound,
    mean_field_log_growth,
)

ROUNDING = 1e-9  # float64 slack allowed in the hard check measured <= bound (in log units)
FIT_FROM = 4  # exponents are fitted over depths >= this (power iteration converges there)
_SCALES = {
    "small": {
        "width": 128,
        "depths": (1, 2, 4, 8, 16),
        "networks": 4,
        "points": 8,
        "iterations": 20,
    },
    "full": {
        "width": 512,
        "depths": (1, 2, 4, 8, 16, 24, 32, 48),
        "networks": 8,
        "points": 16,
        "iterations": 40,
    },
}
_OTHER_WIDTHS = {"small": (64, 256), "full": (256, 1024)}
NORMALIZED = ("layernorm", "rmsnorm")
NOTES = (
    "Weights N(0, s^2/width) with s = 2, LayerNorm/RMSNorm with gain 1 and eps = 1e-5; "
    "constants are local (at Gaussian inputs), from 20 (small) or 40 (full) power-iteration "
    "steps, which give lower bounds of the spectral norms.",
    "The mean-field exponent is the typical growth of a tangent vector; the top singular value "
    "of a product of L random layers grows faster at small L (for Gaussian factors by "
    "0.5 log((L+1)^(L+1)/L^L), the edge of the Fuss-Catalan law), so it is reported, not tested.",
    "Tightness: the bound/measured column shows how loose the products are at the largest "
    "depth. Per layer the bound outgrows the measurement because ||W|| ~ 2 s while a typical "
    "direction grows by s, and sup |act'| = 1 exceeds the root-mean-square slope "
    "(1/sqrt(2) for ReLU): log(2 sqrt(2)) ~ 1.04 per layer for ReLU.",
)


def jobs(scale: str) -> tuple[LipschitzSpec, ...]:
    """ReLU and tanh with and without normalization; ReLU also at two other widths and at input
    variance 16. Jobs that differ only in normalization or input variance share a seed, so they
    use the same weights and (scaled) inputs: the comparisons are paired."""
    base = LipschitzSpec("relu", weight_scale=2.0, **_SCALES[check_scale(scale)])
    out = []
    for norm in ("none", *NORMALIZED):
        out.append(replace(base, normalization=norm, seed=0))
        out.append(replace(base, normalization=norm, seed=0, input_variance=16.0))
        out.append(replace(base, activation="tanh", normalization=norm, seed=1))
    for seed, width in enumerate(_OTHER_WIDTHS[scale], start=2):
        for norm in ("none", "layernorm"):
            out.append(replace(base, normalization=norm, width=width, seed=seed))
    return tuple(out)


@dataclass(frozen=True)
class LipschitzRecord:
    """One measured network family: the job, the log Lipschitz constants and their bounds
    (nested lists: networks x points x depths), and the predicted growth rates."""

    job: LipschitzSpec
    log_input: list
    log_parameter: list
    log_input_bound: list
    log_parameter_bound: list
    log_weight_norms: list
    min_first_variance: float
    mean_field_log_growth: list  # per layer, to the deepest depth
    bound_log_growth: float
    device: str


def run(job: LipschitzSpec, device: str) -> dict[str, Any]:
    """Measure, then evaluate the layer-wise bounds on the measured ingredients."""
    m = measure_lipschitz(job, device)
    log_w = np.log(np.asarray(m.weight_norms))[:, None, :]
    log_n = np.log(np.asarray(m.norm_factors))
    log_x = np.log(np.asarray(m.input_norms))
    index = [d - 1 for d in job.depths]
    input_bound = log_input_bound(log_w, log_n, job.activation)[..., index]
    parameter_bound = np.stack(
        [log_parameter_bound(log_w, log_n, log_x, job.activation, d) for d in job.depths], -1
    )
    growth = mean_field_log_growth(
        job.activation, job.normalization, job.weight_scale, job.input_variance, job.depths[-1]
    )
    return to_jsonable(
        {
            "job": job,
            "log_input": np.log(np.asarray(m.input_lipschitz)),
            "log_parameter": np.log(np.asarray(m.parameter_lipschitz)),
            "log_input_bound": input_bound,
            "log_parameter_bound": parameter_bound,
            "log_weight_norms": log_w[:, 0, :],
            "min_first_variance": float(np.min(np.exp(-2 * log_n[..., 0]))) - job.eps,
            "mean_field_log_growth": growth,
            "bound_log_growth": bound_log_growth(
                job.activation, job.normalization, job.weight_scale
            ),
            "device": m.device,
        }
    )


def _slope(values: np.ndarray, depths: np.ndarray) -> float:
    return float(np.polyfit(depths, values, 1)[0])


def exponent(log_values, depths) -> tuple[float, float]:
    """Per-layer growth exponent and its SE: the least-squares slope, over depths >=
    ``FIT_FROM``, of the mean log constant (over networks and inputs) against depth; SE by
    leave-one-network-out jackknife. ``log_values`` is ``(networks, points, depths)``."""
    y, d = np.asarray(log_values, float), np.asarray(depths, float)
    keep = d >= FIT_FROM
    if keep.sum() < 2:
        keep = np.ones_like(d, dtype=bool)
    slope = _slope(y[..., keep].mean(axis=(0, 1)), d[keep])
    loo = np.array(
        [_slope(np.delete(y, i, 0)[..., keep].mean(axis=(0, 1)), d[keep]) for i in range(len(y))]
    )
    n = len(loo)
    se = math.sqrt((n - 1) / n * float(np.sum((loo - loo.mean()) ** 2))) if n > 1 else math.inf
    return slope, se


def _violations(record, kind: str) -> tuple[int, int, float]:
    """(count of measured > bound beyond rounding, total, smallest log slack)."""
    slack = np.asarray(getattr(record, f"log_{kind}_bound")) - np.asarray(
        getattr(record, f"log_{kind}")
    )
    return int(np.sum(slack < -ROUNDING)), int(slack.size), float(slack.min())


def _predicted_exponent(record) -> float:
    """Mean-field exponent fitted like the measurement (cumulative log growth over depths)."""
    d = np.asarray(record.job.depths, float)
    cumulative = np.cumsum(record.mean_field_log_growth)[d.astype(int) - 1]
    keep = d >= FIT_FROM if (d >= FIT_FROM).sum() >= 2 else np.ones_like(d, dtype=bool)
    return _slope(cumulative[keep], d[keep])


def _row(record) -> dict[str, Any]:
    job = record.job
    depths = job.depths
    rate_in, se_in = exponent(record.log_input, depths)
    rate_par, se_par = exponent(record.log_parameter, depths)
    rate_bound, _ = exponent(record.log_input_bound, depths)
    tight = np.mean(np.asarray(record.log_input_bound) - np.asarray(record.log_input), axis=(0, 1))
    bad = _violations(record, "input")[0] + _violations(record, "parameter")[0]
    return {
        "activation": job.activation,
        "normalization": job.normalization,
        "width": job.width,
        "input variance": job.input_variance,
        "depths": depths,
        "input exponent": rate_in,
        "input exponent SE": se_in,
        "parameter exponent": rate_par,
        "parameter exponent SE": se_par,
        "mean-field exponent": _predicted_exponent(record),
        "bound exponent": rate_bound,
        "bound exponent (Gaussian weights)": record.bound_log_growth,
        "bound / measured at max depth": float(math.exp(tight[-1])),
        "bound violations": bad,
        "verdict": passed(bad == 0),
    }


def _bound_claims(records) -> list[Claim]:
    claims = []
    for kind, text in (("input", "|| d f / d x ||"), ("parameter", "|| d f / d theta ||")):
        counts = [_violations(r, kind) for r in records]
        bad, total = sum(c[0] for c in counts), sum(c[1] for c in counts)
        slack = min(c[2] for c in counts)
        claims.append(
            Claim(
                claim=f"the layer-wise product bound on {text} holds at every input and depth",
                prediction="measured <= bound, always",
                measurement=f"{bad} of {total} (network, input, depth) triples above the bound",
                verdict=passed(bad == 0),
                reference="the product of the layers' operator norms, at each network, input "
                "and depth",
                statistic=f"smallest log(bound / measured) = {slack:.3g} (limit -{ROUNDING:g})",
                note=f"a hard check: only float64 rounding ({ROUNDING:g} in log units) is allowed; "
                "power iteration gives lower bounds of the spectral norms, so this is conservative",
            )
        )
    return claims


def _growth_claim(records) -> Claim:
    plain = [r for r in records if r.job.normalization == "none"]
    rates = [(exponent(r.log_input, r.job.depths), r) for r in plain]
    ok = all(
        s - Z_AGREE * se > 0 and s <= exponent(r.log_input_bound, r.job.depths)[0]
        for (s, se), r in rates
    )
    shown = "; ".join(
        f"{r.job.activation} w={r.job.width} v={r.job.input_variance:g}: {s:.3f} +- {se:.3f}"
        for (s, se), r in rates
    )
    return Claim(
        claim="without normalization the input Lipschitz constant grows exponentially with depth",
        prediction="exponent > 0 and below the bound's; mean field: "
        + ", ".join(sorted({f"{r.job.activation} {_predicted_exponent(r):.3f}" for r in plain})),
        measurement=shown,
        verdict=passed(ok),
        reference="0 and the bound's own exponent, per network (the mean-field exponents are "
        "shown, not tested)",
        statistic=f"every exponent more than {Z_AGREE:g} SE above 0 and at most the bound's",
        note=f"exponent = slope of mean log constant over depths >= {FIT_FROM}, SE by jackknife "
        f"over networks; agree when every exponent exceeds {Z_AGREE:g} SE and the bound's exponent",
    )


def _partner(records, record, **change):
    """The record whose job equals ``record``'s except for ``change``."""
    want = replace(record.job, **change)
    return next((r for r in records if r.job == want), None)


def _reduction_claims(records) -> list[Claim]:
    pairs = [
        (r, _partner(records, r, normalization="none"))
        for r in records
        if r.job.normalization in NORMALIZED
    ]
    pairs = [(r, p) for r, p in pairs if p is not None]
    return [_reduction_claim(kind, pairs) for kind in ("input", "parameter")] if pairs else []


def _reduction_claim(kind: str, pairs) -> Claim:
    """Paired exponent of log(unnormalized / normalized) for every normalized job."""
    shown, ok = [], True
    for r, plain in pairs:
        gap = np.asarray(getattr(plain, f"log_{kind}")) - np.asarray(getattr(r, f"log_{kind}"))
        rate, se = exponent(gap, r.job.depths)
        ok &= rate - Z_AGREE * se > 0
        job = r.job
        shown.append(
            f"{job.activation} {job.normalization} w={job.width} "
            f"v={job.input_variance:g}: {rate:.3f} +- {se:.3f}"
        )
    predicted = sorted(
        {
            f"{r.job.activation} {r.job.normalization}: "
            f"{_predicted_exponent(p) - _predicted_exponent(r):.3f}"
            for r, p in pairs
        }
    )
    return Claim(
        claim=f"normalization reduces the {kind} Lipschitz constant exponentially in the "
        "number of normalization layers",
        prediction="log(unnormalized / normalized) grows linearly in depth; mean-field "
        "exponent of a typical input direction: " + ", ".join(predicted),
        measurement="; ".join(shown),
        verdict=passed(ok),
        reference="0, per normalized network (the mean-field exponents are shown, not tested)",
        statistic=f"every exponent more than {Z_AGREE:g} SE above 0",
        note="paired: same weights and inputs with and without normalization; exponent "
        f"of the log ratio fitted over depths >= {FIT_FROM}, jackknife SE over networks; "
        f"agree when every exponent exceeds {Z_AGREE:g} SE",
    )


def _scaling_law(record) -> dict[str, float]:
    """Predicted log(constant at variance v / constant at variance 1), exact for these nets."""
    half_log = 0.5 * math.log(record.job.input_variance)
    if record.job.normalization != "none":
        return {"input": -half_log, "parameter": 0.0}
    return {"input": 0.0, "parameter": half_log}


def _variance_claim(records) -> Claim | None:
    """Normalized nets are scale-invariant in the input (up to eps), ReLU nets homogeneous."""
    pairs = [
        (r, _partner(records, r, input_variance=1.0))
        for r in records
        if r.job.input_variance != 1.0 and r.job.activation == "relu"
    ]
    pairs = [(r, p) for r, p in pairs if p is not None]
    if not pairs:
        return None
    worst, ok, shown = 0.0, True, []
    for r, base in pairs:
        want = _scaling_law(r)
        normalized = r.job.normalization != "none"
        tol = r.job.eps / base.min_first_variance if normalized else ROUNDING
        for kind, target in want.items():
            ratio = np.asarray(getattr(r, f"log_{kind}")) - np.asarray(getattr(base, f"log_{kind}"))
            err = float(np.max(np.abs(ratio - target)))
            worst, ok = max(worst, err), ok and err <= tol
        shown.append(
            f"{r.job.normalization}: input {want['input']:+.3f}, parameter {want['parameter']:+.3f}"
        )
    return Claim(
        claim="raising the input variance v shrinks a normalized network's input Lipschitz "
        "constant as v^(-1/2) and leaves its parameter constant unchanged; a ReLU network "
        "without normalization keeps its input constant and scales its parameter constant by "
        "v^(1/2)",
        prediction="log ratios (v=16 vs v=1): " + "; ".join(shown),
        measurement=f"largest deviation {worst:.2e} over every network, input and depth",
        verdict=passed(ok),
        reference="the exact log ratios, per network, input and depth",
        statistic="every deviation within eps / min var(a_1) (normalized) or rounding (ReLU)",
        note="exact up to eps: LayerNorm/RMSNorm are scale-invariant but for eps, which moves "
        "the first layer by at most eps / min var(a_1) in log units (the tolerance); "
        "ReLU networks are positively homogeneous (tolerance: rounding)",
    )


def _bound_rate_claim(records) -> Claim:
    """The bound's measured growth against ``log(2 s s_act)`` (or its normalized form)."""
    worst, ok = 0.0, True
    for r in records:
        rate, se = exponent(r.log_input_bound, r.job.depths)
        err = abs(rate - r.bound_log_growth)
        tol = Z_AGREE * se + r.job.width ** (-2 / 3)
        worst, ok = max(worst, err / tol), ok and err <= tol
    return Claim(
        claim="the bounds grow per layer by log(2 s s_act) without normalization and by "
        "log(2 s_act / sqrt(E[act(z)^2])) with it (the weight scale cancels)",
        prediction=", ".join(
            sorted(
                {
                    f"{r.job.activation} {r.job.normalization}: {r.bound_log_growth:.3f}"
                    for r in records
                }
            )
        ),
        measurement="the fitted growth of each network's bound",
        verdict=passed(ok),
        reference="the predicted growth per network, within 3 SE + width^(-2/3)",
        statistic=f"largest |measured - predicted| / tolerance = {worst:.2f} (limit 1)",
        note="tolerance 3 SE + width^(-2/3): ||W|| of a square Gaussian matrix sits within "
        "the Tracy-Widom scale width^(-2/3) (relative) of its large-width value 2 s",
    )


def _base_width(records) -> int:
    """The width most jobs share (the others form the width sweep)."""
    return Counter(r.job.width for r in records).most_common(1)[0][0]


def _panel(records, kind: str) -> Panel:
    series, width = [], _base_width(records)
    for r in records:
        job = r.job
        if job.input_variance != 1 or job.width != width:
            continue
        depths = tuple(float(d) for d in job.depths)
        label = f"{job.activation}, {job.normalization}"
        logs = np.asarray(getattr(r, f"log_{kind}"))
        # geometric mean over networks and inputs; error bar: SE of the mean log over networks
        mean = logs.mean(axis=(0, 1))
        se = logs.mean(axis=1).std(axis=0, ddof=1) / math.sqrt(logs.shape[0])
        series.append(
            Series(
                label,
                depths,
                tuple(np.exp(mean).tolist()),
                yerr=tuple((np.exp(mean) * se).tolist()),
                group=label,
            )
        )
        bound = np.exp(np.asarray(getattr(r, f"log_{kind}_bound")).mean(axis=(0, 1)))
        series.append(
            Series(f"{label}: bound", depths, tuple(bound.tolist()), style="line", group=label)
        )
    return Panel(
        f"{kind.capitalize()} Lipschitz constant (width {width}, input variance 1)",
        "depth",
        f"|| d f / d {'x' if kind == 'input' else 'theta'} ||",
        tuple(series),
        yscale="log",
    )


def summarize(records) -> ExperimentResult:
    """Hard bound checks, growth and reduction exponents, the input-variance law."""
    records = sorted(
        records,
        key=lambda r: (
            r.job.activation,
            r.job.normalization,
            r.job.width,
            r.job.input_variance,
        ),
    )
    claims = []
    if records:
        claims = _bound_claims(records) + [_bound_rate_claim(records), _growth_claim(records)]
        claims += _reduction_claims(records)
        variance = _variance_claim(records)
        claims += [variance] if variance else []
    return ExperimentResult(
        name="lipschitz",
        title="Lipschitz control: normalization against depth",
        description=__doc__,
        claims=tuple(claims),
        rows=tuple(_row(r) for r in records),
        figure=Figure(
            "lipschitz",
            (_panel(records, "input"), _panel(records, "parameter")),
            caption="Each network's measured constant (points) stays below its layer-wise "
            "bound (line, same colour). Without normalization both grow exponentially with "
            "depth; with it they grow far more slowly. Only the base width and input variance "
            "are drawn; the width and variance sweeps are in the claims and the table. Bounds "
            "that coincide (ReLU and tanh share the slope bound 1) hide one another.",
        )
        if records
        else None,
        notes=NOTES,
    )


def experiments() -> tuple[Experiment, ...]:
    load = partial(load_record, LipschitzRecord)
    return (
        Experiment("lipschitz", "Lipschitz control by normalization", jobs, run, summarize, load),
    )
