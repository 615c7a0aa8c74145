"""The Metropolis acceptance probability of SGLD steps, watched without extra gradients."""

import math

import pytest
import torch

from llcgeo import SGLDConfig, estimate_llc
from llcgeo.config import SAMPLERS
from llcgeo.errors import SpecError
from llcgeo.numerics.sampling.kernels import KERNELS
from llcgeo.numerics.sampling.mala import build_mala_kernel, init_mala
from llcgeo.numerics.sampling.sgld import build_kernel, init, localized_gradient

CURVATURE = torch.tensor([1.0, 9.0], dtype=torch.float64)


def _quadratic(w, batch):
    return 0.5 * (CURVATURE * w.square()).sum(1), CURVATURE * w


def _steps(kernel, state, eps, count):
    infos, generator = [], torch.Generator().manual_seed(1)
    for _ in range(count):
        state, info = kernel(state, None, eps, generator)
        infos.append(info)
    return state, infos


def test_the_watched_probability_is_malas_for_one_step():
    eps, nbeta, gamma = 0.05, 2.0, 0.5
    drift = localized_gradient(_quadratic, nbeta=nbeta, gamma=gamma, centre=torch.zeros(2))
    step = build_kernel(drift, watch=True)
    w0 = torch.tensor([[0.4, -0.3]], dtype=torch.float64)
    state, first = step(init(w0), None, eps, torch.Generator().manual_seed(1))
    assert first.acceptance is None  # no step has ended yet
    _, second = step(state, None, eps, torch.Generator())  # it closes the first step's test
    a = nbeta * CURVATURE + gamma

    def u(w):
        return 0.5 * (a * w.square()).sum()

    w1 = state.position
    forward = (w1 - w0 + 0.5 * eps * a * w0).square().sum()
    backward = (w0 - w1 + 0.5 * eps * a * w1).square().sum()
    expected = min(1.0, math.exp(u(w0) - u(w1) + (forward - backward) / (2 * eps)))
    assert float(second.acceptance) == pytest.approx(expected, rel=1e-12)


def test_mala_evaluates_once_a_step_and_moves_as_an_uncached_chain_would():
    calls = []

    def counted(w, batch):
        calls.append(1)
        return _quadratic(w, batch)

    drift = localized_gradient(counted, nbeta=3.0, gamma=1.0, centre=torch.zeros(2))
    start = torch.full((4, 2), 0.5, dtype=torch.float64)
    final, infos = _steps(build_mala_kernel(drift), init_mala(start), 0.2, 20)
    assert len(calls) == 21  # one evaluation a step, and one at the start
    fresh, state = [], init_mala(start)
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):  # the cache dropped each step: the same chain, twice the evaluations
        state, info = build_mala_kernel(drift)(init_mala(state.position), None, 0.2, generator)
        fresh.append(info)
    assert torch.equal(state.position, final.position)
    assert all(torch.equal(a.acceptance, b.acceptance) for a, b in zip(infos, fresh))
    assert 0 < float(torch.stack([i.acceptance for i in infos]).mean()) < 1


def test_every_sampler_name_has_a_kernel():
    assert tuple(KERNELS) == SAMPLERS


def test_acceptance_falls_as_eps_grows(fitted_linear):
    layer, x, y = fitted_linear(2000)
    rates = []
    for eps in (1e-5, 1e-3, 8e-3):
        config = SGLDConfig(eps=eps, chains=4, steps=300, burnin=50, acceptance=True)
        rates.append(estimate_llc(layer, x, y, config=config, device="cpu").acceptance_rate)
    assert rates[0] > 0.999 and rates[0] > rates[1] > rates[2]


def test_acceptance_is_for_plain_sgld():
    with pytest.raises(SpecError, match="acceptance is watched for plain SGLD"):
        SGLDConfig(sampler="mala", acceptance=True)


def test_the_estimate_command_draws_the_traces(tmp_path, capsys):
    from llcgeo.cli import main

    png = tmp_path / "trace.png"
    args = ["estimate", "--manifold", "rmsnorm", "--d", "3", "--m", "2", "--n", "500",
            "--steps", "200", "--burnin", "50", "--chains", "2", "--acceptance",
            "--trace", str(png)]  # fmt: skip
    assert main(args) == 0
    assert "acceptance" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_grid_of_gammas_gives_each_chain_its_own_potential():
    from llcgeo.numerics.sampling.sgld import potential

    gammas = torch.tensor([[1.0], [4.0], [9.0]], dtype=torch.float64)
    drift = localized_gradient(_quadratic, nbeta=2.0, gamma=gammas, centre=torch.zeros(2))
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    loss, d = drift(w, None)
    expected = 2.0 * loss + 0.5 * gammas[:, 0] * w.square().sum(1)
    assert torch.equal(potential(w, loss, d), expected)
    eps = torch.full((3, 1), 0.01, dtype=torch.float64)
    state, info = build_mala_kernel(drift)(init_mala(w), None, eps, torch.Generator())
    assert state.position.shape == (3, 2) and info.acceptance.shape == (3,)
