"""The trained-network helpers: the head's exact Hessian, its fitted minimum, the quadratic
model's problem, and seeded training."""

import pytest
import torch
from torch.func import hessian

from llcgeo.config import SGLDConfig
from llcgeo.numerics.measurements.heads import SMOOTHING, fit_head, head_hessian
from llcgeo.numerics.measurements.networks import MLPClassifier, TinyTransformer
from llcgeo.numerics.measurements.training import sequence_task, trained_head
from llcgeo.numerics.paths.choose import model_problem
from llcgeo.numerics.paths.losses import cross_entropy
from llcgeo.numerics.paths.problem import quadratic_problem

F64 = torch.float64


def _head(seed=0, rows=40, width=4, classes=3):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, width, generator=g, dtype=F64)
    z = z - z.mean(dim=1, keepdim=True)  # on the LayerNorm plane through the origin
    labels = torch.randint(0, classes, (rows,), generator=g)
    weight = torch.randn(classes, width, generator=g, dtype=F64)
    return z, labels, weight, torch.randn(classes, generator=g, dtype=F64)


def _flat_loss(z, labels, classes, width, moving_bias, frozen_bias):
    def loss(flat):
        w = flat[: classes * width].view(classes, width)
        b = flat[classes * width :] if moving_bias else frozen_bias
        return cross_entropy(SMOOTHING)(z @ w.T + b, labels).mean()

    return loss


@pytest.mark.parametrize("moving_bias", [False, True])
def test_the_head_hessian_is_autograds(moving_bias):
    z, labels, weight, bias = _head()
    ours = head_hessian(z, weight, bias, moving_bias=moving_bias)
    flat = torch.cat([weight.reshape(-1), bias] if moving_bias else [weight.reshape(-1)])
    reference = hessian(_flat_loss(z, labels, 3, 4, moving_bias, bias))(flat)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_on_the_plane_the_rank_is_k_minus_one_times_d_minus_one():
    z, _, weight, bias = _head(rows=200, width=5, classes=4)
    eigenvalues = torch.linalg.eigvalsh(head_hessian(z, weight[:, :5], bias, moving_bias=False))
    assert int((eigenvalues > 1e-9 * eigenvalues.max()).sum()) == (4 - 1) * (5 - 1)


def test_the_fitted_head_is_a_minimum():
    z, labels, weight, bias = _head(rows=60)
    w, b, grad_norm = fit_head(z, labels, weight, bias, moving_bias=True)
    assert grad_norm < 1e-8
    loss = _flat_loss(z, labels, 3, 4, True, None)
    centre = torch.cat([w.reshape(-1), b])
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        assert loss(centre + 1e-3 * torch.randn(centre.shape, generator=g, dtype=F64)) >= loss(
            centre
        )


def test_the_quadratic_problem_is_half_delta_h_delta():
    z, labels, weight, bias = _head()
    head = torch.nn.Linear(4, 3, dtype=F64)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    config = SGLDConfig(chains=2, steps=2, burnin=1)
    masks = {"weight": torch.ones(3, 4, dtype=torch.bool), "bias": torch.zeros(3, dtype=torch.bool)}
    problem = model_problem(head, z, labels, config, masks, cross_entropy(), torch.device("cpu"))
    h = head_hessian(z, weight, bias, moving_bias=False)
    quadratic = quadratic_problem(h, problem)
    delta = torch.randn(2, 15, dtype=F64, generator=torch.Generator().manual_seed(3))
    delta[:, 12:] = 0
    loss, grad = quadratic.posterior.loss_and_grad(problem.posterior.centre + delta, None)
    moving = delta[:, :12]
    torch.testing.assert_close(loss, 0.5 * ((moving @ h) * moving).sum(1))
    torch.testing.assert_close(grad[:, :12], moving @ h)
    assert (grad[:, 12:] == 0).all()


def test_the_sequence_task_adds_the_previous_token():
    ids, labels = sequence_task(5, 6, 7, seed=0)
    assert labels[:, 0].tolist() == ids[:, 0].tolist()
    assert labels[:, 1:].tolist() == ((ids[:, 1:] + ids[:, :-1]) % 7).tolist()


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_a_seed_gives_the_same_trained_head(kind):
    if kind == "mlp":
        x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
        y = torch.arange(50) % 3

        def build():
            return MLPClassifier(8, 4, 3, "layernorm")
    else:
        x, y = sequence_task(12, 5, 4, seed=0)

        def build():
            return TinyTransformer(4, 8, 5, "rmsnorm")

    runs = [
        trained_head(build, x, y, steps=20, lr=1e-2, batch=None, seed=7, moving_bias=False)
        for _ in range(2)
    ]
    assert torch.equal(runs[0].features, runs[1].features)
    assert torch.equal(runs[0].weight, runs[1].weight)
    assert runs[0].grad_norm < 1e-8
