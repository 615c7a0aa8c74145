"""The normalization claim on any trained network, one reader at a time.

For each norm of a traced network (:mod:`llcgeo.scanner.trace`) and each linear map that reads
it, with the rest of the network frozen:

1. **Certified** (exact, whatever the rest is): the reader's directions that vanish on the
   norm's image are flat; the rest, its quotient, has dimension ``D``
   (:mod:`llcgeo.scanner.certify`).
2. **Predicted**: the reader is refitted to the minimum of its loss near the trained point,
   and its Hessian on the quotient computed exactly (float64 Hessian-vector products). The LLC
   lies between ``rank / 2`` and ``D / 2``: the prediction is exact, ``D / 2``, where the rank is
   full (with a spectral gap of at least ``RANK_GAP``), and that interval otherwise. A quotient
   beyond ``hessian_directions`` is refitted and measured on a block of it
   (:mod:`llcgeo.scanner.block`): the block's rank still bounds the whole reader's LLC from
   below, and the block's own wrLLC is predicted the same way.
3. **Measured and judged**: the LLC of what was measured by SGLD at settings chosen from that
   spectrum (a softmax head within the budget in its own coordinates, as the ``network`` suite
   samples it; any other reader in the coordinates that whiten its Hessian), beside a run of
   the same chains on its exact quadratic model; the quadratic run is held to the estimator's
   exact expectation (a Student-t limit), and the real run's measured shift from it to
   ``SHIFT_LIMIT`` of the LLC, as the ``network`` suite does.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import time
import warnings
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import LLCGeoError, ScanError
from llcgeo.numerics.data import checked_data, to_device
from llcgeo.numerics.device import resolve_dtype
from llcgeo.numerics.losses import CrossEntropy, per_sample_loss
from llcgeo.numerics.networks import measure_with_quadratic
from llcgeo.reconcile.model import EstimateSummary
from llcgeo.reconcile.stats import combined, numerical_rank
from llcgeo.reconcile.verdict import limit, within
from llcgeo.scanner.block import WHITENED_RANGE, Whitened, block_outputs, whitening
from llcgeo.scanner.certify import (
    Certificate,
    certify,
    image_spec,
    moving_bias,
    output_directions,
    quotient_basis,
)
from llcgeo.scanner.reader import (
    evaluation_rows,
    features,
    frozen_upstream,
    head_model,
    is_head,
    quotient_hessian,
    reader_model,
    refit,
    retyped,
    subset,
)
from llcgeo.scanner.trace import Norm, Reader, export, find_norms, register_norm
from llcgeo.theory.calibration import recommend
from llcgeo.theory.sgld import energy_autocorrelation_time, expected_sgld_estimate
from llcgeo.thresholds import ESS_MIN, RANK_GAP, SHIFT_LIMIT

NOT_MEASURED = "not measured"  # a row certified and predicted only: no verdict
ESS_MARGIN = 1.25  # the autocorrelation times are exact for the quadratic model alone

__all__ = [
    "PairJob",
    "ScanResult",
    "ScanRow",
    "ScanSettings",
    "register_norm",
    "row_of",
    "run_scan",
    "scan_pair",
]


@dataclass(frozen=True)
class ScanSettings:
    """How hard a scan looks. ``rows``: the samples its loss is taken on (a random subset
    where there are more); ``hessian_directions``: the largest quotient whose Hessian is
    computed whole (a larger one is measured on a block of about that size);
    ``nbeta_factor``: ``nbeta = factor n / log n``, ``n`` the rows the loss averages over (a
    colder posterior keeps the terms beyond the quadratic small, and leaves the LLC
    unchanged)."""

    chains: int = 16
    draws: int = 8000
    max_burnin: int = 2000
    rows: int = 2048
    hessian_directions: int = 1024
    nbeta_factor: float = 50.0
    refine: str = "all"  # "weight": each reader's bias stays frozen
    measure: bool = True  # False: the certificates alone
    only: tuple[str, ...] = ()  # the readers (weight names) to measure; empty: all
    dtype: str = "float32"
    seed: int = 0


@dataclass(frozen=True)
class ScanRow:
    """One (norm, reader) pair: what is certified, predicted, measured, and the verdict."""

    norm: str
    kind: str
    reader: str
    outputs: int
    inputs: int
    bias: bool  # the reader's bias moves
    tied: bool
    logits: bool
    certificate: Certificate
    image: str
    low: str  # the LLC's proven interval, as exact fractions
    high: str
    rank: int | None = None
    gap: float | None = None
    loss_before: float | None = None  # the reader's loss at the trained point and at its refit
    loss_after: float | None = None
    estimate: EstimateSummary | None = None
    quadratic: EstimateSummary | None = None
    shift: float = math.nan
    shift_se: float = math.nan
    expected: float = math.nan
    expected_se: float = math.nan
    eps: float = math.nan
    gamma: float = math.nan
    nbeta: float = math.nan
    verdict: str = "inconclusive"
    reason: str = ""
    block: int | None = None  # the quotient's directions measured, where not all of them
    block_outputs: int | None = None  # the output directions they span

    @property
    def exact(self) -> bool:
        return self.low == self.high

    @property
    def block_high(self) -> str:
        """The upper end of the measured part's wrLLC: the reader's, or its block's (the
        lower end is ``low`` for both: half the measured Hessian's rank)."""
        return self.high if self.block is None else str(Fraction(self.block, 2))


