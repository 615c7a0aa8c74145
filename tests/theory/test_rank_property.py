"""Every exact rank against the numerical rank of a large sample's second-moment matrix.

Tolerance: an eigenvalue of ``Z^T Z / n`` counts as non-zero when it exceeds ``1e-8`` times the
largest. Directions the exact theory calls null are null to rounding (about 1e-15 relative in
float64); the strategies keep curved parameters away from flatness, so the smallest true
eigenvalue is at least about 1e-3 of the largest (a bump of curvature >= 1 on >= 3/4 of the
mass has ``E[h^2] >= m4(3/4)/4 > 0.1``), far above the threshold, for n = 4000 samples.
"""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llcgeo.numerics import sample
from llcgeo.testing import curved_manifolds, flat_manifolds, manifolds
from llcgeo.theory import affine_hull_dimension, span_dimension

RELATIVE_TOLERANCE = 1e-8
N = 4000


def numerical_rank(matrix: np.ndarray) -> int:
    eigenvalues = np.linalg.eigvalsh(matrix)
    return int(np.sum(eigenvalues > RELATIVE_TOLERANCE * max(eigenvalues.max(), 1e-300)))


def _moments(manifold, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = sample(manifold, N, generator=torch.Generator().manual_seed(seed)).numpy()
    z = np.hstack([x, np.ones((N, 1))])
    return x.T @ x / N, z.T @ z / N


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(manifolds(max_d=6), flat_manifolds(max_d=6), curved_manifolds(max_d=6)),
    st.integers(0, 2**31),
)
def test_exact_ranks_match_sample_ranks(manifold, seed):
    xx, zz = _moments(manifold, seed)
    assert numerical_rank(xx) == span_dimension(manifold)[0]
    assert numerical_rank(zz) == affine_hull_dimension(manifold)[0] + 1


@settings(max_examples=30, deadline=None)
@given(flat_manifolds(max_d=6), st.integers(0, 2**31))
def test_witness_forms_vanish_on_samples(manifold, seed):
    x = sample(manifold, 500, generator=torch.Generator().manual_seed(seed)).numpy()
    _, witness = affine_hull_dimension(manifold)
    forms = np.array(witness.tolist(), dtype=float)
    values = np.hstack([x, np.ones((len(x), 1))]) @ forms.T
    assert np.max(np.abs(values)) < 1e-9 * max(1.0, np.max(np.abs(x)))


IMPLICIT_AND_PARAMETRIC = [
    ("implicit", "x**2 + y**2 + z**2 - 1", "x y z"),
    ("implicit", "x**2 + y**2 - z**2", "x y z"),
    ("implicit", "(x + 2*y - z - 1)*(x**2 + y**2 + 1)", "x y z"),
    ("implicit", "z*(x**2 + y**2)", "x y z"),  # the singular z-axis carries no data
    ("implicit", "x*((x - 1)**2 + y**2)", "x y"),  # nor does the isolated point (1, 0)
    ("implicit", "x**2 - 2*y**2", "x y"),  # two irrational lines
    ("implicit", "z*((x - 1/3)**2 + y**2 - 1/1000000)", "x y z"),
    ("implicit", "z*(z - x**2)", "x y z"),
    ("parametric", ["(2 + cos(v))*cos(u)", "(2 + cos(v))*sin(u)", "sin(v)"], "u v"),
    ("parametric", ["u + v", "u - v", "2*u + 1"], "u v"),
    ("parametric", ["cos(u)**2", "sin(u)**2", "u"], "u"),
]


def test_implicit_and_parametric_ranks_match_samples():
    from llcgeo.manifolds import ImplicitHypersurface, ParametricManifold

    for kind, expression, names in IMPLICIT_AND_PARAMETRIC:
        cls = ImplicitHypersurface if kind == "implicit" else ParametricManifold
        manifold = cls(expression, names)
        xx, zz = _moments(manifold, seed=7)
        assert numerical_rank(xx) == span_dimension(manifold)[0], expression
        assert numerical_rank(zz) == affine_hull_dimension(manifold)[0] + 1, expression
