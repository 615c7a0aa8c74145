"""Power-iteration Lipschitz estimates against exact Jacobians of small networks."""

import math

import pytest
import torch
from torch.func import jacrev

from llcgeo.errors import SpecError
from llcgeo.numerics.measurements.lipschitz import (
    LipschitzSpec,
    forward,
    input_lipschitz,
    measure_lipschitz,
    parameter_lipschitz,
)
from llcgeo.numerics.measurements.norms import normalize


def _setup(normalization: str, activation: str = "relu", width: int = 8, depth: int = 3):
    spec = LipschitzSpec(
        activation,
        normalization,
        width=width,
        depths=(depth,),
        networks=2,
        points=3,
        iterations=300,
    )
    gen = torch.Generator().manual_seed(11)
    weights = tuple(
        torch.randn(2, width, width, generator=gen, dtype=torch.float64) * 2 / math.sqrt(width)
        for _ in range(depth)
    )
    x = torch.randn(2, 3, width, generator=gen, dtype=torch.float64)
    return spec, weights, x, gen


def _one(weights, r, spec):
    """Network ``r`` as a function of one input vector, and of its own weights."""

    def of_input(v):
        return forward(tuple(w[r : r + 1] for w in weights), v[None, None], spec)[0, 0]

    def of_weights(x):
        def fn(ws):
            return forward(tuple(w[None] for w in ws), x[None, None], spec)[0, 0]

        return fn

    return of_input, of_weights


@pytest.mark.parametrize("normalization", ["none", "layernorm", "rmsnorm"])
def test_input_estimate_matches_the_exact_jacobian_norm(normalization):
    spec, weights, x, gen = _setup(normalization, "tanh")
    estimate = input_lipschitz(weights, x, spec, gen)
    for r in range(2):
        of_input, _ = _one(weights, r, spec)
        for b in range(3):
            exact = torch.linalg.matrix_norm(jacrev(of_input)(x[r, b]), 2)
            # |J v| with unit v never exceeds ||J||; 300 steps converge to it here
            assert float(estimate[r, b]) <= float(exact) * (1 + 1e-12)
            assert float(estimate[r, b]) == pytest.approx(float(exact), rel=1e-6)


@pytest.mark.parametrize("normalization", ["none", "layernorm"])
def test_parameter_estimate_matches_the_exact_jacobian_norm(normalization):
    spec, weights, x, gen = _setup(normalization)
    norms = torch.stack([x.norm(dim=-1)] + [torch.zeros(2, 3, dtype=x.dtype)] * 2, -1)
    # layer inputs |x_{l-1}| as measure_lipschitz records them
    h = x
    for layer, w in enumerate(weights[:-1]):
        h = torch.relu(normalize(h @ w.transpose(-1, -2), normalization, spec.eps)[0])
        norms[..., layer + 1] = h.norm(dim=-1)
    estimate = parameter_lipschitz(weights, x, spec, gen, norms)
    for r in range(2):
        _, of_weights = _one(weights, r, spec)
        own = tuple(w[r] for w in weights)
        for b in range(3):
            blocks = jacrev(of_weights(x[r, b]))(own)
            full = torch.cat([j.reshape(j.shape[0], -1) for j in blocks], dim=1)
            exact = torch.linalg.matrix_norm(full, 2)
            assert float(estimate[r, b]) <= float(exact) * (1 + 1e-12)
            assert float(estimate[r, b]) == pytest.approx(float(exact), rel=1e-6)


def test_normalization_factors_are_the_local_lipschitz_constants():
    a = torch.tensor([[1.0, 2.0, 6.0]], dtype=torch.float64)
    _, factor = normalize(a, "layernorm", 0.0)
    assert float(factor) == pytest.approx(1 / math.sqrt(((a - a.mean()) ** 2).mean()))
    _, factor = normalize(a, "rmsnorm", 1e-5)
    assert float(factor) == pytest.approx(1 / math.sqrt((a**2).mean() + 1e-5))
    out, factor = normalize(a, "none", 1e-5)
    assert torch.equal(out, a) and float(factor) == 1.0


def test_measurement_is_reproducible_and_shaped():
    spec = LipschitzSpec("relu", "layernorm", width=16, depths=(1, 3), networks=2, points=4)
    a, b = measure_lipschitz(spec, "cpu"), measure_lipschitz(spec, "cpu")
    assert a.input_lipschitz == b.input_lipschitz
    assert a.parameter_lipschitz == b.parameter_lipschitz
    assert len(a.weight_norms) == 2 and len(a.weight_norms[0]) == 3
    assert len(a.norm_factors[0][0]) == 3 and len(a.input_norms[0][0]) == 3
    assert a.input_norms[0][0][0] > 0


def test_relu_network_without_normalization_is_scale_free_in_its_input():
    # positive homogeneity: the same draws scaled by 3 give the same input Jacobian
    base = LipschitzSpec("relu", "none", width=16, depths=(2,), networks=2, points=3)
    a = measure_lipschitz(base, "cpu")
    b = measure_lipschitz(LipschitzSpec(**{**base.__dict__, "input_variance": 9.0}), "cpu")
    for ra, rb in zip(a.input_lipschitz, b.input_lipschitz):
        for pa, pb in zip(ra, rb):
            assert pb == pytest.approx(pa, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"activation": "swish"}, "unknown activation"),
        ({"activation": "relu", "normalization": "batchnorm"}, "normalization must be one of"),
        ({"activation": "relu", "width": 0}, "width must be at least 1"),
        ({"activation": "relu", "depths": (0, 2)}, "depth must be at least 1"),
        ({"activation": "relu", "depths": (4, 2)}, "depths must increase"),
        ({"activation": "relu", "depths": ()}, "at least one depth"),
        ({"activation": "relu", "weight_scale": -1.0}, "weight_scale"),
        ({"activation": "relu", "eps": -1e-5}, "eps"),
        ({"activation": "relu", "iterations": 0}, "iterations must be at least 1"),
    ],
)
def test_bad_specs_raise_spec_error(kwargs, message):
    with pytest.raises(SpecError, match=message):
        LipschitzSpec(**kwargs)
