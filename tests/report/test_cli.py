"""``llcgeo report`` through the real dispatcher, on toy suites."""

from __future__ import annotations

import io

import pytest

from llcgeo import cli, suites
from llcgeo.commands.report import ProgressPrinter
from llcgeo.report.runner import ProgressEvent


@pytest.fixture
def llcgeo(monkeypatch, toy):
    """``llcgeo(*args)`` -> exit status, with a toy default ("all") suite of two experiments."""
    # Only this command is registered, so these tests do not depend on the other commands.
    monkeypatch.setattr(cli, "COMMANDS", ("report",))
    real_suite = suites.suite

    def toy_suite(name):
        if name == "all":
            return (toy("first").experiment(), toy("second", offsets={1: 2.0}).experiment())
        return real_suite(name)

    monkeypatch.setattr(suites, "suite", toy_suite)

    def run(*args):  # in this process unless a test names where: cases in the listed order
        named = {"--scheduler", "--workers"} & set(args)
        return cli.main(["report", *args, *(() if named else ("--scheduler", "inprocess"))])

    return run


def test_report_runs_prints_where_and_verdicts(llcgeo, tmp_path, capsys):
    assert llcgeo("--out", str(tmp_path), "--device", "cpu") == 0
    out, err = capsys.readouterr()
    assert str(tmp_path / "report.md") in out
    assert "agree         first" in out and "disagree      second" in out
    assert "2 claims: 1 agree, 1 disagree, 0 inconclusive." in out and "exit status 0" in out
    assert "8 cases: 0 reused from the store, 8 to run" in err
    assert err.count("finished;") == 8 and "case 8 of 8 (second) finished" in err


def test_rerun_reuses_everything_and_quiet_prints_no_progress(llcgeo, tmp_path, capsys):
    llcgeo("--out", str(tmp_path), "--device", "cpu", "--quiet")
    assert llcgeo("--out", str(tmp_path), "--device", "cpu", "--quiet") == 0
    out, err = capsys.readouterr()
    assert "0 cases computed, 8 reused" in out and err == ""


def test_experiment_selection(llcgeo, tmp_path, capsys):
    assert llcgeo("--out", str(tmp_path), "--device", "cpu", "--experiment", "second") == 0
    out, _ = capsys.readouterr()
    assert "first" not in out and "1 claims" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--suite", "nonsense"), "unknown suite 'nonsense'"),
        (("--experiment", "third"), "unknown experiment ['third']"),
    ],
)
def test_bad_names_exit_2_with_a_message(llcgeo, tmp_path, capsys, args, message):
    assert llcgeo("--out", str(tmp_path), *args) == 2
    assert message in capsys.readouterr().err


def test_out_that_is_a_file_exits_2(llcgeo, tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("")
    assert llcgeo("--out", str(target)) == 2
    assert "is a file" in capsys.readouterr().err


def test_cuda_without_gpu_exits_2(llcgeo, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert llcgeo("--out", str(tmp_path), "--device", "cuda") == 2
    assert "no CUDA GPU" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_progress_updates_one_line():
    stream = _Terminal()
    printer = ProgressPrinter(stream)
    printer(ProgressEvent("start", 1, 2, "toy", 0.0, None))
    printer(ProgressEvent("done", 1, 2, "toy", 1.0, 1.0))
    printer(ProgressEvent("problem", 0, 0, "toy", 1.0, None, message="bad file"))
    printer.close()
    text = stream.getvalue()
    assert text.count("\r\x1b[K") == 2 and "left estimating" in text and "left ~1.0 s" in text
    assert text.endswith("\nwarning: bad file\n")
