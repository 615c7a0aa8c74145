"""Finding norms and their linear readers in traced networks, and the clear refusals."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llcgeo.errors import ScanError
from llcgeo.numerics.measurements.networks import TinyTransformer
from llcgeo.report.scan import scan
from llcgeo.scanner.trace import find_norms, trace


def _norms(model, example):
    return find_norms(trace(model, example))


def test_a_pre_norm_transformer_lists_every_reader_of_every_norm():
    model = TinyTransformer(8, 8, 6, "layernorm", blocks=2, heads=2)
    norms = _norms(model, torch.zeros(2, 6, dtype=torch.long))
    readers = {n.node: [r.weight for r in n.readers] for n in norms}
    assert len(norms) == 5  # two a block, and the final norm
    assert sorted(r for rs in readers.values() for r in rs) == sorted(
        [f"blocks.{i}.attention.in_proj_weight" for i in range(2)]
        + [f"blocks.{i}.mlp.0.weight" for i in range(2)]
        + ["head.weight"]
    )
    head = next(r for n in norms for r in n.readers if r.weight == "head.weight")
    assert head.logits and head.bias is None and (head.outputs, head.inputs) == (8, 8)
    # the residual stream reads the block norms' inputs, not their outputs
    assert all(not n.other_uses for n in norms)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.norm = nn.RMSNorm(4)
        self.proj = nn.Parameter(torch.randn(4, 3))

    def forward(self, ids):
        z = self.norm(self.embed(ids))
        return F.linear(z, self.embed.weight) + (z @ self.proj).sum(-1, keepdim=True)


def test_a_tied_unembedding_and_a_product_with_a_parameter_are_readers():
    (norm,) = _norms(Tied(), torch.zeros(2, 3, dtype=torch.long))
    by_name = {r.weight: r for r in norm.readers}
    assert by_name["embed.weight"].tied and (by_name["embed.weight"].outputs == 5)
    assert by_name["proj"].transposed and (by_name["proj"].outputs, by_name["proj"].inputs) == (
        3,
        4,
    )


def test_a_tied_reader_moves_alone():
    model = Tied().double()
    ids = torch.randint(5, (64, 3), generator=torch.Generator().manual_seed(0))
    rows = {r.reader: r for r in scan(model, ids, model(ids).detach(), measure=False).rows}
    assert rows["embed.weight"].tied and rows["embed.weight"].certificate.parameters == 20


def test_a_norm_read_only_through_a_nonlinearity_is_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.GELU(), nn.Linear(4, 2))
    with pytest.raises(ScanError, match="no norm of the model is read by a linear map.*gelu"):
        scan(model, torch.randn(8, 3), torch.randn(8, 2), measure=False)


def test_a_model_without_a_norm_is_refused():
    with pytest.raises(ScanError, match="no normalization layer"):
        scan(nn.Linear(3, 2), torch.randn(8, 3), torch.randn(8, 2), measure=False)


class Branching(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm, self.head = nn.LayerNorm(3), nn.Linear(3, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: no single graph follows it
            x = -x
        return self.head(self.norm(x))


def test_an_op_the_tracer_cannot_follow_is_named():
    with pytest.raises(ScanError, match="the tracer cannot follow the model"):
        scan(Branching(), torch.randn(8, 3), torch.randn(8, 2), measure=False)
