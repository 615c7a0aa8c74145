"""``llcgeo scan``: every norm of a trained network and every linear map that reads it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from llcgeo.commands._common import (
    add_device_argument,
    add_executor_arguments,
    executor_from_args,
    print_columns,
    print_note,
    print_table,
    step_progress,
)
from llcgeo.config import REFINES, SINGULAR_MODES, ScanSettings, WholeModelSettings, check_device

DEFAULTS = ScanSettings()
WHOLE = WholeModelSettings()
SETTINGS = ("chains", "draws", "steps", "rows", "hessian_directions", "nbeta_factor", "nbeta",
            "eps", "gamma", "refine", "seed")  # fmt: skip

DESCRIPTION = """\
Scan a trained network: find each normalization (LayerNorm, RMSNorm) and every linear map
that reads its output, certify the reader's exactly flat directions from the norm's trained
gain and bias, predict its weight-refined LLC (exact, or a proven interval), measure it with
SGLD and judge the two. Writes scan.md, scan.html, scan.json, scan.csv and scan.png.

A training run: give a folder of checkpoints (CKPT_DIR, its .pt2 files named by step, e.g.
step_000100.pt2: the step is the last integer of the name) or several .pt2 files. Each
checkpoint is scanned as above, and the whole model's LLC estimated at settings calibrated for
it; each finished checkpoint is kept in DIR/store, so a rerun (after a crash, or with more
checkpoints) measures only the new ones. Writes run.md, run.html, run.json, run.csv and
run.png, the LLC and each reader's wrLLC against the training step.

Only safe formats are loaded, never a pickled object: each file is read once and checked
member by member before torch or numpy reads it, and anything they would unpickle or run is
refused, unread, naming the member:
  MODEL  a torch.export program (.pt2, from torch.export.save of torch >= 2.8), exported with
         a free batch dimension (torch.export.Dim) so that any number of samples can pass
  DATA   tensors: a .pt file from torch.save, read with torch.load(weights_only=True),
         holding a dict {"inputs": ..., "targets": ...} (inputs may be a dict of dense
         tensors), or a .npz file with numeric arrays "inputs" and "targets"
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan a trained network: each norm, each linear reader, predicted and measured",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="+", metavar="MODEL.pt2",
                        help="a torch.export program; or a folder of them (CKPT_DIR), or "
                        "several: the checkpoints of a training run")  # fmt: skip
    parser.add_argument("--data", required=True, metavar="DATA", help=".pt (tensors) or .npz")
    parser.add_argument("--loss", default="gaussian", choices=("gaussian", "cross_entropy"))
    parser.add_argument("--label-smoothing", type=float, default=0.0,
                        help="for the cross-entropy (a trained classifier needs some for its "
                        "loss to have a minimum)")  # fmt: skip
    parser.add_argument("--out", required=True, metavar="DIR", help="the report's folder")
    parser.add_argument("--refine", default=DEFAULTS.refine, choices=REFINES)
    parser.add_argument("--chains", type=int, default=DEFAULTS.chains)
    parser.add_argument("--draws", type=int, default=DEFAULTS.draws,
                        help="at most, a chain (the ESS rule sets how many)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=DEFAULTS.steps,
                        help="each chain's steps in all (default: the theory's burn-in and the "
                        "draws the ESS rule needs)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=DEFAULTS.rows,
                        help="samples the loss is taken on")  # fmt: skip
    parser.add_argument("--hessian-directions", type=int, default=DEFAULTS.hessian_directions,
                        help="the largest quotient of a reader inside the network whose Hessian "
                        "is computed whole; a larger one is measured on a block of this size (a "
                        "head the cross-entropy reads: whole up to at least the default, from "
                        "its structure)")  # fmt: skip
    parser.add_argument("--nbeta-factor", type=float, default=DEFAULTS.nbeta_factor,
                        help="nbeta = factor n / log n (colder keeps the loss nearer "
                        "quadratic)")  # fmt: skip
    parser.add_argument("--nbeta", type=float, default=DEFAULTS.nbeta,
                        help="a fixed nbeta (kept as given, never raised)")  # fmt: skip
    parser.add_argument("--eps", type=float, default=DEFAULTS.eps,
                        help="the step, in whitened coordinates (default: from the exact "
                        "theory)")  # fmt: skip
    parser.add_argument("--gamma", type=float, default=DEFAULTS.gamma,
                        help="the localization, in whitened coordinates (default: from the "
                        "exact theory)")  # fmt: skip
    add_device_argument(parser)
    parser.add_argument("--no-measure", action="store_true", help="certificates only")
    parser.add_argument("--only", action="append", default=[], metavar="WEIGHT",
                        help="sample only this reader (its weight's name; a name no reader "
                        "has is refused); every reader is still refitted and "
                        "predicted")  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    add_executor_arguments(parser)
    _add_run_arguments(parser)
    parser.set_defaults(handler=run)


