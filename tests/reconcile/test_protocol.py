"""One coupled-measurement protocol: chains that did not mix make a verdict inconclusive,
naming the diagnostic, in the scanner's rows and the network suite's claims alike."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from llcgeo.reconcile.model import EstimateSummary
from llcgeo.reconcile.protocol import Coupled, coupled_verdict
from llcgeo.report.scan import scan
from llcgeo.suites import network


def _summary(mean=4.0, se=0.05, rhat=1.01, ess=900.0, diverged=0) -> EstimateSummary:
    return EstimateSummary(mean=mean, se=se, rhat=rhat, ess=ess, diverged=diverged, seconds=1.0)


GOOD = _summary()
BROKEN = {
    "R-hat": _summary(rhat=1.5),
    "ESS": _summary(ess=40.0),
    "diverged": _summary(diverged=2),
}


@pytest.mark.parametrize("which", ["estimate", "quadratic"])
@pytest.mark.parametrize("diagnostic", sorted(BROKEN))
def test_unmixed_chains_are_inconclusive_and_named(which, diagnostic):
    runs = {"estimate": GOOD, "quadratic": GOOD, which: BROKEN[diagnostic]}
    judged = coupled_verdict(Coupled(runs["estimate"], runs["quadratic"], expected=4.0,
                                     shift=0.0, scale=4.0, chains=8))  # fmt: skip
    assert judged.verdict == "inconclusive"
    run = "real run" if which == "estimate" else "quadratic run"
    assert f"{run}: " in judged.reason and diagnostic in judged.reason


def test_unmixed_chains_are_inconclusive_even_where_the_t_test_fails():
    judged = coupled_verdict(Coupled(GOOD, _summary(mean=9.0, ess=40.0), expected=4.0,
                                     shift=0.0, scale=4.0, chains=8))  # fmt: skip
    assert judged.verdict == "inconclusive"


def test_mixed_chains_are_judged_on_the_t_test_and_the_shift():
    agree = coupled_verdict(Coupled(GOOD, GOOD, 4.0, 0.1, 4.0, 8))
    disagree = coupled_verdict(Coupled(GOOD, _summary(mean=5.0), 4.0, 0.1, 4.0, 8))
    shifted = coupled_verdict(Coupled(GOOD, GOOD, 4.0, 0.5, 4.0, 8))
    assert (agree.verdict, disagree.verdict, shifted.verdict) == (
        "agree", "disagree", "inconclusive")


def _record(norm: str, estimate: EstimateSummary) -> SimpleNamespace:
    job = SimpleNamespace(model="mlp", norm=norm, chains=8, classes=3)
    return SimpleNamespace(job=job, estimate=estimate, quadratic=GOOD, expected=4.0, shift=0.0,
                           exact=4.0, llc="4")  # fmt: skip


def test_a_network_suite_claim_on_unmixed_chains_is_inconclusive_and_names_them():
    records = [_record("layernorm", GOOD), _record("rmsnorm", BROKEN["R-hat"])]
    claim = network._level_claim(records, "mlp")
    assert claim.verdict == "inconclusive"
    assert "rmsnorm: real run: R-hat is 1.5" in claim.note
    mixed = network._level_claim([_record("layernorm", GOOD), _record("rmsnorm", GOOD)], "mlp")
    assert mixed.verdict == "agree"


def test_a_scan_row_on_chains_too_short_to_mix_is_inconclusive_naming_the_ess():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    y = model(x).detach() + 0.1 * torch.randn(64, 2)
    row = scan(model, x, y, chains=4, draws=3, device="cpu").rows[0]
    assert row.verdict == "inconclusive"
    assert "ESS" in row.reason
