"""A scan end to end: a small classifier measured and judged; the network suite's heads'
predictions reproduced and their LLC measured; the command line from a torch.export file, and
its refusals."""

import json
import re
from dataclasses import replace
from fractions import Fraction

import pytest
import torch
from torch import nn

from llcgeo import cli
from llcgeo.errors import ScanError
from llcgeo.numerics.paths.losses import cross_entropy
from llcgeo.report.scan import scan


def _classifier():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.LayerNorm(6, bias=False),
                          nn.Linear(6, 3)).double()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 4, generator=g, dtype=torch.float64)
    y = torch.randint(3, (256,), generator=g)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        cross_entropy(0.1)(model(x), y).mean().backward()
        optimizer.step()
    return model, x, y


def test_a_small_classifier_is_certified_predicted_measured_and_judged(tmp_path):
    model, x, y = _classifier()
    seen: dict[str, list] = {}
    s = scan(model, x, y, loss=cross_entropy(0.1), chains=8, draws=4000,
             sampling=lambda reader: lambda done, total: seen.setdefault(reader, []).append(
                 (done, total)))  # fmt: skip
    (row,) = s.rows
    # the reader's chains report their steps, the real run's and then the quadratic model's
    (calls,) = seen.values()
    assert list(seen) == ["3.weight"] and calls[-1][0] == calls[-1][1]
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:], strict=False))
    # logits of 3 classes read from LayerNorm's plane through the origin, with a bias:
    # (K - 1) r = 2 * 6 directions, 9 of the 21 certified flat
    assert (row.certificate.quotient, row.certificate.flat) == (12, 9)
    assert row.exact and row.high == "6" and row.rank == 12
    assert row.verdict == "agree", row.reason
    paths = s.report(tmp_path / "scan")
    written = json.loads(paths.json.read_text())
    assert written["rows"][0]["verdict"] == "agree"
    assert paths.figure.read_bytes()[:4] == b"\x89PNG"
    assert "| 3.weight" in paths.markdown.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["digits-mlp", "transformer"])
def test_the_network_suites_head_rows_are_reproduced(model_name):
    from llcgeo.suites import network

    job = next(j for j in network.jobs("small") if j.model == model_name and j.norm == "layernorm")
    job = replace(job, draws=4000)
    record = network.run(job, "cpu")
    trained = _suite_model(job)
    inputs, labels = network._data(job)
    s = scan(trained, inputs, labels, loss=cross_entropy(0.1), chains=job.chains,
             refine=job.refine, rows=len(labels), only=("head.weight",))  # fmt: skip
    row = next(r for r in s.rows if r.logits)
    # the same head, the same exact prediction and rank; the scan measures the LLC itself
    # (whitened, at settings that reach it), where the suite holds its estimate to the
    # estimator's expectation at plain settings
    assert Fraction(row.high) == Fraction(record.llc) and row.rank == record.rank
    assert row.verdict == "agree", row.reason
    llc = float(Fraction(record.llc))
    assert abs(row.estimate.mean - llc) <= 0.05 * llc + 3 * row.estimate.se


def _suite_model(job):
    from llcgeo.numerics.measurements.training import trained_head
    from llcgeo.suites import network

    inputs, labels = network._data(job)
    steps, lr, batch = network.TRAINING[job.model]
    return trained_head(lambda: network._network(job), inputs, labels, steps=steps, lr=lr,
                        batch=batch, seed=job.seed, moving_bias=False).model  # fmt: skip


def _exported(tmp_path):
    model, x, y = _classifier()
    program = torch.export.export(model.eval(), (x[:2],),
                                  dynamic_shapes=({0: torch.export.Dim.AUTO},))  # fmt: skip
    torch.export.save(program, tmp_path / "model.pt2")
    torch.save({"inputs": x, "targets": y}, tmp_path / "data.pt")
    return model


