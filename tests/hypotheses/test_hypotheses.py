"""Hypothesis files: loading, the errors of hostile or mistaken files, claims, and the check."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest

from llcgeo import cli
from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.errors import ExpressionError, LLCGeoError, SpecError
from llcgeo.hypotheses.judging import hypothesis_experiment, judge_claim, summarize_hypothesis
from llcgeo.hypotheses.schema import load_hypotheses, load_hypothesis, parse_hypothesis
from llcgeo.reconcile.model import CaseResult
from llcgeo.serialize import to_jsonable

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hypotheses"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))

LAYER = "[layer]\nm = 2\n"
CLAIMS = '[claims]\nllc = "m*d/2"\n'
CONE = '[manifold]\nequation = "x1**2 + x2**2 - x3**2"\nvariables = ["x1", "x2", "x3"]\n'
SPHERE = '[manifold]\nfamily = "sphere"\nd = 3\n'  # derived in microseconds: for the other keys


def hypothesis(text: str, name: str = "h"):
    return parse_hypothesis(text, name=name, source="h.toml")


def rejected(text: str, *fragments: str, error=LLCGeoError) -> str:
    with pytest.raises(error) as info:
        hypothesis(text)
    message = str(info.value)
    assert message.startswith("h.toml: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- the examples ------------------------------------------------------------------------------


def test_there_are_the_six_promised_examples():
    names = {p.stem for p in EXAMPLE_FILES}
    assert names == {
        "cone",
        "paraboloid_patch",
        "torus",
        "layernorm_bias",
        "rotated_hyperplane",
        "union_plane_parabola",
    }


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_every_example_claims_exactly_what_the_theory_derives(path):
    h = load_hypothesis(path)
    assert h.name == path.stem and h.manifold.d <= 4 and h.layer.m <= 3
    exact = {
        "llc": h.prediction.llc,
        "llc_drop": h.prediction.llc_drop,
        "hessian_rank": h.prediction.hessian_rank,
        "flat": h.prediction.flat,
    }
    for claim in h.claims:
        assert claim.value == exact[claim.key], (claim, exact[claim.key])


# --- what a file may say -----------------------------------------------------------------------


def test_an_implicit_equation_with_constants_and_an_equals_sign():
    h = hypothesis(
        '[manifold]\nequation = "x3 = a*x1**2"\nvariables = ["x1", "x2", "x3"]\nscale = "1/2"\n'
        "[manifold.constants]\na = 0.5\n" + LAYER + CLAIMS
    )
    assert isinstance(h.manifold, mf.ImplicitHypersurface)
    assert h.manifold.scale == Fraction(1, 2)
    assert "a" not in {v for v in str(h.manifold.F).split("'") if v.isidentifier()}
    assert h.prediction.flat is False


def test_a_parametrization_with_ranges_and_pi():
    h = hypothesis(
        '[manifold]\nparametrization = ["cos(pi*t)", "sin(pi*t)", "1"]\nparameters = ["t"]\n'
        "ranges = { t = [0, 2] }\n" + LAYER + '[claims]\nllc = "m*d/2"\nflat = true\n'
    )
    assert h.manifold.ranges == ((0, 2),)
    # a circle in the plane x3 = 1: flat, but off the origin, so W alone keeps its full LLC
    assert h.prediction.flat and h.prediction.llc == 3 and h.claims[0].value == 3


@pytest.mark.parametrize(
    ("family", "keys", "expected"),
    [
        ("layernorm", 'd = 3\ngain = [1, 2, "1/2"]\nbeta = [0, "0.1", 1]',
         mf.LayerNormImage(3, gain=(1, 2, Fraction(1, 2)), bias=(0, Fraction(1, 10), 1))),
        ("rmsnorm", "d = 3", mf.RMSNormImage(3)),
        ("sphere", 'd = 3\nradius = "3/2"', mf.Sphere(3, Fraction(3, 2))),
        ("simplex", "d = 3", mf.Simplex(3)),
        ("ellipsoid", "d = 2\naxes = [1, 2]", mf.Ellipsoid(2, (1, 2))),
        ("hyperplane", "normal = [1, 1, 0]\noffset = 1", mf.Hyperplane((1, 1, 0), 1)),
        ("bumped-hyperplane", 'd = 3\nkappa = 1\nfraction = "1/2"',
         mf.BumpedHyperplane(3, 1, Fraction(1, 2))),
        ("gaussian", "d = 2", mf.Gaussian(2)),
    ],
)  # fmt: skip
def test_named_families(family, keys, expected):
    h = hypothesis(f'[manifold]\nfamily = "{family}"\n{keys}\n' + LAYER + CLAIMS)
    assert h.manifold == expected


def test_sampler_settings_become_the_case():
    h = hypothesis(
        SPHERE + '[layer]\nm = 2\nbias = true\nrefine = "weight"\n'
        "[sampler]\nn = 500\neps = 1e-4\ngamma = 2\nchains = 3\nsteps = 50\nburnin = 10\n"
        'seed = 7\nsigma = "1/4"\n' + CLAIMS
    )
    (case,) = h.cases()
    assert (case.n, case.seed, case.sigma, case.refine) == (500, 7, 0.25, "weight")
    assert (case.config.eps, case.config.gamma, case.config.chains) == (1e-4, 2, 3)
    assert dict(case.tags) == {"hypothesis": "h", "role": "manifold"}


def test_a_drop_claim_adds_the_same_layer_on_gaussian_data():
    h = hypothesis(SPHERE + LAYER + '[claims]\nllc_drop = "0"\n')
    manifold, gaussian = h.cases()
    assert gaussian.manifold == mf.Gaussian(3) and gaussian.layer == manifold.layer
    assert dict(gaussian.tags)["role"] == "gaussian"
    experiment = hypothesis_experiment(h)
    assert experiment.name == "h" and tuple(experiment.jobs("full")) == h.cases()


def test_claims_are_exact_rationals_in_m_and_d():
    h = hypothesis(
        SPHERE + "[layer]\nm = 3\n" + '[claims]\nllc = "m*d/2"\nllc_drop = 0\nhessian_rank = 9\n'
    )
    assert [c.value for c in h.claims] == [Fraction(9, 2), 0, 9]


def test_load_hypothesis_names_the_experiment_after_the_file(tmp_path):
    path = tmp_path / "my-cone_2.toml"
    path.write_text(SPHERE + LAYER + CLAIMS)
    h = load_hypothesis(path)
    assert (h.name, h.title, h.source) == ("my-cone_2", "my-cone_2", str(path))


# --- mistaken and hostile files: rejected before anything runs, naming file and key ---------

HOSTILE_EQUATIONS = [
    ("x1.__class__", "manifold.equation", "attribute access is not allowed"),
    ("__import__('os').system('true')", "manifold.equation", "only the functions"),
    ("(lambda: 1)()", "manifold.equation", "only the functions"),
    ("lambda: x1", "manifold.equation", "lambda expressions are not allowed"),
    ("x1[0]", "manifold.equation", "subscripts are not allowed"),
    ("x1 + 'a'", "manifold.equation", "strings are not allowed"),
    ("[x1 for x1 in x2]", "manifold.equation", "comprehensions are not allowed"),
    ("x1**(10**9)", "manifold.equation", "the exponent 1000000000 is larger than 64"),
    ("(" * 10_000 + "x1" + ")" * 10_000, "manifold.equation", "characters long"),
    ("-" * 5_000 + "x1", "manifold.equation", "nested"),
    ("x1 + y", "manifold.equation", "unknown name 'y'"),
    ("x1^2 + x2", "manifold.equation", "use ** for powers"),
    ("sin(x1) - x2", "manifold.equation", "must be a polynomial"),
    ("x1/x2 - 1", "manifold.equation", "must be a polynomial"),
    ("x1**2 + x2**2 + 1", "manifold.equation", "has no real points"),
    ("x1**2 + x2**2", "manifold.equation", "not a hypersurface"),
]


@pytest.mark.parametrize(("equation", "key", "fragment"), HOSTILE_EQUATIONS)
def test_hostile_or_impossible_equations(equation, key, fragment):
    text = f'[manifold]\nequation = "{equation}"\nvariables = ["x1", "x2"]\n' + LAYER + CLAIMS
    rejected(text, f"h.toml: {key}: ", fragment)


def test_a_one_megabyte_expression_is_rejected_by_length(tmp_path):
    path = tmp_path / "big.toml"
    big = "x1+" * 350_000 + "x1"
    path.write_text(f'[manifold]\nequation = "{big}"\nvariables = ["x1"]\n' + LAYER + CLAIMS)
    with pytest.raises(ExpressionError, match=r"big.toml: manifold.equation: .* characters long"):
        load_hypothesis(path)


@pytest.mark.parametrize(
    ("manifold", "key", "fragment"),
    [
        ('equation = "x1 - a"\nvariables = ["x1"]\nconstants = { a = inf }',
         "manifold.constants.a", "finite"),
        ('equation = "x1 - a"\nvariables = ["x1"]\nconstants = { a = nan }',
         "manifold.constants.a", "finite"),
        ('equation = "x1 - a"\nvariables = ["x1"]\nconstants = { a = "1/0" }',
         "manifold.constants.a", "division by zero"),
        ('equation = "x1 - a"\nvariables = ["x1"]\nconstants = { a = "sqrt(2)" }',
         "manifold.constants.a", "not allowed here"),
        ('equation = "x1"\nvariables = ["x1"]\nconstants = { x1 = 1 }',
         "manifold.constants.x1", "new identifier"),
        ('equation = "x1"\nvariables = ["x1"]\nscale = 0', "manifold.scale", "positive"),
        ('equation = "x1"\nvariables = ["x1"]\nsampling = "uniform"', "manifold.sampling",
         "'projection'"),
        ('parametrization = ["u"]\nparameters = ["u"]\nranges = { u = [1, 0] }',
         "manifold.ranges.u", "low < high"),
        ('parametrization = ["u"]\nparameters = ["u"]\nranges = { u = [0, "pi"] }',
         "manifold.ranges.u[1]", "not an exact rational"),
        ('parametrization = ["u"]\nparameters = ["u"]\nranges = { v = [0, 1] }',
         "manifold.ranges", "unknown key 'v'"),
        ('parametrization = ["u", "u.real"]\nparameters = ["u"]',
         "manifold.parametrization[1]", "attribute access"),
        ('parametrization = "u"\nparameters = ["u"]', "manifold.parametrization", "a list"),
        ('family = "torus"\nd = 3', "manifold.family", "unknown family 'torus'; known:"),
        ('family = "sphere"\nd = 3\ngain = [1, 1, 1]', "manifold", "unknown key 'gain'"),
        ('family = "layernorm"\nd = 3\nbeta = [1, 2]', "manifold.beta", "has 2 entries"),
        ('family = "layernorm"\nd = "3"', "manifold.d", "must be an integer"),
        ('family = "layernorm"\nd = 3\ngain = [1, inf, 1]', "manifold.gain[1]", "finite"),
        ('equation = "x1"\nfamily = "simplex"\nvariables = ["x1"]', "manifold", "exactly one"),
        ('variables = ["x1"]', "manifold", "exactly one"),
        ('equation = "x1"\nvariable = ["x1"]', "manifold", "unknown key 'variable'; known keys"),
    ],
)  # fmt: skip
def test_manifold_mistakes_name_the_key(manifold, key, fragment):
    rejected(f"[manifold]\n{manifold}\n" + LAYER + CLAIMS, f"h.toml: {key}: ", fragment)


@pytest.mark.parametrize(
    ("claims", "key", "fragment"),
    [
        ('llc = "m*x/2"', "claims.llc", "unknown name 'x' (declared names: d, m"),
        ('llc = "m*n/2"', "claims.llc", "unknown name 'n'"),
        ('llc = "sqrt(m)"', "claims.llc", "function calls (sqrt) are not allowed"),
        ('llc = "m**(1/2)"', "claims.llc", "is not rational"),
        ('llc = "pi*m"', "claims.llc", "is not rational"),
        ('llc = "m/(d-3)"', "claims.llc", "divides by zero at m = 2, d = 3"),
        ('llc = "m.__class__"', "claims.llc", "attribute access"),
        ("llc = true", "claims.llc", "an expression in m and d"),
        ("llc = [1]", "claims.llc", "an expression in m and d"),
        ('flat = "yes"', "claims.flat", "true or false"),
        ("lcc = 1", "claims", "unknown key 'lcc'; known keys here: llc, llc_drop"),
    ],
)
def test_claims_must_be_exact_expressions_in_m_and_d(claims, key, fragment):
    rejected(SPHERE + LAYER + f"[claims]\n{claims}\n", f"h.toml: {key}: ", fragment)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (SPHERE + LAYER + "[claims]\n", "claims: give at least one of"),
        (SPHERE + LAYER, "top level: missing key 'claims'"),
        ("extra = 1\n" + SPHERE + LAYER + CLAIMS, "top level: unknown key 'extra'"),
        (SPHERE + "[layer]\nm = 0\n" + CLAIMS, "layer: m must be at least 1"),
        (SPHERE + "[layer]\nm = 2\nbias = 1\n" + CLAIMS, "layer.bias: must be true or false"),
        (SPHERE + '[layer]\nm = 2\nrefine = "bias"\n' + CLAIMS, "layer.refine: refine='bias'"),
        (SPHERE + LAYER + "[sampler]\nn = 1\n" + CLAIMS, "sampler.n: n (the number of samples)"),
        (SPHERE + LAYER + "[sampler]\neps = -1\n" + CLAIMS, "sampler: eps must be positive"),
        (SPHERE + LAYER + "[sampler]\nburnin = 5\nsteps = 5\n" + CLAIMS, "sampler: burnin (5)"),
        (SPHERE + LAYER + "[sampler]\nsigma = inf\n" + CLAIMS, "sampler.sigma: expected a finite"),
        (SPHERE + LAYER + "[sampler]\nbatch = 2\n" + CLAIMS, "sampler: unknown key 'batch'"),
        ("[manifold\n", "not valid TOML"),
        ("a = " + "[" * 5_000 + "]" * 5_000 + "\n", "TOML"),
        ("title = 3\n" + SPHERE + LAYER + CLAIMS, "title: must be text"),
    ],
)
def test_file_mistakes(text, fragment):
    rejected(text, fragment)


def test_unreadable_and_oddly_named_files(tmp_path):
    bad_bytes = tmp_path / "bytes.toml"
    bad_bytes.write_bytes(b"\xff\xfe" + b"title = 1\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_hypothesis(bad_bytes)
    with pytest.raises(SpecError, match="cannot be read"):
        load_hypothesis(tmp_path / "missing.toml")
    odd = tmp_path / "my cone.toml"
    odd.write_text(SPHERE + LAYER + CLAIMS)
    with pytest.raises(SpecError, match="file name 'my cone' must start"):
        load_hypothesis(odd)


def test_every_file_is_checked_and_all_problems_reported_together(tmp_path):
    (tmp_path / "a").mkdir()
    good, twin = tmp_path / "cone.toml", tmp_path / "a" / "cone.toml"
    good.write_text(CONE + LAYER + CLAIMS)
    twin.write_text(CONE + LAYER + CLAIMS)
    bad = tmp_path / "bad.toml"
    bad.write_text(CONE.replace("x3**2", "x3**99") + LAYER + CLAIMS)
    with pytest.raises(SpecError) as info:
        load_hypotheses([good, bad, tmp_path / "nope.toml", twin])
    message = str(info.value)
    assert message.startswith("3 problems in the hypothesis files:")
    assert "bad.toml: manifold.equation: the exponent 99" in message
    assert "nope.toml: cannot be read" in message
    assert "same name 'cone'" in message


def test_the_check_command_rejects_bad_files_before_running_anything(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SPHERE + LAYER + '[claims]\nllc = "__import__"\n')
    out = tmp_path / "out"
    assert cli.main(["check", str(bad), "--out", str(out), "--quiet"]) == 2
    assert "bad.toml: claims.llc: unknown name '__import__'" in capsys.readouterr().err
    assert not out.exists()


# --- judging claims from records (no sampling) --------------------------------------------


CONFIG = to_jsonable(SGLDConfig())


def record(role, llc_mean, se=0.05, verdict="agree", predicted=3.0):
    return CaseResult(
        key=role, case={"config": CONFIG}, tags={"hypothesis": "h", "role": role},
        predicted_llc=predicted, predicted_llc_exact=str(predicted), llc_unconstrained=4.5,
        expected_estimate=llc_mean, expected_se=se, llc_mean=llc_mean, llc_se=se,
        per_chain=(llc_mean,), diverged_chains=(), rhat=1.0, ess=500.0,
        z=10.0 if verdict == "disagree" else 0.0,
        verdict=verdict, reasons=() if verdict == "agree" else ("a reason",), mode="full batch",
        seconds=0.1, device="cpu", version="test",
    )  # fmt: skip


PLANE = (
    '[manifold]\nfamily = "hyperplane"\nnormal = [1, 2, 2]\n[layer]\nm = 3\n'
    '[claims]\nllc = "m*(d-1)/2"\nllc_drop = "m/2"\nflat = true\nhessian_rank = "m*(d-1)"\n'
)


def judged(text, records):
    h = hypothesis(text)
    result = summarize_hypothesis(h, records)
    return {c.claim.split(" ")[0]: c for c in result.claims}, result


def test_claims_agree_when_exact_and_singled_out_by_the_measurement():
    claims, result = judged(PLANE, [record("manifold", 3.05), record("gaussian", 4.52, 0.06)])
    assert {k: c.verdict for k, c in claims.items()} == dict.fromkeys(claims, "agree")
    assert claims["llc"].prediction == "3" and claims["llc"].measurement == "3.050 ± 0.050"
    assert "from 4.5" in claims["llc"].note
    assert claims["llc_drop"].measurement == f"1.470 ± {math.hypot(0.05, 0.06):.3f}"
    assert [row["role"] for row in result.rows] == ["manifold", "gaussian"]
    assert result.figure is not None and len(result.figure.panels[0].series) == 3


def test_a_claim_that_is_not_the_exact_value_disagrees_whatever_the_measurement():
    wrong = PLANE.replace('llc = "m*(d-1)/2"', 'llc = "m*d/2"')
    claims, _ = judged(wrong, [record("manifold", 3.0), record("gaussian", 4.5)])
    assert claims["llc"].verdict == "disagree"
    assert "exact derivation gives 3, not the claimed 9/2" in claims["llc"].note
    assert claims["flat"].verdict == "agree"


def test_a_measurement_that_points_to_the_alternative_disagrees():
    claims, _ = judged(PLANE, [record("manifold", 4.45), record("gaussian", 4.5)])
    assert claims["llc"].verdict == "disagree" and claims["llc_drop"].verdict == "disagree"


def test_an_imprecise_or_untrusted_measurement_is_inconclusive():
    claims, _ = judged(PLANE, [record("manifold", 3.7, se=0.5), record("gaussian", 4.5)])
    assert claims["llc"].verdict == "inconclusive"
    assert "cannot be told apart" in claims["llc"].note
    claims, _ = judged(PLANE, [record("manifold", 3.0, verdict="inconclusive"),
                               record("gaussian", 4.5)])  # fmt: skip
    assert claims["llc"].verdict == "inconclusive" and "a reason" in claims["llc"].note
    claims, _ = judged(
        PLANE, [record("manifold", 3.0), record("gaussian", 4.5, verdict="disagree")]
    )
    assert claims["llc_drop"].verdict == "disagree" and claims["llc"].verdict == "agree"


def test_flatness_a_layer_without_bias_cannot_see_is_measured_with_a_bias():
    # an affine plane off the origin: flat, but a layer without a bias keeps its full LLC, so
    # the claim is measured with the same layer plus a bias (LLC m (d - 1 + 1)/2 = 3, not 4)
    text = '[manifold]\nfamily = "hyperplane"\nnormal = [1, 2, 2]\noffset = 1\n' + LAYER
    h = hypothesis(text + "[claims]\nflat = true\n")
    assert h.prediction.flat and h.prediction.llc_drop == 0
    roles = [c.tag("role") for c in h.cases()]
    assert roles == ["manifold", "flat"] and h.cases()[1].layer.bias
    results = {"manifold": record("m", 3.0), "flat": record("flat", 3.0)}
    claim = judge_claim(h, h.claims[0], results)
    assert claim.verdict == "agree" and "chosen automatically" in claim.note
    results["flat"] = record("flat", 4.0)
    assert judge_claim(h, h.claims[0], results).verdict != "agree"


# --- end to end ----------------------------------------------------------------------------


@pytest.mark.slow
def test_llcgeo_check_on_the_examples_agrees_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report"
    files = [str(p) for p in EXAMPLE_FILES]
    status = cli.main(["check", *files, "--out", str(out), "--device", "cpu", "--quiet"])
    printed = capsys.readouterr().out.splitlines()
    assert status == 0
    assert [line.split()[:2] for line in printed[: len(printed) - 3] if line[0] != " "] == [
        ["agree", f] for f in files
    ]
    assert printed[-3] == "6 files: 6 agree, 0 disagree, 0 inconclusive."
    for name in ("report.md", "report.html", "results.json", "claims.csv", "cone.png"):
        assert (out / name).is_file()
    assert "A union that is flat on part of its mass" in (out / "report.md").read_text()
    # a rerun reuses every stored case; --json gives one object with every claim
    status = cli.main(["check", *files, "--out", str(out), "--device", "cpu", "--json", "--quiet"])
    outcome = json.loads(capsys.readouterr().out)
    assert status == 0 and outcome["verdict"] == "agree" and outcome["computed"] == 0
    assert [f["name"] for f in outcome["files"]] == [p.stem for p in EXAMPLE_FILES]
    assert all(c["verdict"] == "agree" for f in outcome["files"] for c in f["claims"])
