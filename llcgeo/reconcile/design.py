"""Building blocks the paper's experiments share: cases with their own seeds, a step size
matched to the stiffest direction, and the plain-record view of a result."""

from __future__ import annotations

import math
import zlib
from dataclasses import replace
from typing import Any

from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.reconcile.cases import reconcile_case
from llcgeo.reconcile.model import Case


def run_case(case: Case, device: str) -> dict[str, Any]:
    """An experiment's ``run``: reconcile one case into a plain record."""
    return reconcile_case(case, device=device).to_dict()


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


def measured(record: dict[str, Any]) -> tuple[float, float]:
    """(mean estimate, its standard error): the exact one on the full-batch path."""
    se = record["expected_se"] if record["expected_se"] is not None else record["llc_se"]
    return record["llc_mean"], se


def reference(record: dict[str, Any]) -> float:
    """The exact expected estimate, or the asymptotic LLC where there is none."""
    value = record["expected_estimate"]
    return record["predicted_llc"] if value is None else value


def case_row(record: dict[str, Any], *names: str) -> dict[str, Any]:
    """A report-table row: the named tags, then prediction, expectation and measurement."""
    tags = record["tags"]
    row = {name: tags.get(name) for name in names}
    mean, se = measured(record)
    row.update(
        predicted_llc=record["predicted_llc_exact"],
        expected=reference(record),
        measured=mean,
        se=se,
        z=record["z"],
        verdict=record["verdict"],
    )
    if record["verdict"] != "agree":
        row["why"] = "; ".join(record["reasons"])
    return row


def square_root(d: int) -> int:
    """``sqrt(d)`` for a perfect square (spheres of radius sqrt(d) match normalized images)."""
    root = math.isqrt(d)
    if root * root != d:
        raise ValueError(f"{d} is not a perfect square")
    return root
