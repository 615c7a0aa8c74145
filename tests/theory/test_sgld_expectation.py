"""The exact SGLD moments, against an exact rational recursion and the known limits."""

from fractions import Fraction

import numpy as np
import pytest

from llcgeo.errors import SpecError
from llcgeo.theory import expected_sgld_estimate


def _exact_moments(h, nbeta, gamma, eps, steps, burnin):
    """Mean and variance by brute force over the AR(1) covariances, in exact rationals."""
    mean, var = Fraction(0), Fraction(0)
    draws = steps - burnin
    for hi in h:
        a = 1 - eps * (nbeta * hi + gamma) / 2
        v = [Fraction(0)]
        for _ in range(steps):
            v.append(a * a * v[-1] + eps)
        window = range(burnin, steps)
        mean += nbeta * hi / 2 * sum(v[t] for t in window) / draws
        cov2 = sum((a ** abs(t - s) * v[min(s, t)]) ** 2 for s in window for t in window)
        var += 2 * (nbeta * hi / 2 / draws) ** 2 * cov2
    return mean, var


@pytest.mark.parametrize(
    ("h", "eps"),
    [
        ([Fraction(2), Fraction(1, 2), Fraction(0)], Fraction(1, 100)),
        ([Fraction(3), Fraction(3)], Fraction(1, 10)),  # q = a^2 far from 1
        ([Fraction(1, 10**6)], Fraction(1, 1000)),  # q = a^2 within 1e-3 of 1
    ],
)
def test_matches_exact_recursion(h, eps):
    nbeta, gamma, steps, burnin = Fraction(10), Fraction(1), 40, 7
    mean, var = _exact_moments(h, nbeta, gamma, eps, steps, burnin)
    got = expected_sgld_estimate([float(x) for x in h], 10.0, 1.0, float(eps), steps, burnin)
    assert got.mean == pytest.approx(float(mean), rel=1e-10, abs=1e-300)
    assert got.variance == pytest.approx(float(var), rel=1e-10, abs=1e-300)


def test_long_chain_reaches_its_limits():
    h = np.array([4.0, 1.0, 0.25, 0.0])
    e = expected_sgld_estimate(h, nbeta=50.0, gamma=2.0, eps=1e-4, steps=400_000, burnin=200_000)
    assert e.mean == pytest.approx(e.infinite_chain, rel=1e-6)
    curvature = 50.0 * h + 2.0
    assert e.exact_posterior == pytest.approx(np.sum(0.5 * 50.0 * h / curvature))
    assert e.stable and e.variance > 0


def test_instability_is_flagged():
    assert not expected_sgld_estimate(
        [100.0], nbeta=10.0, gamma=1.0, eps=0.01, steps=10, burnin=1
    ).stable


@pytest.mark.parametrize(
    "kwargs",
    [
        {"eps": 0.0},
        {"eps": float("nan")},
        {"nbeta": -1.0},
        {"gamma": -1.0},
        {"burnin": 10},
        {"hessian_eigenvalues": [-1.0]},
        {"hessian_eigenvalues": [float("inf")]},
    ],
)
def test_bad_arguments(kwargs):
    args = {
        "hessian_eigenvalues": [1.0],
        "nbeta": 1.0,
        "gamma": 1.0,
        "eps": 0.1,
        "steps": 10,
        "burnin": 1,
    }
    args.update(kwargs)
    with pytest.raises(SpecError):
        expected_sgld_estimate(**args)


def test_minibatch_expectation_without_batch_noise_is_the_full_batch_one():
    from types import SimpleNamespace

    from llcgeo.config import SGLDConfig
    from llcgeo.theory import expectation_at, minibatch_expectation

    rng = np.random.default_rng(0)
    z = np.hstack([rng.standard_normal((50, 2)), np.ones((50, 1))])
    second = z.T @ z / 50
    outer = np.einsum("ni,nj->nij", z, z).reshape(50, 9)
    moments = SimpleNamespace(
        second=second, fourth=outer.T @ outer / 50, gradient=second, outputs=2, n=50
    )
    config = SGLDConfig(eps=1e-3, gamma=2.0, steps=400, burnin=100, batch_size=50)
    mean, stable = minibatch_expectation(moments, config, nbeta=30.0)
    eigenvalues = np.repeat(np.linalg.eigvalsh(second), 2)  # m = 2 rows of theta
    assert stable
    assert mean == pytest.approx(expectation_at(eigenvalues, config, 30.0).mean, rel=1e-12)


def test_the_energy_autocorrelation_time_is_the_ar1_time_weighted_by_each_energys_variance():
    from llcgeo.theory.sgld import energy_autocorrelation_time

    nbeta, gamma, eps = 100.0, 5.0, 1e-3
    a = 1 - eps * (nbeta * 2.0 + gamma) / 2
    one = (1 + a**2) / (1 - a**2)
    assert energy_autocorrelation_time([2.0], nbeta, gamma, eps) == pytest.approx(one, rel=1e-12)
    # a flat direction's energy does not vary: it leaves the time as it is
    assert energy_autocorrelation_time([2.0, 0.0], nbeta, gamma, eps) == pytest.approx(one)
    # two equal curvatures are one; a far smaller one, localization-bound, weighs little
    assert energy_autocorrelation_time([2.0, 2.0], nbeta, gamma, eps) == pytest.approx(one)
    mixed = energy_autocorrelation_time([2.0, 1e-4], nbeta, gamma, eps)
    assert one < mixed < one * 1.01
