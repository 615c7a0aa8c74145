"""The geometry of LayerNorm (Riechers 2024): the exact hyperellipsoid against sampled outputs.

Prediction (:mod:`llcgeo.theory.layernorm_geometry`): outputs lie on the hyperplane
``alpha^T (y - b) = 0`` inside ``(y - b)^T G^-2 (y - b) < N``, an ``(N-1)``-dimensional
hyperellipsoid with exact axes and semi-axes; for Gaussian inputs the coordinate along axis
``k`` has second moment ``semi_axis_k**2 E[r**2] / (N - 1)`` and ``E[1 - r**2]`` (how far inside
the surface a typical output lies) is an exact one-dimensional integral in ``eps``.
Measurement (:mod:`llcgeo.numerics.measurements.layernorm_geometry`): LayerNorm on Gaussian inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np

from llcgeo.manifolds import exact
from llcgeo.numerics.measurements.layernorm_geometry import (
    LayerNormSampling,
    measure_layernorm_geometry,
)
from llcgeo.reconcile.experiment import Experiment, check_scale, load_record
from llcgeo.reconcile.model import Claim, ExperimentResult, Figure, Panel, Series
from llcgeo.reconcile.verdict import limit, passed
from llcgeo.serialize import to_jsonable
from llcgeo.theory.layernorm_geometry import (
    axis_coordinate_moments,
    layernorm_ellipsoid,
    squared_radius_moments,
)

ROUNDING = 1e-12  # relative float64 rounding allowance for the exact (hard) containments
EPS_GRID = (0.0, 1e-4, 1e-2, 1.0, 10.0)
_GAINS = {
    "g = (1, 2, 3)": (("1", "2", "3"), ("1/2", "-1", "2")),
    "N = 12, signed repeated gains": (
        ("1", "1", "-1", "1", "2", "-2", "2", "2", "3", "3", "3", "-3"),
        None,
    ),
    "N = 8, uniform gain 2": (("2",) * 8, None),
}


@dataclass(frozen=True)
class GeometryJob:
    """One LayerNorm (``gain``, ``bias`` as exact text), one ``eps``, ``samples`` inputs."""

    case: str
    gain: tuple[str, ...]
    bias: tuple[str, ...] | None
    eps: float
    samples: int
    seed: int
    input_variance: float = 1.0

    def __post_init__(self):
        # the sampler validates every field; this also parses the gains as exact numbers
        LayerNormSampling(
            gain=tuple(float(exact(g, "gain")) for g in self.gain),
            bias=None if self.bias is None else tuple(float(exact(b, "bias")) for b in self.bias),
            eps=self.eps,
            samples=self.samples,
            input_variance=self.input_variance,
            seed=self.seed,
        )


def jobs(scale: str) -> tuple[GeometryJob, ...]:
    """Every gain case at every ``eps`` of ``EPS_GRID``."""
    samples = {"small": 20_000, "full": 1_000_000}[check_scale(scale)]
    return tuple(
        GeometryJob(case, gain, bias, eps, samples, seed)
        for seed, (case, (gain, bias), eps) in enumerate(
            (c, gb, e) for c, gb in _GAINS.items() for e in EPS_GRID
        )
    )


@lru_cache(maxsize=16)
def _ellipsoid(gain: tuple[str, ...], bias: tuple[str, ...] | None):
    return layernorm_ellipsoid(gain, bias)


@dataclass(frozen=True)
class GeometryRecord:
    """One LayerNorm at one eps: the job, the exact ellipsoid (as text), the predicted and the
    measured moments (plain tables keyed by quantity)."""

    job: GeometryJob
    dimension: int
    eigenvalues_exact: list
    semi_axes_exact: list
    predicted: dict
    measured: dict


def run(job: GeometryJob, device: str) -> dict[str, Any]:
    """Exact ellipsoid, exact moments, and the sampled measurement, as one record."""
    exact = _ellipsoid(job.gain, job.bias)
    numeric = exact.numeric()
    spec = LayerNormSampling(
        gain=tuple(numeric["gain"]),
        bias=tuple(numeric["bias"]),
        eps=job.eps,
        samples=job.samples,
        input_variance=job.input_variance,
        seed=job.seed,
    )
    measured = measure_layernorm_geometry(spec, numeric["axes"], device)
    n = exact.dimension
    r2 = squared_radius_moments(n, job.eps, job.input_variance)
    axis = [axis_coordinate_moments(s, n, r2) for s in numeric["semi_axes"]]
    return to_jsonable(
        {
            "job": job,
            "dimension": n,
            "eigenvalues_exact": [str(v) for v in exact.eigenvalues],
            "semi_axes_exact": [str(v) for v in exact.semi_axes],
            "predicted": {
                **numeric,
                "deficit_mean": 1 - r2[0],
                "deficit_sd": math.sqrt(max(r2[1] - r2[0] ** 2, 0.0)),
                "axis_mean_square": [m for m, _ in axis],
                "axis_square_sd": [math.sqrt(max(v, 0.0)) for _, v in axis],
            },
            "measured": measured,
        }
    )


def _z_tests(record) -> list[float]:
    """z-scores of the sample means (deficit, then each axis) from the *predicted* variance."""
    p, m, n = record.predicted, record.measured, record.job.samples
    pairs = [(m["deficit_mean"], p["deficit_mean"], p["deficit_sd"])]
    pairs += zip(m["axis_mean_square"], p["axis_mean_square"], p["axis_square_sd"])
    out = []
    for got, want, sd in pairs:
        scale = sd / math.sqrt(n)
        out.append(
            0.0
            if scale == 0 and abs(got - want) <= ROUNDING * (1 + abs(want))
            else (got - want) / scale
            if scale > 0
            else math.inf
        )
    return out


def _hard_checks(record) -> dict[str, float]:
    """Slack of the exact containments, relative to their scale (negative beyond rounding)."""
    p, m, n = record.predicted, record.measured, record.dimension
    size = 1 + max(map(abs, p["bias"])) + max(map(abs, p["gain"])) * math.sqrt(n)
    return {
        "plane": m["max_plane_deviation"] / size,
        "radius": m["max_radius"] / math.sqrt(n) - 1,
        "axes": max(got / want - 1 for got, want in zip(m["axis_max"], p["semi_axes"])),
    }


def _z_crit(records) -> float:
    tests = sum(len(_z_tests(r)) for r in records)
    return limit(tests)


def _row(record, z_crit: float) -> dict[str, Any]:
    job, p, m = record.job, record.predicted, record.measured
    z, hard = _z_tests(record), _hard_checks(record)
    ok = all(v <= ROUNDING for v in hard.values()) and all(abs(v) <= z_crit for v in z)
    return {
        "case": job.case,
        "N": record.dimension,
        "eps": job.eps,
        "eigenvalues": record.eigenvalues_exact,
        "semi-axes": record.semi_axes_exact,
        "E[1 - r^2] predicted": p["deficit_mean"],
        "E[1 - r^2] measured": m["deficit_mean"],
        "max |z|": max(abs(v) for v in z),
        "max radius / sqrt(N)": m["max_radius"] / math.sqrt(record.dimension),
        "max plane deviation": m["max_plane_deviation"],
        "max extent / semi-axis": [g / s for g, s in zip(m["axis_max"], p["semi_axes"])],
        "verdict": passed(ok),
    }


def _containment_claims(records) -> list[Claim]:
    worst = {k: max(_hard_checks(r)[k] for r in records) for k in ("plane", "radius", "axes")}
    surface = [r for r in records if r.job.eps == 0]
    on_surface = max(abs(_hard_checks(r)["radius"]) for r in surface) if surface else math.nan
    note = f"exact containments: agree when the excess is at most {ROUNDING:g} (float64 rounding)"
    tested = ("the exact set, every output of every case", f"excess <= {ROUNDING:g} (rounding)")
    return [
        Claim(
            "LayerNorm outputs lie on the hyperplane alpha^T (y - b) = 0, alpha = 1/g",
            "distance 0",
            f"largest distance / scale = {worst['plane']:.2e}",
            _hard(worst["plane"]),
            note,
            *tested,
        ),
        Claim(
            "outputs lie inside (y - b)^T G^-2 (y - b) < N, on its surface when eps = 0",
            "max radius / sqrt(N) <= 1; = 1 at eps = 0",
            f"largest excess {worst['radius']:.2e}; at eps = 0 |radius/sqrt(N) - 1| <= "
            f"{on_surface:.2e}",
            _hard(max(worst["radius"], on_surface)),
            note,
            *tested,
        ),
        Claim(
            "no output reaches beyond a semi-axis sqrt(N / lambda_k) along its principal axis",
            "max |u_k . (y - b)| / semi-axis <= 1",
            f"largest ratio - 1 = {worst['axes']:.2e}",
            _hard(worst["axes"]),
            note,
            *tested,
        ),
    ]


def _hard(excess: float) -> str:
    return passed(excess <= ROUNDING)


def _exact_axes_claim(records) -> Claim | None:
    """For N = 3 at eps = 0 the outputs cover the whole ellipse, so the extents must reach the
    semi-axes: P(max |w_k| < 1 - 1e-6 over n samples) ~ exp(-n 2 sqrt(2e-6) / pi)."""
    chosen = [r for r in records if r.dimension == 3 and r.job.eps == 0]
    if not chosen:
        return None
    r = chosen[0]
    ratios = [g / s for g, s in zip(r.measured["axis_max"], r.predicted["semi_axes"])]
    n = r.job.samples
    ok = all(1 - 1e-6 <= q <= 1 + ROUNDING for q in ratios)
    return Claim(
        claim=f"exact principal axes for gain {tuple(r.job.gain)}: eigenvalues of "
        f"P G^-2 P {', '.join(r.eigenvalues_exact)}",
        prediction=f"semi-axes {', '.join(r.semi_axes_exact)}",
        measurement="largest extent / semi-axis " + ", ".join(f"{q:.8f}" for q in ratios),
        verdict=passed(ok),
        reference="the exact semi-axes",
        statistic="every extent within 1 - 1e-6 and 1 + rounding of its semi-axis",
        note=f"eps = 0 puts every output on the ellipse, so with n = {n} samples the extents "
        f"reach 1 - 1e-6 of the semi-axes except with probability about "
        f"exp(-{n * 2 * math.sqrt(2e-6) / math.pi:.0f})",
    )


def _moment_claims(records, z_crit: float) -> list[Claim]:
    axis_z = max(max(abs(v) for v in _z_tests(r)[1:]) for r in records)
    deficit = [r for r in records if r.job.eps > 0]
    deficit_z = max(abs(_z_tests(r)[0]) for r in deficit) if deficit else 0.0
    note = (
        f"z = (sample mean - exact mean) / (predicted sd / sqrt(n)); agree when every |z| <= "
        f"{z_crit:.2f} (normal, Bonferroni over all "
        f"{sum(len(_z_tests(r)) for r in records)} tests at the error rate of one three-sigma "
        "test)"
    )
    return [
        Claim(
            "along each principal axis the squared coordinate has mean "
            "semi_axis^2 E[r^2] / (N - 1) (the axes and lengths, seen from inside)",
            "exact (uniform direction, independent radius)",
            f"max |z| = {axis_z:.2f}",
            passed(axis_z <= z_crit),
            note,
            "the exact mean along each axis",
            f"max |z| = {axis_z:.2f} (limit {z_crit:.2f})",
        ),
        Claim(
            "typical outputs approach the surface as eps -> 0: E[1 - r^2] = E[eps/(var + eps)]",
            "exact chi-square integral per eps",
            f"max |z| = {deficit_z:.2f} over {len(deficit)} (gain, eps) cases",
            passed(deficit_z <= z_crit),
            note,
            "the exact mean deficit per (gain, eps)",
            f"max |z| = {deficit_z:.2f} (limit {z_crit:.2f})",
        ),
    ]


def _scatter_panel(records) -> Panel | None:
    chosen = [r for r in records if r.dimension == 3 and r.job.eps in (0.0, 1.0)]
    if not chosen:
        return None
    series = []
    for r in chosen:
        pts = np.asarray(r.measured["projected"], float)
        series.append(
            Series(
                f"samples, eps = {r.job.eps:g}",
                tuple(pts[:, 0].tolist()),
                tuple(pts[:, 1].tolist()),
            )
        )
    s1, s2 = chosen[0].predicted["semi_axes"][:2]
    t = np.linspace(0, 2 * math.pi, 121)
    series.append(
        Series(
            "predicted ellipse",
            tuple((s1 * np.cos(t)).tolist()),
            tuple((s2 * np.sin(t)).tolist()),
            style="line",
        )
    )
    gain = ", ".join(chosen[0].job.gain)
    return Panel(
        f"LN image, g = ({gain}), in its principal axes",
        "u_1 . (y - b)",
        "u_2 . (y - b)",
        tuple(series),
    )


def _deficit_panel(records) -> Panel:
    series = []
    for case in dict.fromkeys(r.job.case for r in records):
        rs = sorted(
            (r for r in records if r.job.case == case and r.job.eps > 0),
            key=lambda r: r.job.eps,
        )
        if not rs:
            continue
        n, variance = rs[0].dimension, rs[0].job.input_variance
        grid = np.geomspace(rs[0].job.eps, rs[-1].job.eps, 25)
        line = [1 - squared_radius_moments(n, float(e), variance)[0] for e in grid]
        exact = Series(
            f"{case}: exact", tuple(grid.tolist()), tuple(line), style="line", group=case
        )
        series.append(exact)
        series.append(
            Series(
                f"{case}: samples",
                tuple(r.job.eps for r in rs),
                tuple(r.measured["deficit_mean"] for r in rs),
                yerr=tuple(r.predicted["deficit_sd"] / math.sqrt(r.job.samples) for r in rs),
                group=case,
            )
        )
    return Panel(
        "How far inside the surface: E[1 - r^2]",
        "eps",
        "E[1 - r^2]",
        tuple(series),
        xscale="log",
        yscale="log",
    )


def _axes_panel(records) -> Panel:
    pred, got = [], []
    for r in records:
        pred += [math.sqrt(v) for v in r.predicted["axis_mean_square"]]
        got += [math.sqrt(v) for v in r.measured["axis_mean_square"]]
    top = max(pred + got) if pred else 1.0
    return Panel(
        "RMS coordinate along each predicted axis",
        "predicted",
        "measured",
        (
            Series("axes of every case", tuple(pred), tuple(got)),
            Series("measured = predicted", (0.0, top), (0.0, top), style="line"),
        ),
    )


def summarize(records) -> ExperimentResult:
    """Hard containments, exact axes, and the z-tested moments; a row per (gain, eps)."""
    records = sorted(records, key=lambda r: (r.job.case, r.job.eps))
    z_crit = _z_crit(records)
    claims = []
    if records:
        claims = _containment_claims(records) + _moment_claims(records, z_crit)
        exact = _exact_axes_claim(records)
        claims += [exact] if exact else []
    panels = [p for p in (_scatter_panel(records),) if p] + (
        [_deficit_panel(records), _axes_panel(records)] if records else []
    )
    return ExperimentResult(
        name="geometry",
        title="The geometry of LayerNorm: an (N-1)-dimensional hyperellipsoid",
        description=__doc__,
        claims=tuple(claims),
        rows=tuple(_row(r, z_crit) for r in records),
        figure=Figure(
            "geometry",
            tuple(panels),
            caption="Left: LayerNorm outputs for N = 3 fill the predicted ellipse in its "
            "principal axes. Middle: how far inside the surface typical outputs sit, against "
            "the exact integral (same colour). Right: each axis's RMS coordinate against its "
            "prediction; points on the diagonal agree.",
        )
        if panels
        else None,
        notes=(
            "Inputs a ~ N(0, I_N); LN uses the population variance (1/N), as "
            "llcgeo.manifolds.LayerNormImage does.",
            "Eigenvalues of P G^-2 P are exact (rationals, radicals or CRootOf numbers); the "
            "signed repeated gains give eigenvalues 1, 1/4, 1/9 (three times each, on the "
            "coordinates sharing a |gain|) and the roots 1/7, 3/7 of the secular equation.",
            "Tolerances: containments are exact, so only float64 rounding is allowed; moments "
            "are tested with the variance the theory predicts, not the sample variance.",
        ),
    )


def experiments() -> tuple[Experiment, ...]:
    load = partial(load_record, GeometryRecord)
    return (Experiment("geometry", "Geometry of LayerNorm", jobs, run, summarize, load),)
