"""The normalization claim on any trained network, one reader at a time.

For each norm of a traced network (:mod:`llcgeo.scanner.trace`) and each linear map that reads
it, with the rest of the network frozen:

1. **Certified** (exact, whatever the rest is): the reader's directions that vanish on the
   norm's image are flat; the rest, its quotient, has dimension ``D``
   (:mod:`llcgeo.scanner.certify`).
2. **Predicted**: the reader is refitted to the minimum of its loss near the trained point,
   and its Hessian on the quotient computed exactly in float64 (from its structure where the
   reader is a head the cross-entropy reads, or where all that follows it acts on each row of
   its output alone: :mod:`llcgeo.scanner.rowwise`; any other reader by Hessian-vector
   products). The LLC
   lies between ``rank / 2`` and ``D / 2``: the prediction is exact, ``D / 2``, where the rank is
   full (with a spectral gap of at least ``RANK_GAP``), and that interval otherwise. A quotient
   beyond ``hessian_directions`` (a head's: beyond ``MAX_HESSIAN_DIRECTIONS`` at least) is
   refitted and measured on a block of it
   (:mod:`llcgeo.scanner.block`): the block's rank still bounds the whole reader's LLC from
   below, and the block's own wrLLC is predicted the same way.
3. **Measured and judged**: the LLC of what was measured by SGLD in the coordinates that
   whiten its Hessian, at settings chosen from that spectrum, beside a run of the same chains
   on its exact quadratic model; the quadratic run is held to the estimator's exact
   expectation (a Student-t limit), and the real run's measured shift from it to
   ``SHIFT_LIMIT`` of the LLC, as the ``network`` suite does.
"""
from __future__ import annotations

from llcgeo.scanner.reuse import Reusable, reusable
from llcgeo.scanner.rows import (
    NOT_MEASURED,
    NormSummary,
    PairJob,
    ScanResult,
    ScanRow,
    ScanSettings,
    row_of,
)
from llcgeo.scanner.run import run_scan, scan_pair
from llcgeo.scanner.trace import register_norm

__all__ = [
    "NOT_MEASURED",
    "NormSummary",
    "PairJob",
    "Reusable",
    "ScanResult",
    "ScanRow",
    "ScanSettings",
    "register_norm",
    "reusable",
    "row_of",
    "run_scan",
    "scan_pair",
]
