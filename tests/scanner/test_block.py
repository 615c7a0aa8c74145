"""A reader measured on a block of its quotient: the whitening's algebra, the frozen upstream
and the retyped graph give the network's own numbers, and a reader whose loss is exactly
quadratic is judged to agree on a block, its whole interval proven from the block's rank."""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from llcgeo.numerics.measurements.networks import TinyTransformer
from llcgeo.numerics.paths.preconditioned import Preconditioned
from llcgeo.report.scan import scan
from llcgeo.scanner.block import (
    block_outputs,
    full_rank_whitening,
    spectral_whitening,
    whitening,
)
from llcgeo.scanner.reader import frozen_upstream, reader_model, retyped
from llcgeo.scanner.trace import find_norms, trace
from llcgeo.thresholds import RANK_GAP


def test_whitening_maps_each_counted_curvature_to_one():
    g = np.random.default_rng(0)
    a = g.standard_normal((12, 7))
    hessian = a @ np.diag(10.0 ** g.uniform(-6, 0, 7)) @ a.T  # rank 7 of 12, far apart
    whitened = whitening(hessian)  # rank-deficient: no Cholesky factor proves it full
    transform, mu = whitened.transform, whitened.mu
    np.testing.assert_allclose(transform.T @ hessian @ transform, np.diag(mu), atol=1e-9)
    counted = mu > 1e-9
    assert counted.sum() == whitened.rank == 7 and whitened.gap >= RANK_GAP
    np.testing.assert_allclose(mu[counted], 1.0, rtol=1e-9)  # every counted direction: one rate
    assert np.all(mu[~counted] < 1e-6)  # the rest scaled as the softest counted one


@pytest.mark.parametrize("spread", [0.0, 4.0, 8.0])
def test_a_cholesky_factor_whitens_a_full_rank_hessian_as_its_spectrum_does(spread):
    """Full rank, up to a condition number of 10^8 (FLAT is 1e-9): the factor's transform
    whitens it, and its preconditioner ``P P^T`` is the spectral one's, ``H^-1``."""
    g = np.random.default_rng(1)
    q = np.linalg.qr(g.standard_normal((40, 40)))[0]
    hessian = q @ np.diag(10.0 ** np.linspace(-spread, 0, 40)) @ q.T
    factored, spectral = full_rank_whitening(hessian), spectral_whitening(hessian)
    assert factored is not None
    assert (factored.rank, factored.gap) == (spectral.rank, spectral.gap) == (40, math.inf)
    p = factored.transform
    np.testing.assert_allclose(p.T @ hessian @ p, np.eye(40), atol=1e-6)
    inverse = spectral.transform @ spectral.transform.T
    np.testing.assert_allclose(p @ p.T, inverse, rtol=1e-6, atol=1e-6 * np.abs(inverse).max())
    np.testing.assert_array_equal(factored.mu, np.ones(40))


@pytest.mark.parametrize("smallest", [0.0, 1e-10, -1e-3])
def test_no_cholesky_factor_is_taken_for_a_rank_to_count(smallest):
    """An eigenvalue below FLAT of the largest (zero, tiny, or negative: a saddle's) has no
    factor of ``H - FLAT * bound * I``: the rank is the eigendecomposition's."""
    g = np.random.default_rng(2)
    q = np.linalg.qr(g.standard_normal((30, 30)))[0]
    hessian = q @ np.diag([smallest, *np.linspace(0.1, 1, 29)]) @ q.T
    assert full_rank_whitening(hessian) is None
    assert whitening(hessian).rank == 29


@pytest.mark.parametrize("rows, budget, taken", [(64, 1024, 16), (65, 1024, 15), (2000, 10, 1)])
def test_a_block_takes_the_output_directions_the_budget_holds(rows, budget, taken):
    assert block_outputs(rows, budget) == taken


def _transformer():
    torch.manual_seed(0)
    model = TinyTransformer(11, 8, 6, "layernorm", blocks=2, heads=2).double()
    ids = torch.randint(11, (5, 6), generator=torch.Generator().manual_seed(1))
    return model, ids


def test_the_frozen_upstream_and_the_retyped_graph_give_the_networks_output():
    model, ids = _transformer()
    gm = trace(model, ids[:2])
    readers = [r for n in find_norms(gm) for r in n.readers]
    assert len(readers) == 5
    for reader in readers:
        full = reader_model(gm, reader, torch.float64, moving_bias=reader.bias is not None)
        cut, inputs = frozen_upstream(full, ids)
        assert set(inputs) > {"ids"} and len(cut.graph.nodes) < len(full.graph.nodes)
        torch.testing.assert_close(cut(**inputs), model(ids), rtol=1e-12, atol=1e-12)
        single = retyped(cut, torch.float32)
        floats = {k: v.float() if v.is_floating_point() else v for k, v in inputs.items()}
        torch.testing.assert_close(single(**floats), model(ids).float(), rtol=1e-4, atol=1e-4)


def test_the_preconditioned_model_moves_the_reader_along_its_map():
    model, ids = _transformer()
    gm = trace(model, ids[:2])
    reader = find_norms(gm)[0].readers[0]
    inner = reader_model(gm, reader, torch.float64, moving_bias=False)
    start = inner.get_parameter("reader_weight").detach().clone()
    transform = torch.randn(start.numel(), 3, dtype=torch.float64)
    whitened = Preconditioned(inner, torch.ones(start.numel(), dtype=torch.bool), transform)
    assert [name for name, _ in whitened.named_parameters()] == ["u"]
    u = torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64)
    with torch.no_grad():
        whitened.u.copy_(u)
        moved = reader_model(gm, reader, torch.float64, moving_bias=False)
        moved.get_parameter("reader_weight").copy_(start + (transform @ u).view_as(start))
        torch.testing.assert_close(whitened(ids), moved(ids), rtol=1e-12, atol=1e-12)