def test_the_command_scans_a_torch_export_file(tmp_path, capsys):
    _exported(tmp_path)
    status = cli.main(["scan", str(tmp_path / "model.pt2"), "--data", str(tmp_path / "data.pt"),
                       "--loss", "cross_entropy", "--label-smoothing", "0.1", "--out",
                       str(tmp_path / "out"), "--no-measure"])  # fmt: skip
    assert status == 0
    assert re.search(r"certified flat +9\n", capsys.readouterr().out)
    assert (tmp_path / "out" / "scan.csv").is_file()


def test_the_command_refuses_a_pickled_object_and_writes_nothing(tmp_path, capsys):
    model = _exported(tmp_path)
    torch.save(model, tmp_path / "model.pt")  # a pickled module, never to be unpickled
    torch.save({"inputs": torch.zeros(2), "targets": model}, tmp_path / "evil.pt")
    out = tmp_path / "out"
    for argv in (
        [str(tmp_path / "model.pt"), "--data", str(tmp_path / "data.pt")],
        [str(tmp_path / "model.pt2"), "--data", str(tmp_path / "evil.pt")],
    ):
        assert cli.main(["scan", *argv, "--out", str(out)]) == 2
        assert not out.exists()
    err = capsys.readouterr().err
    assert "never unpickles a model" in err and "refused unread" in err


def test_pairs_run_on_worker_processes_give_the_rows_of_this_process():
    from llcgeo.report.executors import LocalProcesses

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(9, 8), nn.LayerNorm(8, bias=False), nn.Linear(8, 6),
                          nn.LayerNorm(6), nn.Linear(6, 2)).double()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 9, generator=g, dtype=torch.float64)
    y = model(x).detach() + 0.3 * torch.randn(300, 2, generator=g, dtype=torch.float64)
    options = dict(hessian_directions=20, chains=4, draws=400)
    here = scan(model, x, y, **options)
    seen = []
    with LocalProcesses(2) as executor:
        there = scan(model, x, y, executor=executor, **options,
                     progress=lambda done, total, row: seen.append((done, total)))  # fmt: skip
    assert sorted(seen) == [(1, 2), (2, 2)]
    for a, b in zip(here.rows, there.rows, strict=True):
        # the same seed, the same numbers: up to the rounding of a worker's one thread
        assert replace(a, estimate=None, quadratic=None, gap=None, reason="") == replace(
            b, estimate=None, quadratic=None, gap=None, reason=""
        )
        assert b.estimate.mean == pytest.approx(a.estimate.mean, rel=1e-6)
        assert b.quadratic.mean == pytest.approx(a.quadratic.mean, rel=1e-6)


def test_a_reader_named_by_only_that_the_network_lacks_is_refused_by_name():
    model, x, y = _classifier()
    with pytest.raises(ScanError, match=r"only= names '3\.wieght'.*readers: 3\.weight"):
        scan(model, x, y, loss=cross_entropy(0.1), only=("3.weight", "3.wieght"))


def test_chains_whose_loss_falls_below_the_refitted_point_say_it_is_no_minimum():
    from llcgeo.scanner.measure import ROUNDING_ULPS, _judged

    model, x, y = _classifier()
    (row,) = scan(model, x, y, loss=cross_entropy(0.1), chains=4, draws=1000).rows
    assert row.estimate is not None and row.low == row.high == "6", row.reason
    # at a minimum of the region the chains explore no draw's loss is below it: a mean below
    # zero by more than float32's rounding of the loss (scaled by nbeta) proves it is none
    rounding = ROUNDING_ULPS * torch.finfo(torch.float32).eps * row.loss_after * row.nbeta
    below = replace(row, estimate=replace(row.estimate, mean=-2 * rounding), reason="")
    judged = _judged(below, 4, torch.float32)
    assert (judged.verdict, judged.low, judged.high) == ("inconclusive", "0", "6")
    assert "the chains' loss fell below the refitted point's" in judged.reason
    near = replace(below, estimate=replace(row.estimate, mean=-rounding / 2))
    assert "fell below" not in _judged(near, 4, torch.float32).reason
    assert _judged(near, 4, torch.float32).low == "6"
    assert "fell below" in _judged(near, 4, torch.float64).reason  # float64 rounds far less
