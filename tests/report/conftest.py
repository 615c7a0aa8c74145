"""Toy experiments for the report layer: pure Python, instant, and countable.

A toy job is ``(x, offset)``; its record is ``y = x**2 + offset`` and agrees with the claim
``y = x**2`` exactly when ``offset == 0``. Each toy counts the jobs it actually ran, and can be
told to raise ``KeyboardInterrupt`` on its k-th run to simulate a crash mid-sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from llcgeo.reconcile.experiment import Experiment
from llcgeo.reconcile.model import Claim, ExperimentResult, Figure, Panel, Series


@dataclass(frozen=True)
class ToyJob:
    x: int
    offset: float = 0.0


class Toy:
    def __init__(self, name="toy", xs=(1, 2, 3, 4), offsets=None, interrupt_at=None):
        self.name = name
        self.xs = tuple(xs)
        self.offsets = dict(offsets or {})
        self.interrupt_at = interrupt_at
        self.ran: list[ToyJob] = []

    def jobs(self, scale):
        return tuple(ToyJob(x, self.offsets.get(x, 0.0)) for x in self.xs)

    def run(self, job, device):
        if self.interrupt_at is not None and len(self.ran) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.ran.append(job)
        y = job.x**2 + job.offset
        verdict = "agree" if job.offset == 0 else "disagree"
        reasons = [] if verdict == "agree" else [f"y is off by {job.offset}"]
        return {"x": job.x, "y": y, "verdict": verdict, "reasons": reasons, "tags": {"x": job.x}}

    def summarize(self, records):
        bad = [r for r in records if r["verdict"] != "agree"]
        claim = Claim(
            claim="y = x^2 for every x",
            prediction="x^2",
            measurement=f"{len(records) - len(bad)} of {len(records)} cases exact",
            verdict="disagree" if bad else "agree",
            note="; ".join(reason for r in bad for reason in r["reasons"]),
        )
        xs = tuple(float(r["x"]) for r in records)
        ys = tuple(float(r["y"]) for r in records)
        panel = Panel(
            "y against x",
            "x",
            "y",
            (
                Series("measured", xs, ys, yerr=tuple(0.1 for _ in xs)),
                Series("x^2", xs, tuple(x * x for x in xs), style="line"),
            ),
        )
        return ExperimentResult(
            name=self.name,
            title=f"Toy {self.name} <squares>",
            description="Checks that y = x^2 & nothing else.",
            claims=(claim,),
            rows=tuple(records),
            figure=Figure(self.name, (panel, panel)),
            notes=("A toy used to test the report layer.",),
        )

    def experiment(self) -> Experiment:
        return Experiment(self.name, f"Toy {self.name}", self.jobs, self.run, self.summarize)


@pytest.fixture(scope="session")
def toy():
    """The ``Toy`` class: ``toy(name=..., xs=..., offsets={x: offset}, interrupt_at=k)``."""
    return Toy
