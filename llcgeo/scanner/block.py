"""A reader whose quotient is beyond the dense Hessian budget, measured on a block of it.

The block is the quotient's first ``k`` output directions (each times the whole row space the
norm's image spans), ``k`` as many as the budget holds. Its Hessian ``H_B`` is a principal block
of the quotient's Hessian, so:

* **for the whole reader** (proven): ``rank H >= rank H_B``, and the LLC is at least
  ``rank H_B / 2``; it is at most half the quotient's dimension;
* **for the block** (predicted, measured, judged): its own wrLLC, the LLC of the loss on
  ``w* + span B`` with the rest of the reader at ``w*``, is exactly ``k r / 2`` where ``H_B``
  has full rank, and lies between half its rank and ``k r / 2`` otherwise.

Whole or block, the measured part is sampled in the coordinates that whiten its Hessian
(:func:`whitening`): ``w = w* + B P u``. Where a Cholesky factor proves the rank full,
``P = L^-T`` with ``H = L L^T`` (a tenth of an eigendecomposition's work: 16 384 directions in
about a minute on two cores, not ten); otherwise ``P = V S`` with ``H = V diag(lambda) V^T`` and
``S = diag(max(lambda, lambda_soft))^(-1/2)``, ``lambda_soft`` the smallest eigenvalue counted.
Either way ``P P^T`` is the inverse of ``H`` on what it counts, so the chains in ``w`` are the
same, and the quadratic model in ``u`` is ``1/2 |u|^2`` on every counted direction, which all
relax at one rate. The LLC does not depend on the coordinates; the estimator at a finite step and
localization does, and its exact expectation is taken in these coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from llcgeo.reconcile.stats import numerical_rank
from llcgeo.thresholds import FLAT


def block_outputs(rows: int, budget: int) -> int:
    """How many output directions a block takes: as many as ``budget`` directions hold, at
    least one, each ``rows`` directions wide."""
    return max(1, budget // rows)


@dataclass(frozen=True)
class Whitened:
    """A Hessian on the quotient, ranked and whitened: its numerical rank and gap
    (:func:`~llcgeo.reconcile.stats.numerical_rank`), the map ``P`` from whitened coordinates
    to the quotient's, and the Hessian's spectrum in those coordinates, ``mu`` (``P^T H P`` is
    ``diag(mu)``)."""

    rank: int
    gap: float
    transform: np.ndarray
    mu: np.ndarray


def whitening(hessian: np.ndarray, shrink: float = 1.0) -> Whitened:
    """The Hessian ranked and whitened: by a Cholesky factor where that proves full rank
    (:func:`full_rank_whitening`: a tenth of an eigendecomposition's work, the same
    preconditioned chains, since ``P P^T = H^-1`` either way), else by its eigendecomposition
    (:func:`spectral_whitening`)."""
    whole = full_rank_whitening(hessian)
    return whole if whole is not None else spectral_whitening(hessian, shrink)


def full_rank_whitening(hessian: np.ndarray) -> Whitened | None:
    """``P = L^-T`` from ``H - c I = L L^T`` with ``c = FLAT * bound``, ``bound`` the largest
    absolute row sum (at least the largest eigenvalue), where that factor exists: then every
    eigenvalue exceeds ``FLAT`` of the largest, the rank is full and nothing is left out
    (gap ``inf``), as :func:`~llcgeo.reconcile.stats.numerical_rank` would count. The factor's
    backward error, about ``n`` units in the last place of the largest eigenvalue, is far below
    ``c``. ``None`` where no factor exists (a rank to count: the eigendecomposition's).
    ``mu`` is one: ``P^T H P = L^-1 L L^T L^-T = I``."""
    h = np.asarray(hessian, dtype=np.float64)
    bound = float(np.abs(h).sum(axis=1).max(initial=0.0))
    if not bound > 0.0 or not np.isfinite(bound):
        return None
    shifted = np.array(h, order="F")  # LAPACK's order: factored in place, one copy at a time
    shifted[np.diag_indices(len(h))] -= FLAT * bound
    if lapack.dpotrf(shifted, lower=1, overwrite_a=1)[1] != 0:
        return None
    del shifted  # a 16 384-direction quotient's copy is 2 GB
    factor, info = lapack.dpotrf(np.array(h, order="F"), lower=1, clean=1, overwrite_a=1)
    if info != 0:  # the whitening is of H itself
        return None
    inverse, info = lapack.dtrtri(factor, lower=1, overwrite_c=1)
    if info != 0:
        return None
    return Whitened(len(h), math.inf, inverse.T, np.ones(len(h)))


def spectral_whitening(hessian: np.ndarray, shrink: float = 1.0) -> Whitened:
    """``P = V S`` from ``H = V diag(lambda) V^T``: ``S = diag(lambda)^(-1/2)`` on the
    eigenvalues :func:`~llcgeo.reconcile.stats.numerical_rank` counts, so each of them gets
    curvature 1; an uncounted one (flat, or nearly, but not proven so by the certificate) is
    scaled as the softest counted one times ``shrink``: the localization alone confines it, and
    ``shrink`` (the square root of the localization's share of ``nbeta``) confines it as tightly
    as the softest counted direction, away from the terms beyond the quadratic."""
    values, vectors = np.linalg.eigh(hessian)
    values = np.clip(values, 0.0, None)
    rank, gap = numerical_rank(values)
    soft = float(np.sort(values)[-rank]) if rank else 1.0
    counted = values >= soft
    scale = np.where(counted, np.maximum(values, soft) ** -0.5, shrink * soft**-0.5)
    return Whitened(rank, gap, vectors * scale, values * scale**2)
