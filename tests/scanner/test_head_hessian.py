"""A head's Hessian from its structure equals the one from Hessian-vector products, on the
quotient and on a block of it, for the cross-entropy (hard and soft labels, smoothing) and the
Gaussian loss, with and without a moving bias."""

import math

import numpy as np
import pytest
import torch

from llcgeo.numerics.paths.losses import cross_entropy, gaussian_loss
from llcgeo.scanner.certify import factored_basis
from llcgeo.scanner.reader import head_hessian, quotient_hessian


def _factors(m: int, width: int, q: int, r: int, seed: int):
    g = np.random.default_rng(seed)
    directions = np.linalg.qr(g.standard_normal((m, m)))[0][:, :q]
    rows = np.linalg.qr(g.standard_normal((width, width)))[0][:, :r]
    return directions, rows


LOSSES = {
    "smoothed labels": (cross_entropy(0.1), lambda g, n, m: torch.randint(m, (n,), generator=g)),
    "soft labels": (cross_entropy(), lambda g, n, m: torch.rand(n, m, generator=g,
                                                                dtype=torch.float64).softmax(1)),
    "gaussian": (gaussian_loss, lambda g, n, m: torch.randn(n, m, generator=g,
                                                            dtype=torch.float64)),
}


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("block", [False, True])
def test_the_structured_head_hessian_equals_the_products(loss_name, bias, block):
    n, d, m = 40, 5, 4
    loss, targets = LOSSES[loss_name]
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    head = torch.nn.Linear(d, m, bias=bias, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = targets(g, n, m)
    q, r = (2 if block else m - 1), d - 1 + bias
    factors = _factors(m, d + bias, q, r, seed=1)
    basis = torch.from_numpy(factored_basis(*factors, d))
    products = quotient_hessian(head, x, y, loss, basis)
    structured = head_hessian(head, x, y, loss, factors)
    assert structured.shape == (q * r, q * r)
    scale = np.abs(products).max()
    np.testing.assert_allclose(structured, products, rtol=0, atol=1e-12 * scale)
    assert math.isfinite(scale) and scale > 0
