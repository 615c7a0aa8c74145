"""Teacher-student data and ``measure_linear``: the contract the reconciliation layer uses."""

import numpy as np
import pytest
import torch

from llcgeo.manifolds import Gaussian, LayerNormImage, LinearLayer, Sphere
from llcgeo.numerics import LinearMeasurement, SGLDConfig, measure_linear, teacher_student
from llcgeo.numerics.paths.linear import design_matrix

CONFIG = SGLDConfig(eps=1e-4, chains=2, steps=100, burnin=20)


def test_the_fit_is_the_least_squares_point_with_zero_gradient():
    data = teacher_student(LayerNormImage(5), LinearLayer(3), 2000, seed=1, sigma=0.5)
    z = design_matrix(data.inputs, bias=False)
    gradient = -(data.targets - z @ data.fitted.T).T @ z / 2000
    assert float(gradient.abs().max()) < 1e-12
    # LayerNorm data spans a hyperplane: the fit is the minimum-norm one, orthogonal to (1..1)
    assert float(data.fitted.sum(dim=1).abs().max()) < 1e-10


def test_teacher_student_streams_are_independent():
    a = teacher_student(Sphere(3), LinearLayer(2, bias=True), 50, seed=3, sigma=0.5)
    b = teacher_student(Sphere(3), LinearLayer(2, bias=True), 50, seed=3, sigma=0.0)
    c = teacher_student(Sphere(3), LinearLayer(2, bias=True), 50, seed=4, sigma=0.5)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.teacher, b.teacher)
    z = design_matrix(b.inputs, bias=True)
    assert torch.allclose(b.targets, z @ b.teacher.T, atol=1e-12)  # sigma = 0: exact teacher
    assert not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize(
    ("layer", "refine", "count"),
    [
        (LinearLayer(2), "all", 8),
        (LinearLayer(2, bias=True), "all", 10),
        (LinearLayer(2, bias=True), "weight", 8),
        (LinearLayer(2, bias=True), "bias", 2),
    ],
)
def test_hessian_eigenvalues_follow_the_refinement(layer, refine, count):
    r = measure_linear(Gaussian(4), layer, refine, 500, CONFIG, seed=0, device="cpu")
    assert isinstance(r, LinearMeasurement) and r.hessian_eigenvalues.shape == (count,)
    assert r.hessian_eigenvalues.dtype == np.float64 and not r.hessian_eigenvalues.flags.writeable
    values = r.hessian_eigenvalues
    assert np.allclose(values[::2], values[1::2])  # each eigenvalue m = 2 times
    if refine == "bias":
        assert values.tolist() == [1.0, 1.0]
    assert r.nbeta == r.estimate.nbeta and r.n == 500 == r.estimate.n


def test_layernorm_without_bias_has_m_zero_eigenvalues():
    r = measure_linear(LayerNormImage(4), LinearLayer(3), "all", 500, CONFIG, seed=0, device="cpu")
    assert np.all(r.hessian_eigenvalues[:3] < 1e-12) and np.all(r.hessian_eigenvalues[3:] > 0.1)


def test_refine_bias_moves_only_the_bias():
    r = measure_linear(
        Gaussian(3), LinearLayer(2, bias=True), "bias", 500, CONFIG, seed=0, device="cpu"
    )
    assert r.estimate.diverged_chains == () and np.isfinite(r.estimate.mean)


def test_measurement_is_reproducible_from_its_seed():
    a = measure_linear(Sphere(3), LinearLayer(2), "all", 300, CONFIG, seed=5, device="cpu")
    b = measure_linear(Sphere(3), LinearLayer(2), "all", 300, CONFIG, seed=5, device="cpu")
    assert np.array_equal(a.estimate.loss_trace, b.estimate.loss_trace)
    assert a.estimate.seed == 5


def test_progress_callback_sees_every_percent():
    seen = []
    measure_linear(
        Gaussian(2),
        LinearLayer(1),
        "all",
        100,
        CONFIG,
        seed=0,
        device="cpu",
        progress=lambda done, total: seen.append(done),
    )
    assert seen[-1] == CONFIG.steps and len(seen) == CONFIG.steps  # 100 steps: every step
