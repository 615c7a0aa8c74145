"""``llcgeo predict`` for every family, and its errors."""

import json
from fractions import Fraction

import pytest

from llcgeo.cli import main

KEYS = {
    "manifold",
    "d",
    "m",
    "bias",
    "refine",
    "hessian_rank",
    "llc",
    "llc_unconstrained",
    "llc_drop",
    "flat",
}

FAMILIES = [
    (["--manifold", "gaussian", "--d", "6"], "9", False),
    (["--manifold", "layernorm", "--d", "6"], "15/2", True),
    (["--manifold", "layernorm", "--d", "6", "--beta", "1,0,0,0,0,0"], "9", True),
    (["--manifold", "rmsnorm", "--d", "6", "--gain", "1,2,3,4,5,6"], "9", False),
    (["--manifold", "sphere", "--d", "6", "--radius", "2"], "9", False),
    (["--manifold", "simplex", "--d", "6"], "9", True),
    (["--manifold", "ellipsoid", "--d", "6", "--axes", "1,1,2,2,3,3"], "9", False),
    (["--manifold", "hyperplane", "--normal", "1,1,0,0,0,0"], "15/2", True),
    (["--manifold", "bumped-hyperplane", "--d", "6", "--kappa", "0"], "15/2", True),
    (
        ["--manifold", "bumped-hyperplane", "--d", "6", "--kappa", "1/2", "--fraction", "1/4"],
        "9",
        False,
    ),
    (
        ["--manifold", "implicit", "--equation", "x1**2 + x2**2 - x3", "--variables", "x1,x2,x3"],
        "9/2",
        False,
    ),
    (
        ["--manifold", "parametric", "--phi", "cos(t)", "--phi", "sin(t)", "--parameters", "t"],
        "3",
        False,
    ),
]


@pytest.mark.parametrize(
    ("args", "llc", "flat"), FAMILIES, ids=lambda a: " ".join(a) if isinstance(a, list) else None
)
def test_predict_json_for_every_family(args, llc, flat, capsys):
    assert main(["predict", *args, "--m", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= KEYS
    assert out["llc_exact"] == llc and out["llc"] == float(Fraction(llc)) and out["flat"] is flat
    assert all(isinstance(out[k], float) for k in ("llc", "llc_unconstrained", "llc_drop"))


def test_predict_table(capsys):
    assert main(["predict", "--manifold", "layernorm", "--d", "8", "--m", "3"]) == 0
    out = capsys.readouterr().out
    assert "m*(d - 1)/2" in out and "21/2" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--manifold", "layernorm", "--d", "0", "--m", "2"], "d must be at least 1"),
        (["--manifold", "layernorm", "--d", "3", "--m", "0"], "m must be at least 1"),
        (["--manifold", "layernorm", "--m", "2"], "--d is required"),
        (
            ["--manifold", "gaussian", "--d", "3", "--m", "2", "--refine", "bias"],
            "needs a layer with a bias",
        ),
        (
            [
                "--manifold",
                "implicit",
                "--equation",
                "x1**2 + x2**2 + 1",
                "--variables",
                "x1,x2",
                "--m",
                "2",
            ],
            "no real points",
        ),
        (
            [
                "--manifold",
                "implicit",
                "--equation",
                "exp(x1) - x2",
                "--variables",
                "x1,x2",
                "--m",
                "2",
            ],
            "polynomial",
        ),
        (
            ["--manifold", "implicit", "--equation", "x1 + x3", "--variables", "x1,x2", "--m", "2"],
            "x3",
        ),
        (
            [
                "--manifold",
                "implicit",
                "--equation",
                "__import__('os')",
                "--variables",
                "x1",
                "--m",
                "2",
            ],
            "may be called",
        ),
        (
            ["--manifold", "layernorm", "--d", "3", "--gain", "1,2", "--m", "2"],
            "gain has 2 entries",
        ),
        (["--manifold", "hyperplane", "--normal", "0,0", "--m", "2"], "zero vector"),
        (["--manifold", "hyperplane", "--normal", "1,1", "--d", "3", "--m", "2"], "does not match"),
    ],
)
def test_predict_errors_are_messages(args, message, capsys):
    assert main(["predict", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_predict_a_deep_linear_network_on_layernorm_data(capsys):
    import json

    from llcgeo import cli

    status = cli.main(["predict", "--manifold", "layernorm", "--d", "4", "--m", "4",
                       "--hidden", "3", "--rank", "1", "--json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert (data["llc_exact"], data["llc_unconstrained_exact"]) == ("5", "6")
    assert (data["llc_drop"], data["regular_drop"], data["multiplicity"]) == (1.0, 2.0, 2)
    assert cli.main(["predict", "--manifold", "layernorm", "--d", "4", "--m", "4",
                     "--hidden", "3"]) == 2  # fmt: skip
    assert "--rank" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("manifold", "llc", "drop"),
    [("layernorm", "135/2", "9/2"), ("rmsnorm", "72", "0"), ("simplex", "72", "0")],
)
def test_predict_a_softmax_head(capsys, manifold, llc, drop):
    args = ["predict", "--manifold", manifold, "--d", "16", "--classes", "10", "--json"]
    assert main(args + ["--bias", "--refine", "weight"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["classes"], record["llc_exact"], record["llc_drop_exact"]) == (10, llc, drop)
    assert "m" not in record


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--m", "3", "--classes", "4"], "not both"),
        ([], "--m .* is required"),
        (["--classes", "1"], "classes must be at least 2"),
        (["--classes", "4", "--hidden", "2", "--rank", "1"], "--hidden needs --m"),
    ],
)
def test_predict_head_errors(capsys, extra, message):
    assert main(["predict", "--manifold", "gaussian", "--d", "4", *extra]) == 2
    assert __import__("re").search(message, capsys.readouterr().err)
