"""Theory and measurement side by side: cases, verdicts, experiments and suites."""

from llcgeo.reconcile.cases import reconcile_case
from llcgeo.reconcile.experiment import SCALES, Experiment
from llcgeo.reconcile.model import (
    Case,
    CaseResult,
    Claim,
    ExperimentResult,
    Figure,
    Panel,
    Series,
)
from llcgeo.reconcile.suites import SUITES, select, suite
from llcgeo.reconcile.verdict import ESS_MIN, RHAT_MAX, THRESHOLDS_MARKDOWN, Z_AGREE, decide

reconcile = reconcile_case

__all__ = [
    "ESS_MIN",
    "RHAT_MAX",
    "SCALES",
    "SUITES",
    "THRESHOLDS_MARKDOWN",
    "Z_AGREE",
    "Case",
    "CaseResult",
    "Claim",
    "Experiment",
    "ExperimentResult",
    "Figure",
    "Panel",
    "Series",
    "decide",
    "reconcile",
    "reconcile_case",
    "select",
    "suite",
]
