"""The data that flows from experiments to reports: cases, their results, claims and figures.

Everything here is a frozen dataclass of plain values, so ``llcgeo.report`` can store, hash,
render and reload it without knowing how it was computed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from llcgeo.config import SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.limits import check_linear_run
from llcgeo.manifolds import LinearLayer, ManifoldSpec, check_refine, check_samples
from llcgeo.serialize import NONFINITE_VALUES, stable_hash, to_jsonable

VERDICTS = ("agree", "disagree", "inconclusive")


@dataclass(frozen=True)
class Case:
    """One measurement to reconcile: (manifold, layer, refine, n, SGLD config, seed).

    ``sigma`` is the teacher's output-noise level; ``tags`` carry experiment coordinates
    (e.g. ``(("kappa", "1/2"),)``) so a table can be rebuilt from results alone.
    """

    manifold: ManifoldSpec
    layer: LinearLayer
    refine: str = "all"
    n: int = 20_000
    config: SGLDConfig = field(default_factory=SGLDConfig)
    seed: int = 0
    sigma: float = 0.5
    tags: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        check_refine(self.refine, self.layer)
        if not isinstance(self.layer, LinearLayer):
            raise SpecError(
                f"a case measures a LinearLayer under the Gaussian loss, got {self.layer!r}"
            )
        if not self.config.traits.reference:
            raise SpecError(
                "a case is held against the exact SGLD or MALA expectation; the "
                f"{self.config.sampler} sampler has none (use llcgeo estimate for it)"
            )
        check_samples(self.n)
        check_linear_run(
            n=self.n,
            d=self.manifold.d,
            m=self.layer.m,
            bias=self.layer.bias,
            chains=self.config.chains,
            steps=self.config.steps,
        )

    def key(self, version: str) -> str:
        """A hash of the full spec and the package version: the results-store key."""
        return stable_hash(self, salt=version)

    def tag(self, name: str, default: Any = None) -> Any:
        return dict(self.tags).get(name, default)

    def describe(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass(frozen=True)
class CaseResult:
    """A reconciled case: predictions, measurement, z-score and verdict, as plain values.

    ``expected_estimate`` is the exact expectation of the SGLD estimate at these settings on
    this sample (full batch), ``expected_se`` its exact standard error over the chains kept;
    ``predicted_llc`` the asymptotic LLC. ``z = (llc_mean - reference) / reference_se``.
    """

    key: str
    case: dict[str, Any]
    tags: dict[str, Any]
    predicted_llc: float
    predicted_llc_exact: str
    llc_unconstrained: float
    expected_estimate: float | None
    expected_se: float | None
    llc_mean: float
    llc_se: float
    per_chain: tuple[float, ...]
    diverged_chains: tuple[int, ...]
    rhat: float
    ess: float
    z: float
    verdict: str
    reasons: tuple[str, ...]
    mode: str
    seconds: float
    device: str
    version: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def se(self) -> float:
        """The standard error of ``llc_mean`` that its z-score used: the exact one on the
        full-batch path, the one measured over the chains on a minibatch (the one rule)."""
        return self.llc_se if self.expected_se is None else self.expected_se

    @property
    def reference(self) -> float:
        """What the case was held against: the exact expectation of the estimator at its
        settings (full batch or minibatch), or the asymptotic LLC where there is none."""
        return self.predicted_llc if self.expected_estimate is None else self.expected_estimate

    @property
    def dof(self) -> int | None:
        """Degrees of freedom of the standard error when it was measured over the chains (a
        minibatch case: a Student-t statistic), None when it is exact (full batch: normal)."""
        return None if self.expected_se is not None else max(len(self.per_chain) - 1, 0)

    @property
    def m(self) -> int:
        return self.case["layer"]["m"]

    @property
    def d(self) -> int:
        return self.case["manifold"]["d"]

    @property
    def n(self) -> int:
        return self.case["n"]

    @property
    def config(self) -> SGLDConfig:
        return SGLDConfig(**{k: v for k, v in self.case["config"].items() if k != "type"})

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        """Rebuild from :meth:`to_dict`; raises ``KeyError``/``TypeError``/``ValueError`` on a
        malformed record (the store treats that as corrupt)."""
        fields = dict(data)
        fields.pop("type", None)
        for name in ("diverged_chains", "reasons"):
            fields[name] = tuple(fields[name])
        fields["per_chain"] = tuple(map(_number, fields["per_chain"]))
        for f in dataclasses.fields(cls):
            if f.type == "float" or (f.type == "float | None" and fields[f.name] is not None):
                fields[f.name] = _number(fields[f.name])
        return cls(**fields)


def _number(value: Any) -> float:
    """A float field as stored: a number, or the text an earlier version wrote for NaN and
    the infinities; anything else makes the record corrupt (``TypeError``)."""
    if isinstance(value, str) and value in NONFINITE_VALUES:
        return NONFINITE_VALUES[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Claim:
    """One row of a report's summary table: the claim, its asymptotic ``prediction``, the exact
    ``reference`` the measurement was tested against (finite eps, gamma and chain length, where
    those matter), the ``measurement``, the test ``statistic`` with its limit, and the verdict."""

    claim: str
    prediction: str
    measurement: str
    verdict: str
    note: str = ""
    reference: str = ""
    statistic: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class EstimateSummary:
    """What a record keeps of an LLC estimate: the mean and standard error over the kept
    chains, R-hat and bulk ESS of their loss traces, how many chains diverged, the compute
    time, and (MALA, or SGLD with its acceptance watched) the mean acceptance."""

    mean: float
    se: float
    rhat: float
    ess: float
    diverged: int
    seconds: float
    acceptance: float | None = None

    @classmethod
    def of(cls, estimate) -> EstimateSummary:
        """The summary of an :class:`~llcgeo.numerics.result.LLCEstimate`."""
        return cls(float(estimate.mean), float(estimate.se), float(estimate.rhat),
                   float(estimate.ess), len(estimate.diverged_chains), float(estimate.seconds),
                   estimate.acceptance_rate)  # fmt: skip

    @property
    def sane(self) -> bool:
        """No chain diverged and there is a finite standard error to test against."""
        return not self.diverged and math.isfinite(self.se)

    def problems(self) -> tuple[str, ...]:
        """The rules of :mod:`llcgeo.thresholds` this estimate breaks, as sentences."""
        from llcgeo.thresholds import ess_problem, rhat_problem

        found = [] if self.sane else [f"{self.diverged} chains diverged or no standard error"]
        return tuple(found + [t for t in (rhat_problem(self.rhat), ess_problem(self.ess)) if t])


# the order a reader meets a claim's fields in (tables, CSV): every field of Claim, once
CLAIM_COLUMNS = ("claim", "prediction", "reference", "measurement", "statistic", "verdict", "note")


@dataclass(frozen=True)
class Series:
    """What one legend entry draws. ``style``: "points" (with optional error bars), "markers"
    (an exact value at each x, not joined: a line would invent values between them), "line",
    "dashed" (a line carried past the data: an extrapolation), "band" (``y +- yerr`` shaded: a
    fit's uncertainty), "range" (a prediction: a bar at each x, and a stroke over ``y +- yerr``
    where only an interval is proven) or "vline" (a vertical line at each x, ``y`` unused: a
    predicted threshold). ``report.figures.STYLES`` is the list the drawing accepts.

    Series of one panel that share a non-empty ``group`` share a colour (a measurement and its
    prediction, say).
    """

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    yerr: tuple[float, ...] | None = None
    style: str = "points"
    group: str = ""


def measured_series(xs, records) -> tuple[Series, Series]:
    """Each case's estimate (with its standard error) and the exact expectation of the
    estimator at its settings: the pair every case figure draws."""
    return (
        Series("measured", tuple(xs), tuple(r.llc_mean for r in records),
               tuple(r.se for r in records)),
        Series("exact expectation", tuple(xs), tuple(r.reference for r in records),
               style="markers"),
    )  # fmt: skip


@dataclass(frozen=True)
class Panel:
    """One set of axes. ``xticks`` names the x positions 0, 1, ... of a categorical axis."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    xscale: str = "linear"
    yscale: str = "linear"
    xticks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Figure:
    """What to draw for one experiment: one or more panels side by side, and a caption that
    says what to look for."""

    name: str
    panels: tuple[Panel, ...]
    caption: str = ""


@dataclass(frozen=True)
class ExperimentResult:
    """An experiment's outcome: its claims, its table of rows, its figure and its prose."""

    name: str
    title: str
    description: str
    claims: tuple[Claim, ...]
    rows: tuple[dict[str, Any], ...]
    figure: Figure | None = None
    notes: tuple[str, ...] = ()
    extra_figures: tuple[Figure, ...] = ()  # drawn after ``figure`` (chains' traces, say)
