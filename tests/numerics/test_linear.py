"""The linear fast path: exact loss differences, exact gradients, the moving Hessian block."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from llcgeo.numerics import SGLDConfig
from llcgeo.numerics.paths.linear import (
    Layout,
    design_matrix,
    hessian_eigenvalues,
    linear_problem,
    second_moment,
)
from llcgeo.numerics.paths.masks import flatten_masks

F64 = torch.float64
CONFIG = SGLDConfig(eps=1e-3, chains=2, steps=2, burnin=0)


def dyadic(shape, seed, scale=4):
    """Small dyadic rationals: exact in float64, so Fractions can check the arithmetic."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, shape, generator=g).to(F64) / scale


def exact_loss(x, y, theta):
    """``1/2 mean_i |y_i - theta z_i|^2`` in rational arithmetic (bias column last)."""
    total = Fraction(0)
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        z = [Fraction(v) for v in xi] + [Fraction(1)]
        for row, target in zip(theta, yi, strict=True):
            total += (
                Fraction(target) - sum(Fraction(t) * v for t, v in zip(row, z, strict=True))
            ) ** 2
    return total / (2 * len(x))


def test_loss_difference_is_exact_even_for_tiny_displacements():
    x, y, theta = dyadic((6, 2), 0), dyadic((6, 3), 1), dyadic((3, 3), 2)
    posterior = linear_problem(x, y, theta, CONFIG).posterior
    layout = Layout(3, 2, True)
    displacement = dyadic((1, 9), 3) * 2.0**-30  # ~1e-9: a naive difference keeps ~7 digits
    excess, _ = posterior.loss_and_grad(displacement, None)
    moved = (theta + layout.matrix(displacement)[0]).tolist()
    exact = exact_loss(x, y, moved) - exact_loss(x, y, theta.tolist())
    assert posterior.init_loss == float(exact_loss(x, y, theta.tolist()))
    assert abs(float(excess[0]) - float(exact)) <= 1e-13 * abs(float(exact))


def test_full_batch_and_minibatch_gradients_match_autograd():
    x, y = dyadic((40, 3), 4), dyadic((40, 2), 5)
    theta = dyadic((2, 4), 6)
    layout = Layout(2, 3, True)
    position = dyadic((3, 8), 7)
    every = torch.arange(40).expand(3, 40)
    own = torch.tensor([[3, 17, 0, 39, 8], [1, 2, 3, 4, 5], [39, 38, 0, 0, 7]])  # one per chain
    for config, rows in ((CONFIG, every), (SGLDConfig(batch_size=5), own)):
        posterior = linear_problem(x, y, theta, config).posterior
        batch = None if config.batch_size is None else rows
        excess, grad = posterior.loss_and_grad(position, batch)
        w = position.clone().requires_grad_(True)
        z = design_matrix(x, bias=True)[rows]  # (chains, batch, p)
        pred = torch.einsum("cbp,cmp->cbm", z, theta + layout.matrix(w))
        loss = 0.5 * (pred - y[rows]).square().sum(dim=2).mean(dim=1)
        (auto,) = torch.autograd.grad(loss.sum(), w)
        assert torch.allclose(grad, auto, rtol=1e-12, atol=1e-12)
        assert torch.allclose(excess, loss.detach() - posterior.init_loss, rtol=1e-12, atol=1e-12)


def test_layout_is_torch_linear_parameter_order():
    layer = torch.nn.Linear(3, 2)
    flat = torch.cat([p.detach().reshape(-1) for p in layer.parameters()])[None]
    layout = Layout(2, 3, True)
    theta = layout.matrix(flat)[0]
    assert torch.equal(theta[:, :3], layer.weight.detach())
    assert torch.equal(theta[:, 3], layer.bias.detach())
    assert torch.equal(layout.flat(layout.matrix(flat)), flat)


def test_hessian_eigenvalues_of_each_refinement():
    x = dyadic((50, 3), 8)
    s = second_moment(design_matrix(x, bias=True))
    shapes = {"weight": torch.Size([2, 3]), "bias": torch.Size([2])}
    layout = Layout(2, 3, True)
    every = hessian_eigenvalues(s, None, layout)
    np.testing.assert_allclose(every, np.repeat(np.linalg.eigvalsh(s.numpy()), 2), atol=1e-13)
    weight = flatten_masks(shapes, {"weight": None})
    np.testing.assert_allclose(
        hessian_eigenvalues(s, weight, layout),
        np.repeat(np.linalg.eigvalsh((x.T @ x / 50).numpy()), 2),
        atol=1e-13,
    )
    bias = flatten_masks(shapes, {"bias": None})
    assert hessian_eigenvalues(s, bias, layout).tolist() == [1.0, 1.0]
    one_row = flatten_masks(shapes, {"bias": torch.tensor([True, False])})
    assert hessian_eigenvalues(s, one_row, layout).tolist() == [1.0]


def test_layernorm_null_direction_is_clipped_to_zero_not_negative():
    x = dyadic((30, 4), 9)
    x = x - x.mean(dim=1, keepdim=True)  # centred rows: (1, 1, 1, 1) is a null direction
    values = hessian_eigenvalues(second_moment(x), None, Layout(1, 4, False))
    assert values[0] == pytest.approx(0.0, abs=1e-14) and values[0] >= 0


def test_stability_warning_at_the_predicted_limit():
    from llcgeo.numerics.sampling.diagnostics import stability_warning

    nbeta, gamma, h_max = 100.0, 1.0, 2.0
    limit = 4.0 / (nbeta * h_max + gamma)
    assert "unstable" not in stability_warning(0.99 * limit, nbeta, gamma, h_max)
    text = stability_warning(limit, nbeta, gamma, h_max)
    assert "unstable" in text and f"{limit:.3g}" in text
    assert stability_warning(0.24 * limit, nbeta, gamma, h_max) is None
