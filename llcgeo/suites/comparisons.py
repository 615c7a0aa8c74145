"""Claims that compare a few layers on a few manifolds: the smuggled bias of softmax outputs
(and of a biased LayerNorm), and weight-refined LLCs against the full LLC."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.reconcile.design import case_experiment, case_row, make_case, tuned
from llcgeo.reconcile.experiment import Experiment, check_scale
from llcgeo.reconcile.model import Claim, ExperimentResult, Figure, Panel, Series, measured_series
from llcgeo.reconcile.stats import (
    judged_claim,
    singles_out,
    statistic_text,
)

Formula = tuple[str, Callable[[int, int], float]]
FULL: Formula = ("m d / 2", lambda m, d: m * d / 2)
FLAT: Formula = ("m (d-1) / 2", lambda m, d: m * (d - 1) / 2)
WITH_BIAS: Formula = ("m (d+1) / 2", lambda m, d: m * (d + 1) / 2)
BIAS_ONLY: Formula = ("m / 2", lambda m, d: m / 2)
NOTHING: Formula = ("0", lambda m, d: 0.0)


@dataclass(frozen=True)
class Row:
    """One case and the claim about it: ``claimed`` against ``alternative``."""

    label: str
    family: str  # a name of the manifolds registry
    bias: bool
    refine: str
    claimed: Formula
    alternative: Formula
    h_max: float = 1.5  # above the top eigenvalue of the moving Hessian block, for the step size
    shifted: bool = False  # a LayerNorm bias e_1 (alpha . beta = 1): a plane off the origin


@dataclass(frozen=True)
class Scale:
    d: int
    m: int
    n: int
    config: SGLDConfig


SCALES = {
    # softmax outputs are ill-conditioned (eigenvalues 0.05 against 1.25 at d = 4): long chains
    "small": Scale(4, 3, 50_000, SGLDConfig(chains=32, steps=14_000, burnin=2000)),
    "full": Scale(8, 4, 200_000, SGLDConfig(chains=16, steps=40_000, burnin=8000)),
}


def _manifold(row: Row, d: int):
    extra = {"bias": [1] + [0] * (d - 1)} if row.shifted else {}
    return mf.build(row.family, d=d, **extra)


def _jobs(rows: tuple[Row, ...]):
    def jobs(scale: str):
        s = SCALES[check_scale(scale)]
        return [
            make_case(
                _manifold(r, s.d),
                s.m,
                tuned(s.config, s.n, r.h_max),
                s.n,
                bias=r.bias,
                refine=r.refine,
                row=r.label,
            )
            for r in rows
        ]

    return jobs


def _claim(row: Row, record) -> Claim:
    m, d = record.m, record.d
    claimed, alternative = row.claimed[1](m, d), row.alternative[1](m, d)
    singled = singles_out(record.llc_mean, record.se, claimed=claimed, alternative=alternative)
    if record.predicted_llc != claimed:
        singled = ("disagree", f"theory predicts {record.predicted_llc_exact}, not {claimed:g}")
    return judged_claim(
        row.label,
        f"{row.claimed[0]} = {claimed:g} (not {row.alternative[0]} = {alternative:g})",
        f"{record.llc_mean:.3f} +/- {record.se:.3f}",
        [record],
        [singled],
        statistic=f"{statistic_text([record])}; {singled[1]}",
    )


def _summary(name: str, title: str, description: str, rows: tuple[Row, ...]):
    def summarize(records) -> ExperimentResult:
        by_label = {r.tags["row"]: r for r in records}
        ordered = [by_label[row.label] for row in rows]
        xs = tuple(range(len(rows)))
        series = (
            *measured_series(xs, ordered),
            Series("asymptotic LLC", xs, tuple(r.predicted_llc for r in ordered), style="markers"),
        )
        ticks = tuple(row.label.split(":")[0] for row in rows)  # the setting, not the claim
        panel = Panel(title, "case (the data, and the parameters refined)", "LLC estimate", series,
                      xticks=ticks)  # fmt: skip
        return ExperimentResult(
            name=name,
            title=title,
            description=description,
            claims=tuple(_claim(row, by_label[row.label]) for row in rows),
            rows=tuple({"case": i} | case_row(r, "row") for i, r in enumerate(ordered)),
            figure=Figure(
                name,
                (panel,),
                caption="One column a case, named as in the claims. Each measurement should "
                "sit on its exact expectation (x), which lies near the asymptotic LLC.",
            ),
        )

    return summarize


SMUGGLED_BIAS = (
    Row("softmax, no bias: no drop", "simplex", False, "all", FULL, FLAT),
    Row("softmax + bias: the simplex smuggles a bias (drop m/2)", "simplex", True, "all", FULL,
        WITH_BIAS),
    Row("softmax + bias, W alone", "simplex", True, "weight", FULL, FLAT),
    Row("softmax + bias, b alone", "simplex", True, "bias", BIAS_ONLY, NOTHING),
    Row("biased LayerNorm, no bias: no drop", "layernorm", False, "all", FULL, FLAT, 3.0, True),
    Row("biased LayerNorm + bias: drop m/2, like the simplex", "layernorm", True, "all", FULL,
        WITH_BIAS, 3.0, True),
    Row("biased LayerNorm + bias, W alone", "layernorm", True, "weight", FULL, FLAT, 3.0, True),
)  # fmt: skip
WEIGHT_REFINEMENT = (
    Row("LayerNorm + bias: full LLC", "layernorm", True, "all", FULL, WITH_BIAS),
    Row("LayerNorm + bias: wrLLC of W differs (m(d-1)/2)", "layernorm", True, "weight", FLAT, FULL),
    Row("biased LayerNorm + bias: full LLC", "layernorm", True, "all", FULL, WITH_BIAS, 3.0,
        True),
    Row("biased LayerNorm + bias: wrLLC of W coincides (md/2)", "layernorm", True, "weight",
        FULL, FLAT, 3.0, True),
    Row("Gaussian + bias: full LLC", "gaussian", True, "all", WITH_BIAS, FULL),
    Row("Gaussian + bias: wrLLC of W differs (md/2)", "gaussian", True, "weight", FULL, WITH_BIAS),
)  # fmt: skip


def _experiment(name: str, title: str, description: str, rows: tuple[Row, ...]) -> Experiment:
    """An experiment of one case a row, summarized row by row against its claim."""
    return case_experiment(name, title, _jobs(rows), _summary(name, title, description, rows))


def smuggled_bias_experiment() -> Experiment:
    return _experiment(
        "smuggled_bias",
        "The smuggled bias of softmax outputs",
        "Softmax outputs lie on the affine hyperplane sum x = 1, and a LayerNorm with a learned "
        "bias beta (alpha . beta != 0) on another affine hyperplane. Neither drops the LLC of a "
        "bias-free layer; with an explicit downstream bias, the constant direction is already "
        "spanned by the data, so the layer has md/2 of a possible m(d+1)/2.",
        SMUGGLED_BIAS,
    )


def weight_refinement_experiment() -> Experiment:
    return _experiment(
        "weight_refinement",
        "Weight-refined LLC of W against the full LLC",
        "The wrLLC of W alone (bias frozen at its fit) is half the rank of E[x x^T]; the full "
        "LLC is half the rank of E[z z^T], z = (x, 1). They differ by m/2 when the data's "
        "affine hull passes through the origin or fills space, and coincide when it is an "
        "affine hyperplane off the origin.",
        WEIGHT_REFINEMENT,
    )
