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
(:func:`whitening`): ``w = w* + B V S u`` with ``H = V diag(lambda) V^T`` and
``S = diag(max(lambda, lambda_soft))^(-1/2)``, ``lambda_soft`` the smallest eigenvalue counted.
The quadratic model in ``u`` is then ``1/2 |u|^2`` on every counted direction, which all relax
at one rate. The LLC does not depend on the coordinates; the estimator at a finite step and
localization does, and its exact expectation is taken in these coordinates.
"""

from __future__ import annotations

import numpy as np

from llcgeo.reconcile.stats import numerical_rank


def block_outputs(rows: int, budget: int) -> int:
    """How many output directions a block takes: as many as ``budget`` directions hold, at
    least one, each ``rows`` directions wide."""
    return max(1, budget // rows)


def whitening(hessian: np.ndarray, shrink: float = 1.0):
    """``(eigenvalues, transform, mu)`` of a Hessian on the quotient: its eigenvalues (clipped
    at 0), the map ``V S`` from whitened coordinates to the quotient's, and the Hessian's
    spectrum in those coordinates. ``S = diag(lambda)^(-1/2)`` on the eigenvalues
    :func:`~llcgeo.reconcile.stats.numerical_rank` counts, so each of them gets curvature 1;
    an uncounted one (flat, or nearly, but not proven so by the certificate) is scaled as the
    softest counted one times ``shrink``: the localization alone confines it, and ``shrink``
    (the square root of the localization's share of ``nbeta``) confines it as tightly as the
    softest counted direction, away from the terms beyond the quadratic."""
    values, vectors = np.linalg.eigh(hessian)
    values = np.clip(values, 0.0, None)
    rank, _ = numerical_rank(values)
    soft = float(np.sort(values)[-rank]) if rank else 1.0
    counted = values >= soft
    scale = np.where(counted, np.maximum(values, soft) ** -0.5, shrink * soft**-0.5)
    return values, vectors * scale, values * scale**2
