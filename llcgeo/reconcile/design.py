"""Building blocks the paper's experiments share: cases with their own seeds, a step size
matched to the stiffest direction, and the plain-record view of a result."""

from __future__ import annotations

import math
import zlib
from dataclasses import replace
from typing import Any

from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.reconcile.experiment import Experiment
from llcgeo.reconcile.model import Case, CaseResult


def run_case(case: Case, device: str) -> CaseResult:
    """An experiment's ``run``: reconcile one case (torch loads only when a case runs)."""
    from llcgeo.reconcile.cases import reconcile_case

    return reconcile_case(case, device=device)


def case_experiment(name: str, title: str, jobs, summarize) -> Experiment:
    """An experiment whose jobs are :class:`Case` s and whose records are :class:`CaseResult` s."""
    return Experiment(name, title, jobs, run_case, summarize, load=CaseResult.from_dict)


def make_case(
    manifold, width: int, config: SGLDConfig, size: int, *, bias=False, refine="all", **tags
):
    """A case whose seed is derived from its coordinates, so every case draws its own data."""
    tags = tuple(sorted(tags.items()))
    seed = zlib.crc32(repr((repr(manifold), width, bias, refine, size, tags)).encode())
    return Case(manifold, mf.LinearLayer(width, bias), refine, size, config, seed=seed, tags=tags)


def tuned(config: SGLDConfig, n: int, h_max: float, target: float = 0.1) -> SGLDConfig:
    """``config`` with ``eps (nbeta h_max + gamma) = target``: the stiffest direction relaxes
    in about ``2 / target`` steps and the finite-step bias stays near ``target / 4``."""
    nbeta = config.resolved_nbeta(n)
    return replace(config, eps=target / (nbeta * h_max + config.gamma))


def case_row(record: CaseResult, *names: str) -> dict[str, Any]:
    """A report-table row: the named tags, then prediction, expectation and measurement."""
    row = {name: record.tags.get(name) for name in names}
    row.update(
        predicted_llc=record.predicted_llc_exact,
        expected=record.reference,
        measured=record.llc_mean,
        se=record.se,
        z=record.z,
        verdict=record.verdict,
    )
    if record.verdict != "agree":
        row["why"] = "; ".join(record.reasons)
    return row


def square_root(d: int) -> int:
    """``sqrt(d)`` for a perfect square (spheres of radius sqrt(d) match normalized images)."""
    root = math.isqrt(d)
    if root * root != d:
        raise ValueError(f"{d} is not a perfect square")
    return root
