"""Sampling LayerNorm and measuring where its outputs land."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from llcgeo.errors import SpecError
from llcgeo.numerics.measurements.layernorm_geometry import (
    LayerNormSampling,
    measure_layernorm_geometry,
    sample_layernorm,
)

# principal axes of LN with gain (1, 2, 3) (eigenvectors of P G^-2 P), semi-axes sqrt 21, sqrt 7
AXES_123 = (
    (-1 / (7 * math.sqrt(2)), -2 * math.sqrt(2) / 7, 9 / (7 * math.sqrt(2))),
    (-5 / (7 * math.sqrt(2)), 4 * math.sqrt(2) / 7, 3 / (7 * math.sqrt(2))),
)


def test_outputs_lie_on_the_plane_and_on_the_surface_at_zero_eps():
    spec = LayerNormSampling(gain=(1.0, 2.0, 3.0), bias=(0.5, -1.0, 2.0), eps=0.0, samples=5000)
    m = measure_layernorm_geometry(spec, AXES_123, "cpu")
    assert m.max_plane_deviation < 1e-12
    assert m.max_radius == pytest.approx(math.sqrt(3), abs=1e-12)
    assert abs(m.deficit_mean) < 1e-14
    # every output is on the ellipse: the extents reach the semi-axes and never pass them
    for extent, semi in zip(m.axis_max, (math.sqrt(21), math.sqrt(7))):
        assert semi * (1 - 1e-4) <= extent <= semi * (1 + 1e-12)


def test_radius_deficit_matches_the_exact_expectation():
    # N = 3, eps = 1: E[1 - r^2] = 1.5 e^1.5 E1(1.5); its variance by quadrature against the
    # chi2(2) density; the sample mean of 20000 must lie within 4 predicted sds / sqrt(n)
    n_samples = 20_000
    spec = LayerNormSampling(gain=(1.0, 2.0, 3.0), eps=1.0, samples=n_samples, seed=3)
    m = measure_layernorm_geometry(spec, AXES_123, "cpu")
    mean = 1.5 * math.exp(1.5) * special.exp1(1.5)
    second = integrate.quad(lambda x: (3 / (x + 3)) ** 2 * math.exp(-x / 2) / 2, 0, np.inf)[0]
    sd = math.sqrt(second - mean**2)
    assert abs(m.deficit_mean - mean) <= 4 * sd / math.sqrt(n_samples)
    # a sample sd of 20000 bounded draws is itself within about 1 % of the truth
    assert m.deficit_sd == pytest.approx(sd, rel=0.05)


def test_axis_second_moments_of_the_uniform_circle():
    # eps = 0, N = 3: the coordinate along axis k is semi_k cos(theta), theta uniform;
    # mean semi^2/2, sd semi^2 / sqrt(8); within 4 sds / sqrt(n)
    n_samples = 20_000
    spec = LayerNormSampling(gain=(1.0, 2.0, 3.0), eps=0.0, samples=n_samples, seed=4)
    m = measure_layernorm_geometry(spec, AXES_123, "cpu")
    for got, semi in zip(m.axis_mean_square, (math.sqrt(21), math.sqrt(7))):
        assert abs(got - semi**2 / 2) <= 4 * semi**2 / math.sqrt(8) / math.sqrt(n_samples)


def test_samples_are_reproducible_and_scale_free_at_zero_eps():
    spec = LayerNormSampling(gain=(1.0, -2.0, 0.5, 4.0), eps=0.0, samples=100, seed=9)
    a = sample_layernorm(spec, "cpu")
    b = sample_layernorm(LayerNormSampling(**{**spec.__dict__, "input_variance": 25.0}), "cpu")
    assert torch.allclose(a, b, atol=1e-12)
    kept = measure_layernorm_geometry(spec, ((1.0, 0.0, 0.0, 0.0),), "cpu").projected
    assert len(kept) == 100


def test_zero_gain_says_what_the_image_becomes():
    with pytest.raises(SpecError, match=r"gain\[2\] = 0.*subspace \{y_2 = bias\[2\]\}"):
        LayerNormSampling(gain=(1.0, 2.0, 0.0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gain": (1.0,)},
        {"gain": (1.0, 2.0), "bias": (0.0,)},
        {"gain": (1.0, 2.0), "eps": -1.0},
        {"gain": (1.0, 2.0), "samples": 1},
        {"gain": (1.0, float("inf"))},
        {"gain": (1.0, 2.0), "input_variance": 0.0},
    ],
)
def test_bad_sampling_specs_raise_spec_error(kwargs):
    with pytest.raises(SpecError):
        LayerNormSampling(**kwargs)


def test_axes_of_the_wrong_length_are_rejected():
    spec = LayerNormSampling(gain=(1.0, 2.0, 3.0), samples=10)
    with pytest.raises(SpecError, match="axes must be"):
        measure_layernorm_geometry(spec, ((1.0, 0.0),), "cpu")
