"""``scan`` fuzzed: random networks with a norm, shapes, dtypes, label ranges, losses and
settings. Whatever comes in, what comes out is the package's own error (one line that names the
problem) or rows whose verdicts are the package's, each within seconds and bounded memory."""

from __future__ import annotations

import resource
import time

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from llcgeo.errors import LLCGeoError
from llcgeo.numerics.paths.losses import cross_entropy
from llcgeo.reconcile.model import VERDICTS
from llcgeo.report.scan import scan
from llcgeo.scanner import NOT_MEASURED

HANG = 120.0  # seconds: far above any example here; only a hang or a blow-up reaches it
MEMORY = 2 << 30  # bytes the process may grow by in one example


class Tokens(nn.Module):
    def __init__(self, vocabulary: int, k: int, norm: type):
        super().__init__()
        self.embed, self.norm, self.out = nn.Embedding(vocabulary, 5), norm(5), nn.Linear(5, k)

    def forward(self, ids):
        return self.out(self.norm(self.embed(ids)))


def _rarely(draw, odds: int = 6) -> bool:
    return draw(st.integers(0, odds - 1)) == odds - 1  # hypothesis leans to 0: mistakes rare


@st.composite
def scans(draw):
    kind = draw(st.sampled_from(("mlp", "tokens", "deep")))
    norm = draw(st.sampled_from((nn.LayerNorm, nn.RMSNorm)))
    d, k, n = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 40))
    torch.manual_seed(draw(st.integers(0, 3)))
    if kind == "tokens":
        model = Tokens(d + 1, k, norm)
        high = d + 4 if _rarely(draw) else d + 1
        inputs = torch.randint(0, high, (n,))
    else:
        hidden = [nn.Linear(3, 3), nn.GELU()] if kind == "deep" else []
        model = nn.Sequential(nn.Linear(d, 3), norm(3), *hidden, nn.Linear(3, k))
        width = draw(st.integers(1, 6)) if _rarely(draw) else d
        inputs = torch.randn(n, width)
        if _rarely(draw):
            inputs = inputs.long()
    model = model.to(draw(st.sampled_from((torch.float32, torch.float64))))
    loss = draw(st.sampled_from(("gaussian", "cross_entropy", "smoothed")))
    return model, inputs, _targets(draw, loss, n, k), _loss(loss)


def _targets(draw, loss: str, n: int, k: int):
    rows = n + 1 if _rarely(draw) else n
    if loss != "gaussian":
        low, high = (-1, k + 2) if _rarely(draw) else (0, k)
        return torch.randint(low, high, (rows,))
    targets = torch.randn(rows, k + 1 if _rarely(draw) else k)
    return targets.long() if _rarely(draw) else targets


def _loss(name: str):
    return cross_entropy(0.1) if name == "smoothed" else name


@st.composite
def choices(draw):
    return dict(
        measure=_rarely(draw, 3),
        chains=1 if _rarely(draw, 12) else draw(st.integers(2, 3)),
        draws=draw(st.integers(1, 30)),
        rows=1 if _rarely(draw, 12) else draw(st.integers(2, 64)),
        hessian_directions=draw(st.integers(1, 40)),
        refine="wieght" if _rarely(draw, 12) else draw(st.sampled_from(("all", "weight"))),
        seed=draw(st.integers(0, 3)),
    )


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(scans(), choices())
def test_scan_ends_in_its_own_error_or_rows_with_its_verdicts(problem, chosen):
    model, inputs, targets, loss = problem
    grown = _peak()
    began = time.perf_counter()
    try:
        result = scan(model, inputs, targets, loss=loss, device="cpu", **chosen)
    except LLCGeoError as error:
        assert str(error) and "\n" not in str(error), "one line that names what was wrong"
        event(f"refused: {str(error)[:40]}")
        return
    finally:
        assert time.perf_counter() - began < HANG
        assert _peak() - grown < MEMORY
    for row in result.rows:
        assert row.verdict in (*VERDICTS, NOT_MEASURED), row.verdict
        if row.estimate is not None:
            assert row.estimate.diverged == 0, "a diverged chain is reported, never averaged in"
    event("scanned" + (" and measured" if chosen["measure"] else ""))


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
