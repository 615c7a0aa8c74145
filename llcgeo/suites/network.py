"""The normalization claim inside trained networks: the softmax head after a final norm.

Two networks are trained in each case, from a seed: an MLP on the handwritten digits that
scikit-learn ships (1 797 images of 64 pixels, 10 classes) and a small transformer (token and
position embeddings, 2 blocks, a final norm, an unembedding without bias) on a synthetic
sequence task it generates (the label at each position is the sum of that token and the one
before, modulo the vocabulary). With every other parameter frozen the head sees fixed
features ``z``; its weight-refined LLC is then exactly ``(K - 1) r / 2``
(:mod:`llcgeo.theory.softmax`), ``r`` from the exact affine geometry of the trained norm: its
actual gains and biases, read as exact numbers. A LayerNorm without a learned bias keeps the
features on a plane through the origin (``r = h - 1``); RMSNorm's sphere, a learned
LayerNorm bias or no norm at all keep ``r = h``. The drop between the LayerNorm and RMSNorm
heads is ``(K - 1)/2``, not ``K/2``.

**What each case measures.** The head is refitted to the minimum of its loss (smoothed
labels, so that a minimum exists); its Hessian there is computed exactly. Its rank, counted
numerically, is held against ``(K - 1) r``. SGLD settings come from that spectrum
(:func:`llcgeo.theory.calibration.network_recommendation`, the burn-in capped): eps for a 5%
step-size bias, gamma so that the slowest direction relaxes within the burn-in. ``nbeta`` is
``NBETA_FACTOR n / log n`` (``llcgeo.theory.calibration``): the terms of the loss beyond the
quadratic shift the estimate by ``O(1/nbeta)``, and a colder posterior keeps that shift small
next to the standard error while leaving the LLC (a property of the loss near its minimum)
unchanged.

**What each claim is held to.** A second run on the head's exact quadratic model (its
Hessian at the fit), with the same seed and therefore the same noise chain for chain, is held
to the exact expectation of the estimator at these settings with no allowance (a Student-t
limit: its error comes from the chains). The real estimate differs from that run by the shift
the loss's terms beyond the quadratic cause, measured chain for chain and reported, not granted
as slack; a shift above ``SHIFT_LIMIT`` of the LLC makes a claim inconclusive, since then the
quadratic model no longer describes the loss at these settings. The drop claim uses the real
estimates, each less its exact settings bias (expectation minus LLC), with the error of the
chains; the two shifts' difference, which moves the drop, must stay below that error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from llcgeo.config import SGLDConfig
from llcgeo.reconcile.experiment import Experiment, check_scale, load_record
from llcgeo.reconcile.model import Claim, EstimateSummary, ExperimentResult, Figure, Panel, Series
from llcgeo.reconcile.protocol import Coupled, chain_problems, shift_verdict
from llcgeo.reconcile.stats import combined, numerical_rank, singles_out
from llcgeo.reconcile.verdict import limit, passed, within
from llcgeo.thresholds import FLAT, RANK_GAP, SHIFT_LIMIT

# float32 halves the sampling time; the excess loss (LLC / nbeta, about 1e-3 of the loss) is
# far above its rounding (1e-7 of the loss); the Hessian and the fit stay in float64
DTYPE = "float32"
TRACE_POINTS = 50  # points of each chain's running mean kept in a record (for the figure)
MODELS = ("digits-mlp", "transformer")
# (norm, head bias, refine): the MLP's head has a frozen bias; the unembedding has none
HEADS = {
    "digits-mlp": (
        ("layernorm", True, "weight"),
        ("rmsnorm", True, "weight"),
        ("none", True, "weight"),
        ("layernorm-affine", True, "weight"),
    ),
    "transformer": (("layernorm", False, "all"), ("rmsnorm", False, "all")),
}
_SCALES = {
    "small": {"hidden": 6, "vocab": 8, "width": 8, "sequences": 192, "length": 8,
              "chains": 16, "draws": (8000, 16000), "side_draws": 6000, "max_burnin": 2000},
    "full": {"hidden": 16, "vocab": 16, "width": 32, "sequences": 512, "length": 8,
             "chains": 16, "draws": (40000, 80000), "side_draws": 10000, "max_burnin": 5000},
}  # fmt: skip
# the pair whose drop is claimed runs long ("draws", per model: the transformer's larger LLC
# needs more draws for the same standard error); the other heads "side_draws"
DRAWN = ("layernorm", "rmsnorm")
TRAINING = {  # Adam steps, learning rate, batch (None: full batch)
    "digits-mlp": (300, 1e-2, None),
    "transformer": (400, 1e-2, 64),
}


@dataclass(frozen=True)
class NetworkJob:
    """One trained network's head: the model, its final norm, the head's bias and what moves."""

    model: str
    norm: str
    head_bias: bool
    refine: str
    width: int  # the features' dimension h (the MLP's hidden width, the transformer's d_model)
    classes: int
    sequences: int
    length: int
    chains: int
    draws: int
    max_burnin: int
    seed: int = 0


@dataclass(frozen=True)
class NetworkRecord:
    job: NetworkJob
    llc: str  # the exact prediction (K - 1) r / 2
    llc_unconstrained: str
    predicted_rank: int
    rank: int  # counted from the Hessian's spectrum
    gap: float
    train_loss: float
    accuracy: float
    grad_norm: float
    eps: float
    gamma: float
    burnin: int
    nbeta: float
    n: int
    estimate: EstimateSummary
    quadratic: EstimateSummary  # the same chains, on the exact quadratic model of the loss
    shift: float  # mean over chains of (real - quadratic) estimate
    shift_se: float
    expected: float  # the exact expectation on the quadratic model at these settings
    expected_se: float
    warnings: tuple[str, ...]
    running: tuple[tuple[float, ...], ...] = ()  # each chain's running mean, TRACE_POINTS long

    @property
    def exact(self) -> float:
        return float(Fraction(self.llc))


def jobs(scale: str) -> tuple[NetworkJob, ...]:
    s = _SCALES[check_scale(scale)]
    out = []
    for model, long_draws in zip(MODELS, s["draws"], strict=True):
        width = s["hidden"] if model == "digits-mlp" else s["width"]
        classes = 10 if model == "digits-mlp" else s["vocab"]
        for norm, bias, refine in HEADS[model]:
            draws = long_draws if norm in DRAWN else s["side_draws"]
            out.append(
                NetworkJob(model, norm, bias, refine, width, classes, s["sequences"],
                           s["length"], s["chains"], draws, s["max_burnin"])
            )  # fmt: skip
    return tuple(out)


def _data(job: NetworkJob):
    import torch

    from llcgeo.numerics.measurements.training import sequence_task

    if job.model == "digits-mlp":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return torch.tensor(digits.data / 16.0), torch.tensor(digits.target)
    return sequence_task(job.sequences, job.length, job.classes, seed=job.seed)


def _network(job: NetworkJob):
    from llcgeo.numerics.measurements.networks import MLPClassifier, TinyTransformer

    if job.model == "digits-mlp":
        return MLPClassifier(64, job.width, job.classes, job.norm)
    return TinyTransformer(job.classes, job.width, job.length, job.norm)


def _feature_geometry(job: NetworkJob, model):
    """The manifold the features lie on, from the trained norm's parameters (exactly)."""
    from llcgeo import manifolds as mf

    norm = model.body[-1] if job.model == "digits-mlp" else model.final_norm
    gain = None if job.norm == "none" else [float(v) for v in norm.weight.detach()]
    if job.norm == "layernorm":
        return mf.LayerNormImage(job.width, gain=gain)
    if job.norm == "layernorm-affine":
        return mf.LayerNormImage(job.width, gain=gain, bias=[float(v) for v in norm.bias.detach()])
    if job.norm == "rmsnorm":
        return mf.RMSNormImage(job.width, gain=gain)
    return mf.Gaussian(job.width)  # no constraint: features in general position


