"""The normalization claim on any trained network, one reader at a time.

For each norm of a traced network (:mod:`llcgeo.scanner.trace`) and each linear map that reads
it, with the rest of the network frozen:

1. **Certified** (exact, whatever the rest is): the reader's directions that vanish on the
   norm's image are flat; the rest, its quotient, has dimension ``D``
   (:mod:`llcgeo.scanner.certify`).
2. **Predicted**: the reader is refitted to the minimum of its loss near the trained point,
   and its Hessian on the quotient computed exactly (float64 Hessian-vector products). The LLC
   lies between ``rank / 2`` and ``D / 2``: the prediction is exact, ``D / 2``, where the rank is
   full (with a spectral gap of at least ``RANK_GAP``), and that interval otherwise. A reader
   whose quotient exceeds ``hessian_directions`` is given ``[0, D / 2]`` and not measured.
3. **Measured and judged**: the reader's LLC by SGLD at settings chosen from that spectrum,
   beside a run of the same chains on its exact quadratic model; the quadratic run is held to
   the estimator's exact expectation (a Student-t limit), and the real run's measured shift
   from it to ``SHIFT_LIMIT`` of the LLC, as the ``network`` suite does.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import LLCGeoError, ScanError
from llcgeo.numerics.data import checked_data, to_device
from llcgeo.numerics.losses import CrossEntropy, per_sample_loss
from llcgeo.numerics.networks import measure_with_quadratic
from llcgeo.reconcile.model import EstimateSummary
from llcgeo.reconcile.stats import combined, numerical_rank
from llcgeo.reconcile.verdict import limit, within
from llcgeo.scanner.certify import (
    Certificate,
    certify,
    image_spec,
    moving_bias,
    quotient_basis,
)
from llcgeo.scanner.reader import (
    evaluation_rows,
    features,
    head_model,
    is_head,
    quotient_hessian,
    reader_model,
    refit,
    subset,
)
from llcgeo.scanner.trace import Norm, Reader, find_norms, register_norm, trace
from llcgeo.theory.calibration import recommend
from llcgeo.theory.sgld import expected_sgld_estimate
from llcgeo.thresholds import RANK_GAP, SHIFT_LIMIT

NOT_MEASURED = "not measured"  # a row certified and predicted only: no verdict

__all__ = ["ScanResult", "ScanRow", "ScanSettings", "register_norm", "run_scan"]


@dataclass(frozen=True)
class ScanSettings:
    """How hard a scan looks. ``rows``: the samples its loss is taken on (a random subset
    where there are more); ``hessian_directions``: the largest quotient whose Hessian is
    computed; ``nbeta_factor``: ``nbeta = factor n / log n`` (a colder posterior keeps the terms
    beyond the quadratic small, and leaves the LLC unchanged)."""

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

    @property
    def exact(self) -> bool:
        return self.low == self.high


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


def run_scan(model, inputs, targets=None, *, loss="gaussian", settings=ScanSettings(),
             device="cpu", progress=None, sampling=None) -> ScanResult:  # fmt: skip
    """Scan ``model`` on this data (the forms :func:`llcgeo.estimate_llc` takes); ``progress``
    is called with ``(done, total, row)`` after each reader; ``sampling(reader)``, when given,
    returns the ``(done, total)`` step callback of that reader's chains."""
    started = time.perf_counter()
    if not isinstance(model, torch.nn.Module):
        raise ScanError(f"scan needs a torch.nn.Module, got {type(model).__name__}")
    x, y = checked_data(inputs, targets)
    fn = per_sample_loss(loss)
    index = evaluation_rows(y.shape[0], settings.rows, settings.seed)
    x, y = subset(x, y, index)
    x = to_device(x, None, torch.float64)  # floating tensors only; on their own device
    gm = trace(copy.deepcopy(model).to(torch.float64), subset(x, y, torch.arange(2))[0])
    norms = _with_readers(find_norms(gm))
    pairs = [(norm, reader) for norm in norms for reader in norm.readers]
    rows = []
    for norm, reader in pairs:
        steps = None if sampling is None else sampling(reader.weight)
        rows.append(_scan_row(gm, norm, reader, x, y, fn, settings, device, steps))
        if progress is not None:
            progress(len(rows), len(pairs), rows[-1])
    summaries = tuple(_summary(norm, rows) for norm in norms)
    return ScanResult(tuple(rows), summaries, y.shape[0], _loss_name(loss), settings,
                      time.perf_counter() - started)  # fmt: skip


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
    if cert.quotient > settings.hessian_directions:
        return replace(row, verdict=NOT_MEASURED,
                        reason=f"not measured: the quotient has {cert.quotient} directions, "
                        f"above the Hessian budget of {settings.hessian_directions}")  # fmt: skip
    try:
        return _measured(row, gm, reader, spec, (x, y, loss), settings, device, classes_read,
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


def _measured(row, gm, reader, spec, data, settings, device, classes_read, steps) -> ScanRow:
    x, y, loss = data
    refine = settings.refine
    basis = torch.from_numpy(quotient_basis(spec, reader, classes_read, refine))
    if basis.shape[1] != row.certificate.quotient:
        raise ScanError(f"the quotient's basis has {basis.shape[1]} directions, the theory "
                        f"{row.certificate.quotient}: please report this")  # fmt: skip
    model, masks, x, y = _sampled_model(gm, reader, x, y, moving_bias(reader, refine), classes_read)
    padded = _padded(basis, sum(p.numel() for p in model.parameters()))
    before, after = refit(model, x, y, loss, padded)
    h_q = quotient_hessian(model, x, y, loss, padded)
    values = np.clip(np.linalg.eigvalsh(h_q), 0.0, None)
    rank, gap = numerical_rank(values)
    # the LLC is at least half the Hessian's rank: proven where the count is trusted
    low = Fraction(rank if gap >= RANK_GAP else 0, 2)
    row = replace(row, rank=rank, gap=gap, loss_before=before, loss_after=after, low=str(low))
    hessian = basis @ torch.from_numpy(h_q) @ basis.T
    spectrum = np.concatenate([values, np.zeros(row.certificate.flat)])
    return _sampled(row, model, masks, hessian, spectrum, (x, y, loss), settings, device, steps)


def _sampled_model(gm, reader, x, y, moving: bool, classes_read: bool):
    """``(model, masks, x, y)`` to sample: a logits reader as an ``nn.Linear`` on its input
    features (the softmax head's fast path), any other as the network with only it moving."""
    if is_head(reader, x, classes_read):
        head, masks = head_model(gm, reader, moving)
        return head, masks, features(gm, reader, x), y.reshape(-1)
    return reader_model(gm, reader, torch.float64, moving), None, x, y


def _padded(basis: torch.Tensor, parameters: int) -> torch.Tensor:
    """The basis with zero rows for the frozen parameters that follow the moving ones."""
    extra = parameters - basis.shape[0]
    return torch.cat([basis, basis.new_zeros(extra, basis.shape[1])]) if extra else basis


def _sampled(row, model, masks, hessian, spectrum, data, settings, device, steps) -> ScanRow:
    x, y, loss = data
    row_count = y.shape[0]  # samples, or samples x positions for a head on its features
    nbeta = settings.nbeta_factor * row_count / math.log(row_count)
    r = recommend(spectrum, nbeta=nbeta, chains=settings.chains, se=0.5,
                  max_burnin=settings.max_burnin, max_steps=10**7)  # fmt: skip
    config = SGLDConfig(eps=r.eps, gamma=r.gamma, nbeta=nbeta, chains=settings.chains,
                        steps=r.burnin + settings.draws, burnin=r.burnin,
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


def _judged(row: ScanRow, chains: int) -> ScanRow:
    """The network suite's test: the quadratic run against the exact expectation with no
    allowance; the real run's shift from it held to ``SHIFT_LIMIT`` of the lower end of the
    prediction."""
    t = (row.quadratic.mean - row.expected) / row.quadratic.se
    bound = limit(1, chains - 1)
    level = within(abs(t), bound)
    scale = float(Fraction(row.low)) or float(Fraction(row.high))
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
