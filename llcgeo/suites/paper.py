"""The normalization-geometry claims, one experiment each: scaling with m and d, the binary
curvature threshold, the finite-sample crossover, the smuggled bias and weight refinement.

Every case is a full-batch teacher-student fit of ``y = W x (+ b)``, measured with SGLD and
held against the exact expectation of the estimator (:mod:`llcgeo.reconcile.cases`). A claim
about an asymptotic LLC is judged by whether the measurements single out the claimed value over
its alternative (:func:`llcgeo.reconcile.stats.singles_out`).
"""

from __future__ import annotations

from llcgeo.reconcile.experiment import Experiment
from llcgeo.suites.comparisons import smuggled_bias_experiment, weight_refinement_experiment
from llcgeo.suites.scaling import scaling_experiment
from llcgeo.suites.threshold import crossover_experiment, threshold_experiment


def experiments() -> tuple[Experiment, ...]:
    return (
        scaling_experiment(),
        threshold_experiment(),
        crossover_experiment(),
        smuggled_bias_experiment(),
        weight_refinement_experiment(),
    )
