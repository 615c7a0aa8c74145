"""Exact moments of the SGLD LLC estimator on a quadratic loss.

For ``L(w) - L(w*) = 1/2 (w - w*)^T H (w - w*)`` and the full-batch update
``w <- w - (eps/2)(nbeta H (w - w*) + gamma (w - w*)) + sqrt(eps) sigma N(0, I)`` started at
``w_0 = w*``, each eigen-direction of ``H`` (eigenvalue ``h``) is an independent Gaussian AR(1)
process ``delta_{t+1} = a delta_t + sqrt(eps) sigma xi`` with ``a = 1 - eps (nbeta h + gamma) / 2``
and variance ``v_t = eps sigma^2 (1 - a^(2t)) / (1 - a^2)``. The estimate of one chain is
``nbeta * mean_{t=burnin}^{steps-1} (L(w_t) - L(w*))``; its mean and variance follow in closed
form (``Cov(delta_s, delta_t) = a^|t-s| v_min(s,t)``, ``Cov(delta_s^2, delta_t^2) = 2 Cov^2``).

>>> e = expected_sgld_estimate([2.0, 2.0, 0.5], nbeta=100.0, gamma=1.0, eps=1e-3,
...                            steps=20_000, burnin=5_000)
>>> round(e.mean, 3), round(e.exact_posterior, 3)
(1.544, 1.485)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llcgeo.config import SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.validate import integer, non_negative, positive


@dataclass(frozen=True)
class SGLDExpectation:
    """Moments of one chain's estimate, and its two limits.

    ``mean``/``variance``: exact, for these settings; ``infinite_chain``: ``steps -> inf`` at
    this ``eps``; ``exact_posterior``: also ``eps -> 0``; ``stable``: ``|a| < 1`` for every
    eigenvalue, i.e. ``eps (nbeta h_max + gamma) < 4``.
    """

    mean: float
    variance: float
    infinite_chain: float
    exact_posterior: float
    stable: bool

    def standard_error(self, chains: int) -> float:
        """Standard error of the mean of ``chains`` independent chains."""
        return math.sqrt(self.variance / chains)


def _check(eigenvalues, nbeta, gamma, eps, steps, burnin, noise_level) -> np.ndarray:
    h = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if h.size and (not np.all(np.isfinite(h)) or np.any(h < 0)):
        raise SpecError("hessian_eigenvalues must be finite and non-negative")
    for name, value in (("nbeta", nbeta), ("eps", eps), ("noise_level", noise_level)):
        positive(value, name)
    non_negative(gamma, "gamma")
    integer(burnin, "burnin", 0, integer(steps, "steps") - 1)
    return h


def _geometric(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``sum_{j<k} q^j = (1 - q^k) / (1 - q)``, accurate when ``q`` is close to 1."""
    q, k = np.broadcast_arrays(q, k)
    one_minus_q = 1.0 - q
    near = np.abs(one_minus_q) < 1e-3
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        far = (1.0 - q**k) / one_minus_q
        close = -np.expm1(k * np.log1p(-one_minus_q)) / one_minus_q
    out = np.where(near, close, far)
    return np.where(one_minus_q == 0, k.astype(np.float64), out)


def _variances(h, nbeta, gamma, eps, noise, times) -> tuple[np.ndarray, np.ndarray]:
    """``v_t`` for each eigenvalue (rows) at each time (columns), and ``q = a^2``."""
    a = 1.0 - 0.5 * eps * (nbeta * h + gamma)
    q = (a * a)[:, None]
    return eps * noise**2 * _geometric(q, times[None, :]), q


def expectation_at(
    hessian_eigenvalues: Sequence[float], config: SGLDConfig, nbeta: float
) -> SGLDExpectation:
    """:func:`expected_sgld_estimate` at the settings of ``config`` (eps, gamma, chain length,
    noise level) and this ``nbeta``.

    >>> config = SGLDConfig(eps=1e-3, gamma=1.0, steps=20_000, burnin=5_000)
    >>> round(expectation_at([2.0, 2.0, 0.5], config, nbeta=100.0).mean, 3)
    1.544
    """
    c = config
    return expected_sgld_estimate(
        hessian_eigenvalues, nbeta, c.gamma, c.eps, c.steps, c.burnin, c.noise_level
    )


def expected_sgld_estimate(
    hessian_eigenvalues: Sequence[float],
    nbeta: float,
    gamma: float,
    eps: float,
    steps: int,
    burnin: int,
    noise_level: float = 1.0,
) -> SGLDExpectation:
    """Exact mean and variance of ``nbeta * (mean_{t in [burnin, steps)} L(w_t) - L(w*))``.

    ``hessian_eigenvalues`` are those of the Hessian of the loss in the parameters that move,
    with multiplicity (for ``W`` of an ``m``-output layer, each eigenvalue of ``E_n[z z^T]``
    ``m`` times).
    """
    h = _check(hessian_eigenvalues, nbeta, gamma, eps, steps, burnin, noise_level)
    values, counts = np.unique(h, return_counts=True)
    times = np.arange(burnin, steps, dtype=np.float64)
    draws = steps - burnin
    with np.errstate(over="ignore", invalid="ignore"):  # an unstable step overflows to inf
        v, q = _variances(values, nbeta, gamma, eps, noise_level, times)
        weight = counts * values / 2.0
        mean = nbeta * float(np.sum(weight * v.sum(axis=1))) / draws
        tail = 1.0 + 2.0 * q * _geometric(q, (steps - 1 - times)[None, :])
        pair_sums = np.sum(v * v * tail, axis=1)
        variance = (
            2.0 * (nbeta / draws) ** 2 * float(np.sum(counts * (values / 2.0) ** 2 * pair_sums))
        )
    curvature = nbeta * values + gamma
    with np.errstate(divide="ignore", invalid="ignore"):
        posterior = np.where(curvature > 0, nbeta * values / curvature, 0.0)
        chain = posterior / (1.0 - eps * curvature / 4.0)
    return SGLDExpectation(
        mean=mean,
        variance=variance,
        infinite_chain=float(np.sum(counts * noise_level**2 * chain / 2.0)),
        exact_posterior=float(np.sum(counts * noise_level**2 * posterior / 2.0)),
        stable=bool(np.all(eps * curvature < 4.0)),
    )
