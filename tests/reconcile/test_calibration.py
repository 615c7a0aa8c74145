"""Settings chosen from theory reach their targets, on the exact theory and in a real run."""

import numpy as np
import pytest
import torch

import llcgeo
from llcgeo.config import SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.numerics import estimate_llc
from llcgeo.numerics.paths.choose import model_problem
from llcgeo.numerics.paths.curvature import hessian_spectrum
from llcgeo.reconcile.verdict import Z_AGREE
from llcgeo.theory.calibration import recommend

F64 = torch.float64


def test_recommended_settings_meet_their_targets_on_the_exact_theory():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h = np.exp(rng.uniform(-4, 2, size=int(rng.integers(2, 30))))
        r = recommend(h, nbeta=float(np.exp(rng.uniform(3, 10))))
        assert abs(r.expected - r.llc) <= (0.05 + 0.05) * r.llc  # step size up, localization down
        assert r.standard_error <= 0.02 * r.llc
        assert r.burnin < r.steps


def test_a_calibrated_run_lands_on_the_exact_expectation_it_promised(fitted_linear):
    layer, x, y = fitted_linear(4000, seed=1)
    cal = llcgeo.calibrate(layer, x, y)
    estimate = estimate_llc(layer, x, y, config=cal.config, device="cpu")
    r = cal.recommendation
    assert abs(estimate.mean - r.expected) <= Z_AGREE * r.standard_error
    assert abs(r.expected - r.llc) <= 0.1 * r.llc and len(r.reasons) == 4  # no flat direction


def test_lanczos_finds_the_exact_spectrum_through_the_general_path(fitted_linear):
    layer, x, y = fitted_linear(500, seed=1)
    config = SGLDConfig()
    exact = hessian_spectrum(model_problem(layer, x, y, config, None, "gaussian", "cpu"))
    general = model_problem(
        torch.nn.Sequential(layer, torch.nn.Identity()), x, y, config, None, "gaussian", "cpu"
    )
    np.testing.assert_allclose(hessian_spectrum(general, steps=8), exact, rtol=1e-8, atol=1e-10)


def test_a_model_that_is_not_at_a_minimum_is_refused(fitted_linear):
    layer, x, y = fitted_linear(4000, seed=1)
    untrained = torch.nn.Linear(3, 2, dtype=F64)
    with torch.no_grad():
        untrained.weight.copy_(layer.weight + 0.5)  # far from the fit, in units of its noise
        untrained.bias.copy_(layer.bias)
    with pytest.raises(SpecError, match="not a minimum"):
        llcgeo.calibrate(untrained, x, y)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: recommend([1.0, -0.5], nbeta=100.0), "negative eigenvalue"),
        (lambda: recommend([0.0, 0.0], nbeta=100.0), "no positive eigenvalue"),
        (lambda: recommend([1.0, 1e-6], nbeta=100.0, max_steps=500), "allow more steps"),
        (lambda: recommend([1.0], nbeta=100.0, bias=1.5), r"LLC\) must lie in \(0, 1\)"),
    ],
)
def test_targets_that_cannot_be_met_are_refused_with_what_to_do(call, message):
    with pytest.raises(SpecError, match=message):
        call()


def test_flat_directions_are_named_as_a_limit_of_the_quadratic_theory():
    r = recommend([2.0, 1.0, 0.0, 0.0], nbeta=1000.0)
    assert r.llc == 1.0 and "2 of 4 directions are flat" in r.reasons[-1]
    assert recommend([2.0, 1.0, 1e-9], nbeta=1000.0, noise=1e-6).reasons[-1].startswith("warning")


