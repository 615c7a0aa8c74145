"""Predicted LLCs, drops and closed forms."""

import pytest
import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.errors import SpecError
from llcgeo.theory import D_SYMBOL, M_SYMBOL, population_hessian, predicted_llc

m, d = M_SYMBOL, D_SYMBOL


@pytest.mark.parametrize(
    ("manifold", "bias", "refine", "closed"),
    [
        (mf.Gaussian(6), False, "all", m * d / 2),
        (mf.Gaussian(6), True, "all", m * (d + 1) / 2),
        (mf.LayerNormImage(6), False, "all", m * (d - 1) / 2),
        (mf.LayerNormImage(6), True, "all", m * d / 2),
        (mf.LayerNormImage(6), True, "weight", m * (d - 1) / 2),
        (mf.LayerNormImage(6), True, "bias", m / 2),
        (mf.RMSNormImage(6), False, "all", m * d / 2),
        (mf.RMSNormImage(6), True, "all", m * (d + 1) / 2),
        (mf.Sphere(6), False, "all", m * d / 2),
        (mf.Simplex(6), False, "all", m * d / 2),
        (mf.Simplex(6), True, "all", m * d / 2),
        (mf.Simplex(6), True, "weight", m * d / 2),
        (mf.LayerNormImage(6, bias=[1, 0, 0, 0, 0, 0]), False, "all", m * d / 2),
        (mf.LayerNormImage(6, bias=[1, 0, 0, 0, 0, 0]), True, "all", m * d / 2),
        (mf.BumpedHyperplane(6, kappa=0), False, "all", m * (d - 1) / 2),
        (mf.BumpedHyperplane(6, kappa="1/1000", fraction="1/1000"), False, "all", m * d / 2),
    ],
)
@pytest.mark.parametrize("width", [1, 3])
def test_closed_forms_and_values(manifold, bias, refine, closed, width):
    p = predicted_llc(manifold, mf.LinearLayer(width, bias), refine)
    assert sp.simplify(p.closed_form - closed) == 0
    assert p.llc == closed.subs({m: width, d: manifold.d})
    assert p.hessian_rank == 2 * p.llc


def test_layernorm_drops_exactly_m_over_two():
    for width in (1, 2, 7):
        for bias in (False, True):
            p = predicted_llc(mf.LayerNormImage(9), mf.LinearLayer(width, bias))
            assert p.llc_drop == sp.Rational(width, 2)


def test_softmax_smuggles_a_bias():
    no_bias = predicted_llc(mf.Simplex(5), mf.LinearLayer(3))
    with_bias = predicted_llc(mf.Simplex(5), mf.LinearLayer(3, bias=True))
    assert no_bias.llc_drop == 0
    assert with_bias.llc == no_bias.llc and with_bias.llc_drop == sp.Rational(3, 2)


def test_hessian_is_factored():
    h = population_hessian(mf.LayerNormImage(512), mf.LinearLayer(64, bias=True))
    assert (h.size, h.rank, h.block_size) == (64 * 513, 64 * 512, 513)
    assert h.null_space.shape == (1, 513)


def test_bias_refinement_needs_a_bias():
    with pytest.raises(SpecError, match="needs a layer with a bias"):
        predicted_llc(mf.Gaussian(3), mf.LinearLayer(2), "bias")
    with pytest.raises(SpecError, match="refine must be one of"):
        predicted_llc(mf.Gaussian(3), mf.LinearLayer(2), "weights")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_layer_width(bad):
    with pytest.raises(SpecError, match="m must be"):
        mf.LinearLayer(bad)
