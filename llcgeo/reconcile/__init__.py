"""Theory and measurement side by side: cases, verdicts, statistics and calibration (the judging
core that the suites, hypothesis files and scans build on).

Each name loads its module on first use, so importing one module of this package (the data
model, say, to validate a hypothesis file) loads no torch.
"""

from importlib import import_module

_EXPORTS = {
    "reconcile_case": "llcgeo.reconcile.cases",
    "SCALES": "llcgeo.reconcile.experiment",
    "Experiment": "llcgeo.reconcile.experiment",
    "Case": "llcgeo.reconcile.model",
    "CaseResult": "llcgeo.reconcile.model",
    "Claim": "llcgeo.reconcile.model",
    "ExperimentResult": "llcgeo.reconcile.model",
    "Figure": "llcgeo.reconcile.model",
    "Panel": "llcgeo.reconcile.model",
    "Series": "llcgeo.reconcile.model",
    "ESS_MIN": "llcgeo.reconcile.verdict",
    "RHAT_MAX": "llcgeo.reconcile.verdict",
    "THRESHOLDS_MARKDOWN": "llcgeo.reconcile.verdict",
    "Z_AGREE": "llcgeo.reconcile.verdict",
    "decide": "llcgeo.reconcile.verdict",
    "limit": "llcgeo.reconcile.verdict",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llcgeo.reconcile' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})
