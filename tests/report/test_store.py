"""The results store: atomic writes, and untrusted files reported and treated as missing."""

from __future__ import annotations

import json
import os

import pytest

from llcgeo.report import files
from llcgeo.report.store import ResultStore

JOB = {"x": 2}


@pytest.fixture
def store(tmp_path):
    return ResultStore(tmp_path / "store", version="1.0")


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_round_trip_matches_what_a_rerun_reads(store):
    saved = store.save("toy", "k1", JOB, {"y": (1, 2), "z": float("nan")}, seconds=1.5)
    loaded = store.load("toy", "k1", JOB)
    assert saved.record["y"] == loaded.record["y"] == [1, 2]
    assert loaded.seconds == 1.5 and loaded.job == JOB
    assert store.problems == []
    assert store.path("toy", "k1") == store.root / "toy" / "k1.json"
    entry = json.loads(store.path("toy", "k1").read_text())
    assert {"key", "experiment", "version", "job", "record"} <= set(entry)


def test_absent_case_is_missing_without_a_problem(store):
    assert store.load("toy", "nothing", JOB) is None
    assert store.problems == []


def test_failed_serialization_writes_nothing(store):
    with pytest.raises(TypeError, match="not plain JSON"):
        store.save("toy", "k1", JOB, {"y": {1, 2}}, seconds=0.0)
    assert not store.path("toy", "k1").exists()


def test_record_must_be_a_dict(store):
    with pytest.raises(TypeError, match="not a dict"):
        store.save("toy", "k1", JOB, [1, 2], seconds=0.0)


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_replace_keeps_old_file_and_leaves_no_temporary(store, monkeypatch, failure):
    store.save("toy", "k1", JOB, {"y": 1}, seconds=0.0)

    def failing_replace(source, target):
        raise failure

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(type(failure)):
        store.save("toy", "k1", JOB, {"y": 2}, seconds=0.0)
    monkeypatch.undo()
    assert store.load("toy", "k1", JOB).record == {"y": 1}
    assert _leftovers(store.root / "toy") == []


def test_interrupt_during_fsync_leaves_no_file(store, monkeypatch):
    def interrupted(descriptor):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.save("toy", "k1", JOB, {"y": 1}, seconds=0.0)
    assert list((store.root / "toy").iterdir()) == []


def _corrupt_truncated(path):
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _rewrite(**changes):
    def corrupt(path):
        entry = json.loads(path.read_text())
        entry.update(changes)
        path.write_text(json.dumps(entry))

    return corrupt


def _drop(name):
    def corrupt(path):
        entry = json.loads(path.read_text())
        del entry[name]
        path.write_text(json.dumps(entry))

    return corrupt


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_corrupt_truncated, "not valid JSON, perhaps truncated"),
        (lambda p: p.write_text(""), "empty file"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "unreadable"),
        (lambda p: p.write_text("[1, 2]"), "holds a JSON list"),
        (_rewrite(key="other"), "its key is 'other', expected 'k1'"),
        (_rewrite(version="0.0.1"), "its version is '0.0.1'"),
        (_rewrite(experiment="else"), "its experiment is 'else'"),
        (_rewrite(job={"x": 3}), "job differs"),
        (_rewrite(record=[1]), "record is not a JSON object"),
        (_drop("record"), "missing field(s) record"),
    ],
)
def test_untrusted_file_is_reported_and_treated_as_missing(store, corrupt, message):
    store.save("toy", "k1", JOB, {"y": 1}, seconds=0.0)
    path = store.path("toy", "k1")
    corrupt(path)
    assert store.load("toy", "k1", JOB) is None
    [problem] = store.problems
    assert str(path) in problem and message in problem and "recomputed" in problem


def test_unreadable_path_is_reported(store):
    # A folder where the file should be: reading fails with an OSError, whatever the user.
    os.makedirs(store.path("toy", "k1"))
    assert store.load("toy", "k1", JOB) is None
    assert "unreadable" in store.problems[0]


def test_written_files_honour_the_umask(tmp_path):
    # Reports are meant to be shared: files must not come out private (as mkstemp makes them).
    previous = os.umask(0o022)
    try:
        files.write_atomic(tmp_path / "report.md", "text")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644
