"""A scanned training run: end to end on three checkpoints, each checkpoint's rows those of a
separate scan with the same seed, a store that measures only what it lacks (a checkpoint added,
a crash), the command line on a folder of torch.export files, and a checkpoint of another
architecture refused in one line."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from torch import nn

import llcgeo
from llcgeo import cli
from llcgeo.config import KEPT_DRAWS, WholeModelSettings
from llcgeo.errors import ScanError
from llcgeo.report.executors import InProcess
from llcgeo.report.scan import scan

STEPS = (0, 40, 400)
SMALL = dict(chains=4, draws=300, rows=128, seed=3)  # rows < samples: the subset is drawn too
WHOLE = WholeModelSettings(chains=2, bias=0.2, se=0.2, singular="warn", lanczos_steps=20)


def _network(width: int = 4):
    return nn.Sequential(nn.Linear(3, width), nn.LayerNorm(width), nn.Linear(width, 2)).double()


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(160, 3, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    teacher = _network()
    with torch.no_grad():
        y = teacher(x) + 0.3 * torch.randn(160, 2, generator=g, dtype=torch.float64)
    return x, y


def _checkpoints(x, y, steps=STEPS, width: int = 4):
    """``(step, model)`` after full-batch Adam from a seeded start, at each of ``steps``."""
    torch.manual_seed(2)
    model, saved = _network(width), []
    optimizer = torch.optim.Adam(model.parameters(), 3e-2)
    for step in range(max(steps) + 1):
        if step in steps:
            saved.append((step, copy.deepcopy(model)))
        optimizer.zero_grad()
        (0.5 * ((model(x) - y) ** 2).sum(1).mean()).backward()
        optimizer.step()
    return saved


class Counting(InProcess):
    """This process, counting the checkpoints it measures; ``stop_after`` finished ones, it
    is interrupted as a killed run would be."""

    def __init__(self, stop_after: int | None = None):
        self.ran, self.stop_after = [], stop_after

    def results(self, tasks):
        for finished in super().results(tasks):
            self.ran.append(tasks[len(self.ran)].job.step)
            yield finished
            if self.stop_after is not None and len(self.ran) >= self.stop_after:
                raise KeyboardInterrupt


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    x, y = _data()
    checkpoints = _checkpoints(x, y)
    run = llcgeo.scan_run(checkpoints, x, y, out=tmp_path_factory.mktemp("run"), whole=WHOLE,
                          **SMALL)  # fmt: skip
    return run, checkpoints, x, y


def test_a_run_scans_every_checkpoint_and_reports_it(measured, tmp_path):
    run, checkpoints, _, _ = measured
    assert run.steps == STEPS and (run.computed, run.reused) == (3, 0)
    assert [(r.step, r.row.reader) for r in run.rows] == [(s, "2.weight") for s in STEPS]
    for r in run.rows:  # each measured row keeps its chains' trace, thinned
        trace = r.trace.array()
        assert trace.shape[0] == SMALL["chains"] and trace.shape[1] <= KEPT_DRAWS
        assert r.row.estimate is not None
    for c in run.checkpoints:  # the whole model: estimated at calibrated settings, or refused
        assert (c.model.estimate is None) == bool(c.model.refused)
        if c.model.estimate is not None:
            assert c.model.config.chains == WHOLE.chains and c.model.config.nbeta > 0
            assert c.model.trace.array().shape[0] == WHOLE.chains
    assert any(c.model.estimate is not None for c in run.checkpoints)
    paths = run.report(tmp_path / "report")
    assert paths.figure.read_bytes()[:4] == b"\x89PNG"
    written = json.loads(paths.json.read_text())
    assert [c["step"] for c in written["checkpoints"]] == list(STEPS)
    text = paths.markdown.read_text()
    assert "Where the calibrated settings changed" in text and "| 400 |" in text
    assert len(paths.csv.read_text().splitlines()) == 1 + 2 * len(STEPS)


def test_each_checkpoints_rows_are_a_separate_scans_with_the_same_seed(measured):
    run, checkpoints, x, y = measured
    for (step, model), c in zip(checkpoints, run.checkpoints, strict=True):
        alone = scan(model, x, y, **SMALL)
        assert c.step == step
        assert _timeless(c.scan.rows) == _timeless(alone.rows)
        assert c.scan.norms == alone.norms and c.scan.n == alone.result.n


def _timeless(rows):
    """Rows without the seconds their estimates took (the one thing a rerun changes)."""

    def plain(e):
        return None if e is None else dataclasses.replace(e, seconds=0.0)

    return [dataclasses.replace(r, estimate=plain(r.estimate), quadratic=plain(r.quadratic))
            for r in rows]  # fmt: skip


def test_a_checkpoint_added_to_a_finished_run_is_the_only_one_measured(tmp_path):
    x, y = _data()
    checkpoints = _checkpoints(x, y, steps=(0, 20, 40))
    first = Counting()
    before = llcgeo.scan_run(checkpoints[:2], x, y, out=tmp_path, measure=False, rows=64,
                             executor=first)  # fmt: skip
    again = Counting()
    after = llcgeo.scan_run(checkpoints, x, y, out=tmp_path, measure=False, rows=64,
                            executor=again)  # fmt: skip
    assert (first.ran, again.ran) == ([20, 0], [40])  # the latest first
    assert (after.computed, after.reused) == (1, 2)
    assert after.checkpoints[:2] == before.checkpoints


def test_a_crashed_run_keeps_what_finished_and_its_rerun_measures_the_rest(tmp_path):
    x, y = _data()
    checkpoints = _checkpoints(x, y, steps=(0, 20, 40))
    with pytest.raises(KeyboardInterrupt):
        llcgeo.scan_run(checkpoints, x, y, out=tmp_path, measure=False, rows=64,
                        executor=Counting(stop_after=1))  # fmt: skip
    assert len(list((tmp_path / "checkpoints").glob("*.json"))) == 1
    resumed = Counting()
    run = llcgeo.scan_run(checkpoints, x, y, out=tmp_path, measure=False, rows=64,
                          executor=resumed)  # fmt: skip
    assert resumed.ran == [20, 0] and (run.computed, run.reused) == (2, 1)


def _exported(folder, checkpoints, x):
    folder.mkdir(parents=True, exist_ok=True)
    for step, model in checkpoints:
        program = torch.export.export(model.eval(), (x[:2],),
                                      dynamic_shapes=({0: torch.export.Dim.AUTO},))  # fmt: skip
        torch.export.save(program, folder / f"step_{step:06d}.pt2")


def test_the_command_scans_a_folder_of_checkpoints_and_reuses_them(tmp_path, capsys):
    x, y = _data()
    _exported(tmp_path / "ckpt", _checkpoints(x, y, steps=(0, 20, 40)), x)
    torch.save({"inputs": x, "targets": y}, tmp_path / "data.pt")
    argv = ["scan", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data.pt"), "--out",
            str(tmp_path / "out"), "--no-measure", "--rows", "64", "--scheduler", "inprocess"]
    assert cli.main(argv) == 0
    first = capsys.readouterr()
    assert "3 checkpoints measured, 0 reused" in first.out
    assert "checkpoint 3/3" in first.err and "step_000040.pt2" in first.out
    assert (tmp_path / "out" / "run.png").is_file() and (tmp_path / "out" / "run.csv").is_file()
    assert cli.main(argv) == 0
    assert "0 checkpoints measured, 3 reused" in capsys.readouterr().out


def test_a_checkpoint_of_another_architecture_is_refused_in_one_line(tmp_path, capsys):
    x, y = _data()
    _exported(tmp_path / "ckpt", _checkpoints(x, y, steps=(0, 20)), x)
    _exported(tmp_path / "ckpt", [(40, _network(width=5))], x)
    torch.save({"inputs": x, "targets": y}, tmp_path / "data.pt")
    argv = ["scan", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data.pt"), "--out",
            str(tmp_path / "out"), "--no-measure", "--scheduler", "inprocess"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "step_000040.pt2: not the architecture of step_000000.pt2" in err
    assert "'0.weight' has shape (5, 3), not (4, 3)" in err
    assert not (tmp_path / "out" / "store" / "checkpoints").exists()


def test_steps_come_from_names_and_are_given_once(tmp_path):
    from llcgeo.report.scan_run import listed_checkpoints

    x, y = _data()
    (step, model), = _checkpoints(x, y, steps=(0,))
    with pytest.raises(ScanError, match="step 0 is given by more than one checkpoint"):
        listed_checkpoints([(0, model), (0, model)])
    with pytest.raises(ScanError, match="no step in its name"):
        listed_checkpoints([tmp_path / "final.pt2"])


def test_a_runs_traces_export_to_arviz_as_the_estimates_they_gave(measured):
    pytest.importorskip("arviz")
    from llcgeo.numerics.sampling.diagnostics import rank_rhat

    run = measured[0]
    exported = run.to_arviz()
    wholes = {(c.step, "whole model") for c in run.checkpoints if c.model.trace is not None}
    assert set(exported) == {(s, "2.weight") for s in STEPS} | wholes
    last = run.rows[-1]
    posterior = exported[(last.step, last.row.reader)].posterior
    assert posterior["loss"].shape == last.trace.array().shape
    assert last.trace.stride == 1  # fewer draws than KEPT_DRAWS: all of them, so exactly
    assert float(posterior["llc"].mean()) == pytest.approx(last.row.estimate.mean, rel=1e-9)
    assert rank_rhat(posterior["loss"].values) == pytest.approx(last.row.estimate.rhat, abs=1e-12)


@pytest.mark.slow
def test_the_training_run_example_runs(tmp_path):
    """A smoke run: each norm's first checkpoints trained, exported, certified and reported."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "scan" / "scan_training_run.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path), "--quick", "--workers",
                           "1"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for norm in ("layernorm", "rmsnorm"):
        assert (tmp_path / norm / "run.md").is_file()
        assert len(list((tmp_path / norm / "checkpoints").glob("step_*.pt2"))) == 4
