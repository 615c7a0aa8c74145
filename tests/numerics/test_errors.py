"""Bad input gives the package's own error, with a message naming what was wrong."""

import pytest
import torch

from llcgeo.errors import EstimationError, SpecError
from llcgeo.manifolds import Gaussian, LinearLayer
from llcgeo.numerics import SGLDConfig, estimate_llc, measure_linear

CONFIG = SGLDConfig(eps=1e-3, chains=2, steps=5, burnin=0)


@pytest.fixture
def problem():
    layer = torch.nn.Linear(3, 2, dtype=torch.float64)
    x = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return layer, x, layer(x).detach()


def estimate(model, x, y, **kwargs):
    return estimate_llc(model, x, y, config=kwargs.pop("config", CONFIG), device="cpu", **kwargs)


@pytest.mark.parametrize("wrap", [lambda m: m, torch.nn.Sequential], ids=["fast", "module"])
def test_shape_mismatches(problem, wrap):
    layer, x, y = problem
    with pytest.raises(EstimationError, match="20 samples but targets have 19"):
        estimate(wrap(layer), x, y[:19])
    with pytest.raises(EstimationError, match=r"shape|Linear\(3, 2\)"):
        estimate(wrap(layer), x[:, :2], y)
    with pytest.raises(EstimationError, match=r"shape|Linear\(3, 2\)"):
        estimate(wrap(layer), x, y[:, :1])


def test_empty_dataset_and_non_finite_data(problem):
    layer, x, y = problem
    with pytest.raises(EstimationError, match="empty"):
        estimate(layer, x[:0], y[:0])
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(EstimationError, match="inputs contain NaN"):
        estimate(layer, bad, y)
    with pytest.raises(EstimationError, match="targets contain NaN"):
        estimate(layer, x, y * float("inf"))


def test_config_values_are_validated():
    with pytest.raises(SpecError, match="chains must be at least 1"):
        SGLDConfig(chains=0)
    with pytest.raises(SpecError, match="eps must be positive"):
        SGLDConfig(eps=0.0)
    with pytest.raises(SpecError, match="eps must be positive"):
        SGLDConfig(eps=-1e-3)


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ({}, "names no parameter"),
        ({"weights": None}, r"names \['weights'\], which the model does not have"),
        ({"weight": torch.ones(3, 2, dtype=torch.bool)}, "has shape"),
        ({"weight": torch.ones(2, 3)}, "boolean"),
        ({"bias": torch.zeros(2, dtype=torch.bool)}, "no entry free"),
        ("weight", "dict"),
    ],
)
def test_bad_masks(problem, masks, message):
    layer, x, y = problem
    with pytest.raises(EstimationError, match=message):
        estimate(layer, x, y, param_masks=masks)


def test_bad_model_loss_and_batch(problem):
    layer, x, y = problem
    with pytest.raises(EstimationError, match="torch.nn.Module"):
        estimate(lambda v: v, x, y)
    with pytest.raises(EstimationError, match="loss must be"):
        estimate(layer, x, y, loss="cross-entropy")
    with pytest.raises(EstimationError, match="one value per sample"):
        estimate(layer, x, y, loss=lambda out, t: (out - t).square())
    with pytest.raises(EstimationError, match="batch_size"):
        estimate(layer, x, y, config=SGLDConfig(chains=1, steps=2, burnin=0, batch_size=21))
    with pytest.raises(EstimationError, match="no parameters"):
        estimate(torch.nn.Identity(), x, x)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu(problem):
    layer, x, y = problem
    with pytest.raises(SpecError, match="no CUDA GPU"):
        estimate_llc(layer, x, y, config=CONFIG, device="cuda")
    with pytest.raises(SpecError, match="no CUDA GPU"):
        measure_linear(Gaussian(2), LinearLayer(1), "all", 10, CONFIG, seed=0, device="cuda")


def test_bad_device_seed_and_sizes():
    with pytest.raises(SpecError, match="device must be"):
        measure_linear(Gaussian(2), LinearLayer(1), "all", 10, CONFIG, seed=0, device="tpu")
    with pytest.raises(SpecError, match="seed"):
        measure_linear(Gaussian(2), LinearLayer(1), "all", 10, CONFIG, seed=-1, device="cpu")
    with pytest.raises(SpecError, match=r"n \(the number of samples\) must be"):
        measure_linear(Gaussian(2), LinearLayer(1), "all", 1, CONFIG, seed=0, device="cpu")
    with pytest.raises(SpecError, match="refine='bias' needs"):
        measure_linear(Gaussian(2), LinearLayer(1), "bias", 10, CONFIG, seed=0, device="cpu")
    with pytest.raises(SpecError, match="sigma"):
        measure_linear(Gaussian(2), LinearLayer(1), "all", 10, CONFIG, seed=0, sigma=-1.0)
