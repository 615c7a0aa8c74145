"""Convergence and divergence diagnostics: plain functions of arrays with explicit axes.

``rhat`` is the split R-hat of Gelman et al. (BDA3, 11.4); ``ess`` the split-chain effective
sample size with Geyer's initial monotone sequence (as in Stan and ArviZ's "basic" method).
``rank_rhat``, ``ess_bulk`` and ``ess_tail`` are their rank-normalized forms (Vehtari, Gelman,
Simpson, Carpenter and Bürkner 2021, "Rank-normalization, folding, and localization"), the
current definitions in Stan and ArviZ: robust to heavy tails, and the folded R-hat and tail ESS
see a chain whose spread, not its centre, differs. The estimate reports these.

>>> x = np.random.default_rng(0).standard_normal((4, 1000))
>>> bool(abs(rhat(x) - 1) < 0.01), bool(3000 < ess(x) < 5000)
(True, True)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from llcgeo.thresholds import (
    LOW_ACCEPTANCE,
    STABILITY_BOUND,
    STABILITY_SHARE,
    ess_problem,
    rhat_problem,
)

DIVERGENCE_FACTOR = 100.0


def _split(x: np.ndarray, chain_axis: int, sample_axis: int) -> np.ndarray:
    """``(2 * chains, draws // 2)``: each chain cut into halves (the middle draw of an odd
    length is dropped), so that a drift within a chain shows up as disagreement between chains."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), (chain_axis, sample_axis), (0, 1))
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def rhat(x, chain_axis: int = 0, sample_axis: int = 1) -> float:
    """Split R-hat ``sqrt(((N-1)/N W + B/N) / W)``; NaN with fewer than 4 draws or no variance.

    ``W`` is the mean within-chain variance and ``B/N`` the variance of the chain means of the
    split chains (length ``N``).
    """
    s = _split(x, chain_axis, sample_axis)
    n = s.shape[1]
    if n < 2 or not np.all(np.isfinite(s)):
        return math.nan
    within = s.var(axis=1, ddof=1).mean()
    if within <= 0:
        return math.nan
    pooled = (n - 1) / n * within + s.mean(axis=1).var(ddof=1)
    return float(np.sqrt(pooled / within))


