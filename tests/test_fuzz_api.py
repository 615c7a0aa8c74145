"""``estimate_llc`` and ``calibrate`` fuzzed: random models, shapes, dtypes, label ranges, output
types, masks and settings. Whatever comes in, what comes out is the package's own error (one
that names the problem) or a result whose mean is finite, or NaN with a warning that says why;
never a foreign exception, and each within seconds."""

from __future__ import annotations

import math
import time

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from llcgeo import SGLDConfig, calibrate, estimate_llc
from llcgeo.config import SAMPLERS
from llcgeo.errors import LLCGeoError

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
HANG = 60.0  # seconds: far above any example here; only a hang or a blow-up reaches it


class Pair(torch.nn.Module):
    """A model whose output is a tuple (the logits first)."""

    def __init__(self, d: int, k: int):
        super().__init__()
        self.linear = torch.nn.Linear(d, k)

    def forward(self, x):
        return self.linear(x), x.sum()


class Named(torch.nn.Module):
    """A model whose output is a dict."""

    def __init__(self, d: int, k: int):
        super().__init__()
        self.linear = torch.nn.Linear(d, k)

    def forward(self, x):
        return {"logits": self.linear(x)}


class Tokens(torch.nn.Module):
    """Integer inputs: an embedding and an unembedding."""

    def __init__(self, d: int, k: int):
        super().__init__()
        self.embed, self.out = torch.nn.Embedding(d, 4), torch.nn.Linear(4, k)

    def forward(self, ids):
        return self.out(self.embed(ids))


def _model(kind: str, d: int, k: int, bias: bool):
    if kind == "linear":
        return torch.nn.Linear(d, k, bias=bias)
    if kind == "mlp":
        return torch.nn.Sequential(torch.nn.Linear(d, 3), torch.nn.ReLU(), torch.nn.Linear(3, k))
    if kind == "product":
        layers = (torch.nn.Linear(d, 2, bias=False), torch.nn.Linear(2, k, bias=False))
        return torch.nn.Sequential(*layers)
    return {"pair": Pair, "named": Named, "tokens": Tokens}[kind](d, k)


OUTPUT_FNS = {None: None, "first": lambda out: out[0], "logits": lambda out: out["logits"],
              "wrong": lambda out: "not a tensor"}  # fmt: skip


def _rarely(draw, odds: int = 8) -> bool:
    """A mistake, about one draw in ``odds``: most examples are valid, so most reach the sampler."""
    return draw(st.integers(0, odds - 1)) == 0


FITTING_OUTPUT = {"pair": "first", "named": "logits"}


@st.composite
def problems(draw):
    kind = draw(st.sampled_from(("linear", "mlp", "product", "pair", "named", "tokens")))
    d, k, n = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(2, 24))
    torch.manual_seed(draw(st.integers(0, 3)))
    model = _model(kind, d, k, draw(st.booleans())).to(draw(st.sampled_from(DTYPES)))
    width = draw(st.integers(1, 6)) if _rarely(draw) else d
    if kind == "tokens" or _rarely(draw, 16):
        high = d + 3 if _rarely(draw) else d  # ids beyond the vocabulary, now and then
        inputs = torch.randint(0, high, (n,) if kind == "tokens" else (n, width))
    else:
        inputs = torch.randn(n, width).to(draw(st.sampled_from(DTYPES)))
    loss = draw(st.sampled_from(("gaussian", "cross_entropy", "callable")))
    output_fn = FITTING_OUTPUT.get(kind)
    if _rarely(draw):
        output_fn = draw(st.sampled_from(tuple(OUTPUT_FNS)))
    return model, inputs, _targets(draw, loss, n, k), _loss(loss), output_fn


def _targets(draw, loss: str, n: int, k: int):
    rows = n + 1 if _rarely(draw) else n
    if loss == "cross_entropy":
        low, high = (-1, k + 2) if _rarely(draw) else (0, k)
        if k == 1 and not _rarely(draw, 2):
            return torch.rand(rows, k)  # one class: probabilities, all of the mass on it
        return torch.randint(low, high, (rows,))
    targets = torch.randn(rows, k + 1 if _rarely(draw) else k)
    return targets.long() if _rarely(draw) else targets


def _loss(name: str):
    if name != "callable":
        return name
    return lambda outputs, targets: (outputs - targets).square().reshape(len(outputs), -1).sum(1)


@st.composite
def configs(draw):
    steps = draw(st.integers(2, 40))
    sampler = draw(st.sampled_from(SAMPLERS))
    batch = None if sampler == "mala" and not _rarely(draw) else draw(
        st.one_of(st.none(), st.integers(1, 30))
    )  # fmt: skip
    return dict(
        eps=draw(st.floats(1e-6, 2.0)),
        gamma=draw(st.floats(0.0, 1e3)),
        chains=draw(st.integers(1, 4)),
        steps=steps,
        burnin=draw(st.integers(0, steps - 1)),
        batch_size=batch,
        sampler=sampler,
        dtype=draw(st.sampled_from(("float64", "float32"))),
    )


@st.composite
def masks(draw, model):
    if draw(st.booleans()):
        return None
    name, parameter = draw(st.sampled_from(list(model.named_parameters())))
    shape = (parameter.numel() + 1,) if _rarely(draw) else parameter.shape
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 9))))
    return {"nonexistent" if _rarely(draw) else name: mask > 0.5}


def _outcome(run) -> str:
    began = time.perf_counter()
    try:
        estimate = run()
    except LLCGeoError as error:
        assert str(error), "an error names what was wrong"
        return f"refused: {str(error)[:40]}"
    finally:
        assert time.perf_counter() - began < HANG
    if math.isnan(estimate.mean):
        assert any("diverged" in w for w in estimate.warnings), estimate.warnings
        return "diverged"
    assert math.isfinite(estimate.mean) and estimate.per_chain.shape == (estimate.config.chains,)
    return "estimated"


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(problems(), configs(), st.data())
def test_estimate_llc_ends_in_its_own_error_or_a_finite_warned_result(problem, config, data):
    model, inputs, targets, loss, output_fn = problem
    masks_ = data.draw(masks(model))

    def run():
        return estimate_llc(model, inputs, targets, config=SGLDConfig(**config), loss=loss,
                            param_masks=masks_, output_fn=OUTPUT_FNS[output_fn],
                            device="cpu")  # fmt: skip

    event(_outcome(run))


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(problems())
def test_calibrate_ends_in_its_own_error_or_settings(problem):
    model, inputs, targets, loss, _ = problem
    began = time.perf_counter()
    try:
        calibration = calibrate(model, inputs, targets, loss=loss, lanczos_steps=8)
    except LLCGeoError as error:
        assert str(error)
        return
    finally:
        assert time.perf_counter() - began < HANG
    assert calibration.config.eps > 0 and calibration.config.steps > calibration.config.burnin
