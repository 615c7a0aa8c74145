"""An eps x gamma grid in one batch gives, at every point, the estimate its own run would."""

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.numerics.paths.choose import model_problem
from llcgeo.numerics.sweep import sweep
from llcgeo.reconcile.verdict import limit as verdict_limit
from llcgeo.theory import expected_sgld_estimate

F64 = torch.float64


def _problem(fit, n):
    layer, x, y = fit(n)
    return model_problem(layer, x, y, SGLDConfig(), None, "gaussian", "cpu")


def test_every_grid_point_lands_on_its_exact_expectation(fitted_linear):
    problem = _problem(fitted_linear, 3000)
    eps_grid, gamma_grid = (1e-4, 4e-4, 1.6e-3), (1.0, 30.0)
    points = sweep(problem, eps_grid, gamma_grid, chains=8, steps=2000, burnin=300, seed=3)
    limit = verdict_limit(len(points))
    assert [(p.eps, p.gamma) for p in points] == [(e, g) for g in gamma_grid for e in eps_grid]
    for p in points:
        exact = expected_sgld_estimate(
            problem.exact.hessian_eigenvalues, problem.posterior.nbeta, p.gamma, p.eps, 2000, 300
        )
        assert p.diverged == 0
        assert abs(p.mean - exact.mean) / exact.standard_error(8) <= limit, p
    means = {(p.eps, p.gamma): p.mean for p in points}
    assert means[(1.6e-3, 1.0)] > means[(1e-4, 1.0)]  # the step-size bias the grid shows


def test_an_unstable_grid_point_is_reported_diverged_not_averaged(fitted_linear):
    problem = _problem(fitted_linear, 500)
    points = sweep(problem, (1e-4, 1.0), (1.0,), chains=4, steps=200, burnin=50)
    assert points[0].diverged == 0 and points[1].diverged == 4
    assert np.isnan(points[1].mean)