def _autocovariance(s: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each row, ``(1/N) sum_t (x_t - m)(x_{t+k} - m)``, via FFT."""
    n = s.shape[1]
    centred = s - s.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=2 * n, axis=1)
    return np.fft.irfft(spectrum * np.conj(spectrum), n=2 * n, axis=1)[:, :n] / n


def ess(x, chain_axis: int = 0, sample_axis: int = 1) -> float:
    """Effective sample size ``M N / tau`` of split chains, ``tau = -1 + 2 sum_k P_k``.

    ``P_k = rho_{2k} + rho_{2k+1}`` are Geyer's paired autocorrelations, summed up to the first
    non-positive pair and made monotone; ``rho_t = 1 - (W - mean acov_t) / var_plus``.
    """
    s = _split(x, chain_axis, sample_axis)
    chains, n = s.shape
    if n < 2 or not np.all(np.isfinite(s)):
        return math.nan
    acov = _autocovariance(s).mean(axis=0)
    within = acov[0] * n / (n - 1)
    var_plus = acov[0] + (s.mean(axis=1).var(ddof=1) if chains > 1 else 0.0)
    if var_plus <= 0:
        return math.nan
    rho = 1.0 - (within - acov) / var_plus
    rho[0] = 1.0
    pairs = rho[: 2 * (n // 2)].reshape(-1, 2).sum(axis=1)
    positive = np.flatnonzero(pairs <= 0)
    kept = pairs[: positive[0] if positive.size else pairs.size]
    tau = -1.0 + 2.0 * np.minimum.accumulate(kept).sum()
    tau = max(tau, 1.0 / math.log10(chains * n))  # ArviZ's floor against antithetic chains
    return float(chains * n / tau)


def average_ranks(x) -> np.ndarray:
    """The ranks (1 to ``size``) of all entries together, ties given their average rank: a
    run of equal values from sorted position ``s`` (0-based) of length ``c`` ranks
    ``s + (c + 1) / 2`` (scipy's ``rankdata(method="average")``, without importing scipy).

    >>> average_ranks([[3.0, 1.0], [3.0, 2.0]]).tolist()
    [[3.5, 1.0], [3.5, 2.0]]
    """
    x = np.asarray(x)
    flat = x.ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, flat.size])
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[order] = np.repeat(starts + (counts + 1) / 2, counts)
    return ranks.reshape(x.shape)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores ``Phi^-1((r - 3/8) / (N + 1/4))`` of the ranks ``r`` of all ``N`` draws
    together (Blom's offsets, as Vehtari et al.). The quantile is torch's, which is loaded
    already here: scipy's would cost a fresh process half a second to import."""
    p = (average_ranks(x) - 3 / 8) / (x.size + 1 / 4)
    return torch.special.ndtri(torch.from_numpy(p)).numpy()


def _chains_by_draws(x, chain_axis: int, sample_axis: int) -> np.ndarray:
    return np.moveaxis(np.asarray(x, dtype=np.float64), (chain_axis, sample_axis), (0, 1))


def rank_rhat(x, chain_axis: int = 0, sample_axis: int = 1) -> float:
    """``max(bulk, folded)`` split R-hat of the rank-normalized draws (NaN as :func:`rhat`)."""
    x = _chains_by_draws(x, chain_axis, sample_axis)
    if x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return math.nan
    bulk = rhat(_z_scale(x))
    folded = rhat(_z_scale(np.abs(x - _quantiles(x, (0.5,))[0])))
    return float(max(bulk, folded))


def ess_bulk(x, chain_axis: int = 0, sample_axis: int = 1) -> float:
    """The effective sample size of the rank-normalized draws: how well the centre is known."""
    x = _chains_by_draws(x, chain_axis, sample_axis)
    if x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return math.nan
    return ess(_z_scale(x))


def ess_tail(x, chain_axis: int = 0, sample_axis: int = 1) -> float:
    """The smaller effective sample size of the 5% and 95% quantiles: how well the tails are."""
    x = _chains_by_draws(x, chain_axis, sample_axis)
    if x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return math.nan
    low, high = _quantiles(x, (0.05, 0.95))
    return float(min(ess((x <= low).astype(float)), ess((x <= high).astype(float))))


def divergence_threshold(init_loss: float, free_parameters: int, nbeta: float) -> float:
    """The excess loss ``L(w) - L(w*)`` above which a chain counts as diverged.

    ``DIVERGENCE_FACTOR`` times the larger natural scale of the problem: the loss at the centre,
    plus ``P / (2 nbeta)``, the mean excess of a regular model with ``P`` free parameters under
    the tempered posterior. A healthy chain stays orders of magnitude below it.
    """
    return DIVERGENCE_FACTOR * (abs(init_loss) + free_parameters / (2.0 * nbeta))


def diverged(peak_excess, final_finite, threshold: float) -> np.ndarray:
    """Chains whose excess loss was ever NaN/Inf or above ``threshold``, or whose final position
    is not finite.

    >>> diverged(np.array([1.0, np.nan, 1e9]), np.array([True, True, True]), 1e3).tolist()
    [False, True, True]
    """
    peak = np.asarray(peak_excess, dtype=np.float64)
    return ~np.isfinite(peak) | (peak > threshold) | ~np.asarray(final_finite, dtype=bool)


def mean_and_se(per_chain, keep) -> tuple[float, float]:
    """Mean over the kept chains and its standard error ``std(ddof=1) / sqrt(k)`` (NaN if
    ``k < 2``; both NaN if no chain is kept)."""
    kept = np.asarray(per_chain, dtype=np.float64)[np.asarray(keep, dtype=bool)]
    if kept.size == 0:
        return math.nan, math.nan
    se = float(kept.std(ddof=1) / math.sqrt(kept.size)) if kept.size > 1 else math.nan
    return float(kept.mean()), se


def quality_warnings(rhat_value: float, ess_value: float) -> tuple[str, ...]:
    """What the R-hat and bulk ESS of the kept chains say deserves a look (the sentences of
    :mod:`llcgeo.thresholds`, which the verdicts use too, with what to do).

    >>> quality_warnings(1.34, 12.0)[0][:32]
    'R-hat is 1.34, above 1.1: the ch'
    """
    found = []
    rhat_text = rhat_problem(rhat_value)
    if rhat_text:
        found.append(f"{rhat_text}; run longer, with more burn-in, or a smaller eps")
    ess_text = ess_problem(ess_value)
    if ess_text:
        found.append(f"{ess_text}; run longer or raise eps")
    return tuple(found)


def stability_warning(eps: float, nbeta: float, gamma: float, h_max: float, *, lower=False):
    """A warning when ``eps (nbeta h_max + gamma)`` is past ``STABILITY_SHARE`` of the bound
    ``STABILITY_BOUND`` (``lower``: ``h_max`` is a lower bound, from a few Lanczos steps), and a
    stronger one at the bound itself, where the chain is unstable; else ``None``.

    >>> stability_warning(1e-3, 1000.0, 1.0, 3.9)[:46]
    'eps (nbeta h_max + gamma) = 3.9 is 98% of the '
    """
    curvature = nbeta * h_max + gamma
    product = eps * curvature
    at_least = "at least " if lower else ""
    if product >= STABILITY_BOUND:
        return (
            f"eps (nbeta h_max + gamma) = {at_least}{product:.3g} >= {STABILITY_BOUND:g}: SGLD is "
            f"unstable here (h_max = {h_max:.3g}); choose eps < {STABILITY_BOUND / curvature:.3g}"
        )
    if not product > STABILITY_SHARE * STABILITY_BOUND:
        return None
    return (
        f"eps (nbeta h_max + gamma) = {at_least}{product:.3g} is "
        f"{product / STABILITY_BOUND:.0%} of the stability bound {STABILITY_BOUND:g}: the "
        "stiffest direction's share of the estimate is inflated by "
        f"{at_least}{1 / (1 - product / STABILITY_BOUND):.3g}x; use a smaller eps, or eps auto"
    )


def divergence_warnings(bad: np.ndarray, threshold: float) -> tuple[str, ...]:
    """The sentence naming diverged chains (left out of the mean), if any."""
    if not bad.any():
        return ()
    names = ", ".join(str(i) for i in np.flatnonzero(bad))
    text = (
        f"{int(bad.sum())} of {bad.size} chains diverged (chain {names}: NaN/Inf, or a loss more "
        f"than {threshold:.3g} above its start); they are left out of the mean"
    )
    if bad.all():
        text += "; every chain diverged, so the estimate is NaN (try a smaller eps)"
    return (text,)


def acceptance_warnings(rate: float | None) -> tuple[str, ...]:
    """The sentence for a mean Metropolis acceptance of SGLD's steps below ``LOW_ACCEPTANCE``."""
    if rate is None or rate >= LOW_ACCEPTANCE:
        return ()
    return (
        f"a Metropolis test would accept only {rate:.0%} of the SGLD steps (below "
        f"{LOW_ACCEPTANCE:.0%}): eps is large for this posterior; a smaller eps, or eps auto",
    )


def _quantiles(x: np.ndarray, levels: tuple[float, ...]) -> list[float]:
    """The quantiles of every entry at ``levels``, interpolated linearly between order statistics
    as ``np.quantile`` does: its ``np.unique`` imports ``numpy.ma`` on first use, a tenth of a
    second of a fresh process's first estimate.

    >>> _quantiles(np.array([[3.0, 1.0], [2.0, 4.0]]), (0.5, 0.05))
    [2.5, 1.15]
    """
    flat = np.sort(x, axis=None)
    out = []
    for level in levels:
        position = level * (flat.size - 1)
        below = int(np.floor(position))
        above = min(below + 1, flat.size - 1)
        out.append(float(flat[below] + (position - below) * (flat[above] - flat[below])))
    return out
