"""Loss traces as ArviZ ``InferenceData``: what llcgeo's R-hat and ESS summarize, for ArviZ's own
diagnostics and plots (``az.summary``, ``az.plot_trace``, ``az.rhat``, ``az.ess``).

Each export's posterior holds two variables over ``(chain, draw)``: ``loss``, the loss ``L(w_k)``
each chain recorded after its burn-in, and ``llc``, ``nbeta (L(w_k) - L(w*))``, whose mean over
chains and draws is the estimate. Diverged chains are left out, as the estimate leaves them out
(its R-hat and ESS are of the kept chains); ``attrs`` say which, with ``nbeta``, ``init_loss``,
the burn-in and the thinning stride. ArviZ is optional: it is imported here, on use.

>>> import numpy as np
>>> data = to_arviz(np.zeros((2, 5)))
>>> dict(data.posterior.sizes)
{'chain': 2, 'draw': 5}
"""

from __future__ import annotations

import numpy as np

from llcgeo.errors import SpecError
from llcgeo.numerics import LLCEstimate
from llcgeo.scanner.checkpoint import Trace, WholeModel
from llcgeo.scanner.rows import ScanRow

WHOLE = "whole model"  # the key of a checkpoint's whole-model estimate in a run's export


def to_arviz(source):
    """``source`` as ``InferenceData``: an :class:`~llcgeo.numerics.LLCEstimate` (every draw),
    a run's :class:`~llcgeo.scanner.checkpoint.Trace`, a run's row or whole-model estimate, or
    a ``(chains, draws)`` array of losses; a :class:`~llcgeo.report.scan_run.ScanRun` gives a
    dict of them keyed ``(step, "whole model")`` and ``(step, reader)``."""
    from llcgeo.report.scan_run import RunRow, ScanRun

    if isinstance(source, ScanRun):
        return _of_run(source)
    if isinstance(source, LLCEstimate):
        return _of_trace(Trace.of_estimate(source, kept=None), seed=source.seed,
                         mean=source.mean, se=source.se)  # fmt: skip
    if isinstance(source, (RunRow, WholeModel)):
        return _of_trace(_present(source.trace, source))
    if isinstance(source, Trace):
        return _of_trace(source)
    if isinstance(source, ScanRow):
        raise SpecError("a scan's rows keep no traces: export the scan's (llcgeo.scan(...)"
                        ".to_arviz()) or a run's rows' (llcgeo.scan_run)")  # fmt: skip
    losses = np.asarray(source, dtype=np.float64)
    if losses.ndim != 2:
        raise SpecError(f"a loss trace is a (chains, draws) array; got shape {losses.shape}")
    return _inference_data({"loss": losses}, {})


def _of_run(run) -> dict:
    exported = {}
    for c in run.checkpoints:
        if c.model.trace is not None:
            exported[(c.step, WHOLE)] = _of_trace(c.model.trace)
        for row, trace in zip(c.scan.rows, c.traces):
            if trace is not None:
                exported[(c.step, row.reader)] = _of_trace(trace)
    return exported


def _present(trace: Trace | None, source) -> Trace:
    if trace is None:
        why = getattr(source, "refused", "") or "it was not measured"
        raise SpecError(f"no loss trace to export: {why}")
    return trace


def _of_trace(trace: Trace, **attrs):
    losses = trace.array()
    kept = [c for c in range(losses.shape[0]) if c not in trace.diverged]
    losses = losses[kept]
    variables = {"loss": losses, "llc": trace.nbeta * (losses - trace.init_loss)}
    attrs.update(nbeta=trace.nbeta, init_loss=trace.init_loss, burnin=trace.burnin,
                 thinning_stride=trace.stride,
                 diverged_chains_left_out=list(trace.diverged))  # fmt: skip
    return _inference_data(variables, attrs)


def _inference_data(variables: dict, attrs: dict):
    try:
        import arviz
    except ImportError:
        raise SpecError(
            'to_arviz needs ArviZ, which llcgeo does not install by itself: pip install -e '
            '".[arviz]" (or pip install arviz)'
        ) from None
    return arviz.from_dict(posterior=variables, attrs=attrs)
