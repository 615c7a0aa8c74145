"""llcgeo's R-hat and ESS held to ArviZ's on the same draws, and ``to_arviz``'s exports.

Both sides compute the rank-normalized split R-hat and the bulk and tail ESS of Vehtari,
Gelman, Simpson, Carpenter and Bürkner (2021): the same ranks (averaged over ties), the same
normal scores (Blom's offsets), the same split chains. R-hat has no other step, so the two agree
to rounding (``abs=1e-12``); the draws are even in number, because ArviZ ranks after dropping an
odd chain's middle draw and llcgeo before. The ESS differ in one detail of Geyer's truncation:
ArviZ, as Stan, adds the positive first term of the pair that ends the sum, so its
autocorrelation time is larger by at most that autocorrelation, which at the truncation lag is
sampling noise of size about ``sqrt(tau / (chains draws))``; relative to ``tau`` that is
``1 / sqrt(tau chains draws)``, under 0.3% for 4 chains of 2000 draws at any ``tau >= 1``, and
the tolerance (``rel=0.01``) is three of those.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from llcgeo.config import SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.numerics import estimate_llc
from llcgeo.numerics.sampling.diagnostics import ess_bulk, ess_tail, rank_rhat
from llcgeo.report.arviz import to_arviz

az = pytest.importorskip("arviz")


def _ar1(chains: int, draws: int, phi: float, seed: int) -> np.ndarray:
    """AR(1) chains ``x_t = phi x_{t-1} + e_t``, the second shifted by 0.2 (R-hat above 1)."""
    noise = np.random.default_rng(seed).standard_normal((chains, draws))
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    x[1] += 0.2
    return x


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, 0.99])
def test_rank_rhat_and_ess_are_arvizs_on_the_same_draws(phi):
    x = _ar1(4, 2000, phi, seed=int(100 * phi))
    assert rank_rhat(x) == pytest.approx(float(az.rhat(x, method="rank")), abs=1e-12)
    assert ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), rel=0.01)
    assert ess_tail(x) == pytest.approx(float(az.ess(x, method="tail")), rel=0.01)


def test_an_estimates_traces_export_with_the_diagnostics_it_reports(fitted_linear):
    layer, x, y = fitted_linear(400, seed=0)
    config = SGLDConfig(eps=1e-4, chains=4, steps=600, burnin=100)
    e = estimate_llc(layer, x, y, config=config, device="cpu", seed=1)
    data = to_arviz(e)
    assert data.posterior["loss"].shape == (4, 500) and data.attrs["seed"] == 1
    assert float(data.posterior["llc"].mean()) == pytest.approx(e.mean, rel=1e-9)
    rhat, ess = az.rhat(data, method="rank"), az.ess(data, method="bulk")
    assert float(rhat["loss"]) == pytest.approx(e.rhat, abs=1e-12)
    assert float(ess["loss"]) == pytest.approx(e.ess, rel=0.01)


def test_what_has_no_trace_is_refused_in_words(monkeypatch):
    with pytest.raises(SpecError, match=r"\(chains, draws\) array"):
        to_arviz(np.zeros(3))
    monkeypatch.setitem(sys.modules, "arviz", None)  # as if ArviZ were not installed
    with pytest.raises(SpecError, match="pip install"):
        to_arviz(np.zeros((2, 4)))


def test_a_scans_measured_rows_export_their_chains_and_a_row_alone_says_where():
    import torch
    from torch import nn

    import llcgeo

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)).double()
    x = torch.randn(128, 3, dtype=torch.float64)
    s = llcgeo.scan(model, x, model(x).detach(), device="cpu")
    exported = s.to_arviz()
    row = s.rows[0]
    assert set(exported) == {row.reader} and row.estimate is not None
    assert float(exported[row.reader].posterior["llc"].mean()) == pytest.approx(
        row.estimate.mean, rel=1e-9)  # fmt: skip
    with pytest.raises(SpecError, match="to_arviz"):
        to_arviz(row)
