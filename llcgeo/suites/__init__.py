"""Named suites of experiments for ``llcgeo report --suite NAME``.

Each suite module offers ``experiments() -> tuple[Experiment, ...]``; modules load on demand.
"""

from __future__ import annotations

from importlib import import_module

from llcgeo.errors import SpecError
from llcgeo.reconcile.experiment import Experiment

_MODULES = {
    "paper": "llcgeo.suites.paper",
    "geometry": "llcgeo.suites.geometry",
    "isometry": "llcgeo.suites.isometry",
    "lipschitz": "llcgeo.suites.lipschitz",
    "singular": "llcgeo.suites.singular",
    "network": "llcgeo.suites.network",
}
SUITES = (*_MODULES, "all")


def suite(name: str) -> tuple[Experiment, ...]:
    """The experiments of a suite; ``"all"`` is every suite in order."""
    if name == "all":
        return tuple(e for s in _MODULES for e in suite(s))
    if name not in _MODULES:
        raise SpecError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return tuple(import_module(_MODULES[name]).experiments())


def select(experiments: tuple[Experiment, ...], names: list[str] | None) -> tuple[Experiment, ...]:
    """Keep the named experiments (all when ``names`` is empty), rejecting unknown names."""
    if not names:
        return experiments
    known = {e.name: e for e in experiments}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SpecError(f"unknown experiment {unknown}; this suite has {', '.join(known)}")
    return tuple(known[n] for n in names)