def run(job: NetworkJob, device: str) -> NetworkRecord:
    import time

    import numpy as np

    from llcgeo import manifolds as mf
    from llcgeo.numerics.measurements.heads import head_hessian
    from llcgeo.numerics.measurements.quadratic_model import measure_head
    from llcgeo.numerics.measurements.training import trained_head
    from llcgeo.theory.calibration import network_nbeta, network_recommendation
    from llcgeo.theory.llc import predicted_llc
    from llcgeo.theory.sgld import expected_sgld_estimate

    started = time.perf_counter()
    inputs, labels = _data(job)
    steps, lr, batch = TRAINING[job.model]
    moving_bias = job.refine == "all" and job.head_bias
    trained = trained_head(lambda: _network(job), inputs, labels, steps=steps, lr=lr, batch=batch,
                           seed=job.seed, moving_bias=moving_bias)  # fmt: skip
    head = mf.SoftmaxHead(job.classes, bias=job.head_bias)
    prediction = predicted_llc(_feature_geometry(job, trained.model), head, job.refine)
    hessian = head_hessian(trained.features, trained.weight, trained.bias, moving_bias=moving_bias)
    spectrum = np.clip(np.linalg.eigvalsh(hessian.numpy()), 0.0, None)
    rank, gap = numerical_rank(spectrum)
    n = len(trained.labels)
    nbeta = network_nbeta(n)
    r = network_recommendation(spectrum, nbeta=nbeta, chains=job.chains,
                               max_burnin=job.max_burnin)  # fmt: skip
    config = SGLDConfig(eps=r.eps, gamma=r.gamma, nbeta=nbeta, chains=job.chains,
                        steps=r.burnin + job.draws, burnin=r.burnin, dtype=DTYPE)  # fmt: skip
    measured = measure_head(trained, hessian, config, moving_bias=moving_bias, seed=job.seed,
                            device=device)  # fmt: skip
    e, q = measured.estimate, measured.quadratic
    shifts = e.per_chain - q.per_chain
    expected = expected_sgld_estimate(spectrum, nbeta, r.gamma, r.eps, config.steps, r.burnin)
    return NetworkRecord(
        job, str(prediction.llc), str(prediction.llc_unconstrained), prediction.hessian_rank,
        rank, gap, trained.train_loss, trained.accuracy, trained.grad_norm, r.eps, r.gamma,
        r.burnin, nbeta, n,
        replace(EstimateSummary.of(e), seconds=time.perf_counter() - started),
        EstimateSummary.of(q),
        float(shifts.mean()), float(shifts.std(ddof=1) / math.sqrt(len(shifts))),
        float(expected.mean), float(expected.standard_error(job.chains)), tuple(e.warnings),
        _running_means(e),
    )  # fmt: skip