@dataclass(frozen=True)
class NormSummary:
    name: str
    kind: str
    width: int
    readers: tuple[str, ...]
    other_uses: tuple[str, ...]
    certified_drop: str  # the sum of its readers' certified drops against Gaussian features
    note: str = ""


@dataclass(frozen=True)
class ScanResult:
    rows: tuple[ScanRow, ...]
    norms: tuple[NormSummary, ...]
    n: int
    loss: str
    settings: ScanSettings
    seconds: float = 0.0
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PairJob:
    """One (norm, reader) pair for a worker process: the traced program in ``torch.export``'s
    own format (a traced graph does not pickle), the scan's data, loss and settings."""

    program: bytes
    x: Any
    y: torch.Tensor
    loss: Any
    settings: ScanSettings
    pair: int


def run_scan(model, inputs, targets=None, *, loss="gaussian", settings=ScanSettings(),
             device="cpu", progress=None, sampling=None, run_pairs=None) -> ScanResult:  # fmt: skip
    """Scan ``model`` on this data (the forms :func:`llcgeo.estimate_llc` takes); ``progress``
    is called with ``(done, total, row)`` after each reader; ``sampling(reader)``, when given,
    returns the ``(done, total)`` step callback of that reader's chains. ``run_pairs(jobs,
    device, progress)``, when given, runs the :class:`PairJob` list elsewhere (each with
    :func:`scan_pair`) and returns their rows in order."""
    started = time.perf_counter()
    if not isinstance(model, torch.nn.Module):
        raise ScanError(f"scan needs a torch.nn.Module, got {type(model).__name__}")
    x, y = checked_data(inputs, targets)
    fn = per_sample_loss(loss)
    index = evaluation_rows(y.shape[0], settings.rows, settings.seed)
    x, y = subset(x, y, index)
    x = to_device(x, None, torch.float64)  # floating tensors only; on their own device
    program = export(copy.deepcopy(model).to(torch.float64), subset(x, y, torch.arange(2))[0])
    gm = program.module()
    norms = _with_readers(find_norms(gm))
    pairs = _pairs(norms)
    if run_pairs is None:
        rows = _here(gm, pairs, (x, y, fn), settings, device, progress, sampling)
    else:
        blob = _saved(program)
        jobs = [PairJob(blob, x, y, _picklable(fn), settings, i) for i in range(len(pairs))]
        rows = list(run_pairs(jobs, device, progress))
    summaries = tuple(_summary(norm, rows) for norm in norms)
    return ScanResult(tuple(rows), summaries, y.shape[0], _loss_name(loss), settings,
                      time.perf_counter() - started)  # fmt: skip


def _pairs(norms: list[Norm]) -> list[tuple[Norm, Reader]]:
    return [(norm, reader) for norm in norms for reader in norm.readers]


def _here(gm, pairs, data, settings, device, progress, sampling) -> list[ScanRow]:
    x, y, fn = data
    rows = []
    for norm, reader in pairs:
        steps = None if sampling is None else sampling(reader.weight)
        rows.append(_scan_row(gm, norm, reader, x, y, fn, settings, device, steps))
        if progress is not None:
            progress(len(rows), len(pairs), rows[-1])
    return rows


