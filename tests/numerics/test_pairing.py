"""A model and data that do not pair are refused in one sentence, by ``estimate_llc`` and
``scan`` alike, before any path is chosen or graph traced; the sentence names both sides."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llcgeo import estimate_llc
from llcgeo.errors import EstimationError
from llcgeo.numerics.paths.losses import cross_entropy
from llcgeo.report.scan import scan


def _classifier(d: int = 4, k: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 6), nn.LayerNorm(6), nn.Linear(6, k))


class Tokens(nn.Module):
    def __init__(self, vocabulary: int = 5, k: int = 3):
        super().__init__()
        self.embed, self.norm = nn.Embedding(vocabulary, 6), nn.LayerNorm(6)
        self.out = nn.Linear(6, k)

    def forward(self, ids):
        return self.out(self.norm(self.embed(ids)))


X = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
LABELS = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(2))
CASES = {
    "labels out of range": (_classifier, X, torch.full((32,), 5), "cross_entropy",
                            "outside 0..2"),
    "float labels under cross-entropy": (_classifier, X, torch.rand(32), "cross_entropy",
                                         "class probabilities"),
    "integer inputs to a float model": (_classifier, torch.randint(0, 3, (32, 4)), LABELS,
                                        "cross_entropy", "takes floats"),
    "integer labels under the Gaussian loss": (_classifier, X, LABELS, "gaussian",
                                               "loss is Gaussian"),
    "one-hot targets under the Gaussian loss": (
        _classifier, X, nn.functional.one_hot(LABELS, 3).double(), "gaussian", "one-hot"),
    "feature width": (_classifier, torch.randn(32, 5), LABELS, "cross_entropy",
                      r"5 features a sample but the model.s first layer, Linear\(4, 6\), takes 4"),
    "one sample": (_classifier, X[:1], LABELS[:1], "cross_entropy", "at least 2"),
    "token ids beyond the vocabulary": (Tokens, torch.randint(0, 9, (32,)), LABELS,
                                        "cross_entropy", "embedding has 5 rows"),
    "float inputs to an embedding": (Tokens, X[:, 0], LABELS, "cross_entropy", "token ids"),
}  # fmt: skip


def _nan_model() -> nn.Module:
    model = _classifier()
    with torch.no_grad():
        model[2].weight[1, 2] = float("nan")
    return model


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("entry", ["estimate_llc", "scan"])
def test_a_mistaken_pairing_is_one_sentence_from_either_entry(name, entry):
    build, x, y, loss, words = CASES[name]
    with pytest.raises(EstimationError, match=words) as error:
        _run(entry, build(), x, y, loss)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("entry", ["estimate_llc", "scan"])
def test_a_parameter_holding_nan_is_named(entry):
    with pytest.raises(EstimationError, match="'2.weight' holds NaN"):
        _run(entry, _nan_model(), X, LABELS, "cross_entropy")


def test_an_exported_program_names_the_shape_it_takes():
    model = _classifier()
    program = torch.export.export(model, (X,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    with pytest.raises(EstimationError, match=r"shape \(32, 5\) but .* takes \(n, 4\)"):
        scan(program.module(), torch.randn(32, 5), LABELS, loss="cross_entropy", measure=False)


def test_an_exported_token_model_checks_its_ids_against_its_embedding():
    model = Tokens()
    ids = torch.randint(0, 5, (32,))
    program = torch.export.export(model, (ids,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    with pytest.raises(EstimationError, match="range over 0..8, but .* 5 rows"):
        scan(program.module(), torch.arange(32) % 9, LABELS, loss="cross_entropy",
             measure=False)  # fmt: skip


def test_a_valid_pairing_passes_through_to_the_scan():
    result = scan(_classifier(), X, LABELS, loss="cross_entropy", measure=False)
    assert [row.reader for row in result.rows] == ["2.weight"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_a_negative_estimate_is_refused_for_half_precision_alone(dtype):
    from llcgeo import SGLDConfig
    from llcgeo.numerics.estimate import _low_precision_checked
    from llcgeo.numerics.result import LLCEstimate

    slightly = LLCEstimate(mean=-0.49, se=0.3, per_chain=[-0.19, -0.79], loss_trace=[[1.0], [1.0]],
                           init_loss=0.5, diverged_chains=(), rhat=1.0, ess=2.0, nbeta=2.0, n=10,
                           seed=0, config=SGLDConfig(chains=2, steps=2, burnin=1), device="cpu",
                           seconds=0.0)  # fmt: skip
    model = nn.Linear(4, 2).to(dtype)
    if dtype == torch.float32:  # within its error of zero: a coefficient near 0, reported
        assert _low_precision_checked(model, slightly) is slightly
        return
    with pytest.raises(EstimationError, match="below zero: .* half precision"):
        _low_precision_checked(model, slightly)


def test_a_half_precision_model_far_from_a_minimum_is_refused_end_to_end():
    torch.manual_seed(0)
    model = nn.Linear(4, 2).half()
    with pytest.raises(EstimationError, match="below zero"):
        estimate_llc(model, X, 10 + torch.randn(32, 2), device="cpu")


def test_a_separable_classifier_is_told_its_loss_has_no_minimum():
    torch.manual_seed(0)
    x = torch.randn(96, 4)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(400):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert bool((model(x).argmax(1) == y).all())
    row = scan(model, x, y, loss=cross_entropy(), chains=2, draws=50).rows[0]
    assert row.estimate is None and "no minimum at finite weights" in row.reason
    assert "label smoothing" in row.reason


def _run(entry: str, model, x, y, loss):
    if entry == "estimate_llc":
        return estimate_llc(model, x, y, loss=loss, device="cpu")
    return scan(model, x, y, loss=loss, measure=False)
