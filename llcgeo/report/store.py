"""The results store: one JSON file per finished case, so sweeps survive interruption.

A case lives at ``<root>/<experiment>/<key>.json`` with ``key = Experiment.job_key(job,
version)``, a hash of the job's full spec and the package version; a changed setting changes the
key and so only the cases it touches are recomputed. Every file is written atomically and checked
when read back: a file that cannot be trusted is reported (:attr:`ResultStore.problems`) and
treated as missing, so the case is recomputed and the file replaced.

>>> import tempfile, pathlib
>>> store = ResultStore(pathlib.Path(tempfile.mkdtemp()), version="0.1.0")
>>> store.save("toy", "abc", {"x": 1}, {"y": (1, 2)}, seconds=0.5).record
{'y': [1, 2]}
>>> store.load("toy", "abc", {"x": 1}).record
{'y': [1, 2]}
>>> store.load("toy", "new", {"x": 2}) is None, store.problems
(True, [])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llcgeo.report.files import write_atomic
from llcgeo.serialize import dumps_exact, loads_exact, to_jsonable

FIELDS = ("key", "experiment", "version", "job", "record")


@dataclass(frozen=True)
class StoredCase:
    """One finished case as stored: its job (plain JSON), record and compute time."""

    experiment: str
    key: str
    job: Any
    record: dict[str, Any]
    seconds: float = 0.0


class ResultStore:
    """Finished cases on disk, keyed by experiment and job hash.

    ``problems`` collects one message per untrusted file found by :meth:`load` (naming the file
    and what was wrong), for the report and the command line.
    """

    def __init__(self, root: Path, version: str):
        self.root = Path(root)
        self.version = version
        self.problems: list[str] = []

    def path(self, experiment: str, key: str) -> Path:
        return self.root / experiment / f"{key}.json"

    def load(self, experiment: str, key: str, job: Any) -> StoredCase | None:
        """The stored case of this job, or ``None`` when absent or not trustworthy."""
        path = self.path(experiment, key)
        if not path.exists():
            return None
        entry, problem = _read(path)
        if problem is None:
            problem = _mismatch(entry, key, experiment, self.version, to_jsonable(job))
        if problem is not None:
            self.problems.append(f"{path}: {problem}; the case was recomputed")
            return None
        seconds = entry.get("seconds")
        seconds = float(seconds) if isinstance(seconds, (int, float)) else 0.0
        return StoredCase(experiment, key, entry["job"], entry["record"], seconds)

    def save(
        self, experiment: str, key: str, job: Any, record: dict[str, Any], *, seconds: float
    ) -> StoredCase:
        """Store a finished case atomically; returns it as it will read back.

        Records pass through JSON on the first run exactly as on a rerun (tuples become lists),
        so a summary never depends on whether its cases were just computed or reused.
        """
        if not isinstance(record, dict):
            raise TypeError(
                f"experiment {experiment!r} returned a {type(record).__name__}, not a dict"
            )
        entry = {
            "key": key,
            "experiment": experiment,
            "version": self.version,
            "job": to_jsonable(job),
            "record": record,
            "seconds": seconds,
        }
        try:
            text = dumps_exact(entry)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"experiment {experiment!r} returned a record that is not plain JSON: {err}"
            ) from None
        path = self.path(experiment, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text + "\n")
        back = loads_exact(text)
        return StoredCase(experiment, key, back["job"], back["record"], float(seconds))


def _read(path: Path) -> tuple[dict[str, Any], str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return {}, f"unreadable ({err})"
    if not text.strip():
        return {}, "empty file"
    try:
        entry = loads_exact(text)
    except json.JSONDecodeError as err:
        return {}, f"not valid JSON, perhaps truncated ({err.msg} at line {err.lineno})"
    except ValueError as err:
        return {}, f"not strict JSON ({err})"
    if not isinstance(entry, dict):
        return {}, f"holds a JSON {type(entry).__name__}, not an object"
    return entry, None


def _mismatch(entry: dict, key: str, experiment: str, version: str, job: Any) -> str | None:
    missing = [name for name in FIELDS if name not in entry]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    expected = {"key": key, "experiment": experiment, "version": version}
    for name, value in expected.items():
        if entry[name] != value:
            return f"its {name} is {entry[name]!r}, expected {value!r}"
    if entry["job"] != job:
        return "its job differs from the case it is filed under"
    if not isinstance(entry["record"], dict):
        return "its record is not a JSON object"
    return None
