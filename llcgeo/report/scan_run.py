"""``llcgeo.scan_run``: a training run's checkpoints scanned, each kept in a store as it finishes.

Every checkpoint gets what :func:`llcgeo.scan` gives a trained network (each reader of each norm
certified, predicted, measured and judged) and the whole model's LLC at settings calibrated for
it (:mod:`llcgeo.scanner.training`). The run is a store of finished checkpoints
(:class:`~llcgeo.report.store.ResultStore`, one atomic record a checkpoint, keyed by its step,
the fingerprint of its parameters, the data, the loss and the settings): a rerun after a crash,
or after checkpoints were added, computes only what is not there. Checkpoints run as tasks of an
executor (:mod:`llcgeo.report.executors`), the same numbers on each for the same seed; every
checkpoint must have the first one's architecture, so each reader's rows follow one reader
across training.

>>> import tempfile, torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3, bias=False), nn.Linear(3, 2))
>>> x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
>>> run = scan_run([(0, model), (10, model)], x, model(x).detach(), out=tempfile.mkdtemp(),
...                measure=False)
>>> [(r.step, r.row.reader, r.row.high) for r in run.rows], run.computed
([(0, '2.weight', '3'), (10, '2.weight', '3')], 2)
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import llcgeo
from llcgeo.config import ScanSettings, WholeModelSettings
from llcgeo.errors import ScanError, SpecError
from llcgeo.limits import with_budget
from llcgeo.numerics.device import resolve_device
from llcgeo.numerics.paths.data import checked_data  # not re-exported by llcgeo.numerics
from llcgeo.report.executors import InProcess, Task
from llcgeo.report.files import prepare_folder
from llcgeo.report.store import ResultStore, code_fingerprint, exclusive
from llcgeo.scanner.checkpoint import (
    CheckpointResult,
    Trace,
    architecture,
    architecture_difference,
    checkpoint_of,
    digest,
    fingerprint,
)
from llcgeo.scanner.reader import evaluation_rows, subset
from llcgeo.scanner.rows import ScanRow
from llcgeo.scanner.run import sendable
from llcgeo.scanner.training import CheckpointJob, checkpoint_module, measure_checkpoint
from llcgeo.serialize import stable_hash

STORED = "checkpoints"  # the store's folder of checkpoint records
DEFAULT_WHOLE = WholeModelSettings()


@dataclass(frozen=True)
class RunRow:
    """One reader at one checkpoint: the row :func:`llcgeo.scan` gives it there, and the loss
    traces of the chains that measured it (``None`` where it was not measured)."""

    step: int
    checkpoint: str
    row: ScanRow
    trace: Trace | None

    def to_arviz(self):
        """The traces as ArviZ ``InferenceData`` (:func:`llcgeo.report.arviz.to_arviz`)."""
        from llcgeo.report.arviz import to_arviz

        return to_arviz(self)


@dataclass(frozen=True)
class RunProgress:
    """A checkpoint finished: ``done`` of ``total`` (``reused`` of them from the store), the
    seconds so far and, from the pace of those computed, about how many are left."""

    done: int
    total: int
    reused: int
    checkpoint: CheckpointResult
    elapsed: float
    remaining: float | None


class ScanRun:
    """A scanned training run: ``checkpoints`` in step order (each with its scan, the whole
    model's LLC and the traces), ``rows`` (one per checkpoint, norm and reader), ``report``
    and ``to_arviz``; ``computed`` checkpoints were measured by this call, the rest reused."""

    def __init__(self, checkpoints, *, computed: int = 0, problems=(), seconds: float = 0.0):
        self.checkpoints: tuple[CheckpointResult, ...] = tuple(checkpoints)
        self.computed = computed
        self.reused = len(self.checkpoints) - computed
        self.problems = tuple(problems)
        self.seconds = seconds

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(c.step for c in self.checkpoints)

    @property
    def rows(self) -> tuple[RunRow, ...]:
        return tuple(RunRow(c.step, c.name, row, trace) for c in self.checkpoints
                     for row, trace in zip(c.scan.rows, c.traces))  # fmt: skip

    def table(self) -> list[dict]:
        """One readable dict a row: each checkpoint's whole model, then its readers."""
        from llcgeo.report.run_report import table

        return table(self)

    def report(self, out):
        """Write ``run.md``, ``run.html``, ``run.json``, ``run.csv`` and ``run.png`` into
        ``out`` (all of them or, on a failure, none)."""
        from llcgeo.report.run_report import write

        return write(self, out)

    def to_arviz(self) -> dict:
        """Every estimate's traces as ArviZ ``InferenceData``, keyed ``(step, "whole model")``
        and ``(step, reader)`` (:func:`llcgeo.report.arviz.to_arviz`)."""
        from llcgeo.report.arviz import to_arviz

        return to_arviz(self)


@with_budget
def scan_run(checkpoints, inputs, targets=None, *, out, loss="gaussian", device="auto",
             executor=None, progress: Callable[[RunProgress], None] | None = None,
             measure: bool = True, whole: WholeModelSettings | None = DEFAULT_WHOLE,
             **settings) -> ScanRun:  # fmt: skip
    """Scan every checkpoint of a training run (see the module's note) and keep each in the
    store at ``out``. ``checkpoints``: a folder of ``.pt2`` files (the step is the last integer
    of each name), ``.pt2`` paths, or ``(step, model or path)`` pairs. ``settings`` are the
    fields of :class:`~llcgeo.scanner.ScanSettings` (one seed for every checkpoint: each
    checkpoint's rows are those of ``llcgeo.scan`` with it); ``whole`` says how the whole
    model's LLC is calibrated (``None``: not estimated); ``measure=False`` samples nothing.
    ``progress(RunProgress)`` follows the checkpoints; ``executor`` (one of
    :mod:`llcgeo.report.executors`) runs them, by default in this process."""
    began = time.perf_counter()
    chosen = ScanSettings.of(**settings, measure=measure)
    if whole is not None and not isinstance(whole, WholeModelSettings):
        raise SpecError(f"whole must be a WholeModelSettings or None, got {type(whole).__name__}")
    _check_sendable(loss, executor)
    device = str(resolve_device(device))
    x, y = checked_data(inputs, targets)
    x, y = subset(x, y, evaluation_rows(y.shape[0], chosen.rows, chosen.seed))
    listed = listed_checkpoints(checkpoints)
    folder = prepare_folder(out)
    with exclusive(folder):
        store = ResultStore(folder, _version())
        plan = _plan(listed, CheckpointJob(0, "", None, "", x, y, loss, chosen, whole), store)
        results, computed = _execute(plan, store, executor or InProcess(), device, progress,
                                     began)  # fmt: skip
    _check_readers(results)
    return ScanRun(results, computed=computed, problems=store.problems,
                   seconds=time.perf_counter() - began)  # fmt: skip


# --- which checkpoints ----------------------------------------------------------------------


def listed_checkpoints(checkpoints) -> list[tuple[int, str, object]]:
    """``(step, name, model or path)`` for each checkpoint, in step order; a step given twice,
    or a file name without a step, is refused."""
    if isinstance(checkpoints, (str, Path)):
        checkpoints = checkpoints_in(checkpoints)
    listed = [_listed(item) for item in checkpoints]
    if not listed:
        raise ScanError("no checkpoints to scan")
    steps = [step for step, _, _ in listed]
    twice = sorted({s for s in steps if steps.count(s) > 1})
    if twice:
        raise ScanError(f"step {twice[0]} is given by more than one checkpoint")
    return sorted(listed, key=lambda item: item[0])


def checkpoints_in(folder) -> list[Path]:
    """The ``.pt2`` files in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScanError(f"{folder}: not a folder of checkpoints")
    found = sorted(p for p in folder.iterdir() if p.suffix == ".pt2" and p.is_file())
    if not found:
        raise ScanError(f"{folder}: no .pt2 checkpoints in it")
    return found


def step_of(path) -> int:
    """The training step a checkpoint file's name gives: its last integer.

    >>> step_of("runs/step_000100.pt2"), step_of("ckpt-3-of-7-2500.pt2")
    (100, 2500)
    """
    numbers = re.findall(r"\d+", Path(path).stem)
    if not numbers:
        raise ScanError(f"{path}: no step in its name (name checkpoints like step_000100.pt2)")
    return int(numbers[-1])


def _listed(item) -> tuple[int, str, object]:
    if isinstance(item, (str, Path)):
        return step_of(item), Path(item).name, Path(item)
    step, model = item
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ScanError(f"a checkpoint's step must be a non-negative integer, got {step!r}")
    name = Path(model).name if isinstance(model, (str, Path)) else f"step {step}"
    return step, name, Path(model) if isinstance(model, (str, Path)) else model


# --- the store -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    job: CheckpointJob
    key: str
    identity: dict
    stored: CheckpointResult | None


def _plan(listed, shared: CheckpointJob, store: ResultStore) -> list[_Planned]:
    """Each checkpoint loaded once here, held to the first one's architecture, fingerprinted
    and looked up in the store."""
    first, plan = None, []
    data = _data_fingerprint(shared.x, shared.y)
    for step, name, source in listed:
        module = checkpoint_module(source)
        shape = architecture(module)
        first = first or (name, shape)
        difference = architecture_difference(first[1], shape)
        if difference:
            raise ScanError(f"{name}: not the architecture of {first[0]}: {difference}")
        job = _job(shared, step, name, source if isinstance(source, Path) else module, module)
        identity = {"step": step, "fingerprint": job.fingerprint, "data": data,
                    "loss": loss_name(shared.loss), "settings": shared.settings,
                    "whole": shared.whole}  # fmt: skip
        key = stable_hash(identity, store.version)
        plan.append(_Planned(job, key, identity, _stored(store, key, identity)))
    return plan


def _job(shared: CheckpointJob, step: int, name: str, source, module) -> CheckpointJob:
    return replace(shared, step=step, name=name, source=source, fingerprint=fingerprint(module))


def _stored(store: ResultStore, key: str, identity: dict) -> CheckpointResult | None:
    """The stored checkpoint, or ``None`` (absent, untrusted, or written by other code: noted
    in the store's problems, and computed again)."""
    case = store.load(STORED, key, identity)
    if case is None:
        return None
    try:
        return checkpoint_of(case.record)
    except (KeyError, TypeError, ValueError) as error:
        store.problems.append(f"{store.path(STORED, key)}: its record does not load ({error}); "
                              "the checkpoint was measured again")  # fmt: skip
        return None


def _execute(plan, store, executor, device: str, progress, began: float):
    """Run the checkpoints not stored, each saved the moment it comes back; ``(results in
    step order, how many were computed)``."""
    results = {i: p.stored for i, p in enumerate(plan) if p.stored is not None}
    # the latest first: minima, whose whole-model LLC is estimated, take longest, and a pool
    # that starts the longest tasks first finishes soonest
    tasks = [Task(i, measure_checkpoint, p.job, device) for i, p in reversed(list(enumerate(plan)))
             if p.stored is None]  # fmt: skip
    spent: list[float] = []
    for index, record, seconds in executor.results(tasks):
        planned = plan[index]
        case = store.save(STORED, planned.key, planned.identity, record, seconds=seconds)
        results[index] = checkpoint_of(case.record)
        spent.append(seconds)
        if progress is not None:
            left = sum(spent) / len(spent) * (len(tasks) - len(spent)) / max(1, executor.workers)
            progress(RunProgress(len(plan) - len(tasks) + len(spent), len(plan),
                                 len(plan) - len(tasks), results[index],
                                 time.perf_counter() - began, left))  # fmt: skip
    return [results[i] for i in range(len(plan))], len(tasks)


def _check_readers(results: list[CheckpointResult]) -> None:
    """Every checkpoint traced to the first one's norms and readers (the architecture check
    makes this so; a checkpoint that is not is refused by name)."""
    pairs = [tuple((r.norm, r.reader) for r in c.scan.rows) for c in results]
    for checkpoint, found in zip(results, pairs):
        if found != pairs[0]:
            raise ScanError(f"{checkpoint.name}: its norms and readers are not those of "
                            f"{results[0].name}")  # fmt: skip


def _check_sendable(loss, executor) -> None:
    """A loss for worker processes must pickle (:func:`~llcgeo.scanner.run.sendable`)."""
    if executor is not None and not isinstance(executor, InProcess):
        sendable(loss)


def loss_name(loss) -> str:
    """The loss in words that stay the same from one run to the next (a store's key)."""
    if isinstance(loss, str):
        return loss
    if hasattr(loss, "__qualname__"):  # a function
        return f"{loss.__module__}.{loss.__qualname__}"
    kind = type(loss)  # an object such as llcgeo's CrossEntropy: its class and its settings
    return f"{kind.__module__}.{kind.__qualname__}{sorted(getattr(loss, '__dict__', {}).items())}"


def _data_fingerprint(x, y) -> str:
    named = sorted(x.items()) if isinstance(x, dict) else [("inputs", x)]
    return digest([*named, ("targets", y)])


def _version() -> str:
    """The package version and a hash of the code that computes a record: the store's own
    (:func:`~llcgeo.report.store.code_fingerprint`, which reads top-level modules only) and
    every module of the scanner and of numerics' rooms, and these settings'."""
    package = Path(llcgeo.__file__).resolve().parent
    hashed = hashlib.sha256()
    computing = [*(package / "scanner").rglob("*.py"), *(package / "numerics").rglob("*.py")]
    for path in sorted(computing) + [package / "config.py"]:
        hashed.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    return f"{llcgeo.__version__}+{code_fingerprint()}+{hashed.hexdigest()[:12]}"
