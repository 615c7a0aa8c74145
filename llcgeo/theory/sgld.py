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
from llcgeo.thresholds import STABILITY_BOUND
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


def _step_factor(h, nbeta, gamma, eps):
    """``a = 1 - eps (nbeta h + gamma) / 2``, each eigendirection's AR(1) coefficient."""
    return 1.0 - 0.5 * eps * (nbeta * np.asarray(h, dtype=np.float64) + gamma)


def energy_autocorrelation_time(eigenvalues, nbeta: float, gamma: float, eps: float) -> float:
    """The integrated autocorrelation time of the loss trace once stationary: each
    eigendirection's energy is an AR(1) process of coefficient ``a^2``, with time
    ``(1 + a^2) / (1 - a^2)``, independent of the others, so the trace's is their mean weighted
    by each energy's variance (``(nbeta h / (nbeta h + gamma))^2``, up to a common factor).
    At least 1."""
    h = np.asarray(eigenvalues, dtype=np.float64)
    q = _step_factor(h, nbeta, gamma, eps) ** 2
    weight = (nbeta * h / (nbeta * h + gamma)) ** 2
    tau = float(np.sum(weight * (1 + q) / (1 - q)) / max(np.sum(weight), 1e-300))
    return max(tau, 1.0)


def _variances(h, nbeta, gamma, eps, noise, times) -> tuple[np.ndarray, np.ndarray]:
    """``v_t`` for each eigenvalue (rows) at each time (columns), and ``q = a^2``."""
    a = _step_factor(h, nbeta, gamma, eps)
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
        chain = posterior / (1.0 - eps * curvature / STABILITY_BOUND)
    return SGLDExpectation(
        mean=mean,
        variance=variance,
        infinite_chain=float(np.sum(counts * noise_level**2 * chain / 2.0)),
        exact_posterior=float(np.sum(counts * noise_level**2 * posterior / 2.0)),
        stable=bool(np.all(eps * curvature < STABILITY_BOUND)),
    )


def _batch_variance_factor(draw: str, b: int, n: int) -> float:
    """Var(batch mean) / (population variance): with replacement ``1/b``; a batch of an epoch
    (without replacement) ``(n - b) / (b (n - 1))``."""
    if draw == "independent":
        return 1.0 / b
    return 0.0 if b >= n else (n - b) / (b * (n - 1))


def minibatch_expectation(moments, config: SGLDConfig, nbeta: float) -> tuple[float, bool]:
    """The mean of one chain's estimate under minibatch SGLD, and whether the second moments
    stay bounded (``(mean, stable)``).

    ``moments`` describes the data on the moving coordinates ``J`` of ``z`` (``(x, 1)`` with a
    bias), as :class:`llcgeo.numerics.paths.linear.DataMoments` does: ``second = E_n[z z^T]``,
    ``fourth = E_n[(z z^T) (x) (z z^T)]`` (a ``|J|^2 x |J|^2`` matrix acting on ``vec(P)``),
    ``gradient = E_n[|r|^2 z z^T]`` with ``r`` the residual at ``theta*`` (summed over the
    outputs), ``outputs`` rows of ``theta`` and ``n`` samples.

    With ``e = theta - theta*`` and batches of ``b`` samples drawn independently at each step,
    ``e <- A_B e - c g_B + sqrt(eps) sigma xi`` with ``A_B = I - (eps/2)(nbeta S_B + gamma)``,
    ``c = eps nbeta / 2``. ``E e = 0`` at every step, so the summed second moment
    ``P = sum_rows E[e e^T]`` follows ``P <- A P A + c^2 f (M4(P) - S P S) + c^2 f C + outputs
    eps sigma^2 I`` and the recorded batch loss has mean ``tr(S P) / 2``; ``f = 1 / b`` for
    samples drawn with replacement (``config.batches == "independent"``: then this is exact).
    For ``"epochs"`` the same formula with each batch's own factor ``(n - b) / (b (n - 1))``
    neglects that batches within one epoch are disjoint, which raises the recorded loss (the
    chain has fitted the batches it will not see again this epoch): a reference, not exact.
    """
    s, k, c_grad = moments.second, moments.fourth, moments.gradient
    q, n, b = s.shape[0], moments.n, min(config.batch_size or moments.n, moments.n)
    f = _batch_variance_factor(config.batches, b, n)
    a = np.eye(q) - 0.5 * config.eps * (nbeta * s + config.gamma * np.eye(q))
    c2f = (0.5 * config.eps * nbeta) ** 2 * f
    drive = c2f * c_grad + moments.outputs * config.eps * config.noise_level**2 * np.eye(q)
    p, total = np.zeros((q, q)), 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(config.steps):
            if t >= config.burnin:
                total += 0.5 * float(np.sum(s * p))
            spread = (k @ p.ravel()).reshape(q, q) - s @ p @ s
            p = a @ p @ a + c2f * spread + drive
    mean = nbeta * total / (config.steps - config.burnin)
    return mean, bool(np.isfinite(mean))
