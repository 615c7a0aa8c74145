"""Every threshold a run is judged by, stated once (standard library only).

The estimate's warnings (:mod:`llcgeo.numerics.sampling.diagnostics`) and the verdicts
(:mod:`llcgeo.reconcile.verdict`) both read these, and both say the same sentence when one is
crossed, so a warning and a verdict can never disagree about what a good run is.

=========================  =========  =========================================================
threshold                  value      why
=========================  =========  =========================================================
``Z_AGREE``                3          a measurement agrees within three standard errors
``ALPHA``                  0.0027     the two-sided error rate of ``|z| <= 3``: every limit
                                      (a t quantile, a Bonferroni family) keeps this rate
``RHAT_LIMIT``             1.1        above it the chains disagree about the loss's law
``ESS_MIN``                400        Vehtari et al. (2021): a rank-normalized bulk ESS above
                                      400 in all (50 a split chain for their four chains),
                                      below which R-hat and the ESS itself are unreliable;
                                      a total, so many short batched chains meet it as well
                                      as a few long ones
``STABILITY_BOUND``        4          ``eps (nbeta h + gamma)`` at which SGLD is unstable
``STABILITY_SHARE``        0.25       past this share of the bound, the stiffest direction's
                                      part of the estimate is inflated by a third or more
``LOW_ACCEPTANCE``         0.5        a Metropolis test would reject most SGLD steps below it
``FLAT``                   1e-9       a Hessian eigenvalue below this share of the largest
                                      counts as zero (float64 rounding is far below it)
``RANK_GAP``               1e6        a rank is trusted where the smallest counted eigenvalue
                                      is this many times the largest uncounted one
``SHIFT_LIMIT``            0.05       the largest measured shift of an estimate from its
                                      quadratic model (a share of the LLC) still read as a
                                      correction
=========================  =========  =========================================================

>>> ess_problem(114.0)
'the bulk ESS is 114, below the 400 that R-hat and the standard error need'
>>> ess_problem(900.0) is None
True
"""

from __future__ import annotations

import math

Z_AGREE = 3.0
ALPHA = math.erfc(Z_AGREE / math.sqrt(2))
RHAT_LIMIT = 1.1
ESS_MIN = 400
STABILITY_BOUND = 4.0
STABILITY_SHARE = 0.25
LOW_ACCEPTANCE = 0.5
# a Hessian's numerical rank: eigenvalues above FLAT of the largest count, and a count is
# trusted where the smallest counted over the largest uncounted is at least RANK_GAP
FLAT = 1e-9
RANK_GAP = 1e6
# the measured higher-order shift of an estimate from its quadratic model is a credible
# allowance only while it is a small correction: past this fraction of the LLC the quadratic
# model does not describe the loss at those settings
SHIFT_LIMIT = 0.05


def rhat_problem(rhat: float) -> str | None:
    """The sentence for an R-hat past ``RHAT_LIMIT`` (or not finite), else ``None``."""
    if math.isfinite(rhat) and rhat <= RHAT_LIMIT:
        return None
    return f"R-hat is {rhat:.3g}, above {RHAT_LIMIT:g}: the chains disagree"


def ess_problem(ess: float) -> str | None:
    """The sentence for a bulk ESS (over all kept chains) below ``ESS_MIN`` (or not finite),
    else ``None``."""
    if math.isfinite(ess) and ess >= ESS_MIN:
        return None
    return f"the bulk ESS is {ess:.3g}, below the {ESS_MIN} that R-hat and the standard error need"