def _running_means(estimate) -> tuple[tuple[float, ...], ...]:
    """Each chain's estimate after each recorded draw, at ``TRACE_POINTS`` evenly spaced draws."""
    import numpy as np

    excess = estimate.nbeta * (np.asarray(estimate.loss_trace) - estimate.init_loss)
    running = np.cumsum(excess, axis=1) / np.arange(1, excess.shape[1] + 1)
    picks = np.linspace(0, excess.shape[1] - 1, min(TRACE_POINTS, excess.shape[1])).astype(int)
    return tuple(tuple(float(v) for v in row[picks]) for row in running)


def _load(data: dict[str, Any]) -> NetworkRecord:
    return load_record(NetworkRecord, data)


def _pick(records, model: str, norm: str) -> NetworkRecord:
    return next(r for r in records if r.job.model == model and r.job.norm == norm)


def _of(records, model: str) -> list[NetworkRecord]:
    return [r for r in records if r.job.model == model]


def _coupled(record: NetworkRecord) -> Coupled:
    return Coupled(record.estimate, record.quadratic, record.expected, record.shift,
                   record.exact, record.job.chains)  # fmt: skip


def _sane(record: NetworkRecord) -> str:
    """The coupled-measurement protocol's checks beyond the t test: the chains of both runs
    (divergence, R-hat, ESS) and the higher-order shift (``SHIFT_LIMIT``)."""
    m = _coupled(record)
    problems = chain_problems(m.estimate) + chain_problems(m.quadratic, "quadratic run")
    return "inconclusive" if problems else shift_verdict(m)


def _protocol(records, verdicts) -> str:
    """The claim's verdict: *inconclusive* where any chains broke a rule (unmixed chains give
    no error to disagree with), else the verdicts combined."""
    return "inconclusive" if _problems(records) else combined(verdicts)


def _problems(records) -> str:
    """The chain rules any of ``records`` breaks, named with its model and norm."""
    found = [f"{r.job.norm}: {text}" for r in records for text in
             (*chain_problems(r.estimate), *chain_problems(r.quadratic, "quadratic run"))]
    return "; chains: " + "; ".join(found) if found else ""


