"""estimate_llc on the models researchers train: class labels, token ids, several forward
arguments, DataLoaders, dropout and batch norm, and the errors of each."""

import math
import re

import pytest
import torch

from llcgeo import SGLDConfig, estimate_llc
from llcgeo.errors import EstimationError, SpecError
from llcgeo.numerics.paths.losses import cross_entropy, per_sample_loss
from llcgeo.numerics.sampling.rmsprop import build_rmsprop_kernel, init_rmsprop
from llcgeo.numerics.sampling.sgld import localized_gradient

QUICK = SGLDConfig(eps=1e-4, chains=2, steps=60, burnin=20)


class Tokens(torch.nn.Module):
    def __init__(self, vocab=7, width=5):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.out = torch.nn.Linear(width, vocab)

    def forward(self, ids, shift=None):
        h = self.embed(ids)
        return self.out(h if shift is None else h + shift)


@pytest.fixture
def tokens():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 7, (64, 6), generator=g), torch.randint(0, 7, (64, 6), generator=g)


def _fitted(net: torch.nn.Module, x, y) -> torch.nn.Module:
    """``net`` trained to a minimum of its evaluation-mode cross-entropy (the loss sampled)."""
    net.eval()
    optimizer = torch.optim.LBFGS(net.parameters(), max_iter=500, tolerance_grad=1e-9)

    def closure():
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(net(x), y, label_smoothing=0.1)
        value.backward()
        return value

    optimizer.step(closure)
    return net.train()


def _run(model, inputs, targets, **kw):
    return estimate_llc(model, inputs, targets, config=QUICK, device="cpu", seed=3, **kw)


def test_token_ids_tensor_dict_and_dataloader_give_the_same_estimate(tokens):
    ids, labels = tokens
    torch.manual_seed(0)
    model = Tokens()
    plain = _run(model, ids, labels, loss="cross_entropy")
    as_dict = _run(model, {"ids": ids}, labels, loss="cross_entropy")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids, labels), batch_size=10)
    joined = _run(model, loader, None, loss="cross_entropy")
    assert math.isfinite(plain.mean)
    assert plain.mean == pytest.approx(as_dict.mean, rel=1e-12)
    assert plain.mean == pytest.approx(joined.mean, rel=1e-12)


def test_cross_entropy_is_mean_over_positions_of_torchs_cross_entropy(tokens):
    from llcgeo.numerics.paths.losses import cross_entropy

    ids, labels = tokens
    logits = Tokens()(ids)
    ours = cross_entropy()(logits, labels)
    reference = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), labels, reduction="none"
    ).mean(dim=1)
    assert torch.allclose(ours, reference)


def test_a_classifier_with_dropout_and_batch_norm_is_sampled_in_eval_mode():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(80, 4, generator=g), torch.randint(0, 3, (80,), generator=g)
    torch.manual_seed(0)
    net = _fitted(torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Dropout(0.5),
        torch.nn.ReLU(), torch.nn.Linear(6, 3),
    ), x, y)  # fmt: skip
    smoothed = cross_entropy(0.1)
    first = _run(net, x, y, loss=smoothed)
    second = _run(net, x, y, loss=smoothed)
    assert first.mean == second.mean  # no dropout mask drawn: the same seed, the same numbers
    assert any("evaluation mode" in w for w in first.warnings)
    assert net.training  # the user's model is left as it was
    assert not any("evaluation mode" in w for w in _run(net.eval(), x, y, loss=smoothed).warnings)


@pytest.mark.parametrize(
    ("targets", "loss", "message"),
    [
        (torch.randint(0, 3, (20,)), "gaussian", "integers .* the loss is Gaussian"),
        (torch.full((20,), 3), "cross_entropy", r"outside 0\.\.2 .* 3\.\.3"),
        (torch.zeros(20, 2, dtype=torch.long), "cross_entropy", r"need labels of shape \(\)"),
        (torch.zeros(20, 4), "cross_entropy", "class probabilities"),
        (torch.zeros(20, 3), lambda out, y: out.sum(), "one value per sample"),
        (torch.zeros(20, 3), "hinge", "loss must be one of"),
    ],
)
def test_bad_losses_and_targets_are_named(targets, loss, message):
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    with pytest.raises(EstimationError, match=message):
        _run(net, torch.randn(20, 4), targets, loss=loss)


