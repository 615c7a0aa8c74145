"""The certified counts against exact sympy ranks of the norm's image, built here from its
definition: LayerNorm's image is ``beta + diag(gain) u`` for ``u`` on a sphere in the plane
``sum u = 0``, RMSNorm's ``diag(gain) u`` for ``u`` on a sphere; both spheres' points ``+-v`` for
``v`` in a basis of the plane (or space) span what the sphere spans."""

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from llcgeo.scanner.certify import (
    certify,
    complement,
    factored_basis,
    factored_product,
    image_spec,
    quotient_basis,
)
from llcgeo.scanner.trace import Norm, Reader

ratios = st.fractions(min_value=-3, max_value=3, max_denominator=7)


def _directions(kind: str, d: int) -> list[list[Fraction]]:
    unit = [[Fraction(int(i == j)) for j in range(d)] for i in range(d)]
    if kind == "rmsnorm":
        return unit
    return [[a - b for a, b in zip(unit[i], unit[d - 1])] for i in range(d - 1)]


def _image_points(kind, gain, bias):
    d = len(gain)
    shift = bias or [Fraction(0)] * d
    points = []
    for v in _directions(kind, d):
        for sign in (1, -1):
            points.append([shift[i] + sign * gain[i] * v[i] for i in range(d)])
    return points or [shift]


def _expected_quotient(kind, gain, bias, outputs, with_bias, logits) -> int:
    rows = [[*p, 1] if with_bias else p for p in _image_points(kind, gain, bias)]
    rank = sp.Matrix(rows).rank()
    return (outputs - 1 if logits else outputs) * rank


norms = st.tuples(
    st.sampled_from(["layernorm", "rmsnorm"]),
    st.integers(2, 5),
    st.integers(2, 4),
    st.booleans(),
    st.booleans(),
    st.booleans(),
).flatmap(lambda t: st.tuples(
    st.just(t),
    st.lists(st.one_of(st.just(Fraction(0)), ratios), min_size=t[1], max_size=t[1]),
    st.lists(ratios, min_size=t[1], max_size=t[1]),
))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(norms)
def test_the_certified_quotient_is_the_exact_rank_of_the_image(case):
    (kind, d, m, has_bias, reader_bias, logits), gain, bias = case
    bias = bias if has_bias and kind == "layernorm" else None
    norm = Norm("n", kind, d, "g", "b" if bias else None)
    reader = Reader("r", "w", "c" if reader_bias else None, m, d, logits=logits)
    spec = image_spec(norm, gain, bias)
    cert = certify(spec, reader, classes_read=True)
    expected = _expected_quotient(kind, gain, bias, m, reader_bias, logits)
    assert cert.quotient == expected
    assert cert.parameters == m * (d + reader_bias)
    assert quotient_basis(spec, reader, classes_read=True).shape == (cert.parameters, expected)


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
def test_a_certified_flat_direction_changes_no_output_on_the_image(kind):
    gain = [Fraction(1, 2), Fraction(0), Fraction(3), Fraction(-1)]
    bias = [Fraction(1), Fraction(0), Fraction(2), Fraction(1, 3)] if kind == "layernorm" else None
    norm = Norm("n", kind, 4, "g", "b" if bias else None)
    reader = Reader("r", "w", "c", 3, 4)
    basis = quotient_basis(image_spec(norm, gain, bias), reader, classes_read=False)
    _, _, vt = np.linalg.svd(basis.T)
    flat = vt[basis.shape[1] :]  # the orthogonal complement of the quotient
    points = np.array(_image_points(kind, gain, bias), dtype=float)
    for direction in flat:
        weight, shift = direction[:12].reshape(3, 4), direction[12:]
        assert np.abs(points @ weight.T + shift).max() < 1e-12


@pytest.mark.parametrize("outputs, kept, width, inputs", [(5, 4, 4, 3), (6, 6, 7, 7), (3, 2, 5, 4)])
def test_the_factored_product_is_the_dense_basis_times_the_matrix(outputs, kept, width, inputs):
    """With and without a moving bias (``width`` beyond ``inputs``), all output directions or a
    softmax's complement of the ones vector."""
    g = np.random.default_rng(outputs)
    directions = np.eye(outputs) if kept == outputs else complement(np.ones((1, outputs)),
                                                                    outputs)  # fmt: skip
    rows = complement(g.standard_normal((1, width)), width)
    matrix = g.standard_normal((kept * rows.shape[1], 9))
    dense = factored_basis(directions, rows, inputs) @ matrix
    np.testing.assert_allclose(factored_product(directions, rows, inputs, matrix), dense,
                               rtol=0, atol=1e-12 * np.abs(dense).max())  # fmt: skip