def _rank_claim(records, model: str) -> Claim:
    chosen = _of(records, model)
    ok = all(r.rank == r.predicted_rank and r.gap >= RANK_GAP for r in chosen)
    k = chosen[0].job.classes
    return Claim(
        claim=f"{model}: the head's Hessian on the trained features has rank (K - 1) r, "
        f"K = {k}, r from the exact geometry of each norm",
        prediction=", ".join(f"{r.job.norm} {r.predicted_rank}" for r in chosen),
        measurement=", ".join(f"{r.rank}" for r in chosen),
        verdict=passed(ok),
        note=f"eigenvalues above {FLAT:g} of the largest are counted; smallest counted over "
        "largest uncounted: " + ", ".join(f"{r.gap:.2g}" for r in chosen),
        reference=f"exact ranks, with a spectral gap of at least {RANK_GAP:g}",
        statistic=f"smallest gap {min(r.gap for r in chosen):.3g} (limit {RANK_GAP:g})",
    )


def _level_claim(records, model: str) -> Claim:
    """Each head's sampler against the exact theory, with no allowance: the run on the head's
    exact quadratic model, whose chains see the real run's noise, against the estimator's
    exact expectation there (a t test: its error comes from the chains); the real estimate
    is that plus the measured shift of the terms beyond the quadratic, held only to be small
    (``SHIFT_LIMIT``)."""
    chosen = _of(records, model)
    dof = chosen[0].job.chains - 1
    bound = limit(len(chosen), dof)
    t = [(r.quadratic.mean - r.expected) / r.quadratic.se for r in chosen]
    worst = max(abs(v) for v in t)
    return Claim(
        claim=f"{model}: each head's wrLLC estimate is the estimator's exact expectation on its "
        "Hessian plus the measured shift of the terms beyond the quadratic",
        prediction=", ".join(f"{r.job.norm} {r.expected:.2f} (LLC {r.llc})" for r in chosen),
        measurement=", ".join(
            f"{r.estimate.mean:.2f} +/- {r.estimate.se:.2f} (shift {r.shift:+.3f})" for r in chosen
        ),
        verdict=_protocol(chosen, [within(worst, bound), *(_sane(r) for r in chosen)]),
        note="the same chains on the exact quadratic model of each head (Hessian at its fit) "
        "are held to the exact expectation with no allowance; the real estimate differs from "
        "them by the measured shift of the higher-order terms, which is not granted as slack: "
        f"one above {SHIFT_LIMIT:.0%} of the LLC makes the claim inconclusive (the quadratic "
        "model no longer describes the loss at these settings)" + _problems(chosen),
        reference="the exact expectation on the quadratic model, for the quadratic run",
        statistic=f"largest |t| = {worst:.2f} over {len(chosen)} heads ({dof} dof; limit "
        f"{bound:.2f})",
    )


def _corrected(r: NetworkRecord) -> float:
    """The estimate less its exact settings bias (expectation minus LLC)."""
    return r.estimate.mean - (r.expected - r.exact)


def _drop_claim(records, model: str) -> Claim:
    """The drop on the real estimates, each less its exact settings bias, its error from the
    chains; the terms beyond the quadratic move it by the difference of the two measured
    shifts, held below one standard error of the drop (else inconclusive), not added to it."""
    ln, rms = _pick(records, model, "layernorm"), _pick(records, model, "rmsnorm")
    k = ln.job.classes
    drop = _corrected(rms) - _corrected(ln)
    se = math.hypot(ln.estimate.se, rms.estimate.se)
    moved = rms.shift - ln.shift
    verdict, note = singles_out(drop, se, claimed=(k - 1) / 2, alternative=k / 2)
    small = "agree" if abs(moved) <= se else "inconclusive"
    return Claim(
        claim=f"{model}: the LayerNorm head's wrLLC is lower than the RMSNorm head's by "
        f"(K - 1)/2, not K/2 (K = {k})",
        prediction=f"drop {Fraction(k - 1, 2)} (not {Fraction(k, 2)})",
        measurement=f"{drop:.3f} +/- {se:.3f}",
        verdict=_protocol([ln, rms], [verdict, small, _sane(ln), _sane(rms)]),
        note=note + "; each estimate less its exact settings bias; the terms beyond the "
        f"quadratic move the drop by {moved:+.3f} (the shifts' difference, measured), held below "
        "its standard error" + _problems([ln, rms]),
        reference=f"(K - 1)/2 = {(k - 1) / 2:g} against K/2 = {k / 2:g}",
        statistic=note,
    )


