"""The refit: a point it cannot bring below the gradient bound is refused with its figures,
after its Newton steps or as many as the run's time limit holds."""

import numpy as np
import pytest
import torch

from llcgeo.limits import Budget, using
from llcgeo.scanner.reader import NEWTON_STEPS, NoMinimum, refit


def _refused(budget: Budget) -> str:
    torch.manual_seed(0)
    x = torch.randn(50, 3, dtype=torch.float64)
    model = torch.nn.Linear(3, 1).double()

    def loss(out, y):  # its minimum is where no curvature exists: |r|^1.5 has none at r = 0
        return (out[:, 0] - y).abs() ** 1.5

    def no_curvature(_):  # the damped Newton steps are then plain gradient steps
        return np.zeros((4, 4))

    with using(budget), pytest.raises(NoMinimum) as refused:
        refit(model, x, torch.ones(50, dtype=torch.float64), loss,
              torch.eye(4, dtype=torch.float64), no_curvature)  # fmt: skip
    return str(refused.value)


def test_a_refit_that_stays_above_the_gradient_bound_says_so_with_its_figures():
    why = _refused(Budget())
    assert why.startswith("the reader's loss has no minimum within reach")
    assert f"after L-BFGS and {NEWTON_STEPS} damped Newton steps" in why
    assert "time limit" not in why


def test_a_refit_takes_no_more_newton_steps_than_the_time_limit_holds():
    why = _refused(Budget(run_seconds=1e-6))
    assert why.startswith("the reader's refit reached no minimum within the run's time limit "
                          "(1e-06 s)")  # fmt: skip
    assert "after L-BFGS and 0 damped Newton steps" in why