def _quadratic_in_its_reader(width: int, outputs: int):
    """``(model, x, y)``: a LayerNorm read by ``2``, whose loss is exactly quadratic in its
    weight (a linear map to two outputs follows it), on 400 samples."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(9, width), nn.LayerNorm(width, bias=False),
                          nn.Linear(width, outputs), nn.Linear(outputs, 2)).double()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 9, generator=g, dtype=torch.float64)
    y = model(x).detach() + 0.3 * torch.randn(400, 2, generator=g, dtype=torch.float64)
    return model, x, y


def test_a_quadratic_reader_is_judged_on_a_block_and_its_whole_interval_proven():
    model, x, y = _quadratic_in_its_reader(8, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = scan(model, x, y, hessian_directions=20, chains=8, only=("2.weight",))
    row = next(r for r in s.rows if r.reader == "2.weight")
    # the plane through the origin spans 7 of 8; with the bias, 8 of 9 a row: 6 x 8 in all,
    # a block of 2 rows (16 directions), whose Hessian is (the Gram of the last layer's two
    # columns) x E[z z^T]: rank 2 x 8, the block's whole, so its wrLLC is exactly 8
    assert (row.certificate.quotient, row.block, row.block_outputs) == (48, 16, 2)
    assert (row.rank, row.low, row.high, row.block_high) == (16, "8", "24", "8")
    assert row.verdict == "agree", row.reason
    assert abs(row.shift) < 1e-3 * float(Fraction(row.low))


def test_a_transformers_block_reader_is_measured_against_its_quadratic_model():
    from llcgeo.numerics.paths.losses import cross_entropy
    from llcgeo.reconcile.verdict import limit

    model, _ = _transformer()
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(11, (24, 6), generator=g)
    labels = torch.randint(11, (24, 6), generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = scan(model, ids, labels, loss=cross_entropy(0.1), hessian_directions=18, chains=6,
                 only=("blocks.0.mlp.0.weight",))  # fmt: skip
    row = next(r for r in s.rows if r.reader == "blocks.0.mlp.0.weight")
    # 32 outputs read LayerNorm's plane with a bias: 8 a row; a block of 2 rows
    assert (row.certificate.quotient, row.block, row.block_outputs) == (256, 16, 2)
    assert row.estimate is not None and row.estimate.sane, row.reason
    # the quadratic run is the quadratic model's chains: its mean is the exact expectation's
    t = (row.quadratic.mean - row.expected) / row.quadratic.se
    assert abs(t) <= limit(1, 5), row.reason
    assert "on a block of 16 of the 256 directions" in row.reason


def test_a_reader_whose_whole_hessian_the_budget_refuses_is_measured_on_a_block_that_fits():
    from llcgeo.limits import Budget

    model, x, y = _quadratic_in_its_reader(32, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = scan(model, x, y, chains=8, only=("2.weight",), budget=Budget(memory=8_000_000))
    row = next(r for r in s.rows if r.reader == "2.weight")
    # 24 outputs of 32 directions each (a plane through the origin with the bias: 32 of 33);
    # the whole Hessian (768 directions, 24 MB with its eigendecomposition's copies) is past
    # 8 MB, twelve outputs' (384 directions, 7.3 MB) are not, thirteen (8.4 MB) are
    assert (row.certificate.quotient, row.block, row.block_outputs) == (768, 384, 12)
    assert "the whole Hessian (768 directions) would need about 0.0223 GB" in row.block_why
    assert f"as {row.block_why}" in row.reason and row.estimate is not None, row.reason
    # the loss is quadratic in the weight: its Hessian is (the last layer's Gram, rank 2) x
    # E[z z^T] (z with a 1 for the bias). The norm reads a 9-dimensional affine image of x,
    # centred and scaled: z spans 10 dimensions, with the 1, 11: rank 22, the whole's too
    assert (row.rank, row.low, row.block_high) == (22, "11", "192")


def test_the_budget_sets_the_outputs_of_a_block_by_memory_and_by_time():
    from llcgeo.limits import Budget, using
    from llcgeo.scanner.measure import _cost, _within_budget
    from llcgeo.scanner.reader import hessian_bytes

    with using(Budget(memory=hessian_bytes(90, 6 * 8), run_seconds=0.5)):
        assert _within_budget(10, 8, _cost(90)) == 6  # memory alone
        # products in whole batches of 32: k outputs take ceil(8 k / 32) batches
        assert _within_budget(10, 8, _cost(90, seconds=0.16)) == 6  # 2 x 0.16 s fits
        assert _within_budget(10, 8, _cost(90, seconds=0.32)) == 4  # 2 x 0.32 s does not
        assert _within_budget(10, 8, _cost(90, seconds=320.0)) == 1  # at least one


def test_the_budget_counts_the_rows_of_the_readers_output_not_of_the_targets():
    from llcgeo.limits import Budget

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 6), nn.GELU(),
                          nn.Linear(6, 2)).double()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 20, 4, generator=g, dtype=torch.float64)  # 50 sequences of 20
    y = model(x).detach() + 0.3 * torch.randn(50, 20, 2, generator=g, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = scan(model, x, y, chains=2, draws=200, only=("2.weight",),
                 budget=Budget(memory=500_000))  # fmt: skip
    row = next(r for r in s.rows if r.reader == "2.weight")
    # the output Hessians of 1 000 rows (not 50) in 6 outputs need about 2 MB, in 1 output
    # about 0.27 MB: a block of one output, not a refusal inside the refit
    assert (row.block, row.block_outputs) == (8, 1), row.reason
    assert "the Hessians of 1000 rows" not in row.reason and row.rank is not None