def scan_pair(job: PairJob, device: str) -> ScanRow:
    """The row of ``job``'s pair, in a worker: the program loaded from its bytes and traced
    pairs found again (the same graph, so the same pairs in the same order)."""
    with warnings.catch_warnings():
        # torch's own deprecation, raised by loading and copying its programs
        warnings.filterwarnings("ignore", ".*treespec", FutureWarning)
        gm = torch.export.load(io.BytesIO(job.program)).module()
        norm, reader = _pairs(find_norms(gm))[job.pair]
        return _scan_row(gm, norm, reader, job.x, job.y, job.loss, job.settings, device, None)


def row_of(record: dict) -> ScanRow:
    """A :class:`ScanRow` from its plain record (a worker's result)."""

    def plain(kind, value):
        return None if value is None else kind(**{k: v for k, v in value.items() if k != "type"})

    fields = {k: v for k, v in record.items() if k != "type"}
    fields["certificate"] = plain(Certificate, fields["certificate"])
    fields["estimate"] = plain(EstimateSummary, fields["estimate"])
    fields["quadratic"] = plain(EstimateSummary, fields["quadratic"])
    return ScanRow(**fields)


def _saved(program) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _picklable(loss):
    try:
        pickle.dumps(loss)
    except (pickle.PicklingError, AttributeError, TypeError):
        raise ScanError(
            "the loss cannot be sent to worker processes (it does not pickle: a lambda or a "
            "local function); give a module-level function or a named loss, or scan in this "
            "process (workers=1)"
        ) from None
    return loss


def _loss_name(loss) -> str:
    return loss if isinstance(loss, str) else repr(loss)


def _with_readers(norms: list[Norm]) -> list[Norm]:
    if not norms:
        raise ScanError(
            "the model has no normalization layer scan knows (LayerNorm, RMSNorm, their "
            "functional forms, or a norm registered with llcgeo.scanner.register_norm)"
        )
    if not any(norm.readers for norm in norms):
        uses = "; ".join(f"{n.node}: {', '.join(n.other_uses) or n.note or 'unused'}"
                         for n in norms)  # fmt: skip
        raise ScanError(f"no norm of the model is read by a linear map ({uses})")
    return norms


def _scan_row(gm, norm: Norm, reader: Reader, x, y, loss, settings, device, steps) -> ScanRow:
    classes_read = isinstance(loss, CrossEntropy)
    spec = image_spec(norm, *_norm_parameters(gm, norm))
    cert = certify(spec, reader, classes_read, settings.refine)
    row = ScanRow(norm.node, norm.kind, reader.weight, reader.outputs, reader.inputs,
                  moving_bias(reader, settings.refine), reader.tied,
                  reader.logits and classes_read, cert, image=cert.image, low="0",
                  high=str(Fraction(cert.quotient, 2)))  # fmt: skip
    if not settings.measure or (settings.only and reader.weight not in settings.only):
        return replace(row, verdict=NOT_MEASURED, reason="not measured (certificates only)")
    within = cert.quotient <= settings.hessian_directions
    measure = _measured_head if within and is_head(reader, x, classes_read) else _measured_whitened
    try:
        return measure(row, gm, reader, spec, (x, y, loss), settings, device, classes_read,
                       steps)  # fmt: skip
    except LLCGeoError as error:
        return replace(row, reason=f"not measured: {error}")


def _norm_parameters(gm, norm: Norm):
    def values(name):
        return (
            None
            if name is None
            else [float(v) for v in gm.get_parameter(name).detach().reshape(-1)]
        )

    return values(norm.gain), values(norm.bias)


def _measured_head(row, gm, reader, spec, data, settings, device, classes_read, steps):
    """A softmax head within the budget, as the ``network`` suite measures one: an
    ``nn.Linear`` on its input features, sampled in its own coordinates."""
    x, y, loss = data
    refine = settings.refine
    basis = torch.from_numpy(_basis(row, spec, reader, classes_read, refine))
    model, masks = head_model(gm, reader, moving_bias(reader, refine))
    x, y = features(gm, reader, x), y.reshape(-1)
    padded = _padded(basis, sum(p.numel() for p in model.parameters()))
    before, after = refit(model, x, y, loss, padded)
    h_q = quotient_hessian(model, x, y, loss, padded)
    values = np.clip(np.linalg.eigvalsh(h_q), 0.0, None)
    row = _ranked(row, values, before, after)
    hessian = basis @ torch.from_numpy(h_q) @ basis.T
    spectrum = np.concatenate([values, np.zeros(row.certificate.flat)])
    r, nbeta = _settings(spectrum, _row_count(y, loss), settings)
    return _sampled(row, model, masks, hessian, spectrum, (x, y, loss), settings, device, steps,
                    (r, nbeta, settings.draws))  # fmt: skip


