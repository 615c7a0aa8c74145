"""One checkpoint of a training run, measured where a task runs (this process or a worker).

:func:`measure_checkpoint` loads the checkpoint (a ``torch.export`` file only through
:func:`llcgeo.scanner.files.load_program`, or the module it was given), checks that it is the
one the caller fingerprinted, scans it exactly as :func:`llcgeo.scan` would with the same
settings and seed (:func:`~llcgeo.scanner.run_scan`, in this process), and estimates the whole
model's LLC at settings :func:`llcgeo.calibrate` gives for this checkpoint. The chains' loss
traces come back thinned (:class:`~llcgeo.scanner.checkpoint.Trace`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from llcgeo.config import KEPT_DRAWS, ScanSettings, SGLDConfig, WholeModelSettings
from llcgeo.errors import LLCGeoError, ScanError, in_brief
from llcgeo.reconcile.model import EstimateSummary
from llcgeo.scanner.checkpoint import CheckpointResult, Trace, WholeModel, fingerprint
from llcgeo.scanner.files import load_program
from llcgeo.scanner.run import run_scan


@dataclass(frozen=True)
class CheckpointJob:
    """One checkpoint for a task: a ``.pt2`` path (read in the task) or a module, its step,
    name and fingerprint, the data (the scan's evaluation rows), the loss and the settings;
    ``whole=None`` skips the whole model's LLC."""

    step: int
    name: str
    source: Any  # a pathlib.Path of a .pt2 file, or a torch.nn.Module
    fingerprint: str
    x: Any
    y: torch.Tensor
    loss: Any
    settings: ScanSettings
    whole: WholeModelSettings | None


def checkpoint_module(source) -> torch.nn.Module:
    """The checkpoint's module: a ``.pt2`` file checked member by member before torch reads it,
    or the module itself."""
    if isinstance(source, torch.nn.Module):
        return source
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*treespec", FutureWarning)  # torch's own, on load
        return load_program(Path(source))


def measure_checkpoint(job: CheckpointJob, device: str) -> CheckpointResult:
    """The checkpoint's scan, whole-model LLC and traces (see the module's note)."""
    module = checkpoint_module(job.source)
    if fingerprint(module) != job.fingerprint:
        raise ScanError(f"{job.name}: the checkpoint changed after the run read it; run again")
    scan, traces = scanned(module, job.x, job.y, job.loss, job.settings, device)
    measured = job.settings.measure and job.whole is not None
    whole = (whole_model(module, job.x, job.y, job.loss, job.settings, job.whole, device)
             if measured else WholeModel(refused="not estimated"))  # fmt: skip
    return CheckpointResult(job.step, job.name, job.fingerprint, scan, whole, traces)


def scanned(module, x, y, loss, settings: ScanSettings, device: str, *, progress=None,
            sampling=None, kept: int | None = KEPT_DRAWS):  # fmt: skip
    """``(scan result, traces)``: :func:`~llcgeo.scanner.run_scan` in this process, and the
    trace of each row's measured estimate, thinned to ``kept`` draws a chain (``None``: every
    draw), or ``None`` for a row without one."""
    estimates: dict = {}
    result = run_scan(module, x, y, loss=loss, settings=settings, device=device,
                      progress=progress, sampling=sampling,
                      keep=estimates.__setitem__)  # fmt: skip
    traces = tuple(Trace.of_estimate(estimates[i], kept)
                   if row.estimate is not None and i in estimates else None
                   for i, row in enumerate(result.rows))  # fmt: skip
    return result, traces


def whole_model(module, x, y, loss, settings: ScanSettings, whole: WholeModelSettings,
                device: str) -> WholeModel:  # fmt: skip
    """:func:`llcgeo.estimate_llc` at the settings :func:`llcgeo.calibrate` gives for this
    checkpoint, on the scan's rows and with its seed; a refusal (a checkpoint that is not a
    minimum, a run past the budget) is kept, in its words."""
    from llcgeo.numerics import estimate_llc
    from llcgeo.reconcile.calibration import calibrate

    config = None
    try:
        c = calibrate(module, x, y, config=SGLDConfig(chains=whole.chains, dtype=settings.dtype),
                      loss=loss, device=device, bias=whole.bias, localization=whole.localization,
                      se=whole.se, lanczos_steps=whole.lanczos_steps, singular=whole.singular,
                      seed=settings.seed)  # fmt: skip
        config = replace(c.config, nbeta=c.nbeta)
        e = estimate_llc(module, x, y, config=config, loss=loss, device=device, seed=settings.seed)
    except LLCGeoError as error:
        return WholeModel(config=config, refused=str(error))
    except (RuntimeError, ValueError, TypeError) as error:  # torch, on this model
        return WholeModel(config=config, refused=f"torch failed on the model ({in_brief(error)})")
    return WholeModel(EstimateSummary.of(e), config, tuple(c.recommendation.reasons),
                      tuple(e.warnings), "", Trace.of_estimate(e))  # fmt: skip
