"""How a measurement is judged against a prediction: the thresholds, stated once.

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

Z_AGREE = 3.0
RHAT_MAX = 1.1
ESS_MIN = 100.0
FAMILY_ALPHA = 0.01  # family-wise error rate of the geometry and isometry claims' many tests
Z_ALPHA = math.erfc(Z_AGREE / math.sqrt(2))  # the two-sided error rate of |z| <= Z_AGREE


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
    """The verdict and its reasons for one case (thresholds: ``Z_AGREE``, ``RHAT_MAX``,
    ``ESS_MIN``); ``problems`` found before the measurement (an unstable step size, say) make
    it inconclusive whatever the statistics say. With ``dof`` (a standard error estimated from
    ``dof + 1`` chains) ``z`` is a Student-t statistic, held against :func:`t_agree`."""
    reasons = list(problems)
    if diverged:
        reasons.append(f"{diverged} of {chains} chains diverged")
    if not math.isfinite(rhat) or rhat > RHAT_MAX:
        reasons.append(f"R-hat {rhat:.3g} > {RHAT_MAX:g}")
    if not math.isfinite(ess) or ess < ESS_MIN:
        reasons.append(f"ESS {ess:.3g} < {ESS_MIN:g}")
    if not math.isfinite(z):
        reasons.append("z is not finite")
    if reasons:
        return "inconclusive", tuple(reasons)
    if dof is not None and dof < 1:
        return "inconclusive", ("one chain left: no standard error to test against",)
    limit, name = (Z_AGREE, "z") if dof is None else (t_agree(dof), f"t ({dof} dof)")
    if abs(z) <= limit:
        return "agree", ()
    return "disagree", (f"|{name}| = {abs(z):.2f} > {limit:.3g}",)


def t_agree(dof: int) -> float:
    """The Student-t quantile with the two-sided error rate of ``|z| <= Z_AGREE`` (0.27%):
    the limit when the standard error itself was estimated from ``dof + 1`` chains (9.2 for
    4 chains, where the normal 3 would raise about 6% false alarms)."""
    return t_limit(1, dof, Z_ALPHA)


def passed(ok: bool) -> str:
    """The verdict of a test that either passed or failed (its threshold stated beside it)."""
    return "agree" if ok else "disagree"


def within(statistic: float, limit: float = Z_AGREE) -> str:
    """``agree`` when ``|statistic| <= limit``."""
    return passed(abs(statistic) <= limit)


def family_threshold(cases: int) -> float:
    """The |z| a claim resting on ``cases`` cases tolerates at the family-wise level of a single
    ``Z_AGREE``-sigma test (Bonferroni): 3.0 for one case, about 3.64 for ten."""
    return max(Z_AGREE, normal_limit(cases, Z_ALPHA))


def normal_limit(tests: int, alpha: float = FAMILY_ALPHA) -> float:
    """The two-sided normal quantile that keeps ``tests`` z-tests at family-wise level
    ``alpha`` (Bonferroni)."""
    return float(stats.norm.isf(alpha / (2 * max(tests, 1))))


def t_limit(tests: int, dof: int, alpha: float = FAMILY_ALPHA) -> float:
    """The same for Student-t statistics with ``dof`` degrees of freedom."""
    return float(stats.t.isf(alpha / (2 * max(tests, 1)), dof))


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
{RHAT_MAX:g}, or when the effective sample size of the loss trace is below {ESS_MIN:g}.
A claim judges its k cases together at the family-wise level of one such test (Bonferroni): it
fails on them only when some |z| exceeds the normal quantile of 1 - 0.0027/(2k) (3.0 for one
case, 3.64 for ten), so a claim resting on many cases is no likelier to fail by chance than one
resting on a single case. It agrees when its cases pass together and the asymptotic prediction it
tests is the one the measurements single out (see each claim's note). The LayerNorm-geometry,
isometry and Lipschitz suites measure other quantities: each of their claims states its own
tolerance, and where it comes from, in its note.

**Where the settings come from.** The LLC suites set each case's eps from its own Hessian so
that ``eps (nbeta h_max + gamma) = 0.1`` (``reconcile.design.tuned``): the stiffest direction
relaxes in about 20 steps and the step-size bias ``1/(1 - eps a/4) - 1`` is at most 2.6%;
the verdicts hold each case against the exact expectation at its settings, so what bias
remains is in the reference. The singular suite states its settings in its description;
``llcgeo calibrate`` derives settings for any case from the same formulas.
"""
