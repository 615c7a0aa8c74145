"""Networks the package did not build, on scikit-learn's bundled data (no download): a
classifier's head and a regression's reader inside the network, each scanned as a user would.
Each row's prediction is exact (full rank), its measured LLC within 5% + 3 SE of it, and the
loss it reports is the model's own."""

from fractions import Fraction

import pytest
import torch
from torch import nn

from llcgeo.numerics import cross_entropy
from llcgeo.report.scan import scan

datasets = pytest.importorskip("sklearn.datasets")


def _standardized(values) -> torch.Tensor:
    x = torch.tensor(values, dtype=torch.float32)
    return (x - x.mean(0)) / x.std(0)


def _fitted(model: nn.Module, x, y, loss) -> nn.Module:
    """Adam, then L-BFGS to the minimum of the loss the scan is given."""
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(1000):
        adam.zero_grad()
        loss(model(x), y).backward()
        adam.step()
    lbfgs = torch.optim.LBFGS(model.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        value = loss(model(x), y)
        value.backward()
        return value

    lbfgs.step(closure)
    return model.eval()


def _wine_head():
    wine = datasets.load_wine()
    x, y = _standardized(wine.data), torch.tensor(wine.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(13, 8), nn.Tanh(), nn.LayerNorm(8), nn.Linear(8, 3))
    fitted = _fitted(model, x, y, nn.CrossEntropyLoss(label_smoothing=0.1))
    return fitted, x, y, cross_entropy(0.1), "3.weight"


def _diabetes_inner_reader():
    diabetes = datasets.load_diabetes()
    x = _standardized(diabetes.data)
    y = _standardized(diabetes.target[:, None])
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(10, 8), nn.LayerNorm(8), nn.Linear(8, 6), nn.GELU(),
                          nn.Linear(6, 1))  # fmt: skip
    fitted = _fitted(model, x, y, lambda out, target: 0.5 * (out - target).square().sum(1).mean())
    return fitted, x, y, "gaussian", "2.weight"


@pytest.mark.parametrize("case", [_wine_head, _diabetes_inner_reader])
def test_an_unseen_networks_reader_is_predicted_exactly_and_measured(case):
    model, x, y, loss, weight = case()
    row = next(r for r in scan(model, x, y, loss=loss, chains=8, device="cpu").rows
               if r.reader == weight)  # fmt: skip
    assert row.rank == row.certificate.quotient and row.exact, row.reason
    llc = float(Fraction(row.high))
    assert row.verdict == "agree" and row.sampler == "agree", row.reason
    assert abs(row.estimate.mean - llc) <= 0.05 * llc + 3 * row.estimate.se
    assert row.loss_before == pytest.approx(_own_loss(model, x, y, loss), rel=1e-6)


def _own_loss(model, x, y, loss) -> float:
    double = model.double()
    with torch.no_grad():
        out = double(x.double())
    if loss == "gaussian":
        return float(0.5 * (out - y.double()).square().sum(1).mean())
    return float(loss(out, y).mean())