def _claims(records) -> tuple[Claim, ...]:
    out = []
    for model in MODELS:
        if _of(records, model):
            out += [_rank_claim(records, model), _level_claim(records, model)]
            out.append(_drop_claim(records, model))
    return tuple(out)


def _panel(records, model: str) -> Panel:
    chosen = _of(records, model)
    xs = tuple(float(i) for i in range(len(chosen)))
    series = (
        Series("SGLD (± SE)", xs, tuple(r.estimate.mean for r in chosen),
               tuple(r.estimate.se for r in chosen)),
        Series("exact expectation", tuple(x + 0.15 for x in xs),
               tuple(r.expected for r in chosen), style="markers"),
        Series("predicted LLC", tuple(x - 0.15 for x in xs),
               tuple(r.exact for r in chosen), style="markers"),
    )  # fmt: skip
    ticks = tuple(r.job.norm for r in chosen)
    k, h = chosen[0].job.classes, chosen[0].job.width
    return Panel(f"{model} head (K = {k}, h = {h})", "final norm", "wrLLC", series, xticks=ticks)


def _by_model(name: str, panel, records, caption: str) -> Figure:
    """A figure of one ``panel(records, model)`` for each model that has records."""
    return Figure(name, tuple(panel(records, m) for m in MODELS if _of(records, m)), caption)


def _figure(records) -> Figure:
    return _by_model(
        "network",
        _panel,
        records,
        "Each head's SGLD estimate beside the exact expectation of the estimator at its "
        "settings and the predicted LLC (K - 1) r / 2. The LayerNorm head (features on a plane "
        "through the origin) sits (K - 1)/2 below the others; a learned LayerNorm bias moves "
        "the plane off the origin and the drop goes. Where the expectation sits below the LLC, "
        "the gap is the exact localization bias of a gamma large enough for the flattest "
        "directions to relax within the burn-in (ill-conditioned features need a large one).",
    )


def _trace_panel(records, model: str) -> Panel:
    series = []
    for norm in DRAWN:
        r = _pick(records, model, norm)
        draws = len(r.running[0]) if r.running else 0
        xs = tuple(
            float(r.burnin + k * (r.job.draws - 1) / max(draws - 1, 1)) for k in range(draws)
        )
        for c, row in enumerate(r.running):
            label = f"{norm} head ({len(r.running)} chains)" if c == 0 else "_nolegend_"
            series.append(Series(label, xs, row, style="line", group=norm))
        ends = (xs[0], xs[-1]) if xs else ()
        level = (r.expected, r.expected) if xs else ()
        series.append(Series(f"{norm}: exact expectation", ends, level, style="dashed",
                             group=norm))  # fmt: skip
    return Panel(f"{model}: each chain's running estimate", "step", "wrLLC so far", tuple(series))


def _trace_figure(records) -> Figure:
    return _by_model(
        "traces",
        _trace_panel,
        records,
        "Each chain's estimate as its draws accumulate, for the two heads whose drop is "
        "claimed: the chains settle on the exact expectation of the estimator (the dashed "
        "line), and the spread at the end is what the standard error measures.",
    )


def _row(r: NetworkRecord) -> dict[str, Any]:
    j = r.job
    return {
        "model": j.model, "norm": j.norm, "refine": j.refine, "K": j.classes, "h": j.width,
        "predicted LLC": r.llc, "rank": r.rank, "predicted rank": r.predicted_rank,
        "estimate": r.estimate.mean, "se": r.estimate.se, "expected": r.expected, "shift": r.shift,
        "accuracy": r.accuracy, "eps": r.eps, "gamma": r.gamma, "nbeta": r.nbeta,
        "draws": j.draws, "chains": j.chains, "R-hat": r.estimate.rhat, "ESS": r.estimate.ess,
        "seconds": r.estimate.seconds,
    }  # fmt: skip


def summarize(records) -> ExperimentResult:
    records = list(records)
    return ExperimentResult(
        name="network",
        title="Trained networks: the softmax head after a final norm",
        description=__doc__,
        claims=_claims(records),
        rows=tuple(_row(r) for r in records),
        figure=_figure(records),
        extra_figures=(_trace_figure(records),),
    )


def experiments() -> tuple[Experiment, ...]:
    return (Experiment("network", "Trained networks", jobs, run, summarize, _load),)
