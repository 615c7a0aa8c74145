"""Small statistics shared by the experiments: fits with known errors, and claim decisions.

>>> fit = weighted_line_fit([1, 2, 3], [3.0, 5.0, 7.0], [0.1, 0.1, 0.1])
>>> round(fit.slope, 6), round(fit.intercept, 6)
(2.0, 1.0)
>>> singles_out(10.4, 0.2, claimed=10.5, alternative=12.0)[0]
'agree'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from llcgeo.reconcile.model import CaseResult, Claim
from llcgeo.reconcile.verdict import Z_AGREE, limit, within
from llcgeo.thresholds import ALPHA, FLAT

# the label of :meth:`LineFit.slope_interval`: its coverage, ``1 - ALPHA`` ("99.73% CI")
INTERVAL = f"{1 - ALPHA:.2%} CI"


@dataclass(frozen=True)
class LineFit:
    """``y = slope x + intercept`` by weighted least squares with known standard errors."""

    slope: float
    slope_se: float
    intercept: float
    intercept_se: float

    def slope_interval(self) -> tuple[float, float]:
        """``slope +- limit() slope_se``: the interval of the one level every verdict is taken
        at (:data:`INTERVAL`), so an interval printed beside a verdict says what decided it."""
        z = limit()
        return self.slope - z * self.slope_se, self.slope + z * self.slope_se


def weighted_line_fit(x: Sequence[float], y: Sequence[float], se: Sequence[float]) -> LineFit:
    """Weights ``1/se^2``; the parameter covariance is ``(X^T W X)^-1`` (errors known)."""
    x = np.asarray(x, dtype=float)
    fit = weighted_fit(np.stack([x, np.ones_like(x)], axis=1), y, se, scaled=False)
    (slope, intercept), (slope_se, intercept_se) = fit.coefficients, fit.errors
    return LineFit(slope, slope_se, intercept, intercept_se)


@dataclass(frozen=True)
class Fit:
    """A weighted least-squares fit: coefficients, their standard errors, and its chi-square
    with the degrees of freedom behind it."""

    coefficients: tuple[float, ...]
    errors: tuple[float, ...]
    chi2: float
    dof: int

    @property
    def scale(self) -> float:
        """``sqrt(max(1, chi2 / dof))``: how much the errors were widened because the points
        scatter about the model more than their own errors say."""
        return _birge(self.chi2, self.dof)


def _birge(chi2: float, dof: int) -> float:
    """Birge's ratio ``sqrt(max(1, chi2 / dof))`` (1 where no degree of freedom is left)."""
    return math.sqrt(max(1.0, chi2 / dof)) if dof > 0 else 1.0


def _solve(design, y: Sequence[float], se: Sequence[float]):
    """``(beta, covariance, chi2, dof)`` of ``y ~ design @ beta`` with weights ``1/se^2``, the
    covariance ``(X^T W X)^-1`` of errors known exactly (not widened)."""
    x = np.asarray(design, dtype=float)
    y, w = np.asarray(y, dtype=float), 1.0 / np.square(np.asarray(se, dtype=float))
    cov = np.linalg.inv(x.T @ (x * w[:, None]))
    beta = cov @ (x.T @ (w * y))
    return beta, cov, float(np.sum(w * (y - x @ beta) ** 2)), len(y) - x.shape[1]


def weighted_fit(design, y: Sequence[float], se: Sequence[float], *, scaled: bool = True) -> Fit:
    """``y ~ design @ beta`` with weights ``1/se^2``. The covariance is ``(X^T W X)^-1``; with
    ``scaled`` it is multiplied by ``max(1, chi2/dof)`` (Birge's ratio), so that scatter beyond
    the points' own errors (an effect the model leaves out) widens the coefficients' errors
    instead of hiding in them; it is never narrowed."""
    beta, cov, chi2, dof = _solve(design, y, se)
    fit = Fit(tuple(map(float, beta)), tuple(map(float, np.sqrt(np.diag(cov)))), chi2, dof)
    if not scaled:
        return fit
    return Fit(fit.coefficients, tuple(e * fit.scale for e in fit.errors), chi2, dof)


BAND_POINTS = 24  # where an extrapolation's band is evaluated, from 0 to the data's far end


