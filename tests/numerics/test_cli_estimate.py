"""``llcgeo estimate`` from the command line."""

import json

import pytest
import torch

from llcgeo.cli import main

BASE = [
    "estimate",
    "--manifold",
    "layernorm",
    "--d",
    "4",
    "--m",
    "2",
    "--n",
    "500",
    "--chains",
    "2",
    "--steps",
    "60",
    "--burnin",
    "10",
    "--device",
    "cpu",
]


def test_json_output_has_the_estimate_and_echoes_the_settings(capsys):
    assert (
        main([*BASE, "--bias", "--refine", "weight", "--eps", "2e-4", "--seed", "3", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    for key in ("llc_mean", "llc_se", "per_chain", "diverged_chains", "rhat", "ess", "seconds"):
        assert key in out
    assert len(out["per_chain"]) == 2 and out["diverged_chains"] == []
    assert out["config"]["eps"] == 2e-4 and out["config"]["chains"] == 2 and out["seed"] == 3
    assert out["manifold"]["type"] == "LayerNormImage" and out["layer"]["bias"] is True
    assert out["refine"] == "weight" and out["n"] == 500 and out["device"] == "cpu"


def test_table_output_and_no_progress_bar_off_a_terminal(capsys):
    assert main([*BASE, "--batch-size", "50", "--gamma", "2"]) == 0
    captured = capsys.readouterr()
    assert "llc" in captured.out and "batch=50" in captured.out
    assert "sampling [" not in captured.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--eps", "0"], "eps must be positive"),
        (["--chains", "0"], "chains must be at least 1"),
        (["--batch-size", "501"], "batch_size"),
        (["--refine", "bias"], "refine='bias' needs"),
    ],
)
def test_bad_settings_exit_with_a_message(capsys, extra, message):
    assert main([*BASE, *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu_is_an_error(capsys):
    assert main([*BASE[:-2], "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