class _NeedsMask(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.out = torch.nn.Linear(6, 7)

    def forward(self, ids, mask):
        return self.out(ids.double() * mask)


def test_a_forward_argument_the_data_lack_is_named(tokens):
    ids, labels = tokens
    with pytest.raises(EstimationError, match="unexpected keyword argument 'tokens'"):
        _run(Tokens(), {"tokens": ids}, labels, loss="cross_entropy")
    with pytest.raises(EstimationError, match="missing 1 required positional argument: 'mask'"):
        _run(_NeedsMask(), ids, labels[:, 0], loss="cross_entropy")


@pytest.mark.parametrize(
    ("inputs", "targets", "message"),
    [
        ([(torch.zeros(3, 2),)], None, "not an .inputs, targets. pair"),
        ([], None, "the iterable gave no batches"),
        (torch.zeros(3, 2), None, "targets are missing"),
        ({"a": torch.zeros(3, 2), "b": torch.zeros(4, 2)}, torch.zeros(3, 1), "one leading"),
        ({"a": torch.zeros(3, 2)}, torch.zeros(4, 1), "3 samples but targets have 4"),
        (torch.tensor([[True]]), torch.zeros(1, 1), "real numbers or integers"),
    ],
)
def test_bad_data_forms_are_named(inputs, targets, message):
    with pytest.raises(EstimationError, match=message):
        _run(torch.nn.Linear(2, 1), inputs, targets)


def test_quality_warnings_name_a_poor_rhat_and_ess():
    from llcgeo.numerics.sampling.diagnostics import quality_warnings

    found = quality_warnings(1.34, 12.0)
    assert "R-hat is 1.34" in found[0] and "bulk ESS is 12" in found[1]
    assert quality_warnings(1.01, 400.0) == ()


def test_a_step_near_the_stability_bound_is_named(fitted_linear):
    layer, x, y = fitted_linear(2000)
    z = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)  # the layer has a bias
    h_max = float(torch.linalg.eigvalsh(z.T @ z / z.shape[0]).max())
    nbeta = x.shape[0] / math.log(x.shape[0])
    config = SGLDConfig(eps=3.4 / (nbeta * h_max + 1.0), chains=2, steps=200, burnin=50)
    e = estimate_llc(layer, x, y, config=config, device="cpu")
    # the numbers, not their rendering: a rounding boundary must not decide the test
    assert _stability_product(e.warnings) == pytest.approx(3.4, rel=1e-6)
    general = torch.nn.Sequential(layer, torch.nn.Identity())  # the general path: Lanczos
    e = estimate_llc(general, x, y, config=config, device="cpu")
    # 8 Lanczos steps on a subsample: a Ritz value near, not at, the top eigenvalue
    assert 3.2 <= _stability_product(e.warnings, lower=True) < 3.6


def _stability_product(warnings, lower=False) -> float:
    at_least = "at least " if lower else ""
    pattern = re.compile(
        rf"eps \(nbeta h_max \+ gamma\) = {at_least}([0-9.e+-]+) is ([0-9]+)% of the stability"
    )
    found = [m for w in warnings if (m := pattern.search(w))]
    assert len(found) == 1, warnings
    value = float(found[0].group(1))
    assert abs(int(found[0].group(2)) - 100 * value / 4) <= 1  # its share, both rounded
    return value


