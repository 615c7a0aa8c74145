"""The singular suite: the extrapolation recovers a model's coefficients exactly, records
round-trip through the store, and at small scale every claim agrees (fixed seeds; the
statistics behind each claim are in its note)."""

import math
from dataclasses import replace

import pytest

from llcgeo.reconcile.model import EstimateSummary
from llcgeo.serialize import dumps_exact, loads_exact, to_jsonable
from llcgeo.suites import singular as s


def _synthetic(values, ns=(10**4, 10**5, 10**6), gammas=(1.0, 4.0), datasets=2, se=0.05):
    """A grid record whose estimates are ``values(geometry, n, gamma, dataset)`` exactly."""
    job = s.GridJob((3,), ns, gammas, datasets, chains=8, steps=100)
    points = tuple(
        s.GridPoint(g, n, gamma, k, 1e-5, EstimateSummary(values(g, n, gamma, k), se, 1.0,
                                                          5000.0, 0, 0.0, 0.7))
        for g in s.GEOMETRIES for n in ns for k in range(datasets) for gamma in gammas
    )  # fmt: skip
    return s.GridRecord(job, points, 0.0)


def _model(lam, a, b, m):
    def value(geometry, n, gamma, k):
        nbeta = n / math.log(n)
        return (
            lam[geometry]
            - (m[geometry] - 1) / math.log(nbeta)
            + a / math.log(n)
            + (b * gamma / math.sqrt(nbeta))
        )

    return value


EXACT = {"gaussian": 6.0, "layernorm": 5.0, "rmsnorm": 6.0}
MULTIPLICITY = {"gaussian": 1, "layernorm": 2, "rmsnorm": 1}  # of widths (4, 3, 4), rank 1


def test_the_extrapolation_recovers_the_models_coefficients_exactly():
    record = _synthetic(_model(EXACT, a=-2.0, b=-1.5, m=MULTIPLICITY))
    for geometry in s.GEOMETRIES:
        e = s.extrapolate(record, geometry)
        assert e.llc == pytest.approx(EXACT[geometry], abs=1e-9)
        assert (e.slope, e.localization) == (pytest.approx(-2.0), pytest.approx(-1.5))
        assert e.chi2 == pytest.approx(0.0, abs=1e-12) and e.multiplicity == MULTIPLICITY[geometry]
    drop, _ = s.extrapolated_drop(record, "layernorm")
    assert drop == pytest.approx(1.0, abs=1e-9)
    assert [c.verdict for c in s.summarize_grid([record]).claims] == ["agree"] * 5


def test_one_gamma_fits_lambda_and_the_slope_alone():
    record = _synthetic(_model(EXACT, a=-2.0, b=0.0, m=MULTIPLICITY), gammas=(1.0,))
    e = s.extrapolate(record, "gaussian")
    assert e.llc == pytest.approx(6.0, abs=1e-9) and e.localization == 0.0


def _example_record():
    import json
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "reports" / "example" / "results.json"
    cases = json.loads(example.read_text())["cases"]
    (record,) = [c["record"] for c in cases if c["experiment"] == "singular"]
    return s.load_grid(record)


def test_the_committed_example_record_gives_its_committed_claims():
    """The extrapolation (:func:`llcgeo.reconcile.stats.extrapolate_to_zero`) gives the committed
    report's figures to the last digit shown (reports/example/claims.csv)."""
    import csv
    from pathlib import Path

    written = Path(__file__).resolve().parents[2] / "reports" / "example" / "claims.csv"
    with written.open(newline="") as f:
        committed = [r for r in csv.DictReader(f) if r["experiment"] == "singular"]
    claims = s.summarize_grid([_example_record()]).claims
    assert len(claims) == len(committed) == 5
    for claim, row in zip(claims, committed, strict=True):
        assert (claim.claim, claim.measurement, claim.statistic, claim.verdict) == (
            row["claim"], row["measurement"], row["statistic"], row["verdict"])  # fmt: skip
    assert [c.verdict for c in claims] == ["agree"] * 5


