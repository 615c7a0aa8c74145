"""A path fills only the records of its problem it knows; the rest keep the defaults that say
it knows nothing."""

import torch

from llcgeo import SGLDConfig
from llcgeo.numerics.paths.choose import model_problem
from llcgeo.numerics.paths.problem import Exact, Footprint, quadratic_problem
from llcgeo.numerics.paths.product import Statistics, grid_problem

F64 = torch.float64


def _data(n=40, d=3, m=2):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, m, generator=g, dtype=F64)


def test_the_linear_path_knows_its_spectrum_its_quadratic_and_on_a_minibatch_its_moments():
    x, y = _data()
    layer = torch.nn.Linear(3, 2, dtype=F64)
    full = model_problem(layer, x, y, SGLDConfig(), None, "gaussian", "cpu")
    mini = model_problem(layer, x, y, SGLDConfig(batch_size=10), None, "gaussian", "cpu")
    assert full.exact.hessian_eigenvalues.shape == (8,) and full.exact.quadratic is not None
    assert full.exact.moments is None and mini.exact.quadratic is None
    assert callable(mini.exact.moments) and mini.footprint.chains is None
    assert mini.footprint.work_per_chain > full.footprint.work_per_chain > 0


def test_the_general_path_knows_nothing_exactly_and_a_grid_fixes_its_chains():
    x, y = _data()
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    problem = model_problem(net.double(), x, y, SGLDConfig(), None, "gaussian", "cpu",
                            output_fn=lambda out: out)  # fmt: skip
    assert problem.exact == Exact() and problem.footprint.work_per_chain > 0
    teacher = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False)).double()
    stats = Statistics(torch.eye(3, dtype=F64), torch.zeros(3, 2, dtype=F64))
    grid = grid_problem(teacher, [(stats, 10.0), (stats, 20.0)], chains=3)
    assert grid.footprint == Footprint(work_per_chain=grid.footprint.work_per_chain, chains=6)


def test_the_quadratic_model_keeps_the_posterior_but_its_loss_and_drops_the_notes():
    x = torch.randn(30, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(30) % 3
    head = torch.nn.Linear(4, 3, dtype=F64)
    problem = model_problem(head, x, labels, SGLDConfig(), None, "cross_entropy", "cpu")
    problem = problem.noted(("a note",))
    quadratic = quadratic_problem(torch.eye(15, dtype=F64), problem)
    assert problem.exact.certified_flat == quadratic.exact.certified_flat > 0
    assert quadratic.exact.quadratic is not None and quadratic.warnings == ()
    assert quadratic.posterior.init_loss == 0.0
    for kept in ("start", "centre", "mask", "n", "nbeta"):  # the same chains, the same noise
        assert getattr(quadratic.posterior, kept) is getattr(problem.posterior, kept)
