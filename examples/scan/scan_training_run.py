"""Scan a training run: the LLC and the certified drop across checkpoints (``llcgeo.scan_run``).

Trains a small pre-norm network (an embedding, one residual MLP block behind a norm, a final
norm and a linear head) on a teacher-student regression, from initialization to convergence,
once with LayerNorm and once with RMSNorm, and saves 8 checkpoints of each as ``torch.export``
programs (``step_000000.pt2`` ... ``step_003000.pt2``, log-spaced steps). Then scans each run:
every checkpoint's readers (the block's up-projection reads the block's norm, the head reads
the final norm) certified, predicted and measured, and the whole model's LLC at settings
calibrated for that checkpoint (early checkpoints, saddles rather than minima, are refused by
``llcgeo.calibrate``, in its words). Each run's report goes to ``OUT/<norm>``, its store (the
finished checkpoints) to ``OUT/<norm>/store``: run it again and nothing is measured twice.

    python examples/scan/scan_training_run.py OUT [--workers 2] [--quick]

``--quick`` certifies the first checkpoints only and samples nothing (a smoke run).

The command line scans the same folder with the data file this writes (the whole model at
calibrate's default targets, so with longer chains):

    llcgeo scan OUT/layernorm/checkpoints --data OUT/layernorm/data.pt --out OUT/cli \
        --chains 16 --draws 1000 --whole-chains 8 --singular warn

Both runs took 13 min 19 s on 2 cores shared with another scan (load average about 4; 11 min
38 s of CPU time in all, so about 6 minutes on two idle cores): the whole model's chains are long
enough for the bulk ESS rule (up to 8 x 31 000 steps at the trained checkpoints).
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import llcgeo
from llcgeo.config import WholeModelSettings
from llcgeo.report.executors import make_executor

CHECKPOINT_STEPS = (0, 3, 10, 30, 100, 300, 1000, 3000)
SAMPLES, NOISE = 128, 0.1
# sized for minutes on two cores: the scan's 16 chains (as many cost little more than a few on
# a model this small) at most 1000 draws each; the whole model at a 10% step-size bias and
# standard error, with calibrate's quadratic gamma ("warn") instead of its sweep over gamma,
# which alone would take minutes a checkpoint
SCAN = dict(chains=16, draws=1000, seed=0)
WHOLE = WholeModelSettings(chains=8, bias=0.1, se=0.1, singular="warn")


class PreNorm(nn.Module):
    """``x -> h = E x;  h + W_down tanh(W_up norm(h));  head(norm'(h))``."""

    def __init__(self, norm: str, inputs: int = 3, width: int = 4, hidden: int = 4,
                 outputs: int = 2):  # fmt: skip
        super().__init__()
        kind = {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm}[norm]
        self.embed = nn.Linear(inputs, width)
        self.norm = kind(width)
        self.up, self.down = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.final = kind(width)
        self.head = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.down(torch.tanh(self.up(self.norm(h))))
        return self.head(self.final(h))


def teacher_data(norm: str):
    """Inputs, and a teacher of the same kind's outputs with Gaussian noise, from fixed seeds."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, 3, generator=g, dtype=torch.float64)
    torch.manual_seed(1)  # nn's initializers draw from the global generator
    teacher = PreNorm(norm).double()
    with torch.no_grad():
        y = teacher(x) + NOISE * torch.randn(SAMPLES, 2, generator=g, dtype=torch.float64)
    return x, y


def train(norm: str, x, y, folder: Path, steps=CHECKPOINT_STEPS) -> list[Path]:
    """Full-batch Adam from a seeded initialization, exported at each of ``steps``."""
    torch.manual_seed(2)
    model = PreNorm(norm).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for step in range(steps[-1] + 1):
        if step in steps:
            saved.append(export(model, x, folder / f"step_{step:06d}.pt2"))
        optimizer.zero_grad()
        (0.5 * ((model(x) - y) ** 2).sum(1).mean()).backward()
        optimizer.step()
    return saved


def export(model: nn.Module, x, path: Path) -> Path:
    """A ``torch.export`` program with a free batch dimension, as ``llcgeo scan`` reads it."""
    frozen = copy.deepcopy(model).eval()
    program = torch.export.export(frozen, (x[:2],), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    torch.export.save(program, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder the reports (and stores) go to")
    parser.add_argument("--workers", type=int, default=None, help="default: the cores")
    parser.add_argument("--quick", action="store_true",
                        help="checkpoints to step 30, certified only (a smoke run)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)  # torch's own, on export
    torch.set_num_threads(1)  # a model this small trains faster on one thread than on two
    with make_executor("auto", args.workers) as executor:  # one pool for both runs
        for norm in ("layernorm", "rmsnorm"):
            scan_one_run(norm, args.out, executor, args.quick)


def scan_one_run(norm: str, out: Path, executor, quick: bool) -> None:
    """Train with ``norm``, export the checkpoints, scan the run and write its report."""
    x, y = teacher_data(norm)
    began = time.perf_counter()
    steps = tuple(s for s in CHECKPOINT_STEPS if s <= 30) if quick else CHECKPOINT_STEPS
    paths = train(norm, x, y, out / norm / "checkpoints", steps)
    torch.save({"inputs": x, "targets": y}, out / norm / "data.pt")  # for the command line
    trained = time.perf_counter() - began
    run = llcgeo.scan_run(paths, x, y, out=out / norm / "store", executor=executor, whole=WHOLE,
                          progress=_progress, measure=not quick, **SCAN)  # fmt: skip
    report = run.report(out / norm)
    print(f"{norm}: {len(paths)} checkpoints trained in {trained:.0f} s, scanned in "
          f"{run.seconds:.0f} s ({run.computed} measured, {run.reused} reused): "
          f"{report.markdown}")  # fmt: skip


def _progress(event) -> None:
    c = event.checkpoint
    whole = c.model.estimate
    llc = "refused" if whole is None else f"{whole.mean:.2f} +- {whole.se:.2f}"
    readers = ", ".join(f"{r.reader} {r.verdict}" for r in c.scan.rows)
    left = "" if event.remaining is None else f", about {event.remaining:.0f} s left"
    print(f"  step {c.step}: whole model {llc}; {readers} ({event.elapsed:.0f} s{left})")


if __name__ == "__main__":
    main()
