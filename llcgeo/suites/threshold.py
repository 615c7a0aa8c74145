"""Curvature on a hyperplane: the binary threshold and its finite-sample crossover.

Data lie on :class:`~llcgeo.manifolds.BumpedHyperplane`: ``x_d = kappa/2 u_1^2`` on a strip
that carries ``fraction`` of the mass, ``x_d = 0`` elsewhere. Without a bias the curvature adds
one Hessian eigenvalue ``h = kappa^2 m4 / 4`` per output (``m4 = E[u^4 1(|u| < c)]``), so the
population LLC is ``md/2`` for every ``kappa != 0`` and ``m(d-1)/2`` at ``kappa = 0``. At finite
``n`` the curved direction contributes ``(m/2) nbeta h / (nbeta h + gamma)`` to the posterior
expectation: half of the ``m/2`` comes back at ``kappa* = sqrt(4 gamma / (nbeta m4))``, which
moves out as less of the distribution sees the curvature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.reconcile.design import case_experiment, case_row, make_case, tuned
from llcgeo.reconcile.experiment import Experiment, check_scale
from llcgeo.reconcile.model import Claim, ExperimentResult, Figure, Panel, Series, measured_series
from llcgeo.reconcile.stats import (
    cases_verdict,
    combined,
    judged_claim,
    reference_text,
    singles_out,
    statistic_text,
)
from llcgeo.reconcile.verdict import Z_AGREE, passed, within
from llcgeo.theory import bump_normal_moments


@dataclass(frozen=True)
class ThresholdGrid:
    d: int
    m: int
    kappas: tuple[str, ...]
    n: int
    config: SGLDConfig


THRESHOLD = {
    "small": ThresholdGrid(
        4,
        2,
        ("-1", "-1/2", "-1/4", "0", "1/4", "1/2", "1"),
        200_000,
        SGLDConfig(chains=32, steps=5000, burnin=1000),
    ),
    "full": ThresholdGrid(
        8,
        4,
        ("-2", "-1", "-1/2", "-1/4", "-1/8", "0", "1/8", "1/4", "1/2", "1", "2"),
        2_000_000,
        SGLDConfig(chains=16, steps=20_000, burnin=4000),
    ),
}


def _h_max(spec: mf.BumpedHyperplane) -> float:
    m4 = float(bump_normal_moments(spec)[1])
    return max(1.2, float(spec.kappa) ** 2 * m4 / 4 * 1.2)


def _threshold_jobs(scale: str):
    g = THRESHOLD[check_scale(scale)]
    jobs = []
    for kappa in g.kappas:
        spec = mf.BumpedHyperplane(g.d, kappa=kappa, fraction=1)
        config = tuned(g.config, g.n, _h_max(spec))
        jobs.append(make_case(spec, g.m, config, g.n, kappa=kappa))
    return jobs


def _kappa(record) -> float:
    return float(Fraction(record.tags["kappa"]))


def _threshold_claim(records, curved: bool) -> Claim:
    chosen = [r for r in records if (_kappa(r) != 0) == curved]
    m, d = (chosen[0].m, chosen[0].d)
    full, flat = m * d / 2, m * (d - 1) / 2
    claimed, alternative = (full, flat) if curved else (flat, full)
    singled = []
    for r in chosen:
        verdict, note = singles_out(r.llc_mean, r.se, claimed=claimed, alternative=alternative)
        singled.append((verdict, f"kappa {r.tags['kappa']}: {note}"))
    text = "every kappa != 0 keeps the full LLC" if curved else "kappa = 0 drops m/2"
    values = ", ".join(f"{r.llc_mean:.2f}" for r in chosen)
    nearest = min(abs(r.llc_mean - alternative) / r.se for r in chosen)
    return judged_claim(
        text, f"{claimed:g}", values, chosen, singled,
        reference=f"{claimed:g} against {alternative:g}",
        statistic=f"{statistic_text(chosen)}; nearest the alternative: {nearest:.1f} SE",
    )  # fmt: skip


def _threshold_summary(records) -> ExperimentResult:
    records = sorted(records, key=_kappa)
    m, d = records[0].m, records[0].d
    xs = tuple(_kappa(r) for r in records)
    series = (
        *measured_series(xs, records),
        Series("curved: m d / 2", xs, (m * d / 2,) * len(xs), style="line"),
        Series("flat: m (d-1) / 2", xs, (m * (d - 1) / 2,) * len(xs), style="line"),
    )
    return ExperimentResult(
        name="threshold",
        title="The binary threshold: curvature of either sign keeps the LLC",
        description=(
            f"BumpedHyperplane(d={d}, kappa, fraction=1) with a width-{m} layer and "
            f"n = {records[0].n}: the whole distribution sees the curvature, so at "
            "large n any kappa != 0 should give m d / 2 and only kappa = 0 the drop to "
            "m (d-1) / 2."
        ),
        claims=(_threshold_claim(records, True), _threshold_claim(records, False)),
        rows=tuple(case_row(r, "kappa") for r in records),
        figure=Figure(
            "threshold",
            (Panel("LLC against curvature", "kappa", "LLC estimate", series),),
            caption="Only the case kappa = 0 should sit on the flat level; every other kappa, "
            "of either sign, on the curved one. The claim is binary, so the exact expectations "
            "are drawn as separate marks, not joined.",
        ),
    )


def threshold_experiment() -> Experiment:
    return case_experiment(
        "threshold", "Binary curvature threshold", _threshold_jobs, _threshold_summary
    )


@dataclass(frozen=True)
class CrossoverGrid:
    d: int
    m: int
    fractions: tuple[str, ...]
    sizes: tuple[int, ...]
    offsets: tuple[int, ...]  # kappa = kappa* * 2**offset
    config: SGLDConfig


CROSSOVER = {
    "small": CrossoverGrid(
        3,
        2,
        ("1", "1/2", "1/5"),
        (10_000, 40_000),
        (-3, -2, -1, 0, 1, 2, 3),
        SGLDConfig(gamma=100.0, chains=16, steps=5000, burnin=1000),
    ),
    "full": CrossoverGrid(
        3,
        4,
        ("1", "1/2", "1/5", "1/20"),
        (10_000, 40_000, 160_000),
        (-4, -3, -2, -1, 0, 1, 2, 3, 4),
        SGLDConfig(gamma=100.0, chains=16, steps=20_000, burnin=4000),
    ),
}


def predicted_crossover(fraction: str, n: int, config: SGLDConfig) -> float:
    """``kappa* = sqrt(4 gamma / (nbeta m4))``: the curvature at which half of m/2 returns."""
    m4 = float(sp.N(bump_normal_moments(mf.BumpedHyperplane(2, kappa=1, fraction=fraction))[1]))
    return math.sqrt(4 * config.gamma / (config.resolved_nbeta(n) * m4))


def _crossover_jobs(scale: str):
    g = CROSSOVER[check_scale(scale)]
    jobs = []
    for fraction in g.fractions:
        for n in g.sizes:
            star = predicted_crossover(fraction, n, g.config)
            for k in g.offsets:
                kappa = Fraction(star * 2.0**k).limit_denominator(10_000)
                spec = mf.BumpedHyperplane(g.d, kappa=kappa, fraction=fraction)
                config = tuned(g.config, n, _h_max(spec))
                jobs.append(
                    make_case(
                        spec, g.m, config, n, fraction=fraction, n=n, offset=k, kappa=str(kappa)
                    )
                )
    return jobs


def _curve(records, fraction: str, n: int):
    chosen = [r for r in records if r.tags["fraction"] == fraction and r.tags["n"] == n]
    return sorted(chosen, key=_kappa)


def _half_crossing(kappas, values, level) -> float:
    """The kappa where ``values`` first rises through ``level``, interpolated in log kappa."""
    for (k0, v0), (k1, v1) in zip(zip(kappas, values), zip(kappas[1:], values[1:])):
        if v0 < level <= v1:
            t = (level - v0) / (v1 - v0)
            return math.exp(math.log(k0) + t * (math.log(k1) - math.log(k0)))
    return math.nan


def _crossing_claim(records, fraction: str, n: int) -> Claim:
    rows = _curve(records, fraction, n)
    config = rows[0].config
    star = predicted_crossover(fraction, n, config)
    m, d = rows[0].m, rows[0].d
    kappas = [_kappa(r) for r in rows]
    level = _half_level(rows, m)
    got = _half_crossing(kappas, [r.llc_mean for r in rows], level)
    expected = _half_crossing(kappas, [r.reference for r in rows], level)
    tolerance = _crossing_tolerance(rows, kappas, level)
    cases = cases_verdict(rows)
    verdict = (
        "inconclusive" if not math.isfinite(got) else within(math.log(got / expected), tolerance)
    )
    return Claim(
        claim=f"crossover at fraction {fraction}, n = {n}",
        prediction=f"kappa* = {star:.3g} (exact-expectation curve crosses at {expected:.3g})",
        measurement=f"kappa = {got:.3g}",
        verdict=combined([verdict, cases[0]]),
        note=f"level {level:.3f} (d = {d}); |log ratio| tolerance {tolerance:.3f} "
        f"= {Z_AGREE:g} SE of the measured curve divided by its local log-slope; " + cases[1],
        reference=f"the exact-expectation curve's crossing {expected:.3g}; each case: "
        + reference_text(rows),
        statistic=f"|log(kappa / {expected:.3g})| = {abs(math.log(got / expected)):.3f} "
        f"(limit {tolerance:.3f}); cases {statistic_text(rows)}",
    )


def _half_level(rows, m: int) -> float:
    """Half way between the two plateaus of the exact-expectation curve at this n."""
    low, high = rows[0].reference, rows[-1].reference
    return low + (high - low) / 2 if high > low else low + m / 4


def _crossing_tolerance(rows, kappas, level) -> float:
    means = [r.llc_mean for r in rows]
    for i in range(len(rows) - 1):
        if means[i] < level <= means[i + 1]:
            slope = (means[i + 1] - means[i]) / math.log(kappas[i + 1] / kappas[i])
            se = max(rows[i].se, rows[i + 1].se)
            return Z_AGREE * se / slope
    return math.nan


def _crossover_summary(records) -> ExperimentResult:
    records = list(records)
    fractions = sorted({r.tags["fraction"] for r in records}, key=Fraction, reverse=True)
    sizes = sorted({r.tags["n"] for r in records})
    claims = [_crossing_claim(records, f, n) for f in fractions for n in sizes]
    claims.append(_ordering_claim(records, fractions, sizes))
    panels = tuple(_crossover_panel(records, fractions, n) for n in sizes)
    return ExperimentResult(
        name="crossover",
        title="The finite-sample crossover and the mass that sees the curvature",
        description=(
            "A grid of curvature kappa (log-spaced around the predicted crossover kappa*), "
            "curved fraction and sample size n. Each curve is measured against the exact "
            "finite-n expectation; the crossover is where half of the m/2 returns, "
            "interpolated in log kappa. kappa* = sqrt(4 gamma / (nbeta m4(fraction))) grows "
            "as less of the distribution sees the curvature and shrinks as n grows."
        ),
        claims=tuple(claims),
        rows=tuple(case_row(r, "fraction", "n", "kappa") for r in records),
        figure=Figure(
            "crossover",
            panels,
            caption="Each curve climbs from the flat level to the curved one as kappa grows; "
            "the dashed line of its colour marks the predicted crossover kappa*. Less curved "
            "mass (a smaller fraction) moves the climb to the right; more data (larger n) to "
            "the left.",
        ),
    )


def _ordering_claim(records, fractions, sizes) -> Claim:
    verdicts, parts = [], []
    for n in sizes:
        order = []
        for f in fractions:
            rows = _curve(records, f, n)
            level = _half_level(rows, rows[0].m)
            order.append(
                _half_crossing([_kappa(r) for r in rows], [r.llc_mean for r in rows], level)
            )
        ok = all(math.isfinite(v) for v in order) and all(a < b for a, b in zip(order, order[1:]))
        verdicts.append(passed(ok))
        parts.append(f"n = {n}: " + ", ".join(f"{v:.3g}" for v in order))
    return Claim(
        claim="less curved mass moves the crossover to larger kappa",
        prediction="kappa* increases as the fraction falls (" + ", ".join(fractions) + ")",
        measurement="; ".join(parts),
        verdict=combined(verdicts),
        reference="the order of the measured crossovers",
        statistic="strictly increasing as the fraction falls, at every n",
    )


def _crossover_panel(records, fractions, n: int) -> Panel:
    series = []
    for f in fractions:
        rows = _curve(records, f, n)
        xs = tuple(_kappa(r) for r in rows)
        series.append(
            Series(
                f"fraction {f}",
                xs,
                tuple(r.llc_mean for r in rows),
                tuple(r.se for r in rows),
                group=f,
            )
        )
        exact = tuple(r.reference for r in rows)
        series.append(Series(f"exact, fraction {f}", xs, exact, style="line", group=f))
        star = predicted_crossover(f, n, rows[0].config)
        series.append(Series(f"kappa*, fraction {f}", (star,), (), style="vline", group=f))
    m, d = records[0].m, records[0].d
    span = (min(_kappa(r) for r in records), max(_kappa(r) for r in records))
    series.append(Series("curved: m d / 2", span, (m * d / 2,) * 2, style="line", group="curved"))
    flat = (m * (d - 1) / 2,) * 2
    series.append(Series("flat: m (d-1) / 2", span, flat, style="line", group="flat"))
    return Panel(f"n = {n}", "kappa", "LLC estimate", tuple(series), xscale="log")


def crossover_experiment() -> Experiment:
    return case_experiment(
        "crossover", "Finite-sample crossover", _crossover_jobs, _crossover_summary
    )
