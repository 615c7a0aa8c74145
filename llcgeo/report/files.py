"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_atomic(folder / "a.txt", "hello")
>>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
('hello', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llcgeo.errors import SpecError

_BINARY = getattr(os, "O_BINARY", 0)  # Windows would otherwise translate newlines
TEMPORARY_SUFFIX = ".tmp"  # write_atomic's temporary files: ".<name>.<random>.tmp"


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    The temporary file is flushed and fsynced before ``os.replace`` (atomic on POSIX and
    Windows), so a crash at any point leaves either the previous file or the complete new one;
    on any failure, including an interrupt, the temporary file is removed.
    """
    write_all_atomic({path: data})


def write_all_atomic(files: dict[Path, str | bytes]) -> None:
    """Write every file, all or none: each goes to a fsynced temporary file first, and only
    when all of them are written (a full disk fails here) are they renamed into place, which
    needs no space. A failure leaves the previous set of files, complete."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            staged.append((_staged(path, data), path))
        for temporary, path in staged:
            os.replace(temporary, path)
    except BaseException:
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise
    for folder in {path.parent for path in files}:
        _sync_folder(folder)


def _staged(path: Path, data: str | bytes) -> Path:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"
    # os.open rather than mkstemp: mkstemp makes files private (0600), os.open honours the umask.
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return temporary


def _sync_folder(folder: Path) -> None:
    # The rename itself lives in the folder's entry table; fsync it so it survives power loss.
    # Some platforms (Windows) cannot open a folder for this; the rename is still atomic there.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def prepare_folder(out: str | os.PathLike) -> Path:
    """The output folder, created if missing; a clear ``SpecError`` if it cannot be written."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise SpecError(f"the output folder {str(folder)!r} is a file; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SpecError(
            f"cannot create the output folder {str(folder)!r}: part of its path is a file"
        ) from None
    except OSError as err:
        raise SpecError(
            f"cannot create the output folder {str(folder)!r}: {err.strerror}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpecError(f"the output folder {str(folder)!r} is not writable")
    _probe(folder)
    return folder


def _probe(folder: Path) -> None:
    # os.access trusts permission bits only; a read-only mount or a full disk shows up here.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise SpecError(f"the output folder {str(folder)!r} is not writable: {err}") from None


@dataclass(frozen=True)
class OutputPaths:
    """The files a one-document report writes into ``folder``: ``<stem>.md``, ``.html``,
    ``.json``, ``.csv`` and its figure ``.png`` (:meth:`named`)."""

    folder: Path
    markdown: Path
    html: Path
    json: Path
    csv: Path
    figure: Path

    @classmethod
    def named(cls, folder: Path, stem: str) -> OutputPaths:
        return cls(folder, *(folder / f"{stem}.{s}" for s in ("md", "html", "json", "csv", "png")))
