"""The helpers users import for their own property-based tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.reconcile.model import CaseResult
from llcgeo.testing import (
    assert_llc_matches_theory,
    curved_manifolds,
    flat_manifolds,
    linear_layers,
    manifolds,
    tuned_config,
)
from llcgeo.theory import predicted_llc

FAST = settings(max_examples=100, deadline=None, derandomize=True)

# --- the strategies draw what they promise (exact theory, no sampling) ------------------------


@FAST
@given(flat_manifolds(), linear_layers())
def test_flat_manifolds_lie_in_an_affine_hyperplane(manifold, layer):
    assert 2 <= manifold.d <= 4
    prediction = predicted_llc(manifold, layer)
    assert prediction.flat
    if layer.bias:  # W and b see the affine hull: one direction per output is lost
        assert prediction.llc_drop >= layer.m / 2


@FAST
@given(flat_manifolds(through_origin=True), linear_layers())
def test_flat_manifolds_through_the_origin_cost_llc_even_without_a_bias(manifold, layer):
    assert predicted_llc(manifold, layer).llc_drop >= layer.m / 2


@FAST
@given(curved_manifolds(), linear_layers())
def test_curved_manifolds_keep_the_full_llc(manifold, layer):
    prediction = predicted_llc(manifold, layer)
    assert not prediction.flat and prediction.llc_drop == 0


@FAST
@given(manifolds(max_d=3), linear_layers(max_m=2))
def test_sizes_are_bounded(manifold, layer):
    assert 2 <= manifold.d <= 3 and 1 <= layer.m <= 2
    assert mf.is_manifold(manifold) and isinstance(layer, mf.LinearLayer)


def test_every_family_is_drawn():
    seen = set()

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(flat_manifolds(), curved_manifolds())
    def draw(flat, curved):
        seen.update({("flat", type(flat).__name__), ("curved", type(curved).__name__)})

    draw()
    flat = {"LayerNormImage", "Hyperplane", "BumpedHyperplane", "Simplex"}
    curved = {"Sphere", "Ellipsoid", "RMSNormImage", "BumpedHyperplane"}
    assert seen == {("flat", f) for f in flat} | {("curved", c) for c in curved}


def test_max_d_must_allow_a_hypersurface():
    with pytest.raises(ValueError, match="max_d must be an integer of at least 2"):
        manifolds(max_d=1)


# --- the assertion ----------------------------------------------------------------------------


def test_agreement_returns_the_reconciled_case():
    result = assert_llc_matches_theory(mf.LayerNormImage(3), mf.LinearLayer(2), n=1000)
    assert isinstance(result, CaseResult) and result.verdict == "agree"
    assert result.predicted_llc_exact == "2"


def test_tuned_settings_fit_the_data():
    config = tuned_config(mf.Sphere(3, radius=2), mf.LinearLayer(1), n=1000, seed=0)
    # the stiffest direction has h ~ radius^2 / d = 4/3: eps (nbeta h + gamma) = 0.2 exactly
    assert config.chains == 4 and config.draws >= 2000
    assert 1e-4 < config.eps < 2e-3


def test_an_unusable_measurement_fails_with_the_reconciliation_table():
    short = SGLDConfig(eps=1e-4, chains=2, steps=60, burnin=10)  # far too few draws for an ESS
    with pytest.raises(AssertionError) as info:
        assert_llc_matches_theory(mf.Sphere(3), mf.LinearLayer(1), n=500, config=short)
    message = str(info.value)
    assert message.startswith("LLC of LinearLayer(m=1) on Sphere(d=3)")
    for row in ("verdict  ", "inconclusive (", "ESS", "predicted LLC (exact)  3/2", "eps=0.0001"):
        assert row in message, message


def test_a_curvature_too_faint_for_n_fails_against_the_asymptotic_llc():
    # x2 = u^2 / 2 on the central quarter of the mass only: at n = 2000 the curved direction
    # (h ~ 1e-4, nbeta h << gamma) is not resolved, so the estimate sits at the flat value
    faint = mf.BumpedHyperplane(2, kappa=1, fraction="1/4")
    with pytest.raises(AssertionError, match=r"disagree \(measured .* SE from the claim 3"):
        assert_llc_matches_theory(faint, mf.LinearLayer(3))


# --- the README's example: a user's property test ----------------------------------------------
# (the README shows it with its imports: hypothesis' given/settings and llcgeo.testing's
# assert_llc_matches_theory, flat_manifolds, linear_layers)


@settings(max_examples=5, deadline=None, derandomize=True)
@given(flat_manifolds(max_d=3, through_origin=True), linear_layers(max_m=2))
def test_flat_data_cost_every_output_half_a_unit_of_llc(manifold, layer):
    result = assert_llc_matches_theory(manifold, layer)
    assert result.llc_unconstrained - result.predicted_llc >= layer.m / 2
