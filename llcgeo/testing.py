"""Helpers for property-based tests of your own: hypothesis strategies and one assertion.

The strategies draw the named manifold families with small exact rational parameters, split by
geometry: *flat* ones lie in an affine hyperplane (LayerNorm images, hyperplanes, the simplex,
a bump of zero curvature), *curved* ones in none (spheres, ellipsoids, RMSNorm images, a bump
of curvature at least 1 on at least 3/4 of the mass). Curved parameters stay away from flatness
so that a few thousand samples see the curvature. :func:`assert_llc_matches_theory`
measures a case with SGLD and fails with the reconciliation table unless it agrees.

>>> from hypothesis import given, settings
>>> from llcgeo.theory import predicted_llc
>>> @settings(max_examples=20)
... @given(flat_manifolds(), linear_layers())
... def check(manifold, layer):
...     assert predicted_llc(manifold, layer).flat
>>> check()

``hypothesis`` is needed only by the strategies (it is imported when one is called).
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from typing import Any

from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.reconcile.model import Case, CaseResult

TARGET_STEP = 0.2  # eps (nbeta h_max + gamma): a small, stable step on the stiffest direction
MAX_STEPS = 20_000


# --- strategies --------------------------------------------------------------------------------


def _st():
    from hypothesis import strategies

    return strategies


def _ratios(low: str, high: str, nonzero: bool = False):
    """Exact rationals in ``[low, high]`` with denominators up to 4 (``|q| >= 1/2`` if
    ``nonzero``, so no direction is squeezed to nothing)."""
    values = _st().fractions(Fraction(low), Fraction(high), max_denominator=4)
    return values.filter(lambda q: abs(q) >= Fraction(1, 2)) if nonzero else values


def _curvatures():
    return _ratios("-2", "2").filter(lambda k: abs(k) >= 1)


def _vectors(d: int, values):
    return _st().lists(values, min_size=d, max_size=d).map(tuple)


def _dimensions(max_d: int):
    if isinstance(max_d, bool) or not isinstance(max_d, int) or max_d < 2:
        raise ValueError(f"max_d must be an integer of at least 2, got {max_d!r}")
    return _st().integers(2, max_d)


def flat_manifolds(max_d: int = 4, *, through_origin: bool = False):
    """Manifolds in an affine hyperplane; with ``through_origin`` the hyperplane contains 0, so
    even a layer without a bias loses LLC on them."""
    st = _st()
    return _dimensions(max_d).flatmap(lambda d: st.one_of(_flat(d, through_origin)))


def _flat(d: int, through_origin: bool):
    st = _st()
    gains = st.none() | _vectors(d, _ratios("-2", "2", nonzero=True))
    offsets = st.just(Fraction(0)) if through_origin else _ratios("-2", "2")
    families = [
        st.builds(
            _layernorm,
            st.just(d),
            gains,
            st.none() | _vectors(d, _ratios("-1", "1")),
            st.just(through_origin),
        ),  # fmt: skip
        st.builds(mf.Hyperplane, _vectors(d, _ratios("-2", "2")).filter(any), offsets),
        st.builds(mf.BumpedHyperplane, st.just(d), st.just(Fraction(0)), _ratios("0", "1")),
    ]
    if not through_origin:
        families.append(st.just(mf.Simplex(d)))
    return families


def _layernorm(d: int, gain, bias, through_origin: bool) -> mf.LayerNormImage:
    """LayerNorm's image lies in ``{alpha . (x - bias) = 0}``, ``alpha = 1/gain``; through the
    origin when ``alpha . bias = 0``, so the bias is projected onto that plane if asked."""
    if through_origin and bias is not None:
        alpha = [1 / g for g in gain] if gain else [Fraction(1)] * d
        shift = sum(a * b for a, b in zip(alpha, bias, strict=True)) / sum(a * a for a in alpha)
        bias = tuple(b - shift * a for a, b in zip(alpha, bias, strict=True))
    return mf.LayerNormImage(d, gain=gain, bias=bias)


def curved_manifolds(max_d: int = 4):
    """Manifolds in no affine hyperplane: their data span every direction."""
    st = _st()
    return _dimensions(max_d).flatmap(lambda d: st.one_of(_curved(d)))


def _curved(d: int):
    st = _st()
    return [
        st.builds(mf.Sphere, st.just(d), _ratios("1/2", "2")),
        st.builds(mf.Ellipsoid, st.just(d), _vectors(d, _ratios("1/2", "2"))),
        st.builds(
            mf.RMSNormImage, st.just(d), st.none() | _vectors(d, _ratios("-2", "2", nonzero=True))
        ),
        st.builds(mf.BumpedHyperplane, st.just(d), _curvatures(), _ratios("3/4", "1")),
    ]


def manifolds(max_d: int = 4):
    """Flat and curved manifolds alike."""
    return _st().one_of(flat_manifolds(max_d), curved_manifolds(max_d))


def linear_layers(max_m: int = 3):
    """Linear layers ``y = W x (+ b)`` with ``1 <= m <= max_m``, with and without a bias."""
    st = _st()
    return st.builds(mf.LinearLayer, st.integers(1, max_m), st.booleans())


# --- the assertion -----------------------------------------------------------------------------


def assert_llc_matches_theory(
    manifold,
    layer: mf.LinearLayer,
    refine: str = "all",
    *,
    n: int = 2000,
    config: SGLDConfig | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> CaseResult:
    """Measure the LLC with SGLD and fail with the reconciliation table unless it agrees.

    *Agrees*: the mean estimate is within ``Z_AGREE`` standard errors of the exact expectation
    of the estimator at these settings (no chain diverged, R-hat and ESS fine), and it singles
    out the exact LLC ``rank / 2`` over the alternative that the opposite geometry would give
    (``md/2`` against ``m(d-1)/2``). ``config=None`` tunes SGLD to the data: ``eps (nbeta h_max
    + gamma) = 0.2`` and chains long enough for the slowest direction (see :func:`tuned_config`).

    >>> result = assert_llc_matches_theory(mf.LayerNormImage(3), mf.LinearLayer(1), n=500)
    >>> result.predicted_llc_exact
    '1'
    """
    from llcgeo.reconcile.cases import reconcile_case

    config = config or tuned_config(manifold, layer, refine, n=n, seed=seed)
    case = Case(manifold, layer, refine, n, config, seed=seed)
    result = reconcile_case(case, device=device)
    verdict, why = _verdict(manifold, layer, refine, result)
    if verdict != "agree":
        raise AssertionError(reconciliation_table(case, result, verdict, why))
    return result


def _verdict(manifold, layer, refine, result: CaseResult) -> tuple[str, str]:
    from llcgeo.hypotheses.judging import alternative_llc
    from llcgeo.reconcile.stats import singles_out
    from llcgeo.theory import predicted_llc

    if result.verdict != "agree":
        return result.verdict, "; ".join(result.reasons)
    alternative = alternative_llc(predicted_llc(manifold, layer, refine))
    verdict, note = singles_out(
        result.llc_mean, result.se, claimed=result.predicted_llc, alternative=float(alternative)
    )
    return verdict, f"measured {note}"


def tuned_config(manifold, layer: mf.LinearLayer, refine: str = "all", *, n: int, seed: int):
    """SGLD settings fitted to this very sample: a pilot draw of the data (same seed) gives the
    Hessian eigenvalues; ``eps = 0.2 / (nbeta h_max + gamma)``; a burn-in of five relaxation
    times ``tau = 2 / (eps (nbeta h_min + gamma))`` of the slowest direction that moves (above
    ``thresholds.FLAT`` of the largest), and ``100 tau`` (at least 2000) draws a chain, 4
    chains, at most ``MAX_STEPS`` steps in all.

    >>> tuned_config(mf.Sphere(3), mf.LinearLayer(1), n=500, seed=0).chains
    4
    """
    from llcgeo.numerics import measure_linear
    from llcgeo.reconcile.stats import moving_eigenvalues

    pilot = SGLDConfig(eps=1e-6, chains=1, steps=2, burnin=1)
    measured = measure_linear(manifold, layer, refine, n, pilot, seed=seed, device="cpu")
    values = measured.hessian_eigenvalues
    h_max = float(values.max())
    moving = moving_eigenvalues(values)
    gamma, nbeta = pilot.gamma, measured.nbeta
    eps = TARGET_STEP / (nbeta * h_max + gamma)
    tau = 2 / (eps * (nbeta * float(moving.min()) + gamma))
    burnin = max(200, math.ceil(5 * tau))
    steps = min(MAX_STEPS, burnin + max(2000, math.ceil(100 * tau)))
    return replace(pilot, eps=eps, chains=4, steps=steps, burnin=min(burnin, steps // 2))


def reconciliation_table(case: Case, result: CaseResult, verdict: str, why: str) -> str:
    """A readable account of one reconciled case."""
    cfg = case.config
    expected = (
        "n/a"
        if result.expected_estimate is None
        else f"{result.expected_estimate:.4g} ± {result.se:.2g}"
    )
    rows = [
        ("verdict", f"{verdict} ({why})" if why else verdict),
        ("predicted LLC (exact)", result.predicted_llc_exact),
        ("LLC on Gaussian data", _short(result.llc_unconstrained)),
        ("expected estimate", expected),
        ("measured estimate", f"{result.llc_mean:.4g} ± {result.se:.2g}"),
        ("per chain", ", ".join(f"{v:.4g}" for v in result.per_chain)),
        ("z", f"{result.z:.3g}"),
        ("R-hat, ESS", f"{result.rhat:.3g}, {result.ess:.3g}"),
        (
            "settings",
            f"n={case.n}, eps={cfg.eps:.3g}, gamma={cfg.gamma:g}, "
            f"chains={cfg.chains}, steps={cfg.steps}, burnin={cfg.burnin}, "
            f"seed={case.seed}",
        ),  # fmt: skip
    ]
    width = max(len(k) for k, _ in rows)
    head = f"LLC of {case.layer} on {case.manifold}, refine={case.refine!r}"
    return "\n".join([head, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
