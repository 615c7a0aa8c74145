"""The network suite: records round-trip through the store, the claims' rules, and at small
scale every claim agrees (fixed seeds; the statistics behind each claim are in its note)."""

from dataclasses import replace

import pytest

from llcgeo.serialize import dumps_exact, loads_exact, to_jsonable
from llcgeo.suites.network import _load, experiments, jobs, run, summarize
from llcgeo.thresholds import SHIFT_LIMIT


@pytest.fixture(scope="module")
def tiny_records():
    out = []
    for job in jobs("small"):
        if job.model == "transformer":
            tiny = replace(job, sequences=24, draws=60, max_burnin=100, chains=4)
            out.append(run(tiny, "cpu"))
    return out


def test_a_record_round_trips_through_the_store(tiny_records):
    for record in tiny_records:
        assert _load(loads_exact(dumps_exact(to_jsonable(record)))) == record
    ln, rms = tiny_records
    assert (ln.llc, rms.llc) == ("49/2", "28")  # (K - 1)(h - 1)/2 and (K - 1) h / 2, K = h = 8
    assert ln.rank == ln.predicted_rank == 49 and rms.rank == 56


def test_the_suite_lists_four_digits_heads_and_two_transformer_heads():
    listed = jobs("small")
    assert [j.model for j in listed].count("digits-mlp") == 4
    assert [(j.model, j.norm) for j in listed][-2:] == [
        ("transformer", "layernorm"),
        ("transformer", "rmsnorm"),
    ]
    assert experiments()[0].name == "network"


def test_a_rank_off_by_one_fails_its_claim(tiny_records):
    ln, rms = tiny_records
    wrong = replace(ln, rank=ln.rank + 1)
    verdicts = [c.verdict for c in summarize([wrong, rms]).claims]
    assert verdicts[0] == "disagree"


def test_a_large_higher_order_shift_makes_the_claims_inconclusive(tiny_records):
    ln, rms = tiny_records
    shifted = replace(
        ln, shift=2 * SHIFT_LIMIT * ln.exact, estimate=replace(ln.estimate, mean=ln.expected)
    )
    claims = summarize([shifted, rms]).claims
    assert [c.verdict for c in claims[1:]] == ["inconclusive", "inconclusive"]


@pytest.mark.slow
def test_every_claim_agrees_at_small_scale():
    records = [_load(to_jsonable(run(job, "cpu"))) for job in jobs("small")]
    result = summarize(records)
    assert [c.verdict for c in result.claims] == ["agree"] * 6, [c.note for c in result.claims]
