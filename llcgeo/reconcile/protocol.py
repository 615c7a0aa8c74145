"""The coupled measurement and its one verdict, for every caller that measures a network's
reader (the ``network`` suite's heads, every row of ``scan``).

A coupled measurement runs the real chains and, with the same seed (so the same noise), the same
chains on the exact quadratic model of the loss, whose estimator has an exact expectation
(:func:`llcgeo.theory.sgld.expected_sgld_estimate`). Its verdict holds three things, each with
its own sentence when it fails:

1. **the chains**: no divergence, a finite standard error, R-hat at most ``RHAT_LIMIT`` and a
   bulk ESS of at least ``ESS_MIN``, for the real run and the quadratic one alike
   (:mod:`llcgeo.thresholds`): a verdict on chains that never mixed says nothing;
   (with any of these broken the verdict is *inconclusive*, never *disagree*: unmixed chains
   give no error to disagree with);
2. **the sampler**: the quadratic run against its exact expectation, a Student-t test at the one
   significance level with no allowance;
3. **the loss**: the real run's shift from the quadratic one, held to ``SHIFT_LIMIT`` of the
   quantity it is about (beyond it, the quadratic model no longer describes the loss at these
   settings).

>>> ok = EstimateSummary(mean=4.0, se=0.05, rhat=1.01, ess=900.0, diverged=0, seconds=1.0)
>>> stuck = EstimateSummary(mean=4.0, se=0.05, rhat=1.4, ess=900.0, diverged=0, seconds=1.0)
>>> coupled_verdict(Coupled(ok, ok, expected=4.0, shift=0.0, scale=4.0, chains=8)).verdict
'agree'
>>> judged = coupled_verdict(Coupled(stuck, ok, expected=4.0, shift=0.0, scale=4.0, chains=8))
>>> judged.verdict, judged.reason.split("; ")[-1]
('inconclusive', 'real run: R-hat is 1.4, above 1.1: the chains disagree')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from llcgeo.reconcile.model import EstimateSummary
from llcgeo.reconcile.stats import combined
from llcgeo.reconcile.verdict import limit, within
from llcgeo.thresholds import SHIFT_LIMIT


@dataclass(frozen=True)
class Coupled:
    """One coupled measurement: ``estimate`` (real chains), ``quadratic`` (the same chains on
    the exact quadratic model), the estimator's ``expected`` value there, the mean ``shift``
    of real over quadratic, the ``scale`` the shift is held against, and the ``chains``."""

    estimate: EstimateSummary
    quadratic: EstimateSummary
    expected: float
    shift: float
    scale: float
    chains: int


class Judged(NamedTuple):
    verdict: str
    reason: str
    t: float


def chain_problems(estimate: EstimateSummary, run: str = "real run") -> tuple[str, ...]:
    """The chain rules ``estimate`` breaks (divergence, R-hat, ESS), each naming ``run``."""
    return tuple(f"{run}: {text}" for text in estimate.problems())


def coupled_verdict(m: Coupled, tests: int = 1) -> Judged:
    """The verdict of a coupled measurement (the module's three checks; ``tests``: how many
    quadratic runs share the significance level)."""
    problems = chain_problems(m.estimate) + chain_problems(m.quadratic, "quadratic run")
    t = (m.quadratic.mean - m.expected) / m.quadratic.se
    bound = limit(tests, m.chains - 1)
    small = abs(m.shift) <= SHIFT_LIMIT * m.scale
    # chains that did not mix give no trustworthy error, so not even a disagreement
    verdict = "inconclusive" if problems else combined([within(t, bound), shift_verdict(m)])
    reason = (f"quadratic run t = {t:+.2f} (limit {bound:.2f}); shift {m.shift:+.3f} "
              f"({'within' if small else 'beyond'} {SHIFT_LIMIT:.0%} of {m.scale:g})")  # fmt: skip
    return Judged(verdict, "; ".join((reason, *problems)), t)


def shift_verdict(m: Coupled) -> str:
    """``agree`` where the real run's shift is within ``SHIFT_LIMIT`` of the scale."""
    return "agree" if abs(m.shift) <= SHIFT_LIMIT * m.scale else "inconclusive"
