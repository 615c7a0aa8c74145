"""The real thing, small: two paper experiments through SGLD, the store and the report.

Seeds are fixed, so on a given platform this is deterministic; on another, each claim combines
3-sigma tests against exact expectations, so a chance failure has probability below 1%.
"""

import json

import pytest

from llcgeo.cli import main


@pytest.mark.slow
def test_threshold_and_smuggled_bias_agree_end_to_end(tmp_path, capsys):
    args = [
        "report",
        "--suite",
        "paper",
        "--experiment",
        "threshold",
        "--experiment",
        "smuggled_bias",
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "9 claims: 9 agree, 0 disagree, 0 inconclusive." in out
    cases = json.loads((tmp_path / "results.json").read_text())["cases"]
    assert len(cases) == 14 and all(c["record"]["verdict"] == "agree" for c in cases)
    for name in (
        "report.md",
        "report.html",
        "threshold.png",
        "smuggled_bias.png",
        "claims.csv",
        "cases_threshold.csv",
    ):
        assert (tmp_path / name).stat().st_size > 0
    assert main(args) == 0  # a rerun reuses every stored case
    assert "0 cases computed, 14 reused" in capsys.readouterr().out