def test_the_figure_draws_the_extrapolations_line_and_band():
    record = _synthetic(_model(EXACT, a=-2.0, b=-1.5, m=MULTIPLICITY))
    panel = s.summarize_grid([record]).figure.panels[0]
    band = next(x for x in panel.series if x.style == "band")
    fit = s.extrapolate(record, "gaussian").fit
    xs, line, spread = fit.band(max(1 / math.log(n) for n in record.job.ns))
    assert (band.x, band.y, band.yerr) == (xs, line, spread)
    dashed = next(x for x in panel.series if x.style == "dashed")
    assert dashed.y == (pytest.approx(6.0), pytest.approx(fit.line(dashed.x[1])))


def test_coefficients_that_miss_disagree_and_a_regular_drop_is_told_apart():
    missed = dict(EXACT, layernorm=4.0)  # a drop of 2 = m/2: the regular model's answer
    claims = s.summarize_grid([_synthetic(_model(missed, a=0.0, b=0.0, m=MULTIPLICITY))]).claims
    # in order: the three geometries' levels, then LayerNorm's drop and RMSNorm's
    assert [c.verdict for c in claims] == ["agree", "disagree", "agree", "disagree", "agree"]


def test_a_group_that_did_not_mix_makes_its_claims_inconclusive():
    record = _synthetic(_model(EXACT, a=0.0, b=0.0, m=MULTIPLICITY))
    bad = replace(record.points[0], estimate=replace(record.points[0].estimate, ess=50.0))
    record = replace(record, points=(bad, *record.points[1:]))
    claims = s.summarize_grid([record]).claims
    assert claims[0].verdict == "inconclusive" and "bulk ESS is 50" in claims[0].note
    assert claims[3].verdict == claims[4].verdict == "inconclusive"  # both drops use Gaussian's


def test_records_round_trip_through_the_store():
    grid = s.run_grid(replace(s.grid_jobs("small")[0], ns=(500, 1000), datasets=1, steps=40),
                      "cpu")  # fmt: skip
    assert s.load_grid(loads_exact(dumps_exact(to_jsonable(grid)))) == grid
    assert len(grid.points) == 3 * 2 * 1
    bias = s.run_bias(replace(s.bias_jobs("small")[0], n=500, chains=2, steps=40), "cpu")
    assert s.load_bias(loads_exact(dumps_exact(to_jsonable(bias)))) == bias
    assert [r.curved for r in bias.rows] == [7, 6, 7]  # LayerNorm's plane loses a direction


def test_the_suite_lists_a_grid_and_a_step_bias_job_per_network():
    assert [e.name for e in s.experiments()] == ["singular", "step_bias"]
    assert [j.hidden for j in s.grid_jobs("small")] == [(3,)]
    assert [j.hidden for j in s.grid_jobs("full")] == [(3,), (3, 3)]


@pytest.mark.slow
def test_every_claim_agrees_at_small_scale():
    grid = [s.load_grid(to_jsonable(s.run_grid(j, "cpu"))) for j in s.grid_jobs("small")]
    bias = [s.load_bias(to_jsonable(s.run_bias(j, "cpu"))) for j in s.bias_jobs("small")]
    claims = s.summarize_grid(grid).claims + s.summarize_bias(bias).claims
    assert [c.verdict for c in claims] == ["agree"] * 8, [c.note for c in claims]


def test_the_grid_and_the_bias_runs_resolve_the_device_they_are_given():
    from llcgeo.errors import SpecError

    small = replace(s.grid_jobs("small")[0], ns=(500,), datasets=1, steps=20)
    with pytest.raises(SpecError, match="device must be one of"):
        s.run_grid(small, "tpu")
    with pytest.raises(SpecError, match="device must be one of"):
        s.run_bias(replace(s.bias_jobs("small")[0], n=500, chains=2, steps=20), "tpu")


@pytest.mark.gpu
def test_the_grid_runs_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    job = replace(s.grid_jobs("small")[0], ns=(500, 1000), datasets=1, steps=400)
    grid = s.run_grid(job, "cuda")
    assert len(grid.points) == 3 * 2
    for p in grid.points:  # the CPU's run of this job accepts 32-43% in every group
        assert math.isfinite(p.estimate.mean) and p.estimate.diverged == 0
        assert 0.15 < p.estimate.acceptance <= 1.0