@dataclass(frozen=True)
class Extrapolation:
    """Estimates fitted against a variable ``x`` that vanishes in the limit sought (``1/log n``
    as n grows, a step size, a localization) and carried to ``x = 0``: the ``limit``, the
    ``slope`` in ``x``, the coefficients of further terms fitted beside it (``others``, zero in
    the limit too), the fit's chi-square and degrees of freedom, and the covariance of
    ``(limit, slope)`` as the points' own errors give it; every error :attr:`scale` times that
    (Birge's ratio, as :func:`weighted_fit` widens)."""

    limit: float
    slope: float
    others: tuple[float, ...]
    chi2: float
    dof: int
    covariance: tuple[tuple[float, float], tuple[float, float]]

    @property
    def scale(self) -> float:
        return _birge(self.chi2, self.dof)

    @property
    def limit_se(self) -> float:
        return self.line_se(0.0)

    @property
    def slope_se(self) -> float:
        return math.sqrt(self.covariance[1][1]) * self.scale

    def line(self, x: float) -> float:
        """The fitted model at ``x``, the other terms at their limit 0."""
        return self.limit + self.slope * x

    def line_se(self, x: float) -> float:
        """The standard error of :meth:`line` at ``x``: smallest amid the data, growing away
        from it (the limit's own error at ``x = 0``)."""
        (aa, ab), (_, bb) = self.covariance
        return math.sqrt(max(aa + 2 * x * ab + x * x * bb, 0.0)) * self.scale

    def band(self, end: float, points: int = BAND_POINTS):
        """``(xs, line, se)`` at ``points`` values of ``x`` from 0 to ``end``: the fit and its
        standard error, the band a figure shades about the extrapolated line."""
        xs = tuple(end * k / (points - 1) for k in range(points))
        return xs, tuple(map(self.line, xs)), tuple(map(self.line_se, xs))


def extrapolate_to_zero(x: Sequence[float], values: Sequence[float], errors: Sequence[float],
                        others: Sequence[Sequence[float]] = ()) -> Extrapolation:  # fmt: skip
    """``values ~ limit + slope x + sum_j c_j others[j]`` by weighted least squares (weights
    ``1/errors^2``), carried to ``x = 0``; ``others`` are columns of further terms that vanish
    in the limit (the singular suite's localization ``gamma / sqrt(nbeta)``). The errors are
    widened by Birge's ratio where the points scatter more than their errors say, which pools
    a fluctuation the errors leave out (a data set's, at finite n) over every point.

    >>> e = extrapolate_to_zero([0.1, 0.2, 0.4], [5.9, 5.8, 5.6], [0.05, 0.05, 0.05])
    >>> round(e.limit, 6), round(e.slope, 6), e.limit_se > e.line_se(0.2)
    (6.0, -1.0, True)
    """
    design = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=float), *others])
    beta, cov, chi2, dof = _solve(design, values, errors)
    block = tuple(tuple(float(v) for v in row[:2]) for row in cov[:2])
    return Extrapolation(float(beta[0]), float(beta[1]), tuple(map(float, beta[2:])), chi2, dof,
                         block)  # fmt: skip


def combined(verdicts: Iterable[str]) -> str:
    """``agree`` if all agree; ``disagree`` if any disagrees; otherwise ``inconclusive``."""
    verdicts = list(verdicts)
    if verdicts and all(v == "agree" for v in verdicts):
        return "agree"
    return "disagree" if "disagree" in verdicts else "inconclusive"


def cases_verdict(records: Sequence[CaseResult]) -> tuple[str, str]:
    """The verdict of the cases behind one claim, judged together at a family-wise level:
    ``inconclusive`` if any case is, ``disagree`` if some ``|z|`` exceeds
    :func:`case_limit`, else ``agree``; and a note naming the cases that decide it."""
    unsure = [r for r in records if r.verdict == "inconclusive"]
    if unsure:
        return "inconclusive", "; ".join("; ".join(r.reasons) for r in unsure)
    bound, name = case_limit(records)
    worst = max(records, key=lambda r: abs(r.z))
    note = f"largest |{name}| {abs(worst.z):.2f} over {len(records)} cases (limit {bound:.2f})"
    return within(worst.z, bound), note


def case_limit(records: Sequence[CaseResult]) -> tuple[float, str]:
    """The limit the cases' statistics are held against together (:func:`limit` over
    ``len(records)`` tests) and its name: normal ``z`` where every standard error is exact,
    Student ``t`` with the fewest degrees of freedom otherwise."""
    dofs = [r.dof for r in records if r.dof is not None]
    if not dofs:
        return limit(len(records)), "z"
    return limit(len(records), min(dofs)), "t"


_REFERENCE_NAMES = {"full": "exact expectation", "mini": "minibatch expectation"}


