"""The softmax head's LLC, (K - 1) r / 2: the rank formula against exact Hessians."""

import random
from fractions import Fraction

import pytest
import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.errors import SpecError
from llcgeo.theory.llc import predicted_llc
from llcgeo.theory.softmax import softmax_hessian


def _probabilities(rng, k):
    weights = [rng.randint(1, 9) for _ in range(k)]
    return [sp.Rational(w, sum(weights)) for w in weights]


def _points(rng, d, n, offset):
    """Rational points on the plane sum(x) = offset, in general position."""
    points = []
    for _ in range(n):
        x = [Fraction(rng.randint(-9, 9), rng.randint(1, 5)) for _ in range(d - 1)]
        points.append([*x, offset - sum(x)])
    return points


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("offset", [0, 1])
def test_exact_hessian_rank_is_k_minus_one_times_r(seed, bias, offset):
    rng = random.Random(seed)
    k, d, n = 3 + seed % 2, 4, 9
    z = _points(rng, d, n, offset)
    p = [_probabilities(rng, k) for _ in z]
    rank = softmax_hessian(z, p, bias=bias).rank()
    # on a plane through the origin the span has d - 1 dimensions; off it, d; a bias adds 1
    # to the affine hull's d - 1
    r = d if bias else (d - 1 if offset == 0 else d)
    assert rank == (k - 1) * r
    manifold = mf.Hyperplane(normal=[1] * d, offset=offset)
    prediction = predicted_llc(manifold, mf.SoftmaxHead(k, bias=bias))
    assert prediction.llc == sp.Rational(rank, 2)


def test_drop_between_layernorm_and_rmsnorm_heads_is_k_minus_one_over_two():
    head = mf.SoftmaxHead(10, bias=True)
    ln = predicted_llc(mf.LayerNormImage(16), head, "weight")
    rms = predicted_llc(mf.RMSNormImage(16), head, "weight")
    assert (ln.llc, rms.llc, rms.llc - ln.llc) == (sp.Rational(135, 2), 72, sp.Rational(9, 2))
    K, d = sp.symbols("K d", positive=True, integer=True)
    assert sp.simplify(ln.closed_form - (K - 1) * (d - 1) / 2) == 0


def test_a_learned_layernorm_bias_moves_the_drop_to_the_heads_bias():
    gain, beta = [1, 2, 3, 4], [Fraction(1, 2)] * 4
    manifold = mf.LayerNormImage(4, gain=gain, bias=beta)
    head = mf.SoftmaxHead(5, bias=True)
    assert predicted_llc(manifold, head, "weight").llc_drop == 0
    assert predicted_llc(manifold, head, "all").llc_drop == 2  # (K - 1)/2


def test_a_gain_alone_keeps_the_plane_through_the_origin():
    manifold = mf.LayerNormImage(4, gain=[1, Fraction(1, 3), 2, 5])
    assert predicted_llc(manifold, mf.SoftmaxHead(3)).llc == 3  # (3 - 1)(4 - 1)/2


def test_a_head_needs_two_classes_and_a_boolean_bias():
    with pytest.raises(SpecError, match="classes must be at least 2"):
        mf.SoftmaxHead(1)
    with pytest.raises(SpecError, match="bias must be True or False"):
        mf.SoftmaxHead(3, bias=1)
    with pytest.raises(SpecError, match="refine='bias' needs a layer with a bias"):
        predicted_llc(mf.Gaussian(3), mf.SoftmaxHead(3), "bias")
