"""The singular suite: records round-trip through the store, and at small scale every claim
agrees (fixed seeds; the statistics behind each claim are in its note)."""

from dataclasses import replace

import pytest

from llcgeo.serialize import dumps_exact, loads_exact, to_jsonable
from llcgeo.suites.singular import _load, experiments, jobs, run, summarize


def test_a_record_round_trips_through_the_store():
    job = jobs("small")[0]
    tiny = replace(job, n=500, config=replace(job.config, steps=40, burnin=10))
    record = run(tiny, "cpu")
    assert _load(loads_exact(dumps_exact(to_jsonable(record)))) == record
    assert record.llc == "6" and record.multiplicity == 1


def test_the_suite_lists_each_geometry_for_each_network_and_a_mala_reference():
    listed = jobs("small")
    samplers = [j.config.sampler for j in listed]
    assert samplers.count("sgld") == 6 and samplers.count("mala") == 2
    assert experiments()[0].name == "singular"


@pytest.mark.slow
def test_every_claim_agrees_at_small_scale():
    records = [_load(to_jsonable(run(job, "cpu"))) for job in jobs("small")]
    result = summarize(records)
    assert [c.verdict for c in result.claims] == ["agree"] * 6, [c.note for c in result.claims]
