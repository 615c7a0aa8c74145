"""A reader inside the network whose downstream acts row by row has its Hessian from its
structure (``G_s`` by products in the outputs): equal to the Hessian-vector products in its
weights, on the quotient and on a block; anything that mixes rows, or a loss not known to sum
over them, is named and left to the products."""

import numpy as np
import pytest
import torch

from llcgeo.numerics.measurements.networks import TinyTransformer
from llcgeo.numerics.paths.losses import cross_entropy, gaussian_loss
from llcgeo.scanner.certify import factored_basis, image_spec, moving_bias, quotient_factors
from llcgeo.scanner.measure import _norm_parameters, _padded
from llcgeo.scanner.reader import basis_rows, frozen_upstream, quotient_hessian, reader_model
from llcgeo.scanner.rowwise import rowwise_hessian, why_not_row_wise
from llcgeo.scanner.trace import find_norms, trace


def _readers(model, x):
    gm = trace(model.double(), x[:2])
    return gm, {r.weight: (n, r) for n in find_norms(gm) for r in n.readers}


def _prepared(gm, norm, reader, x, block=None):
    bias = moving_bias(reader, "all")
    model, inputs = frozen_upstream(reader_model(gm, reader, torch.float64, bias), x)
    spec = image_spec(norm, *_norm_parameters(gm, norm))
    factors = quotient_factors(spec, reader, False, "all", block)
    basis = _padded(torch.from_numpy(factored_basis(*factors, reader.inputs)), basis_rows(model))
    return model, inputs, factors, basis


def _assert_equal(model, inputs, y, loss, factors, basis, node):
    products = quotient_hessian(model, inputs, y, loss, basis)
    structured = rowwise_hessian(model, inputs, y, loss, factors, node)
    scale = np.abs(products).max()
    assert scale > 0 and structured.shape == products.shape == (basis.shape[1],) * 2
    np.testing.assert_allclose(structured, products, rtol=0, atol=1e-12 * scale)


class Regression(torch.nn.Module):
    """LayerNorm read by a GELU layer, a residual sum, an RMSNorm read by a tanh layer."""

    def __init__(self):
        super().__init__()
        self.embed, self.norm1 = torch.nn.Linear(5, 8), torch.nn.LayerNorm(8)
        self.inner, self.mix = torch.nn.Linear(8, 6), torch.nn.Linear(6, 8)
        self.norm2, self.last, self.out = torch.nn.RMSNorm(8), torch.nn.Linear(8, 3), \
            torch.nn.Linear(3, 2)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.mix(torch.nn.functional.gelu(self.inner(self.norm1(h))))
        return self.out(torch.tanh(self.last(self.norm2(h))))


TARGETS = {
    "gaussian": (gaussian_loss, lambda g, n: torch.randn(n, 2, generator=g, dtype=torch.float64)),
    "cross-entropy": (cross_entropy(0.1), lambda g, n: torch.randint(2, (n,), generator=g)),
}


@pytest.mark.parametrize("weight", ["inner.weight", "last.weight"])
@pytest.mark.parametrize("loss_name", list(TARGETS))
@pytest.mark.parametrize("block", [None, 2])
def test_an_inner_readers_structured_hessian_equals_the_products(weight, loss_name, block):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    loss, targets = TARGETS[loss_name]
    gm, readers = _readers(Regression(), x)
    norm, reader = readers[weight]
    model, inputs, factors, basis = _prepared(gm, norm, reader, x, block)
    assert why_not_row_wise(model, inputs, loss, reader.node) is None
    _assert_equal(model, inputs, targets(g, len(x)), loss, factors, basis, reader.node)


@pytest.mark.parametrize("norm_kind", ["layernorm", "rmsnorm"])
def test_a_transformers_last_mlp_is_row_wise_and_its_attention_readers_are_not(norm_kind):
    torch.manual_seed(0)
    block_norm = "layernorm-affine" if norm_kind == "layernorm" else "rmsnorm"
    model = TinyTransformer(12, 8, 6, norm_kind, blocks=2, heads=2, block_norm=block_norm)
    g = torch.Generator().manual_seed(2)
    ids, labels = torch.randint(12, (5, 6), generator=g), torch.randint(12, (5, 6), generator=g)
    gm, readers = _readers(model, ids)
    loss = cross_entropy(0.1)
    whys = {}
    for weight, (norm, reader) in readers.items():
        if weight != "head.weight":
            prepared = _prepared(gm, norm, reader, ids)
            whys[weight] = why_not_row_wise(*prepared[:2], loss, reader.node)
    assert whys["blocks.1.mlp.0.weight"] is None
    for attention_fed in ("blocks.0.attention.in_proj_weight", "blocks.0.mlp.0.weight",
                          "blocks.1.attention.in_proj_weight"):  # fmt: skip
        assert whys[attention_fed] and "not keep one row a position" in whys[attention_fed]
    norm, reader = readers["blocks.1.mlp.0.weight"]
    model, inputs, factors, basis = _prepared(gm, norm, reader, ids)
    _assert_equal(model, inputs, labels, loss, factors, basis, reader.node)


