"""The shape every experiment has, so one sweep runner and one report serve them all.

An experiment lists its *jobs* for a scale (frozen dataclasses: hashable, storable), *runs* one
job into a plain-JSON record, and *summarizes* the records into an :class:`ExperimentResult`.
Runner and store live in :mod:`llcgeo.report`; nothing here writes files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llcgeo.errors import SpecError
from llcgeo.reconcile.model import ExperimentResult
from llcgeo.serialize import from_jsonable, stable_hash

SCALES = ("small", "full")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise SpecError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


@dataclass(frozen=True)
class Experiment:
    """``jobs(scale)`` -> jobs; ``run(job, device)`` -> a record (a frozen dataclass or plain
    JSON); ``summarize(records)`` -> result. The store keeps ``to_jsonable(record)``; ``load``
    turns that into the experiment's record type before ``summarize`` sees it (by default it is
    left as stored: plain JSON)."""

    name: str
    title: str
    jobs: Callable[[str], Sequence[Any]]
    run: Callable[[Any, str], Any]
    summarize: Callable[[Sequence[Any]], ExperimentResult]
    load: Callable[[dict[str, Any]], Any] = dict

    def job_key(self, job: Any, version: str) -> str:
        """The store key of a job: its full spec, this experiment and the package version."""
        return stable_hash(job, salt=f"{self.name}@{version}")


def load_record(cls: type, data: dict[str, Any]) -> Any:
    """The frozen record ``cls`` from its stored JSON, by the one typed decoder
    (:func:`~llcgeo.serialize.from_jsonable`). A missing, unknown or mistyped field raises
    ``TypeError`` or ``ValueError``, which the sweep runner treats as a corrupt record."""
    return from_jsonable(cls, data)
