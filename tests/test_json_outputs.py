"""Every JSON output is strict JSON: no bare NaN or Infinity, numbers as JSON numbers, ``null``
where a value does not exist (with the reason beside it), even when every chain diverges."""

from __future__ import annotations

import json
import math

import pytest

from llcgeo import cli
from llcgeo.serialize import dumps_exact, loads_exact

SMALL = ["--n", "200", "--chains", "2", "--steps", "40", "--burnin", "10", "--device", "cpu"]
DIVERGING = [*SMALL, "--eps", "10"]
SPHERE = ["--manifold", "sphere", "--d", "4", "--m", "2"]
DIVERGING_FILE = """\
[manifold]
family = "sphere"
d = 4
radius = 10
[layer]
m = 2
[sampler]
n = 200
chains = 2
steps = 40
burnin = 10
eps = 10
[claims]
llc = "m*d/2"
"""


def strict(text: str):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def numbers(value):
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return [value] if isinstance(value, float) else []


@pytest.mark.parametrize(
    "args",
    [["predict", *SPHERE], ["estimate", *SPHERE, *DIVERGING], ["verify", *SPHERE, *DIVERGING]],
    ids=["predict", "estimate diverged", "verify diverged"],
)
def test_command_json_is_strict(args, capsys):
    status = cli.main([*args, "--json"])
    out, err = capsys.readouterr()
    assert status in (0, 1), err
    data = strict(out)
    assert all(math.isfinite(v) for v in numbers(data))


def test_a_diverged_verify_says_null_and_why(capsys):
    cli.main(["verify", *SPHERE, *DIVERGING, "--json"])
    data = strict(capsys.readouterr().out)
    assert data["llc_mean"] is None and data["verdict"] == "inconclusive"
    assert any("diverged" in reason for reason in data["reasons"])


def test_check_on_a_file_whose_chains_all_diverge_writes_its_report(tmp_path, capsys):
    path = tmp_path / "diverges.toml"
    path.write_text(DIVERGING_FILE)
    out = tmp_path / "out"
    status = cli.main(["check", str(path), "--out", str(out), "--quiet", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert status == 1 and "inconclusive" in printed and "diverged" in printed
    assert "choose eps <" in printed  # the hint reaches the reader
    results = strict((out / "results.json").read_text())
    assert results["cases"][0]["record"]["llc_mean"] is None
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    # a rerun reads its stored, diverged case back and says the same
    assert cli.main(["check", str(path), "--out", str(out), "--quiet", "--json"]) == 1
    assert strict(capsys.readouterr().out)["verdict"] == "inconclusive"


def test_the_store_round_trips_nan_and_infinities_exactly():
    record = {"mean": math.nan, "bounds": [math.inf, -math.inf, 1.5], "z": None}
    text = dumps_exact(record)
    strict(text)
    back = loads_exact(text)
    assert math.isnan(back["mean"]) and back["bounds"] == [math.inf, -math.inf, 1.5]
    assert back["z"] is None


@pytest.mark.parametrize(
    "args",
    [["predict", "--manifold", "layernorm", "--d", "4", "--m", "3", "--bias"],
     ["estimate", *SPHERE, *SMALL], ["verify", *SPHERE, *SMALL]],
    ids=["predict", "estimate", "verify"],
)  # fmt: skip
def test_command_json_numbers_are_numbers_at_a_readable_precision(args, capsys):
    from llcgeo.commands._common import JSON_DIGITS

    cli.main([*args, "--json"])
    data = strict(capsys.readouterr().out)
    for value in numbers(data):
        assert len(repr(abs(value)).replace(".", "").lstrip("0").split("e")[0]) <= JSON_DIGITS + 1
    if args[0] == "predict":
        assert data["witness"] == [[1.0, 1.0, 1.0, 1.0, 0.0]]
        assert data["witness_exact"] == [["1", "1", "1", "1", "0"]]
        assert isinstance(data["llc"], float) and data["llc_exact"] == "6"
    if args[0] == "verify":
        assert isinstance(data["predicted_llc"], float) and data["predicted_llc_exact"] == "4"
