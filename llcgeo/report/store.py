"""The results store: one JSON file per finished case, so sweeps survive interruption.

A case lives at ``<root>/<experiment>/<key>.json`` with ``key = Experiment.job_key(job,
version)``, a hash of the job's full spec and ``version``, which the runner makes the package
version *and* a fingerprint of the code that computes results (:func:`code_fingerprint`), so a
changed setting or changed code recomputes exactly the cases it touches. Every file is written
atomically with a checksum of its content and checked when read back: a file that is not a
regular file, is larger than ``MAX_RECORD_BYTES``, does not parse, does not match its key or
fails its checksum (an edited number) is reported (:attr:`ResultStore.problems`) and treated as
missing, so the case is recomputed and the file replaced; what is not a regular file is first
moved aside. Temporary files that a killed run left behind are removed when a store opens.

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

import contextlib
import functools
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llcgeo.errors import SpecError
from llcgeo.limits import MAX_RECORD_BYTES
from llcgeo.report.files import TEMPORARY_SUFFIX, write_atomic
from llcgeo.serialize import dumps_exact, loads_exact, to_jsonable

FIELDS = ("key", "experiment", "version", "job", "record", "checksum")


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
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writes that never finished (the writer was killed)."""
        if not self.root.is_dir():
            return
        for path in self.root.glob(f"*/.*{TEMPORARY_SUFFIX}"):
            with contextlib.suppress(OSError):
                path.unlink()

    def path(self, experiment: str, key: str) -> Path:
        return self.root / experiment / f"{key}.json"

    def load(self, experiment: str, key: str, job: Any) -> StoredCase | None:
        """The stored case of this job, or ``None`` when absent or not trustworthy."""
        path = self.path(experiment, key)
        if not os.path.lexists(path):
            return None
        entry, problem = _read(path)
        if problem is not None and not _is_regular(path):
            problem += f"; moved aside to {_set_aside(path).name}"
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
            entry["checksum"] = checksum(entry)
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


# the package folders whose code computes (the top level alone; the others with their rooms)
_COMPUTING = ("", "theory", "numerics", "reconcile")
_NOT_COMPUTING = {"cli.py"}


def computing_sources() -> list[Path]:
    """Every module that computes results: the package's top-level modules but the CLI, and
    each module of ``theory``, ``numerics`` and ``reconcile`` at any depth (numerics keeps its
    rooms in subfolders)."""
    package = Path(__file__).resolve().parent.parent
    found = []
    for folder in _COMPUTING:
        where = package / folder
        paths = where.glob("*.py") if folder == "" else where.rglob("*.py")
        found += sorted(p for p in paths if p.name not in _NOT_COMPUTING)
    return found


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the source of every module that computes results (everything but the report,
    the commands and the CLI: :func:`computing_sources`), so a record computed by other code
    is never reused."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in computing_sources():
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def exclusive(folder: Path):
    """Hold ``folder``'s lock for the block: a second run on the same folder stops at once with
    a clear error instead of computing the same cases again. Where ``fcntl`` does not exist
    (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpecError(
                f"another llcgeo run is writing to {str(folder)!r}; wait for it to finish, or "
                "choose another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def checksum(entry: dict[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON without its own ``checksum`` field."""
    content = {k: v for k, v in entry.items() if k != "checksum"}
    return hashlib.sha256(dumps_exact(content, indent=None).encode()).hexdigest()


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _set_aside(path: Path) -> Path:
    """Rename what is not a regular file out of the case's way (never read, never deleted)."""
    aside = path.with_name(f"{path.name}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    return aside


def _read(path: Path) -> tuple[dict[str, Any], str | None]:
    try:
        status = os.lstat(path)
    except OSError as err:
        return {}, f"unreadable ({err})"
    if not stat.S_ISREG(status.st_mode):
        return {}, "not a regular file (a folder, a link or a device)"
    size = status.st_size
    if size > MAX_RECORD_BYTES:
        return {}, f"{size} bytes, more than a record can be ({MAX_RECORD_BYTES})"
    try:
        with open(path, "rb") as stream:  # the cap again: the file may grow while read
            raw = stream.read(MAX_RECORD_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return {}, f"unreadable ({err})"
    if len(raw) > MAX_RECORD_BYTES:
        return {}, f"more than {MAX_RECORD_BYTES} bytes"
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
    if entry["checksum"] != checksum(entry):
        return "its checksum does not match its content (edited or corrupted)"
    return None
