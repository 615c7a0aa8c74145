"""The sweep runner: crash and resume, reuse, invalidation, progress and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

import llcgeo
from llcgeo.errors import SpecError
from llcgeo.report import files, run_experiments


def _run(experiments, out, **options):
    options.setdefault("scale", "small")
    options.setdefault("device", "cpu")
    return run_experiments([e.experiment() for e in experiments], out=out, **options)


def _stored(out, name="toy"):
    folder = out / "store" / name
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_crash_mid_sweep_keeps_finished_cases_and_rerun_runs_only_the_rest(tmp_path, toy):
    crashing = toy(xs=(1, 2, 3, 4, 5), interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        _run([crashing], tmp_path)
    assert len(_stored(tmp_path)) == 2
    assert not list((tmp_path / "store").rglob("*.tmp"))
    assert not (tmp_path / "report.md").exists()

    resumed = toy(xs=(1, 2, 3, 4, 5))
    report = _run([resumed], tmp_path)
    assert [job.x for job in resumed.ran] == [3, 4, 5]
    assert (report.computed, report.reused) == (3, 2)
    assert len(_stored(tmp_path)) == 5
    assert [row["x"] for row in report.results[0].rows] == [1, 2, 3, 4, 5]


def test_rerun_with_nothing_changed_computes_nothing(tmp_path, toy):
    _run([toy()], tmp_path)
    again = toy()
    report = _run([again], tmp_path)
    assert again.ran == [] and (report.computed, report.reused) == (0, 4)


def test_reused_and_fresh_records_summarize_identically(tmp_path, toy):
    first = _run([toy()], tmp_path).results
    second = _run([toy()], tmp_path).results
    assert first == second


def test_changed_setting_invalidates_only_its_case(tmp_path, toy):
    _run([toy()], tmp_path)
    changed = toy(offsets={2: 0.5})
    report = _run([changed], tmp_path)
    assert changed.ran == [changed.jobs("small")[1]]
    assert (report.computed, report.reused) == (1, 3)


def test_other_experiment_is_untouched_by_a_change(tmp_path, toy):
    _run([toy("a"), toy("b")], tmp_path)
    a, b = toy("a", offsets={1: 1.0}), toy("b")
    _run([a, b], tmp_path)
    assert len(a.ran) == 1 and b.ran == []


def test_new_package_version_invalidates_every_case(tmp_path, toy, monkeypatch):
    _run([toy()], tmp_path)
    monkeypatch.setattr(llcgeo, "__version__", "99.0")
    again = toy()
    _run([again], tmp_path)
    assert len(again.ran) == 4


def test_corrupt_case_is_recomputed_and_reported(tmp_path, toy):
    _run([toy()], tmp_path)
    victim = _stored(tmp_path)[0]
    victim.write_text(victim.read_text()[:40])
    again = toy()
    report = _run([again], tmp_path)
    assert len(again.ran) == 1
    assert len(report.problems) == 1 and str(victim) in report.problems[0]
    assert str(victim) in report.paths.markdown.read_text()
    assert _run([toy()], tmp_path).problems == ()


def test_progress_counts_cases_and_estimates_time_left(tmp_path, toy):
    _run([toy(xs=(1, 2))], tmp_path)
    events = []
    _run([toy(xs=(1, 2, 3, 4))], tmp_path, progress=events.append)
    assert (events[0].phase, events[0].total, events[0].reused) == ("plan", 4, 2)
    work = [(e.phase, e.index, e.total) for e in events[1:]]
    assert work == [("start", 3, 4), ("done", 3, 4), ("start", 4, 4), ("done", 4, 4)]
    assert events[1].remaining is None
    assert events[2].remaining >= 0 and events[-1].remaining == 0
    assert all(e.experiment == "toy" and e.elapsed >= 0 for e in events[1:])


def test_store_problems_are_announced_through_progress(tmp_path, toy):
    _run([toy(xs=(1,))], tmp_path)
    _stored(tmp_path)[0].write_text("{")
    events = []
    _run([toy(xs=(1,))], tmp_path, progress=events.append)
    assert events[0].phase == "problem" and "not valid JSON" in events[0].message


def test_out_that_is_a_file_is_rejected(tmp_path, toy):
    target = tmp_path / "report.txt"
    target.write_text("")
    with pytest.raises(SpecError, match="is a file"):
        _run([toy()], target)
    with pytest.raises(SpecError, match="part of its path is a file"):
        _run([toy()], target / "inside")


def test_out_not_writable_is_rejected(tmp_path, toy, monkeypatch):
    # Tests may run as root, where chmod does not stop writes; os.access is what the check
    # consults, so it stands in for a read-only folder here.
    monkeypatch.setattr(files.os, "access", lambda path, mode: False)
    with pytest.raises(SpecError, match="not writable"):
        _run([toy()], tmp_path / "new")


def test_unwritable_probe_is_rejected(tmp_path, toy, monkeypatch):
    def refuse(**kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "TemporaryFile", refuse)
    with pytest.raises(SpecError, match="not writable"):
        _run([toy()], tmp_path)


def test_bad_scale_device_and_names_are_rejected(tmp_path, toy, monkeypatch):
    with pytest.raises(SpecError, match="scale"):
        _run([toy()], tmp_path, scale="huge")
    with pytest.raises(SpecError, match="device"):
        _run([toy()], tmp_path, device="tpu")
    with pytest.raises(SpecError, match="unique"):
        _run([toy("a"), toy("a")], tmp_path)
    with pytest.raises(SpecError, match="experiment name"):
        _run([toy("../escape")], tmp_path)
    with pytest.raises(SpecError, match="no experiments"):
        run_experiments([], out=tmp_path, scale="small", device="cpu")


def test_cuda_without_gpu_is_a_clear_error(monkeypatch, tmp_path, toy):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SpecError, match="no CUDA GPU"):
        _run([toy("a")], tmp_path, device="cuda")
    report = _run([toy("a")], tmp_path, device="auto")
    assert "device cpu" in report.paths.markdown.read_text()


# --- store faults: each reported, set aside where needed, and recomputed -----------------------


def test_an_edited_number_fails_its_checksum_and_is_recomputed(tmp_path, toy):
    _run([toy()], tmp_path)
    victim = _stored(tmp_path)[0]
    text = victim.read_text()
    key = '"y": '
    at = text.index(key) + len(key)
    victim.write_text(text[:at] + "30" + text[at:])  # still valid JSON, a different number
    again = toy()
    report = _run([again], tmp_path)
    assert len(again.ran) == 1
    assert "checksum" in report.problems[0] and str(victim) in report.problems[0]


@pytest.mark.parametrize("kind", ["folder", "link to /dev/zero"])
def test_what_is_not_a_regular_file_is_set_aside_and_recomputed(tmp_path, toy, kind):
    import os

    _run([toy()], tmp_path)
    victim = _stored(tmp_path)[0]
    victim.unlink()
    if kind == "folder":
        victim.mkdir()
    else:
        os.symlink("/dev/zero", victim)
    again = toy()
    report = _run([again], tmp_path)
    assert len(again.ran) == 1
    assert "not a regular file" in report.problems[0] and "moved aside" in report.problems[0]
    assert victim.is_file() and not victim.is_symlink()
    assert len(list(victim.parent.glob(f"{victim.name}.set-aside-*"))) == 1
    assert _run([toy()], tmp_path).problems == ()


def test_stale_temporary_files_are_removed(tmp_path, toy):
    _run([toy()], tmp_path)
    stale = _stored(tmp_path)[0].parent / ".abc.json.0123456789ab.tmp"
    stale.write_text("half a record")
    _run([toy()], tmp_path)
    assert not stale.exists()


def test_a_second_run_on_a_locked_folder_stops_at_once(tmp_path, toy):
    from llcgeo.report.store import exclusive

    tmp_path.mkdir(exist_ok=True)
    with exclusive(tmp_path), pytest.raises(SpecError, match="another llcgeo run"):
        _run([toy()], tmp_path)
    assert _run([toy()], tmp_path).computed == 4  # the lock is released with its holder


def test_changed_code_recomputes_every_case(tmp_path, toy, monkeypatch):
    from llcgeo.report import runner

    _run([toy()], tmp_path)
    monkeypatch.setattr(runner, "code_fingerprint", lambda: "other-code")
    again = toy()
    _run([again], tmp_path)
    assert len(again.ran) == 4


def test_code_fingerprint_follows_the_computing_source_only():
    from llcgeo.report.store import code_fingerprint

    assert code_fingerprint() == code_fingerprint() and len(code_fingerprint()) == 12


def test_code_fingerprint_reads_every_room_of_numerics():
    from llcgeo.report.store import computing_sources

    package = Path(llcgeo.__file__).parent
    sources = {p.relative_to(package).as_posix() for p in computing_sources()}
    assert {"numerics/sampling/sgld.py", "numerics/paths/problem.py", "numerics/runner.py",
            "numerics/measurements/manifold_data.py", "theory/sgld.py"} <= sources  # fmt: skip
    assert not any(s.startswith(("report/", "commands/", "suites/")) for s in sources)
    assert "cli.py" not in sources


def test_time_left_is_estimated_per_experiment():
    from types import SimpleNamespace

    from llcgeo.report.runner import _Clock

    def planned(name):
        return SimpleNamespace(experiment=SimpleNamespace(name=name), stored=None)

    clock = _Clock([planned("slow")] * 3 + [planned("fast")] * 3, workers=1)
    clock.finished("slow", 10.0)
    clock.finished("fast", 1.0)
    assert clock.remaining() == pytest.approx(2 * 10.0 + 2 * 1.0)
    assert _Clock([planned("a")] * 2, workers=2).remaining() is None


def test_a_failure_while_writing_the_report_leaves_the_previous_complete_set(
    tmp_path, toy, monkeypatch
):
    import os

    _run([toy()], tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    real_open, written = os.open, []

    def disk_full_on_the_third(path, *args, **kwargs):
        if str(path).endswith(".tmp") and "store" not in str(path):
            written.append(path)
            if len(written) == 3:
                raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", disk_full_on_the_third)
    with pytest.raises(OSError, match="No space left"):
        _run([toy(offsets={1: 2.0})], tmp_path)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before
    assert not list(tmp_path.glob(".*.tmp"))
