"""The batched Gram-matrix simulation of deep random MLPs."""

import math

import numpy as np
import pytest
import torch

from llcgeo.errors import SpecError
from llcgeo.numerics.measurements.isometry import (
    IsometrySpec,
    _layer,
    cosines,
    isometry_gap,
    simulate_isometry,
)
from llcgeo.numerics.measurements.norms import layer_norm


def test_isometry_gap_is_zero_for_multiples_of_the_identity():
    gram = 3.0 * torch.eye(4, dtype=torch.float64)
    assert float(isometry_gap(gram)) == pytest.approx(0.0, abs=1e-15)


def test_isometry_gap_of_an_equicorrelated_matrix():
    n, rho = 4, 0.5
    gram = (1 - rho) * torch.eye(n, dtype=torch.float64) + rho
    expected = -((n - 1) * math.log(1 - rho) + math.log(1 + (n - 1) * rho)) / n
    assert float(isometry_gap(gram)) == pytest.approx(expected, rel=1e-13)


def test_cosines_and_layer_norm():
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0], [2.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    y = layer_norm(x)
    assert torch.allclose(y.mean(-1), torch.zeros(2, dtype=torch.float64), atol=1e-15)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(2, dtype=torch.float64))
    cos = cosines(x @ x.T)
    assert cos.shape == (2,)
    assert float(cos[0]) == pytest.approx(float(x[0] @ x[1] / (x[0].norm() * x[1].norm())))


def test_gram_sampled_layer_has_the_covariance_of_a_gaussian_weight_layer():
    # pre-activations S Z have covariance G weight_variance / width per unit; the sample
    # covariance over `width` units of a Wishart has sd sqrt((G_aa G_bb + G_ab^2) / width), so
    # each entry must lie within 5 of those sds (one of 10 entries, two-sided: P < 1e-5)
    spec = IsometrySpec("linear", order="no_norm", width=200_000, batch=4, networks=1)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 6, dtype=torch.float64, generator=gen)
    x = torch.nn.functional.pad(x, (0, spec.width - 6))  # any batch of vectors will do
    pre = _layer(x, spec, gen)[0]
    target = (x[0] @ x[0].T) / spec.width
    got = pre @ pre.T / spec.width
    sd = torch.sqrt((target.diag()[:, None] * target.diag()[None, :] + target**2) / spec.width)
    assert torch.all((got - target).abs() <= 5 * sd)


def test_simulation_is_reproducible_and_shaped():
    spec = IsometrySpec("tanh", width=32, batch=3, depth=5, networks=2, seed=7)
    a, b = simulate_isometry(spec, "cpu"), simulate_isometry(spec, "cpu")
    assert a.gap == b.gap and a.mean_cosine == b.mean_cosine
    assert len(a.gap) == 2 and len(a.gap[0]) == 6
    assert all(0 <= c <= 1 for row in a.max_cosine for c in row)


def test_inputs_have_the_requested_correlation_on_average():
    # the cosine of two independent width-d samples with correlation rho has sd <= 1/sqrt(d)
    spec = IsometrySpec("relu", width=4096, batch=4, depth=1, networks=16, rho0=0.3)
    trace = simulate_isometry(spec, "cpu")
    first = np.array(trace.mean_cosine)[:, 0]
    assert abs(first.mean() - 0.3) <= 5 / math.sqrt(spec.width * len(first))


def test_one_relu_layer_follows_the_arccosine_map():
    # after LN(relu(.)) the cosine is a sample correlation of `width` i.i.d. pairs whose
    # centred relu parts have kurtosis 5.41, so its sd is at most sqrt(5.41 / width); the input
    # cosine itself is off by sd <= 1/sqrt(width), which the map amplifies by at most its
    # largest slope 1.47. Averaged over 16 independent networks (the pairs of one network share
    # weights, so only networks count): within 5 of those sds.
    rho = 0.5
    spec = IsometrySpec("relu", width=4096, batch=4, depth=1, networks=16, rho0=rho)
    cos = np.array(simulate_isometry(spec, "cpu").mean_cosine)
    kernel = (math.sqrt(1 - rho**2) + (math.pi - math.acos(rho)) * rho) / (2 * math.pi)
    expected = (kernel - 1 / (2 * math.pi)) / (0.5 - 1 / (2 * math.pi))
    sd = (math.sqrt(5.41) + 1.47) / math.sqrt(spec.width)
    assert abs(cos[:, 1].mean() - expected) <= 5 * sd / math.sqrt(spec.networks)


def test_layer_norm_after_the_activation_decorrelates_and_before_it_does_not():
    base = dict(width=512, batch=4, depth=30, networks=4, rho0=0.9)
    after = simulate_isometry(IsometrySpec("relu", "norm_after_act", **base), "cpu")
    before = simulate_isometry(IsometrySpec("relu", "norm_before_act", **base), "cpu")
    assert np.mean(np.array(after.mean_cosine)[:, -1]) < 0.1
    assert np.mean(np.array(before.mean_cosine)[:, -1]) > 0.95


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"activation": "swish"}, "unknown activation"),
        ({"activation": "relu", "depth": 0}, "depth must be at least 1"),
        ({"activation": "relu", "width": 0}, "width must be at least 1"),
        ({"activation": "relu", "batch": 1}, "batch must be at least 2"),
        ({"activation": "relu", "order": "post"}, "order must be one of"),
        ({"activation": "relu", "rho0": 1.0}, "rho0 \\(full-rank batch\\) must lie in"),
        ({"activation": "relu", "weight_variance": 0.0}, "weight_variance"),
        ({"activation": "relu", "networks": 0}, "networks must be at least 1"),
        ({"activation": "relu", "dtype": "float16"}, "dtype"),
    ],
)
def test_bad_specs_raise_spec_error(kwargs, message):
    with pytest.raises(SpecError, match=message):
        IsometrySpec(**kwargs)