def reference_text(records: Sequence[CaseResult]) -> str:
    """What the cases behind a claim were tested against, with the settings it depends on."""
    first = records[0]
    values = [r.reference for r in records]
    shown = f"{values[0]:.3f}" if len(values) == 1 else f"{min(values):.3f} to {max(values):.3f}"
    if first.expected_estimate is None:
        return f"asymptotic LLC {shown}"
    c = first.config
    batch = "full batch" if first.dof is None else f"batches of {c.batch_size} ({c.batches})"
    what = _REFERENCE_NAMES["full" if first.dof is None else "mini"]
    return f"{what} {shown} (eps {c.eps:.3g}, gamma {c.gamma:g}, {c.draws} draws, {batch})"


def statistic_text(records: Sequence[CaseResult]) -> str:
    """The cases' test statistic against the limit that decided them."""
    bound, name = case_limit(records)
    if len(records) == 1:
        return f"{name} = {records[0].z:.2f} (limit {bound:.2f})"
    worst = max(abs(r.z) for r in records)
    return f"largest |{name}| = {worst:.2f} over {len(records)} cases (limit {bound:.2f})"


def singles_out(
    measured: float, se: float, *, claimed: float, alternative: float
) -> tuple[str, str]:
    """Does the measurement pick ``claimed`` over ``alternative``?

    ``agree``: nearer the claim and more than ``Z_AGREE`` standard errors from the alternative;
    ``disagree``: nearer the alternative and more than ``Z_AGREE`` standard errors from the
    claim; otherwise ``inconclusive`` (the measurement cannot tell them apart).
    """
    if not (math.isfinite(measured) and math.isfinite(se) and se > 0):
        return "inconclusive", "no finite measurement"
    z_claim, z_alt = abs(measured - claimed) / se, abs(measured - alternative) / se
    note = f"{z_claim:.1f} SE from the claim {claimed:g}, {z_alt:.1f} SE from {alternative:g}"
    if z_claim < z_alt and z_alt > Z_AGREE:
        return "agree", note
    if z_alt < z_claim and z_claim > Z_AGREE:
        return "disagree", note
    return "inconclusive", note + ": the two cannot be told apart at this precision"


def judged_claim(
    claim: str,
    prediction: str,
    measurement: str,
    records: Sequence[CaseResult],
    singled: Sequence[tuple[str, str]],
    *,
    reference: str = "",
    statistic: str = "",
) -> Claim:
    """A claim about asymptotic values: its cases judged together (:func:`cases_verdict`)
    and the ``(verdict, note)`` of each measurement that must single the claim out
    (:func:`singles_out`); it agrees only when all of them do. ``reference`` names what the
    measurements were told apart from; ``statistic`` replaces the default (every note, then
    the cases' statistic)."""
    case_verdict, case_note = cases_verdict(records)
    notes = [note for _, note in singled]
    against = reference_text(records)
    return Claim(
        claim=claim,
        prediction=prediction,
        measurement=measurement,
        verdict=combined([case_verdict, *(verdict for verdict, _ in singled)]),
        note="; ".join([*notes, case_note]),
        reference=f"{reference}; each case: {against}" if reference else against,
        statistic=statistic or "; ".join([*notes, f"cases {statistic_text(records)}"]),
    )


def _moving(values: np.ndarray) -> np.ndarray:
    """Which eigenvalues move the loss: those above ``FLAT`` of the largest."""
    return values > FLAT * float(values.max(initial=0.0))


def moving_eigenvalues(spectrum) -> np.ndarray:
    """The eigenvalues :func:`numerical_rank` counts (above ``FLAT`` of the largest).

    >>> moving_eigenvalues([2.0, 1.0, 1e-12]).tolist()
    [2.0, 1.0]
    """
    values = np.asarray(spectrum, dtype=np.float64)
    return values[_moving(values)]


def numerical_rank(spectrum) -> tuple[int, float]:
    """``(rank, gap)`` of a symmetric matrix's eigenvalues: those above ``FLAT`` of the largest
    count; the gap is the smallest counted over the largest uncounted (``inf`` where none is
    left out), to be held to ``RANK_GAP``."""
    values = np.asarray(spectrum, dtype=np.float64)
    moving = _moving(values)
    counted, dropped = values[moving], values[~moving]
    largest_dropped = float(dropped.max()) if dropped.size else 0.0
    gap = math.inf if largest_dropped <= 0 else float(counted.min()) / largest_dropped
    return int(counted.size), gap