def _add_run_arguments(parser) -> None:
    g = parser.add_argument_group("a training run (a folder of checkpoints, or several)")
    g.add_argument("--no-whole", action="store_true",
                   help="skip the whole model's LLC at each checkpoint")  # fmt: skip
    g.add_argument("--whole-chains", type=int, default=WHOLE.chains,
                   help="chains of the whole model's estimate")  # fmt: skip
    g.add_argument("--singular", default=WHOLE.singular, choices=SINGULAR_MODES,
                   help="llcgeo calibrate's: auto sweeps gamma where more directions are flat "
                   "than a symmetry explains (long), warn keeps the quadratic choice")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.model]
    if len(paths) > 1 or paths[0].is_dir():
        return run_training(args, paths[0] if paths[0].is_dir() and len(paths) == 1 else paths)
    return run_one(args)


def _loss(args):
    from llcgeo.numerics import cross_entropy

    return cross_entropy(args.label_smoothing) if args.loss == "cross_entropy" else "gaussian"


def run_one(args: argparse.Namespace) -> int:
    """One trained network: its scan and report."""
    from llcgeo.report.executors import InProcess
    from llcgeo.report.formatting import format_seconds
    from llcgeo.report.scan import scan

    model = load_program(Path(args.model[0]))
    inputs, targets = load_data(Path(args.data))
    loss = _loss(args)

    began = time.perf_counter()

    def progress(done: int, total: int, row) -> None:
        elapsed = time.perf_counter() - began
        left = format_seconds(elapsed * (total - done) / done)
        so_far = format_seconds(elapsed)
        print(f"llcgeo scan: {done}/{total} {row.reader}: {row.verdict} ({so_far} so far, "
              f"about {left} left)", file=sys.stderr)  # fmt: skip

    def sampling(reader: str):
        return step_progress(sys.stderr, f"llcgeo scan: {reader}: sampling")

    with executor_from_args(args) as executor:
        here = isinstance(executor, InProcess)
        result = scan(model, inputs, targets, loss=loss, progress=progress,
                      sampling=sampling if here else None, executor=None if here else executor,
                      device=check_device(args.device), measure=not args.no_measure,
                      only=tuple(args.only), **{name: getattr(args, name) for name in SETTINGS})
    paths = result.report(args.out)
    for row in result.table():
        print_table(list(row.items()))
        print()
    print_note(f"report written to {paths.markdown}")
    return 0


def run_training(args: argparse.Namespace, checkpoints) -> int:
    """A training run: each checkpoint scanned (or found in the store), and the run's report."""
    from llcgeo.report.scan_run import scan_run

    inputs, targets = load_data(Path(args.data))
    whole = None if args.no_whole else WholeModelSettings(chains=args.whole_chains,
                                                          singular=args.singular)  # fmt: skip
    with executor_from_args(args) as executor:
        result = scan_run(checkpoints, inputs, targets, loss=_loss(args),
                          out=Path(args.out) / "store", device=check_device(args.device),
                          executor=executor, progress=_checkpoint_progress, whole=whole,
                          measure=not args.no_measure, only=tuple(args.only),
                          **{name: getattr(args, name) for name in SETTINGS})  # fmt: skip
    paths = result.report(args.out)
    print_columns(("step", "checkpoint", "whole model LLC", "readers"),
                  [_checkpoint_line(c) for c in result.checkpoints])  # fmt: skip
    print_note(f"{result.computed} checkpoints measured, {result.reused} reused from the store; "
               f"report written to {paths.markdown}")  # fmt: skip
    return 0


def _checkpoint_progress(event) -> None:
    from llcgeo.report.formatting import format_seconds

    step, _, whole, readers = _checkpoint_line(event.checkpoint)
    left = "" if event.remaining is None else f", about {format_seconds(event.remaining)} left"
    print(f"llcgeo scan: checkpoint {event.done}/{event.total} (step {step}): readers "
          f"{readers}; whole model {whole} "
          f"({format_seconds(event.elapsed)} so far{left})", file=sys.stderr)  # fmt: skip


def _checkpoint_line(c) -> tuple[str, str, str, str]:
    e = c.model.estimate
    whole = "-" if e is None else f"{e.mean:.2f} +- {e.se:.2f}"
    verdicts = [r.verdict for r in c.scan.rows]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
    return str(c.step), c.name, whole, counts


def load_program(path: Path):
    """The module of a ``torch.export`` program, checked member by member before torch reads
    it; anything else is refused, unread (:mod:`llcgeo.scanner.files`)."""
    from llcgeo.scanner.files import load_program

    return load_program(path)


def load_data(path: Path):
    """``(inputs, targets)`` from a ``.pt`` file of tensors or a ``.npz`` file of arrays, checked
    before torch or numpy reads it (:mod:`llcgeo.scanner.files`)."""
    from llcgeo.scanner.files import load_data

    return load_data(path)