def test_the_calibrate_command_and_eps_auto(capsys):
    import json

    from llcgeo import cli

    case = ["--manifold", "layernorm", "--d", "4", "--m", "2", "--n", "5000"]
    assert cli.main(["calibrate", *case, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["llc_of_the_curved_directions"] == 3.0 and len(data["reasons"]) == 4
    assert 0 < data["eps"] * (data["nbeta"] * max(data["hessian_eigenvalues"]) + data["gamma"]) < 4
    assert cli.main(["verify", *case, "--eps", "auto", "--json"]) == 0
    captured = capsys.readouterr()
    verdict = json.loads(captured.out)
    assert verdict["case"]["config"]["eps"] == pytest.approx(data["eps"])
    assert verdict["verdict"] == "agree" and "--eps auto: eps =" in captured.err
    with pytest.raises(SystemExit) as stopped:
        cli.main(["estimate", *case, "--eps", "fast"])
    assert stopped.value.code == 2 and "number or auto" in capsys.readouterr().err


def test_a_grid_sweep_gives_the_theory_curve_and_its_plateau(fitted_linear):
    from llcgeo.reconcile.calibration import plateau, sweep_grid

    layer, x, y = fitted_linear(3000, seed=1)
    config = SGLDConfig(chains=8, steps=2000, burnin=300)
    points = sweep_grid(layer, x, y, (5e-5, 1e-4, 2e-4, 3e-3), (1.0,), config=config, seed=1)
    assert all(p.expected is not None and p.diverged == 0 for p in points)
    assert points[-1].mean > points[0].mean + 5 * points[0].se  # the largest eps is biased
    edge = plateau(points, 1.0)
    assert edge is not None and 1e-4 <= edge < 3e-3


def test_the_calibrate_figure_shows_the_grid_around_the_choice(capsys, tmp_path):
    import json

    from llcgeo import cli
    from llcgeo.reconcile.calibration import EPS_FACTORS, GAMMA_FACTORS

    png = tmp_path / "calibration.png"
    case = ["--manifold", "rmsnorm", "--d", "3", "--m", "2", "--n", "2000"]
    assert cli.main(["calibrate", *case, "--json", "--figure", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grid = data["grid"]
    assert len(grid) == len(EPS_FACTORS) * len(GAMMA_FACTORS)
    assert {round(p["eps"] / data["eps"], 6) for p in grid} == set(EPS_FACTORS)
    assert all(p["expected"] is not None for p in grid)  # the linear path: the exact curve


def test_calibrate_a_trained_digits_head_under_the_cross_entropy():
    """The head of the network suite's digits MLP, on its frozen features: the softmax-head
    path, its spectrum by Lanczos, settings whose step-size bias is the target's."""
    import torch
    from sklearn.datasets import load_digits

    from llcgeo.numerics.measurements.heads import SMOOTHING, head_hessian
    from llcgeo.numerics.measurements.networks import MLPClassifier
    from llcgeo.numerics.measurements.training import head_module, trained_head
    from llcgeo.numerics.paths.losses import cross_entropy
    from llcgeo.reconcile.calibration import calibrate

    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0), torch.tensor(digits.target)
    trained = trained_head(lambda: MLPClassifier(64, 6, 10, "layernorm"), x, y, steps=100,
                           lr=1e-2, batch=None, seed=0, moving_bias=False)  # fmt: skip
    head, masks = head_module(trained, moving_bias=False)
    # the quadratic choice itself: its smallest curvatures sit under the noise floor, which
    # singular="auto" would answer with a gamma sweep (tested on a singular model below)
    cal = calibrate(head, trained.features, trained.labels, loss=cross_entropy(SMOOTHING),
                    param_masks=masks, lanczos_steps=60, singular="warn")  # fmt: skip
    h = torch.linalg.eigvalsh(
        head_hessian(trained.features, trained.weight, trained.bias, moving_bias=False)
    )
    a_max = cal.nbeta * float(h.max()) + cal.config.gamma
    assert cal.config.eps * a_max == pytest.approx(4 * 0.05 / 1.05, rel=1e-6)
    # calibrate's noise floor for the curvature (a Gaussian model's, at a true parameter) counts
    # the head's smallest curvatures as flat and says so: it never counts more than the 45
    # curved directions of (K - 1)(h - 1) the geometry gives
    assert cal.recommendation.llc <= 22.5
    assert cal.recommendation.llc == 22.5 or "flat" in cal.recommendation.reasons[-1]


def _reduced_rank(widths, rank: int, n: int = 100_000):
    import torch

    from llcgeo import manifolds as mf
    from llcgeo.numerics.device import make_generator, stream
    from llcgeo.numerics.measurements.deep_linear import deep_linear_teacher
    from llcgeo.numerics.measurements.manifold_data import sample

    cpu = torch.device("cpu")
    x = sample(mf.Gaussian(widths[0]), n, generator=make_generator(stream(0, "data"), cpu))
    teacher = deep_linear_teacher(widths, rank, make_generator(stream(0, "teacher"), cpu))
    noise = torch.randn(n, widths[-1], generator=make_generator(stream(0, "noise"), cpu),
                        dtype=x.dtype)  # fmt: skip
    with torch.no_grad():
        return teacher, x, teacher(x) + 0.5 * noise


@pytest.mark.slow
def test_calibrated_settings_reach_a_reduced_rank_regression_truth():
    """Aoyagi and Watanabe's (M, H, N, r) = (4, 3, 4, 1): exact RLCT 6 (multiplicity 1, so the
    singular suite adds nothing back), n = 100 000. The quadratic theory alone would give gamma
    ~1e3 and an estimate near the 3.5 of the curved directions; calibrate, with its defaults,
    sees 17 flat directions that no symmetry of the path explains and chooses gamma and the
    chain length by the singular suite's extrapolation. Allowed: 5% plus 3 SE (the singular
    suite holds its extrapolated coefficient to 3% plus 3 SE), or a refusal that says why."""
    from llcgeo.numerics.estimate import estimate_llc
    from llcgeo.reconcile.calibration import calibrate

    teacher, x, y = _reduced_rank((4, 3, 4), 1)
    try:
        cal = calibrate(teacher, x, y, config=SGLDConfig(chains=8))  # singular="auto"
    except SpecError as refusal:
        assert "+-" in str(refusal), refusal
        return
    assert "17 of 24 directions are flat" in cal.recommendation.reasons[1]
    e = estimate_llc(teacher, x, y, config=cal.config, device="cpu", seed=1)
    assert abs(e.mean - 6) <= 0.05 * 6 + 3 * e.se, (e.mean, e.se, cal.config)


def test_a_zero_rank_truth_is_refused_with_its_reason():
    """(5, 4, 5, 0): every weight is zero at the truth, so no direction is curved and nothing
    sets eps; calibrate refuses and names the likely cause."""
    from llcgeo.reconcile.calibration import calibrate

    teacher, x, y = _reduced_rank((5, 4, 5), 0, n=20_000)
    with pytest.raises(SpecError, match="a singular point where no direction is curved"):
        calibrate(teacher, x, y, config=SGLDConfig(chains=8))


def test_a_linear_layer_and_a_softmax_heads_symmetry_need_no_sweep(fitted_linear):
    import torch

    from llcgeo.numerics.paths.losses import cross_entropy
    from llcgeo.reconcile.calibration import calibrate

    layer, x, y = fitted_linear(2000)
    assert not any("sweep" in r for r in calibrate(layer, x, y).recommendation.reasons)
    g = torch.Generator().manual_seed(0)
    features = torch.randn(600, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (600,), generator=g)
    head = torch.nn.Linear(3, 4, dtype=torch.float64)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=500, tolerance_grad=1e-12)

    def closure():
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(head(features), labels, label_smoothing=0.1)
        value.backward()
        return value

    optimizer.step(closure)
    cal = calibrate(head, features, labels, loss=cross_entropy(0.1))
    assert cal.recommendation.llc == 6.0  # (K - 1)(d + 1) / 2: the 4 shift directions are flat
    assert not any("sweep" in r for r in cal.recommendation.reasons)
