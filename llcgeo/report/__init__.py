"""Sweeps and reports: the only part of llcgeo that writes files or draws.

:func:`run_experiments` runs (or reuses from the results store) every case of a list of
experiments and writes the report; :func:`write_report` writes one from results already in hand.
"""

from llcgeo.report.render import ReportMeta, ReportPaths, write_report
from llcgeo.report.runner import ProgressEvent, Report, resolve_device, run_experiments
from llcgeo.report.store import ResultStore, StoredCase

__all__ = [
    "ProgressEvent",
    "Report",
    "ReportMeta",
    "ReportPaths",
    "ResultStore",
    "StoredCase",
    "resolve_device",
    "run_experiments",
    "write_report",
]
