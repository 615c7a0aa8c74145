"""Exact learning coefficients of reduced-rank regression and deep linear networks."""

from fractions import Fraction

import pytest

from llcgeo import manifolds as mf
from llcgeo.errors import SpecError
from llcgeo.theory.singular import dln_coefficient, rrr_coefficient, singular_llc


@pytest.mark.parametrize(
    ("sizes", "llc", "multiplicity"),
    [((4, 3, 4, 1), 6, 1), ((5, 4, 5, 0), 8, 1), ((5, 3, 5, 0), Fraction(13, 2), 2)],
)
def test_published_reduced_rank_examples(sizes, llc, multiplicity):
    assert rrr_coefficient(*sizes) == (llc, multiplicity)


@pytest.mark.parametrize(
    ("widths", "llc", "multiplicity"),
    [((3, 4, 5, 6), 7, 2), ((4, 2, 3, 6, 5), 5, 1)],
)
def test_published_deep_linear_examples(widths, llc, multiplicity):
    assert dln_coefficient(widths, 1) == (llc, multiplicity)


def test_the_two_theorems_agree_on_every_two_layer_network_up_to_width_8():
    for m in range(1, 9):
        for h in range(1, 9):
            for n in range(1, 9):
                for r in range(min(m, h, n) + 1):
                    assert rrr_coefficient(m, h, n, r) == dln_coefficient((m, h, n), r)


def test_one_layer_is_the_regular_half_parameter_count():
    for d in range(1, 7):
        for m in range(1, 7):
            assert dln_coefficient((d, m), 0) == (Fraction(d * m, 2), 1)


def test_every_case_of_the_reduced_rank_theorem_is_reached():
    assert rrr_coefficient(2, 2, 8, 1).llc == Fraction(2 * 2 - 2 + 8, 2)  # M + H < N + r
    assert rrr_coefficient(8, 2, 2, 1).llc == Fraction(2 * 2 - 2 + 8, 2)  # N + H < M + r
    assert rrr_coefficient(2, 8, 2, 1).llc == Fraction(2 * 2, 2)  # M + N < H + r


def test_layernorm_costs_a_singular_model_less_than_m_over_2():
    p = singular_llc(mf.LayerNormImage(4), [3], 4, 1)
    assert (p.llc, p.unconstrained.llc, p.llc_drop, p.regular_drop) == (5, 6, 1, 2)
    assert p.effective_widths == (3, 3, 4)
    rms = singular_llc(mf.RMSNormImage(4), [3], 4, 1)
    assert rms.llc_drop == 0


def test_a_first_layer_bias_sees_the_affine_hull_plus_one():
    p = singular_llc(mf.LayerNormImage(4, bias=[1, 0, 0, 0]), [3], 4, 1, bias=True)
    assert p.widths == (5, 3, 4) and p.effective_widths == (4, 3, 4)
    assert p.llc == dln_coefficient((4, 3, 4), 1).llc


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dln_coefficient((3, 0, 2), 0), "width 1"),
        (lambda: dln_coefficient((3, 2, 2), 3), "above the narrowest width"),
        (lambda: dln_coefficient((3, 2, 2), -1), "rank"),
        (lambda: dln_coefficient((3,), 0), "input, any hidden and the output"),
        (lambda: singular_llc(mf.Hyperplane([1, 0], 0), [2], 2, 2), "above the narrowest"),
    ],
)
def test_bad_sizes_are_refused_by_name(call, message):
    with pytest.raises(SpecError, match=message):
        call()
