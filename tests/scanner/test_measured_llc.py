"""The scan's rank and prediction held against an independent ``torch.func.hessian`` on small
readers (a head, a reader followed by GELU, an RMSNorm reader with a zero gain, a head on a
residual branch, a token model whose context length equals its vocabulary), its measured LLC
against a long plain-SGLD ``estimate_llc`` run, and its settings reused by ``estimate_llc``."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from llcgeo import SGLDConfig, estimate_llc
from llcgeo.numerics import cross_entropy
from llcgeo.numerics.measurements.networks import TinyTransformer
from llcgeo.numerics.measurements.training import sequence_task, train
from llcgeo.reconcile.stats import numerical_rank
from llcgeo.report.scan import scan
from llcgeo.scanner import reusable
from llcgeo.theory.calibration import recommend
from llcgeo.theory.sgld import expected_sgld_estimate

SMOOTHED = cross_entropy(0.1)


def _fitted(model: nn.Module, x, y, loss, steps=600) -> nn.Module:
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(model(x), y).mean().backward()
        optimizer.step()
    return model


def _gaussian(out, y):
    return 0.5 * (out - y).square().sum(dim=1)


class Residual(nn.Module):
    """Logits that reach the loss through a sum: a head on a residual branch."""

    def __init__(self):
        super().__init__()
        self.inner, self.norm = nn.Linear(5, 6), nn.LayerNorm(6)
        self.head, self.skip = nn.Linear(6, 3), nn.Linear(5, 3)

    def forward(self, x):
        return self.head(self.norm(self.inner(x))) + self.skip(x)


def _zero_gain() -> nn.Module:
    model = nn.Sequential(nn.Linear(5, 6), nn.RMSNorm(6), nn.Linear(6, 2))
    with torch.no_grad():
        model[1].weight[2] = 0.0  # the image loses a direction: its reader one row of them
    return model


def _case(name: str):
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    x = torch.randn(300, 5, generator=g)
    labels = torch.randint(3, (300,), generator=g)
    if name == "head":
        model = nn.Sequential(nn.Linear(5, 6), nn.GELU(), nn.LayerNorm(6), nn.Linear(6, 3))
        return _fitted(model, x, labels, SMOOTHED), x, labels, SMOOTHED, "3.weight"
    if name == "residual head":
        return _fitted(Residual(), x, labels, SMOOTHED), x, labels, SMOOTHED, "head.weight"
    y = torch.sin(x[:, :2]) + 0.1 * torch.randn(300, 2, generator=g)
    if name == "inner reader":
        model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Linear(6, 4), nn.GELU(),
                              nn.Linear(4, 2))  # fmt: skip
        return _fitted(model, x, y, _gaussian, 2000), x, y, "gaussian", "2.weight"
    if name == "zero gain":
        return _fitted(_zero_gain(), x, y, _gaussian), x, y, "gaussian", "2.weight"
    ids, tokens = sequence_task(48, 6, 6, 0)  # T == K == 6
    model = TinyTransformer(6, 8, 6, "layernorm", blocks=1, heads=2)
    train(model, ids, tokens, steps=300, lr=1e-2, batch=None, seed=0)
    return model, ids, tokens, SMOOTHED, "head.weight"


CASES = ("head", "inner reader", "zero gain", "residual head", "T == K")


@pytest.mark.parametrize("name", CASES)
def test_the_rank_and_prediction_match_an_independent_hessian(name):
    model, x, y, loss, weight = _case(name)
    s = scan(model, x, y, loss=loss, chains=2, draws=20, only=(weight,), device="cpu")
    row = next(r for r in s.rows if r.reader == weight)  # too few draws to judge: ranks only
    assert row.rank is not None, row.reason
    values = _independent_spectrum(reusable(model, x, y, weight, loss=loss), loss)
    rank, _ = numerical_rank(values)
    assert rank == row.rank == row.certificate.quotient
    assert row.exact and Fraction(row.high) == Fraction(rank, 2)


@pytest.mark.parametrize("name", ["head", "inner reader", "residual head"])
def test_the_measured_llc_agrees_with_the_exact_prediction(name):
    model, x, y, loss, weight = _case(name)
    row = scan(model, x, y, loss=loss, chains=4, only=(weight,), device="cpu").rows[0]
    assert row.verdict == "agree" and row.sampler == "agree", row.reason
    llc = float(Fraction(row.high))
    assert abs(row.estimate.mean - llc) <= 0.05 * llc + 3 * row.estimate.se


def _independent_spectrum(reused, loss) -> np.ndarray:
    """The Hessian of the mean loss in the reader's moving entries at its refit, by
    ``torch.func.hessian`` on the whole network (no quotient, no whitening)."""
    model, fn = reused.model, _per_sample(loss)
    params = dict(model.named_parameters())
    names = list(reused.param_masks)
    x, y = reused.inputs, reused.targets

    def mean_loss(*moving):
        values = {**params, **dict(zip(names, moving))}
        return fn(functional_call(model, values, (x,)), y).mean()

    blocks = hessian(mean_loss, argnums=tuple(range(len(names))))(*(params[n] for n in names))
    size = [params[n].numel() for n in names]
    full = torch.cat([torch.cat([blocks[i][j].reshape(size[i], size[j]) for j in range(len(names))],
                                dim=1) for i in range(len(names))])  # fmt: skip
    return np.clip(np.linalg.eigvalsh(full.detach().numpy()), 0.0, None)


def _per_sample(loss):
    return _gaussian if loss == "gaussian" else loss


@pytest.mark.slow
def test_the_measured_llc_matches_a_long_plain_sgld_run():
    model, x, y, loss, weight = _case("head")
    row = scan(model, x, y, loss=loss, chains=8, only=(weight,), device="cpu").rows[0]
    reused = reusable(model, x, y, weight, loss=loss, chains=8)
    values = _independent_spectrum(reused, loss)
    moving = values[values > 1e-9 * values.max()]
    nbeta = row.nbeta
    r = recommend(moving, nbeta=nbeta, bias=0.02, localization=0.02, chains=8, se=0.02,
                  max_steps=400_000)  # fmt: skip
    plain = estimate_llc(reused.model, x, y, loss=loss, param_masks=reused.param_masks,
                         config=SGLDConfig(eps=r.eps, gamma=r.gamma, nbeta=nbeta, chains=8,
                                           steps=r.steps, burnin=r.burnin, dtype="float64"),
                         seed=1, device="cpu")  # fmt: skip
    # both estimate the same LLC; their exact settings' biases differ by a known amount
    plain_bias = expected_sgld_estimate(values, nbeta, r.gamma, r.eps, r.steps, r.burnin).mean
    settings_gap = abs((plain_bias - len(moving) / 2) - (row.expected - float(row.high)))
    se = math.hypot(plain.se, row.estimate.se)
    assert abs(plain.mean - row.estimate.mean) <= 3 * se + settings_gap + 0.05 * float(row.high)


def test_a_rows_settings_and_preconditioner_reproduce_its_estimate():
    model, x, y, loss, weight = _case("head")
    row = scan(model, x, y, loss=loss, chains=4, only=(weight,), device="cpu").rows[0]
    reused = reusable(model, x, y, weight, loss=loss, chains=4)
    assert row.estimate is not None, row.reason
    assert (reused.config.eps, reused.config.gamma, reused.config.nbeta) == (
        row.eps, row.gamma, row.nbeta)
    again = estimate_llc(reused.model, reused.inputs, reused.targets, loss=loss,
                         config=reused.config, param_masks=reused.param_masks,
                         preconditioner=reused.preconditioner, seed=reused.seed,
                         device="cpu")  # fmt: skip
    assert abs(again.mean - row.estimate.mean) <= 3 * math.hypot(again.se, row.estimate.se)


def test_the_same_settings_without_the_preconditioner_say_what_they_are():
    model, x, y, loss, weight = _case("head")
    reused = reusable(model, x, y, weight, loss=loss, chains=4)
    with pytest.raises(Exception, match="preconditioner must have one row"):
        estimate_llc(reused.model, x, y, loss=loss, config=reused.config,
                     param_masks=reused.param_masks, preconditioner=reused.preconditioner[1:],
                     device="cpu")  # fmt: skip