def test_the_rmsprop_step_is_the_documented_update():
    def quadratic(w, batch):
        return 0.5 * (w.square() * torch.tensor([1.0, 4.0])).sum(1), w * torch.tensor([1.0, 4.0])

    drift = localized_gradient(quadratic, nbeta=3.0, gamma=0.5, centre=torch.zeros(2))
    step = build_rmsprop_kernel(drift, decay=0.9, floor=1e-8)
    w = torch.tensor([[0.3, -0.2]])
    state, _ = step(init_rmsprop(w), None, 0.01, torch.Generator().manual_seed(5))
    g = 3.0 * w * torch.tensor([1.0, 4.0]) + 0.5 * w
    v = 0.9 * 1.0 + 0.1 * g.square()
    scale = 0.01 / (1e-8 + v.sqrt())
    xi = torch.randn(w.shape, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(state.position, w - 0.5 * scale * g + scale.sqrt() * xi)
    assert torch.allclose(state.square_mean, v)


def test_rmsprop_runs_through_estimate_llc_and_keeps_masked_entries(fitted_linear):
    layer, x, y = fitted_linear(500)
    config = SGLDConfig(eps=1e-3, chains=2, steps=100, burnin=20, sampler="rmsprop")
    masks = {"0.weight": torch.zeros_like(layer.weight, dtype=torch.bool)}
    masks["0.weight"][0] = True
    e = estimate_llc(
        torch.nn.Sequential(layer, torch.nn.Tanh()),
        x,
        y,
        config=config,
        param_masks=masks,
        device="cpu",
    )
    assert math.isfinite(e.mean) and e.config.sampler == "rmsprop"
    with pytest.raises(SpecError, match="rmsprop_decay"):
        SGLDConfig(sampler="rmsprop", rmsprop_decay=1.0)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("batch_size", [None, 16])
def test_the_softmax_head_path_follows_the_general_path(bias, batch_size):
    from llcgeo.numerics.paths.losses import cross_entropy

    g = torch.Generator().manual_seed(2)
    z = torch.randn(64, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (64,), generator=g)
    head = torch.nn.Linear(5, 4, bias=bias, dtype=torch.float64)
    config = SGLDConfig(eps=1e-3, chains=3, steps=40, burnin=10, batch_size=batch_size)
    loss = cross_entropy(0.1)
    fast = estimate_llc(head, z, labels, loss=loss, config=config, device="cpu", seed=4)
    general = estimate_llc(
        torch.nn.Sequential(head), z, labels, loss=loss, config=config, device="cpu", seed=4
    )
    assert fast.init_loss == pytest.approx(general.init_loss, rel=1e-12)
    torch.testing.assert_close(
        torch.tensor(fast.loss_trace), torch.tensor(general.loss_trace), rtol=1e-9, atol=1e-12
    )


def test_the_softmax_head_path_checks_its_labels():
    head = torch.nn.Linear(3, 2)
    with pytest.raises(EstimationError, match="outside 0..1"):
        _run(head, torch.randn(10, 3), torch.full((10,), 2), loss="cross_entropy")
    with pytest.raises(EstimationError, match="4 features a sample but .* takes 3"):
        _run(head, torch.randn(10, 4), torch.zeros(10, dtype=torch.long), loss="cross_entropy")


class _Wrapped(torch.nn.Module):
    """The same network, hidden from the fast paths: the general path's reference."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("loss", ["gaussian", "cross_entropy"])
@pytest.mark.parametrize("batch_size", [None, 16])
def test_the_stacked_mlp_path_follows_the_general_path(loss, batch_size):
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 5, bias=False),
        torch.nn.GELU(), torch.nn.Linear(5, 3),
    ).double()  # fmt: skip
    x = torch.randn(48, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (48,), generator=g) if loss == "cross_entropy" else net(x).detach()
    config = SGLDConfig(eps=1e-3, chains=3, steps=30, burnin=5, batch_size=batch_size)
    fast = estimate_llc(net, x, y, loss=loss, config=config, device="cpu", seed=2)
    general = estimate_llc(_Wrapped(net), x, y, loss=loss, config=config, device="cpu", seed=2)
    assert fast.init_loss == pytest.approx(general.init_loss, rel=1e-12)
    torch.testing.assert_close(
        torch.tensor(fast.loss_trace), torch.tensor(general.loss_trace), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("loss", ["gaussian", "cross_entropy", "smoothed"])
@pytest.mark.parametrize("batch_size", [None, 16])
def test_the_backward_written_by_hand_follows_the_general_path(loss, batch_size):
    from llcgeo.numerics.paths.stacked import _backward_by_hand, _layers

    g = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 5, bias=False),
        torch.nn.Tanh(), torch.nn.Linear(5, 5), torch.nn.LeakyReLU(0.2), torch.nn.Linear(5, 4),
        torch.nn.Sigmoid(), torch.nn.Identity(), torch.nn.Linear(4, 3),
    ).double()  # fmt: skip
    named = {"smoothed": cross_entropy(0.1)}.get(loss, loss)
    assert _backward_by_hand(list(_layers(net)), [1], per_sample_loss(named)) is not None
    x = torch.randn(48, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (48,), generator=g) if loss != "gaussian" else net(x).detach()
    config = SGLDConfig(eps=1e-3, chains=3, steps=30, burnin=5, batch_size=batch_size)
    fast = estimate_llc(net, x, y, loss=named, config=config, device="cpu", seed=2)
    general = estimate_llc(_Wrapped(net), x, y, loss=named, config=config, device="cpu", seed=2)
    torch.testing.assert_close(
        torch.tensor(fast.loss_trace), torch.tensor(general.loss_trace), rtol=1e-9, atol=1e-12
    )


def test_the_stacked_mlp_path_names_bad_targets():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with pytest.raises(EstimationError, match=r"outputs have shape \(n, 2\)"):
        _run(net, torch.randn(10, 4), torch.randn(10, 3))
    with pytest.raises(EstimationError, match="outside 0..1"):
        _run(net, torch.randn(10, 4), torch.full((10,), 2), loss="cross_entropy")
