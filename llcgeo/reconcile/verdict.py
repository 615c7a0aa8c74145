"""How a measurement is judged against a prediction: one significance level, one limit
function, and the rules of :mod:`llcgeo.thresholds`.

>>> decide(z=1.2, diverged=0, chains=4, rhat=1.01, ess=800.0)
('agree', ())
>>> decide(z=5.0, diverged=0, chains=4, rhat=1.01, ess=800.0)[0]
'disagree'
>>> decide(z=0.1, diverged=1, chains=4, rhat=1.01, ess=800.0)
('inconclusive', ('1 of 4 chains diverged',))
"""

from __future__ import annotations

import math

from scipy import stats

from llcgeo.thresholds import (
    ALPHA,
    ESS_MIN,
    RHAT_LIMIT,
    Z_AGREE,
    ess_problem,
    rhat_problem,
)

RHAT_MAX = RHAT_LIMIT  # the names the verdicts have always exported


def decide(
    *,
    z: float,
    diverged: int,
    chains: int,
    rhat: float,
    ess: float,
    problems: tuple[str, ...] = (),
    dof: int | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The verdict and its reasons for one case: ``inconclusive`` when a chain diverged, R-hat
    or the bulk ESS of the kept chains fails its rule (:mod:`llcgeo.thresholds`), or a
    ``problem`` found before the measurement (an unstable step size, say); else ``agree`` when
    ``|z| <= limit(1, dof)``. With ``dof`` (a standard error estimated from ``dof + 1`` chains)
    ``z`` is a Student-t statistic."""
    reasons = list(problems)
    if diverged:
        reasons.append(f"{diverged} of {chains} chains diverged")
    reasons += [text for text in (rhat_problem(rhat), ess_problem(ess)) if text]
    if not math.isfinite(z):
        reasons.append("z is not finite")
    if reasons:
        return "inconclusive", tuple(reasons)
    if dof is not None and dof < 1:
        return "inconclusive", ("one chain left: no standard error to test against",)
    bound, name = limit(1, dof), "z" if dof is None else f"t ({dof} dof)"
    if abs(z) <= bound:
        return "agree", ()
    return "disagree", (f"|{name}| = {abs(z):.2f} > {bound:.3g}",)


def limit(tests: int = 1, dof: int | None = None) -> float:
    """The one limit every statistic is held against: the two-sided quantile that keeps
    ``tests`` tests together at the error rate ``ALPHA`` of a single ``|z| <= 3`` (Bonferroni),
    of the normal law (``dof=None``: the standard error is exact) or of Student's t with
    ``dof`` degrees of freedom (the standard error was estimated from ``dof + 1`` chains).
    3.0 for one normal test, about 3.64 for ten; 9.2 for one test over four chains."""
    tail = ALPHA / (2 * max(tests, 1))
    if dof is None:
        return Z_AGREE if tests <= 1 else float(stats.norm.isf(tail))
    return float(stats.t.isf(tail, max(dof, 1)))


def t_agree(dof: int) -> float:
    """``limit(1, dof)``: one Student-t statistic over ``dof + 1`` chains (9.2 for four chains,
    where the normal 3 would raise about 6% false alarms)."""
    return limit(1, dof)


def passed(ok: bool) -> str:
    """The verdict of a test that either passed or failed (its threshold stated beside it)."""
    return "agree" if ok else "disagree"


def within(statistic: float, bound: float = Z_AGREE) -> str:
    """``agree`` when ``|statistic| <= bound``."""
    return passed(abs(statistic) <= bound)


THRESHOLDS_MARKDOWN = f"""\
**How verdicts are decided.** Each case compares the mean SGLD estimate over its chains with a
reference: on the full-batch path, the *exact* expectation of the estimator at the case's own
settings (n, eps, gamma, nbeta, chain length) on the sample's own Hessian, with the exact
standard error of a mean over the chains kept; on a minibatch path, the exact expectation of
minibatch SGLD for independently drawn batches of the run's size (the batch noise included;
exact for ``batches = "independent"``, approximate for devinterp's epochs, and said so), with
the standard error measured over the chains, each of which draws its own batches.
``z = (measured - reference) / standard error``. A minibatch standard error is estimated from the
k chains kept, so there z is a Student-t statistic with k - 1 degrees of freedom, held against
the t quantile of the same two-sided error rate (0.27%: {t_agree(3):.3g} for four chains,
{t_agree(7):.3g} for eight) instead of {Z_AGREE:g}.
A case is **agree** when |z| <= {Z_AGREE:g}, **disagree** when |z| > {Z_AGREE:g}, and
**inconclusive** (whatever z is) when any chain diverged, when R-hat of the loss trace exceeds
{RHAT_MAX:g}, or when the bulk effective sample size of the kept chains' loss traces is below
{ESS_MIN} (the same rules the estimate's warnings use).
A claim judges its k cases together at the error rate of one such test (Bonferroni): it fails
on them only when some |z| exceeds the quantile of 1 - 0.0027/(2k), normal where the standard
errors are exact (3.0 for one case, 3.64 for ten) and Student-t where they were measured over
the chains, so a claim resting on many cases is no likelier to fail by chance than one resting
on a single case, and a claim resting on one case applies exactly that case's limit. Every limit
printed beside a statistic is the one applied to it. A claim agrees when its cases pass
together and the asymptotic prediction it tests is the one the measurements single out (see each
claim's note). The LayerNorm-geometry,
isometry and Lipschitz suites measure other quantities: each of their claims states its own
tolerance, and where it comes from, in its note.

**Where the settings come from.** The LLC suites set each case's eps from its own Hessian so
that ``eps (nbeta h_max + gamma) = 0.1`` (``reconcile.design.tuned``): the stiffest direction
relaxes in about 20 steps and the step-size bias ``1/(1 - eps a/4) - 1`` is at most 2.6%;
the verdicts hold each case against the exact expectation at its settings, so what bias
remains is in the reference. The singular suite states its settings in its description;
``llcgeo calibrate`` derives settings for any case from the same formulas.
"""
