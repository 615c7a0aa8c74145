"""Property tests: on any reducible or singular polynomial, and on parametrizations with
range-dependent identities, an exact answer agrees with the sampler's own data, or the spec is
refused with the package's error. Never a wrong answer, never a foreign exception.

Tolerance (as in ``test_rank_property``): an eigenvalue of ``Z^T Z / n`` counts as non-zero
above ``1e-8`` of the largest. The factors below have integer or half-integer coefficients, radii
at least 1/2 and centres within 2 of the origin, so each real piece draws at least a few per cent
of the ``N = 4000`` Newton projections and its smallest true eigenvalue is far above that
threshold; a null direction is null to the Newton tolerance, 1e-10, squared.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llcgeo import manifolds as mf
from llcgeo.errors import LLCGeoError
from llcgeo.numerics import sample
from llcgeo.theory import affine_support

N = 4000
RELATIVE_TOLERANCE = 1e-8
XYZ = ("x", "y", "z")

small = st.integers(-2, 2)
half = st.sampled_from(["0", "1/2", "-1/2", "1", "-1", "3/2"])
radius2 = st.sampled_from(["1/4", "1", "2", "9/4"])


def _plane():
    coefficients = st.tuples(small, small, small).filter(any)
    return st.builds(lambda a, c: f"({a[0]}*x + {a[1]}*y + {a[2]}*z - ({c}))", coefficients, half)


FACTORS = st.one_of(
    _plane(),
    st.builds(
        lambda a, b, r: f"((x - ({a}))**2 + (y - ({b}))**2 + z**2 - {r})", half, half, radius2
    ),
    st.builds(lambda k: f"(z - ({k})*x**2)", st.sampled_from(["1", "-1", "1/2", "2"])),
    st.builds(lambda a: f"((x - ({a}))**2 + y**2 - z**2)", half),  # a cone
    st.builds(lambda a, b: f"((x - ({a}))**2 + (y - ({b}))**2)", half, half),  # a line: singular
    st.builds(lambda a: f"((x - ({a}))**2 + y**2 + z**2)", half),  # a point: singular
    st.just("(x**2 + y**2 + z**2 + 1)"),  # no real points
    st.sampled_from(["(x**2 - 2*y**2)", "(z**2 - 3)", "(x**2 + y**2 - 2*z**2)"]),  # over Q(sqrt)
)


def _product(factors, squared):
    return "*".join(f"{f}**2" if sq else f for f, sq in zip(factors, squared))


POLYNOMIALS = st.lists(FACTORS, min_size=1, max_size=3).flatmap(
    lambda fs: st.lists(st.booleans(), min_size=len(fs), max_size=len(fs)).map(
        lambda sq: _product(fs, sq)
    )
)


def _rank(matrix: np.ndarray) -> int:
    eigenvalues = np.linalg.eigvalsh(matrix)
    return int(np.sum(eigenvalues > RELATIVE_TOLERANCE * max(eigenvalues.max(), 1e-300)))


def _sampled(manifold, seed: int) -> tuple[int, int]:
    x = sample(manifold, N, generator=torch.Generator().manual_seed(seed)).numpy()
    z = np.hstack([x, np.ones((N, 1))])
    return _rank(z.T @ z / N) - 1, _rank(x.T @ x / N)


def _exact_or_refused(build, *args, **kwargs):
    """(affine, span) of the spec ``build(*args)``, or None when it is refused with the
    package's error (at construction, by a size limit, or in the derivation)."""
    try:
        support = affine_support(build(*args, **kwargs))
    except LLCGeoError:
        return None
    return support.affine_dimension, support.span_dimension


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(POLYNOMIALS, st.integers(0, 2**31))
def test_every_accepted_hypersurface_matches_its_own_data(equation, seed):
    exact = _exact_or_refused(mf.ImplicitHypersurface, equation, XYZ)
    if exact is not None:
        assert _sampled(mf.ImplicitHypersurface(equation, XYZ), seed) == exact, equation


BRANCHED = st.sampled_from(
    [
        ["sqrt(t**2)", "t"],
        ["sqrt(1 - sin(t)**2)", "cos(t)"],
        ["t**(1/2)", "t"],
        ["exp(t + 1)", "exp(t)"],
        ["pi*t", "t"],
        ["sin(t + 1)", "sin(t)", "cos(t)"],
    ]
)
IDENTITIES = st.sampled_from(
    [
        (["cos(t)**2", "sin(t)**2", "t"], (2, 3)),
        (["cos(2*t)", "cos(t)**2", "sin(t)**2"], (1, 2)),
        (["exp(t)*exp(-t)", "t"], (1, 2)),
        (["t**2", "1/t"], (2, 2)),
        (["sin(pi*t)", "t"], (2, 2)),
        (["(t - 1)*(t + 1)", "t**2"], (1, 2)),
    ]
)


@given(BRANCHED)
@settings(max_examples=6, deadline=None)
def test_range_dependent_parametrizations_are_refused(phi):
    assert _exact_or_refused(mf.ParametricManifold, phi, ["t"], ranges=[(0, 1)]) is None


@given(IDENTITIES, st.integers(0, 2**31))
@settings(max_examples=6, deadline=None)
def test_identities_that_hold_everywhere_match_the_data(case, seed):
    phi, dimensions = case
    ranges = [("1/2", "3/2")]
    assert _exact_or_refused(mf.ParametricManifold, phi, ["t"], ranges=ranges) == dimensions
    assert _sampled(mf.ParametricManifold(phi, ["t"], ranges=ranges), seed) == dimensions