TAILS = {  # what follows the reader's output h, before a tanh and a linear map to two outputs
    "centred over the batch": lambda h: h - h.mean(dim=0, keepdim=True),
    "softmax over the batch": lambda h: h.softmax(dim=0),
    "reversed": lambda h: h.flip(0),  # every row keeps its shape, and reads another row
    "a Gram matrix": lambda h: torch.nn.functional.linear(h, h).sum(-1, keepdim=True)
    .expand(-1, 3),
    "dropout in training": lambda h: torch.nn.functional.dropout(h, 0.3, training=True),
    "scaled within each row": lambda h: h * torch.rsqrt(h.square().mean(-1, keepdim=True) + 1e-6),
    "an exact GELU by hand": lambda h: 0.5 * h * (1 + torch.erf(h / 2**0.5)),
    "a stable softmax": lambda h: (h - h.amax(-1, keepdim=True)).softmax(-1),
    "a leaky ReLU by torch.where": lambda h: torch.where(h > 0, h, 0.1 * h),
    "masked": lambda h: h.masked_fill(h < -1, 0.0) + torch.zeros_like(h),
    "nothing": lambda h: h,
}  # fmt: skip


class Tail(torch.nn.Module):
    """A LayerNorm read by ``inner``, then ``TAILS[how]``, a tanh, a linear map to two outputs."""

    def __init__(self, how: str):
        super().__init__()
        self.norm, self.inner, self.out = torch.nn.LayerNorm(4), torch.nn.Linear(4, 3), \
            torch.nn.Linear(3, 2)
        self.how = how

    def forward(self, x):
        return self.out(torch.tanh(TAILS[self.how](self.inner(self.norm(x)))))


@pytest.mark.parametrize("how, why", [
    ("centred over the batch", "mean (mean.dim) does not keep one row a position"),
    ("softmax over the batch", "acts beyond the last axis"),
    ("reversed", "flip (flip) is not known to act on each position alone"),
    ("a Gram matrix", "linear_1 (linear) mixes the reader's output into a parameter"),
    ("dropout in training", "draws at random"),
    ("scaled within each row", None),  # a hand-written RMS norm
    ("an exact GELU by hand", None),
    ("a stable softmax", None),
    ("a leaky ReLU by torch.where", None),
    ("masked", None),
])  # fmt: skip
def test_each_operation_is_row_wise_or_named(how, why):
    """Row-wise: the structured Hessian equals the products. Otherwise the first operation that
    mixes rows is named; ``linear(h, h)`` holds ``h`` twice, as input and as weight, so each row
    reads every other, which the one node fx lists for it hides."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(10, 4, generator=g, dtype=torch.float64)
    gm, readers = _readers(Tail(how), x)
    norm, reader = readers["inner.weight"]
    model, inputs, factors, basis = _prepared(gm, norm, reader, x)
    said = why_not_row_wise(model, inputs, gaussian_loss, reader.node)
    if why is not None:
        assert said is not None and why in said
        return
    assert said is None
    y = torch.randn(10, 2, generator=g, dtype=torch.float64)
    _assert_equal(model, inputs, y, gaussian_loss, factors, basis, reader.node)


def test_a_loss_not_known_to_sum_over_rows_is_named():
    torch.manual_seed(0)
    x = torch.randn(10, 4, dtype=torch.float64)
    gm, readers = _readers(Tail("nothing"), x)
    norm, reader = readers["inner.weight"]
    model, inputs, _, _ = _prepared(gm, norm, reader, x)

    def own_loss(outputs, targets):
        return gaussian_loss(outputs, targets)

    class Weighted(type(cross_entropy())):  # each sample weighed by the others' losses
        def __call__(self, outputs, targets):
            per = super().__call__(outputs, targets)
            return per * torch.softmax(per, 0) * len(per)

    for loss in (own_loss, Weighted()):
        said = why_not_row_wise(model, inputs, loss, reader.node)
        assert said is not None and "not known to sum over positions" in said
    assert why_not_row_wise(model, inputs, gaussian_loss, reader.node) is None
