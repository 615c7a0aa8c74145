"""Layer-wise Lipschitz bounds and the growth rates they and mean field predict."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special

from llcgeo.errors import SpecError
from llcgeo.theory.lipschitz import (
    activation_lipschitz,
    bound_log_growth,
    log_input_bound,
    log_parameter_bound,
    mean_field_log_growth,
)


def _network(seed: int, width: int, depth: int, normalization: str):
    """A small numpy MLP with its exact input and parameter Jacobians at one input.

    ``x_l = relu(N(W_l x_{l-1}))``; the Jacobians are assembled from the layer derivatives by
    hand, independently of the bound formulas.
    """
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 2 / math.sqrt(width), (width, width)) for _ in range(depth)]
    x, eps = rng.normal(size=width), 1e-5
    layer_jacobians, factors, inputs, norm_jacobians, masks = [], [], [], [], []
    for w in weights:
        inputs.append(x)
        a = w @ x
        if normalization == "layernorm":
            c = a - a.mean()
            s = math.sqrt(c @ c / width + eps)
            centring = np.eye(width) - 1 / width
            jac_n = (centring - np.outer(c, c) / (width * s * s)) / s
            z, factor = c / s, 1 / s
        else:
            jac_n, z, factor = np.eye(width), a, 1.0
        mask = np.diag((z > 0).astype(float))
        layer_jacobians.append(mask @ jac_n @ w)
        norm_jacobians.append(jac_n)
        masks.append(mask)
        factors.append(factor)
        x = np.maximum(z, 0)
    return weights, layer_jacobians, norm_jacobians, masks, factors, inputs


def _chain(mats, width: int):
    out = np.eye(width)
    for m in mats:
        out = m @ out
    return out


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    depth=st.integers(1, 5),
    normalization=st.sampled_from(["none", "layernorm"]),
)
def test_bounds_hold_for_exact_jacobians(seed, depth, normalization):
    weights, layers, norm_jac, masks, factors, inputs = _network(seed, 6, depth, normalization)
    log_w = np.log([np.linalg.norm(w, 2) for w in weights])
    log_n = np.log(factors)
    log_x = np.log([np.linalg.norm(v) for v in inputs])
    input_bound = log_input_bound(log_w, log_n, "relu")
    for d in range(1, depth + 1):
        jac = _chain(layers[:d], 6)
        # a narrow ReLU network may die (J = 0), so compare the norms, not their logs
        assert np.linalg.norm(jac, 2) <= math.exp(input_bound[d - 1]) * (1 + 1e-12)
        # parameter Jacobian: d f / d W_l [E] = J_{>l} D_l J_N E x_{l-1}
        blocks = [
            np.kron(_chain(layers[k + 1 : d], 6) @ masks[k] @ norm_jac[k], inputs[k][None, :])
            for k in range(d)
        ]
        full = np.hstack(blocks)
        bound = math.exp(float(log_parameter_bound(log_w, log_n, log_x, "relu", d)))
        assert np.linalg.norm(full, 2) <= bound * (1 + 1e-12)


def test_input_bound_is_a_cumulative_product():
    log_w = np.log([[2.0, 3.0, 0.5]])
    log_n = np.log([[1.0, 0.5, 4.0]])
    assert np.allclose(np.exp(log_input_bound(log_w, log_n, "relu")), [[2.0, 3.0, 6.0]])


def test_parameter_bound_against_the_sum_it_stands_for():
    w, n, x = np.array([2.0, 3.0, 5.0]), np.array([0.5, 1.0, 0.25]), np.array([1.0, 2.0, 4.0])
    b = [n[0] * x[0] * n[1] * w[1] * n[2] * w[2], n[1] * x[1] * n[2] * w[2], n[2] * x[2]]
    got = log_parameter_bound(np.log(w), np.log(n), np.log(x), "relu", 3)
    assert math.exp(float(got)) == pytest.approx(math.sqrt(sum(v * v for v in b)), rel=1e-14)


def test_gelu_lipschitz_constant_is_the_maximum_slope():
    def slope(t):
        return special.ndtr(t) + t * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)

    best = optimize.minimize_scalar(lambda t: -slope(t), bounds=(0, 4), method="bounded")
    assert activation_lipschitz("gelu") == pytest.approx(-best.fun, rel=1e-9)
    assert activation_lipschitz("relu") == activation_lipschitz("tanh") == 1.0


def test_mean_field_growth_relu_is_exact():
    assert mean_field_log_growth("relu", "none", 3.0, 7.0, 4) == pytest.approx(
        (math.log(3 / math.sqrt(2)),) * 4, rel=1e-15
    )
    # after a normalization the weight scale cancels; the first layer sees the input variance
    assert mean_field_log_growth("relu", "layernorm", 5.0, 1.0, 3) == pytest.approx(
        (0.5 * math.log(0.5), 0.0, 0.0)
    )


def test_mean_field_growth_tanh_tracks_the_variance_map():
    # small weights: q -> 0 and tanh becomes linear, so chi -> s^2
    growth = mean_field_log_growth("tanh", "none", 0.5, 1.0, 200)
    assert growth[-1] == pytest.approx(math.log(0.5), abs=1e-3)
    assert growth[0] < growth[-1]


def test_bound_growth_rates():
    assert bound_log_growth("tanh", "none", 1.5) == pytest.approx(math.log(3.0))
    assert bound_log_growth("relu", "rmsnorm", 9.0) == pytest.approx(math.log(2 * math.sqrt(2)))


@pytest.mark.parametrize(
    "call",
    [
        lambda: mean_field_log_growth("relu", "batchnorm", 2.0, 1.0, 3),
        lambda: mean_field_log_growth("selu", "none", 2.0, 1.0, 3),
        lambda: mean_field_log_growth("relu", "none", 2.0, 1.0, 0),
        lambda: mean_field_log_growth("relu", "none", 0.0, 1.0, 3),
        lambda: log_input_bound(np.zeros(3), np.zeros(2), "relu"),
        lambda: log_parameter_bound(np.zeros(3), np.zeros(3), np.zeros(3), "relu", 4),
        lambda: bound_log_growth("relu", "groupnorm", 2.0),
    ],
)
def test_bad_input_raises_spec_error(call):
    with pytest.raises(SpecError):
        call()