def _measured_whitened(row, gm, reader, spec, data, settings, device, classes_read, steps):
    """Any other reader (:mod:`llcgeo.scanner.block`): its quotient, or the block of it the
    budget holds, refitted, its Hessian's rank proven, sampled in whitened coordinates."""
    x, y, loss = data
    outputs = output_directions(reader, classes_read)
    taken = min(outputs, block_outputs(row.certificate.quotient // outputs,
                                       settings.hessian_directions))  # fmt: skip
    basis = _basis(row, spec, reader, classes_read, settings.refine, taken)
    model = reader_model(gm, reader, torch.float64, moving_bias(reader, settings.refine))
    model, x = frozen_upstream(model, x)
    padded = _padded(torch.from_numpy(basis), sum(p.numel() for p in model.parameters()))
    before, after = refit(model, x, y, loss, padded)
    values, transform, mu = whitening(quotient_hessian(model, x, y, loss, padded))
    row = _ranked(row, values, before, after)
    if taken < outputs:
        row = replace(row, block=basis.shape[1], block_outputs=taken)
    sampled = retyped(model, resolve_dtype(settings.dtype))
    whitened = Whitened(sampled, padded @ torch.from_numpy(transform))
    r, nbeta = _whitened_settings(values, mu, _row_count(y, loss), settings)
    plan = (r, nbeta, _draws(r, nbeta, mu, settings))
    row = _sampled(row, whitened, None, torch.diag(torch.from_numpy(mu)), mu, (x, y, loss),
                   settings, device, steps, plan)  # fmt: skip
    if row.block is None:
        return row
    first = "the first output" if taken == 1 else f"the first {taken} outputs"
    return replace(row, reason=f"on a block of {row.block} of the {row.certificate.quotient} "
                   f"directions ({first}): " + row.reason)  # fmt: skip


def _basis(row, spec, reader, classes_read: bool, refine: str, taken: int | None = None):
    """:func:`~llcgeo.scanner.certify.quotient_basis`, held to the certificate's count."""
    basis = quotient_basis(spec, reader, classes_read, refine, outputs=taken)
    outputs = output_directions(reader, classes_read)
    expected = row.certificate.quotient // outputs * (outputs if taken is None else taken)
    if basis.shape[1] != expected:
        raise ScanError(f"the quotient's basis has {basis.shape[1]} directions, the theory "
                        f"{expected}: please report this")  # fmt: skip
    return basis


def _ranked(row: ScanRow, values: np.ndarray, before: float, after: float) -> ScanRow:
    """``row`` with the measured Hessian's rank and gap, and the lower end they prove: the LLC
    is at least half the Hessian's rank where the count is trusted (a block's rank is at most
    the whole quotient's)."""
    rank, gap = numerical_rank(values)
    low = Fraction(rank if gap >= RANK_GAP else 0, 2)
    return replace(row, rank=rank, gap=gap, loss_before=before, loss_after=after, low=str(low))


def _padded(basis: torch.Tensor, parameters: int) -> torch.Tensor:
    """The basis with zero rows for the frozen parameters that follow the moving ones."""
    extra = parameters - basis.shape[0]
    return torch.cat([basis, basis.new_zeros(extra, basis.shape[1])]) if extra else basis


def _row_count(y: torch.Tensor, loss) -> int:
    """The rows the loss averages over: samples, or for the cross-entropy every position of
    every sample (a sequence model's labels, or a head's on its features)."""
    return y.numel() if isinstance(loss, CrossEntropy) else y.shape[0]


def _settings(spectrum, row_count: int, settings: ScanSettings):
    """``(recommendation, nbeta)`` for this spectrum on ``row_count`` rows."""
    nbeta = settings.nbeta_factor * row_count / math.log(row_count)
    r = recommend(spectrum, nbeta=nbeta, chains=settings.chains, se=0.5,
                  max_burnin=settings.max_burnin, max_steps=10**7)  # fmt: skip
    return r, nbeta


