"""The geometry, isometry and lipschitz suites: jobs, records, verdicts and figures."""

import copy
import json
from dataclasses import replace

import numpy as np
import pytest

from llcgeo.errors import SpecError
from llcgeo.reconcile.model import VERDICTS, ExperimentResult
from llcgeo.report.figures import draw
from llcgeo.suites import geometry, isometry, lipschitz, suite

MODULES = {"geometry": geometry, "isometry": isometry, "lipschitz": lipschitz}


def _run(module, jobs):
    experiment = module.experiments()[0]
    # records pass through JSON in the store; summaries must work on what comes back
    stored = [json.loads(json.dumps(experiment.run(j, "cpu"), allow_nan=False)) for j in jobs]
    records = [experiment.load(r) for r in stored]
    return experiment.summarize(records), records


def _check_result(result: ExperimentResult):
    assert result.claims and result.rows
    assert all(c.verdict in VERDICTS for c in result.claims)
    assert draw(result.figure)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", MODULES)
def test_suite_names_load_these_experiments(name):
    (experiment,) = suite(name)
    assert experiment.name == name


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("scale", ["small", "full"])
def test_jobs_are_frozen_hashable_and_keyed(name, scale):
    experiment = MODULES[name].experiments()[0]
    jobs = experiment.jobs(scale)
    assert jobs
    keys = {experiment.job_key(j, "test") for j in jobs}
    assert len(keys) == len(jobs)
    hash(jobs[0])


@pytest.mark.parametrize("name", MODULES)
def test_unknown_scale_is_a_spec_error(name):
    with pytest.raises(SpecError, match="scale must be one of"):
        MODULES[name].experiments()[0].jobs("huge")


def test_geometry_suite_agrees_everywhere():
    result, _ = _run(geometry, geometry.jobs("small"))
    _check_result(result)
    assert [c.verdict for c in result.claims] == ["agree"] * len(result.claims)
    assert all(row["verdict"] == "agree" for row in result.rows)
    exact = [c for c in result.claims if c.claim.startswith("exact principal axes")]
    assert exact and "sqrt(21), sqrt(7)" in exact[0].prediction


def test_geometry_flags_an_output_off_the_hyperplane():
    _, records = _run(geometry, geometry.jobs("small")[:1])
    broken = copy.deepcopy(records)
    broken[0].measured["max_plane_deviation"] = 1e-6
    result = geometry.summarize(broken)
    plane = next(c for c in result.claims if "hyperplane" in c.claim)
    assert plane.verdict == "disagree"


def test_isometry_suite_agrees_with_mean_field():
    result, records = _run(isometry, isometry.jobs("small"))
    _check_result(result)
    assert [c.verdict for c in result.claims] == ["agree"] * len(result.claims)
    # LN after the activation decorrelates; ReLU without it collapses towards cosine 1
    final = {(r.job.activation, r.job.order): r.predicted_cosine[-1] for r in records}
    assert final[("relu", "norm_after_act")] < 1e-3 < 0.99 < final[("relu", "no_norm")]


def test_isometry_flags_a_shifted_trajectory():
    _, records = _run(isometry, [replace(isometry.jobs("small")[0], depth=10)])
    shifted = replace(records[0], mean_cosine=(np.asarray(records[0].mean_cosine) + 0.05).tolist())
    assert isometry.layer_test(shifted)["verdict"] == "disagree"


def _small_lipschitz_jobs():
    return [
        replace(j, width=32, depths=(1, 2, 4, 8), networks=3, points=4)
        for j in lipschitz.jobs("small")
        if j.width == 128 and j.activation == "relu"
    ]


def test_lipschitz_bounds_hold_and_a_violation_is_flagged():
    result, records = _run(lipschitz, _small_lipschitz_jobs())
    _check_result(result)
    bounds = [c for c in result.claims if "layer-wise product bound" in c.claim]
    assert [c.verdict for c in bounds] == ["agree", "agree"]
    variance = next(c for c in result.claims if "input variance" in c.claim)
    assert variance.verdict == "agree"  # exact scaling laws hold at any width
    broken = copy.deepcopy(records)
    broken[0].log_input[0][0][-1] = broken[0].log_input_bound[0][0][-1] + 1e-3
    again = lipschitz.summarize(broken)
    assert next(c for c in again.claims if "d f / d x" in c.claim).verdict == "disagree"


@pytest.mark.slow
def test_lipschitz_suite_agrees_at_small_scale():
    result, _ = _run(lipschitz, lipschitz.jobs("small"))
    _check_result(result)
    assert [c.verdict for c in result.claims] == ["agree"] * len(result.claims)


def test_a_geometry_job_with_a_zero_gain_is_rejected():
    with pytest.raises(SpecError, match="subspace"):
        geometry.GeometryJob("bad", ("1", "0"), None, 0.0, 100, 0)
