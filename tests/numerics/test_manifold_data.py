"""Data on each manifold family, drawn from exactly the distribution in llcgeo.manifolds' table.

Geometric constraints are checked to rounding; distributional claims with tolerances of a few
standard errors of the statistic (stated at each check) on a fixed seed.
"""

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llcgeo.errors import EstimationError, SpecError
from llcgeo.expr import Binary, Call, Num, Var
from llcgeo.manifolds import (
    BumpedHyperplane,
    Ellipsoid,
    Gaussian,
    Hyperplane,
    ImplicitHypersurface,
    LayerNormImage,
    ParametricManifold,
    RMSNormImage,
    Simplex,
    Sphere,
)
from llcgeo.numerics import sample

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def close(a, b, tol=1e-12):
    return bool((torch.as_tensor(a) - torch.as_tensor(b)).abs().max() <= tol)


def test_layernorm_image_is_centred_and_on_the_sphere_of_radius_sqrt_d():
    x = sample(LayerNormImage(6), 1000, generator=gen())
    assert x.shape == (1000, 6) and x.dtype == F64
    assert close(x.sum(dim=1), 0.0)
    assert close(x.square().sum(dim=1), 6.0, 1e-10)


def test_layernorm_gain_bias_and_eps_follow_the_formula():
    spec = LayerNormImage(3, gain=(2, 1, "1/2"), bias=(1, 0, -1), eps="0.1")
    a = torch.randn(5, 3, generator=gen(3), dtype=F64)
    centred = a - a.mean(dim=1, keepdim=True)
    expected = centred / torch.sqrt(centred.square().mean(dim=1, keepdim=True) + 0.1)
    expected = expected * torch.tensor([2.0, 1.0, 0.5], dtype=F64) + torch.tensor([1.0, 0, -1])
    assert close(sample(spec, 5, generator=gen(3)), expected)


def test_rmsnorm_image_lies_on_the_sphere_of_radius_sqrt_d():
    x = sample(RMSNormImage(5), 500, generator=gen())
    assert close(x.square().sum(dim=1), 5.0, 1e-10)


def test_sphere_is_uniform_second_moment_is_radius_squared_over_d():
    # E[x x^T] = r^2/d I; each entry averages n terms of variance <= r^4/d^2 (=4/9 here), so
    # 5 standard errors are 5 * (2/3) / sqrt(n).
    n, radius = 40_000, 2
    x = sample(Sphere(3, radius=radius), n, generator=gen())
    assert close(x.norm(dim=1), float(radius), 1e-12)
    moment = x.T @ x / n
    assert close(moment, radius**2 / 3 * torch.eye(3, dtype=F64), 5 * (2 / 3) / math.sqrt(n))


def test_simplex_points_are_positive_and_sum_to_one():
    x = sample(Simplex(4), 300, generator=gen())
    assert bool((x > 0).all()) and close(x.sum(dim=1), 1.0)


def test_ellipsoid_points_satisfy_the_quadric():
    x = sample(Ellipsoid(3, axes=(1, 2, 3)), 300, generator=gen())
    assert close((x / torch.tensor([1.0, 2.0, 3.0], dtype=F64)).square().sum(dim=1), 1.0)


def test_hyperplane_is_the_orthogonal_projection_of_a_gaussian():
    # mean c n/|n|^2 (standard error 1/sqrt(n) per coordinate, 5 of them allowed) and the
    # projected points satisfy n . x = c exactly.
    n = 20_000
    spec = Hyperplane((1, 2, 2), offset=3)
    x = sample(spec, n, generator=gen())
    normal = torch.tensor([1.0, 2.0, 2.0], dtype=F64)
    assert close(x @ normal, 3.0, 1e-12)
    assert close(x.mean(dim=0), 3.0 * normal / 9.0, 5 / math.sqrt(n))


def test_bumped_hyperplane_matches_its_definition_and_carries_the_fraction():
    n = 20_000
    spec = BumpedHyperplane(3, kappa=Fraction(1, 2), fraction=Fraction(1, 4))
    x = sample(spec, n, generator=gen())
    inside = x[:, 0].abs() < spec.half_width
    assert close(x[:, 2], torch.where(inside, 0.25 * x[:, 0].square(), 0.0))
    # binomial proportion: standard error sqrt(p (1 - p) / n), 5 of them allowed
    assert abs(float(inside.double().mean()) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)
    assert close(
        sample(BumpedHyperplane(2, kappa=1), 50, generator=gen())[:, 1],
        0.5 * sample(Gaussian(1), 50, generator=gen())[:, 0].square(),
    )


def test_parametric_manifold_folds_phi_over_uniform_parameters():
    t = Var("t")
    spec = ParametricManifold((Call("cos", t), Call("sin", t)), ("t",), ((0, 1),))
    x = sample(spec, 400, generator=gen())
    assert close(x.norm(dim=1), 1.0)
    angle = torch.atan2(x[:, 1], x[:, 0])
    assert bool((angle >= 0).all() and (angle <= 1).all())


def test_parametric_constant_coordinate_broadcasts():
    spec = ParametricManifold((Var("t"), Num(Fraction(3))), ("t",))
    x = sample(spec, 10, generator=gen())
    assert close(x[:, 1], 3.0)


def test_implicit_hypersurface_points_lie_on_the_zero_set():
    r2 = Binary("+", Binary("**", Var("x"), Num(Fraction(2))), Binary("**", Var("y"), Num(2)))
    circle = Binary("-", r2, Num(Fraction(4)))
    x = sample(ImplicitHypersurface(circle, ("x", "y")), 200, generator=gen())
    assert x.shape == (200, 2) and close(x.norm(dim=1), 2.0, 1e-9)


def test_implicit_hypersurface_without_real_points_is_a_clear_error():
    no_real_zero = Binary("+", Binary("**", Var("x"), Num(Fraction(2))), Num(Fraction(1)))
    with pytest.raises(EstimationError, match="regular zero"):
        sample(ImplicitHypersurface(no_real_zero, ("x",)), 10, generator=gen())
    with pytest.raises(EstimationError, match="regular zero"):
        sample(ImplicitHypersurface(Num(Fraction(1)), ("x",)), 10, generator=gen())


def test_same_seed_same_points_in_every_dtype():
    a = sample(Sphere(4), 20, generator=gen(7))
    b = sample(Sphere(4), 20, generator=gen(7), dtype=torch.float32)
    assert b.dtype == torch.float32 and close(a.float(), b, 0.0)
    assert not close(a, sample(Sphere(4), 20, generator=gen(8)), 1e-3)


def test_bad_requests_are_clear_errors():
    with pytest.raises(SpecError, match="n \\(the number of samples\\) must be"):
        sample(Gaussian(2), 0, generator=gen())
    with pytest.raises(SpecError, match="no sampler"):
        sample("sphere", 3, generator=gen())
    nan_phi = ParametricManifold((Call("sqrt", Var("t")),), ("t",), ((-2, -1),))
    with pytest.raises(EstimationError, match="NaN"):
        sample(nan_phi, 5, generator=gen())


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 12), seed=st.integers(0, 2**32))
def test_layernorm_and_rmsnorm_images_for_any_dimension(d, seed):
    ln = sample(LayerNormImage(d), 16, generator=gen(seed))
    rms = sample(RMSNormImage(d), 16, generator=gen(seed))
    assert close(ln.sum(dim=1), 0.0, 1e-10) and close(ln.square().sum(dim=1), d, 1e-9)
    assert close(rms.square().sum(dim=1), d, 1e-9)