def _whitened_settings(values, mu, row_count: int, settings: ScanSettings):
    """``(recommendation, nbeta)`` in whitened coordinates. Their localization ``gamma``
    confines a direction of curvature ``lambda`` as ``gamma (lambda + floor)`` does in the
    reader's own (``floor``: the whitening's, :func:`~llcgeo.scanner.block.whitening`); it is
    raised until that is at least the ``gamma`` plain chains would take at these settings, so
    the whitened chains see no more of the loss beyond its quadratic model than they would."""
    plain, nbeta = _settings(values, row_count, settings)
    gamma = plain.gamma * WHITENED_RANGE / float(values.max())
    rank, _ = numerical_rank(mu)
    smallest = float(np.sort(mu)[-rank])
    r = recommend(mu, nbeta=nbeta, localization=gamma / (gamma + nbeta * smallest),
                  chains=settings.chains, se=0.5, max_burnin=settings.max_burnin,
                  max_steps=10**7)  # fmt: skip
    return r, nbeta


def _sampled(row, model, masks, hessian, spectrum, data, settings, device, steps, plan):
    """``plan``: ``(recommendation, nbeta, draws)``."""
    x, y, loss = data
    r, nbeta, draws = plan
    config = SGLDConfig(eps=r.eps, gamma=r.gamma, nbeta=nbeta, chains=settings.chains,
                        steps=r.burnin + draws, burnin=r.burnin,
                        dtype=settings.dtype)  # fmt: skip
    measured = measure_with_quadratic(model, x, y, loss, hessian, config, masks=masks,
                                      seed=settings.seed, device=device,
                                      progress=steps)  # fmt: skip
    e, q = measured.estimate, measured.quadratic
    shifts = e.per_chain - q.per_chain
    expected = expected_sgld_estimate(spectrum, nbeta, r.gamma, r.eps, config.steps, r.burnin)
    shift_se = float(shifts.std(ddof=1) / math.sqrt(len(shifts)))
    row = replace(row, estimate=EstimateSummary.of(e), quadratic=EstimateSummary.of(q),
                   shift=float(shifts.mean()), shift_se=shift_se, expected=float(expected.mean),
                   expected_se=float(expected.standard_error(settings.chains)), eps=r.eps,
                   gamma=r.gamma, nbeta=nbeta)  # fmt: skip
    return _judged(row, settings.chains)


def _draws(r, nbeta: float, spectrum: np.ndarray, settings: ScanSettings) -> int:
    """Draws a chain for a bulk ESS of ``ESS_MARGIN`` times ``ESS_MIN`` over the chains, at most
    ``settings.draws``, from the quadratic model's exact autocorrelation time."""
    tau = energy_autocorrelation_time(spectrum, nbeta, r.gamma, r.eps)
    return min(settings.draws, math.ceil(ESS_MARGIN * ESS_MIN * tau / settings.chains))


def _judged(row: ScanRow, chains: int) -> ScanRow:
    """The network suite's test: the quadratic run against the exact expectation with no
    allowance; the real run's shift from it held to ``SHIFT_LIMIT`` of the lower end of the
    prediction."""
    t = (row.quadratic.mean - row.expected) / row.quadratic.se
    bound = limit(1, chains - 1)
    level = within(abs(t), bound)
    scale = float(Fraction(row.low)) or float(Fraction(row.block_high))
    small = abs(row.shift) <= SHIFT_LIMIT * scale
    sane = row.estimate.sane
    verdict = combined([level, "agree" if small and sane else "inconclusive"])
    reason = (f"quadratic run t = {t:+.2f} (limit {bound:.2f}); shift {row.shift:+.3f} "
              f"({'within' if small else 'beyond'} {SHIFT_LIMIT:.0%} of {scale:g})")  # fmt: skip
    if not sane:
        reason += "; " + "; ".join(row.estimate.problems())
    return replace(row, verdict=verdict, reason=reason)


def _summary(norm: Norm, rows) -> NormSummary:
    mine = [r for r in rows if r.norm == norm.node]
    drop = sum((Fraction(r.certificate.drop, 2) for r in mine), Fraction(0))
    return NormSummary(norm.node, norm.kind, norm.width, tuple(r.reader for r in mine),
                       tuple(norm.other_uses), str(drop), norm.note)  # fmt: skip
