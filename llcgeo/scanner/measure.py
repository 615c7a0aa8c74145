"""One (norm, reader) pair's row: certified, refitted, its Hessian ranked, sampled, judged.

The measured column is an LLC, not the estimator's value at settings that cannot reach one:

* the reader is refitted to the minimum of its loss near the trained point (L-BFGS, then Newton
  steps on the exact Hessian of its quotient), and that Hessian is computed whole, in float64,
  up to ``hessian_directions`` directions (past that, or past what the run's budget holds, a
  block of it: :mod:`~llcgeo.scanner.block`;
  a head the cross-entropy reads, from its structure, up to ``MAX_HESSIAN_DIRECTIONS`` at least;
  a reader everything after which acts row by row, from its structure too:
  :mod:`~llcgeo.scanner.rowwise`);
* the chains move in the coordinates that whiten that Hessian, ``w = w* + B P u``
  (:func:`~llcgeo.scanner.block.whitening`: ``P = L^-T`` from a Cholesky factor ``H = L L^T``
  where that proves the rank full, else ``V Lambda^(-1/2)`` from its eigendecomposition), where
  every direction the Hessian counts has curvature 1 and relaxes at one rate;
* the step and the localization come from the exact theory of the estimator on that quadratic
  (``SCAN_TARGETS``: a step bias of at most 2%, a localization deficit of at most 1%), with no
  cap on the burn-in, and the exact expectation there must reach ``LLC_SHARE`` of the LLC;
* the real run's shift from the same chains on the quadratic model is held to
  ``SHIFT_LIMIT``; where it is beyond, the posterior is taken colder (``nbeta`` times
  ``NBETA_RAISE``, at most ``NBETA_TRIES`` times) until the quadratic model describes the loss
  at the scale the chains explore, and the row says so.

The verdict compares the measured LLC with the prediction (within ``SHIFT_LIMIT`` of it plus
three standard errors, or inside a proven interval), on chains that pass every rule of the one
protocol (:mod:`llcgeo.reconcile.protocol`); the sampler's own check (the quadratic run against
its exact expectation) is reported beside it and must pass too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from llcgeo.config import SGLDConfig, Targets
from llcgeo.errors import EstimationError, LLCGeoError, ScanError, SpecError, in_brief
from llcgeo.limits import MAX_HESSIAN_DIRECTIONS, check_budget
from llcgeo.numerics.device import resolve_dtype
from llcgeo.numerics.measurements.quadratic_model import measure_with_quadratic
from llcgeo.numerics.paths.losses import CrossEntropy
from llcgeo.numerics.paths.preconditioned import Preconditioned
from llcgeo.reconcile.model import EstimateSummary
from llcgeo.reconcile.protocol import Coupled, coupled_verdict
from llcgeo.scanner.block import Whitened, block_outputs, whitening
from llcgeo.scanner.certify import (
    certify,
    factored_basis,
    factored_product,
    image_spec,
    moving_bias,
    output_directions,
    quotient_factors,
)
from llcgeo.scanner.reader import (
    NoMinimum,
    basis_rows,
    batch_seconds,
    features,
    frozen_upstream,
    head_hessian,
    head_model,
    hessian_bytes,
    hessian_seconds,
    is_head,
    quotient_hessian,
    reader_model,
    refit,
    retyped,
)
from llcgeo.scanner.rows import NOT_MEASURED, ScanRow, ScanSettings
from llcgeo.scanner.rowwise import (
    output_hessian_bytes,
    output_rows,
    rowwise_hessian,
    why_not_row_wise,
)
from llcgeo.scanner.trace import Norm, Reader
from llcgeo.theory.calibration import ESS_MARGIN, network_nbeta, recommend
from llcgeo.theory.sgld import energy_autocorrelation_time, expected_sgld_estimate
from llcgeo.thresholds import ESS_MIN, RANK_GAP, SHIFT_LIMIT, Z_AGREE

SCAN_TARGETS = Targets(bias=0.02, localization=0.01, se=0.5)  # draws come from the ESS rule
LLC_SHARE = 0.97  # the exact expectation at the chosen settings, as a share of the LLC
NBETA_RAISE, NBETA_TRIES = 10.0, 3
ROUNDING_ULPS = 64  # a mean loss's rounding, in units of its dtype's epsilon, at most


class NotMeasured(Exception):
    """A row that is certified and ranked, but has no LLC to measure (``why``)."""

    def __init__(self, row: ScanRow, why: str):
        super().__init__(why)
        self.row, self.why = row, why


@dataclass
class Prepared:
    """A reader ready to sample: its model at the refit (float64), the data it reads, the
    quotient's basis (zero rows for what follows the moving parameters), the whitening
    transform and the Hessian's spectrum in whitened coordinates."""

    row: ScanRow
    model: Any
    x: Any
    y: torch.Tensor
    basis: torch.Tensor
    factors: tuple[np.ndarray, np.ndarray]
    transform: np.ndarray
    mu: np.ndarray

    def moving_transform(self) -> torch.Tensor:
        """``B P``: the map from whitened coordinates to the reader's parameters (zero rows for
        what follows them), from the basis's factors (:func:`~llcgeo.scanner.certify.
        factored_product`)."""
        product = factored_product(*self.factors, self.row.inputs, self.transform)
        return _padded(torch.from_numpy(product), self.basis.shape[0])


def scan_row(gm, norm: Norm, reader: Reader, x, y, loss, settings, device, steps,
             keep=None) -> ScanRow:  # fmt: skip
    """The row of one (norm, reader) pair (see the module's note). ``keep(estimate)``, when
    given, receives the real chains' :class:`~llcgeo.numerics.LLCEstimate` behind the row's
    measured column (its loss traces), once, where the row has one."""
    classes_read = isinstance(loss, CrossEntropy)
    spec = image_spec(norm, *_norm_parameters(gm, norm))
    row = certified_row(norm, reader, spec, classes_read, settings.refine)
    if not settings.measure:
        return replace(row, verdict=NOT_MEASURED, reason="not measured (certificates only)")
    if reader.direct and row.logits and classified_without_end(gm, x, y, loss):
        return _unmeasured(row, NO_MINIMUM)
    try:
        prepared = prepare(row, gm, reader, spec, (x, y, loss), settings)
        row = prepared.row
        if settings.only and reader.weight not in settings.only:
            return _unmeasured(row, "not sampled (only= names the readers to sample)")
        row, estimate = _measured(prepared, loss, settings, device, steps)
        if keep is not None and row.estimate is not None:
            keep(estimate)
        return row
    except NotMeasured as refused:
        return _unmeasured(refused.row, refused.why)
    except LLCGeoError as error:
        return _unmeasured(row, str(error))
    except (RuntimeError, ValueError, IndexError, TypeError) as error:  # torch, on this model
        return _unmeasured(row, f"torch failed on this reader ({in_brief(error)})")


def _unmeasured(row: ScanRow, why: str) -> ScanRow:
    """``row`` certified and predicted, with no measurement: no verdict, and the reason."""
    return replace(row, verdict=NOT_MEASURED, estimate=None, quadratic=None,
                   reason=f"not measured: {why}")  # fmt: skip


def certified_row(norm: Norm, reader: Reader, spec, classes_read: bool, refine: str) -> ScanRow:
    cert = certify(spec, reader, classes_read, refine)
    return ScanRow(norm.node, norm.kind, reader.weight, reader.outputs, reader.inputs,
                   moving_bias(reader, refine), reader.tied, reader.logits and classes_read,
                   cert, image=cert.image, low="0",
                   high=str(Fraction(cert.quotient, 2)))  # fmt: skip


def _norm_parameters(gm, norm: Norm):
    def values(name):
        if name is None:
            return None
        return [float(v) for v in gm.get_parameter(name).detach().reshape(-1)]

    return values(norm.gain), values(norm.bias)


def prepare(row: ScanRow, gm, reader: Reader, spec, data, settings: ScanSettings) -> Prepared:
    """The reader refitted, its quotient's Hessian computed whole (or a block's, past
    ``hessian_directions`` or the run's budget: :func:`_within_budget`), ranked and whitened.
    A head read by the cross-entropy directly has its Hessian from its structure
    (:func:`~llcgeo.scanner.reader.head_hessian`), as has a reader whose downstream is proven
    row-wise (:mod:`~llcgeo.scanner.rowwise`), any other reader by Hessian-vector products
    through what follows it."""
    x, y, loss = data
    classes_read = isinstance(loss, CrossEntropy)
    outputs = output_directions(reader, classes_read)
    width = row.certificate.quotient // outputs  # directions an output direction adds
    head = is_head(reader, x, classes_read)
    bias = moving_bias(reader, settings.refine)
    parameters = reader.outputs * (reader.inputs + bias)
    limit = min(outputs, block_outputs(width, directions_limit(settings, head)))
    taken = _within_budget(limit, width, _cost(parameters))
    head = head and taken == outputs
    if head:  # two products a step
        model, x, y = head_model(gm, reader, bias)[0], features(gm, reader, x), y.reshape(-1)
    else:
        model, x = frozen_upstream(reader_model(gm, reader, torch.float64, bias), x)
    structured = head or why_not_row_wise(model, x, loss, reader.node) is None
    seconds = None if structured else batch_seconds(model, x, y, loss)
    rows = output_rows(model, x, reader.node) if structured and not head else None
    cost = _cost(parameters, rows=rows, seconds=seconds,
                 probed=reader.outputs if row.logits else None)  # fmt: skip
    taken = _within_budget(taken, width, cost)
    factors = quotient_factors(spec, reader, classes_read, settings.refine, taken)
    basis = _checked(row, factored_basis(*factors, reader.inputs), outputs, taken)
    if taken < outputs:
        why = "" if taken == limit else _refusal(outputs, width, cost)
        row = replace(row, block=basis.shape[1], block_outputs=taken, block_why=why)
    padded = _padded(torch.from_numpy(basis), basis_rows(model))

    def curvature(at):
        if head:
            return head_hessian(at, x, y, loss, factors)
        if structured:
            return rowwise_hessian(at, x, y, loss, factors, reader.node)
        return quotient_hessian(at, x, y, loss, padded)

    try:
        before, after = refit(model, x, y, loss, padded, curvature)
    except NoMinimum as error:  # the rank where it is (no bound: not a minimum), and why
        ranked = replace(_ranked(row, whitening(curvature(model)), error.loss, math.nan), low="0")
        raise NotMeasured(ranked, _block_note(ranked) + str(error)) from None
    whitened = whitening(curvature(model), shrink=math.sqrt(SCAN_TARGETS.localization))
    row = _ranked(row, whitened, before, after)
    return Prepared(row, model, x, y, padded, factors, whitened.transform, whitened.mu)


def directions_limit(settings: ScanSettings, head: bool) -> int:
    """The largest quotient whose Hessian is computed whole: ``hessian_directions``; for a head
    read by the cross-entropy, whose Hessian comes from its structure at the cost of a few
    products, at least ``MAX_HESSIAN_DIRECTIONS``."""
    if head:
        return max(settings.hessian_directions, MAX_HESSIAN_DIRECTIONS)
    return settings.hessian_directions


def _cost(parameters: int, rows: int | None = None, seconds: float | None = None,
          probed: int | None = None):  # fmt: skip
    """``(bytes, seconds)`` of the reader's Hessian on ``k`` output directions of ``width``
    quotient directions each, as a function of ``(k, width)``: the Hessian's memory, the output
    Hessians' of the reader's ``rows`` where its structure gives it (in ``k`` outputs, or all
    ``probed`` where every direction reads every output, as a softmax's do), and the time of
    the products where they give it (``seconds``, a batch's: :func:`~llcgeo.scanner.reader.
    hessian_seconds`)."""

    def cost(k: int, width: int) -> tuple[int, float | None]:
        nbytes = hessian_bytes(parameters, k * width)
        if rows is not None:
            nbytes = max(nbytes, output_hessian_bytes(rows, probed or k))
        return nbytes, None if seconds is None else hessian_seconds(seconds, k * width)

    return cost


def _within_budget(outputs: int, width: int, cost) -> int:
    """The most of ``outputs`` output directions (at least one) whose Hessian the run's budget
    holds (:func:`~llcgeo.limits.check_budget`), at ``cost`` (:func:`_cost`)."""
    fits = (k for k in range(outputs, 0, -1) if not _refusal(k, width, cost))
    return next(fits, 1)


def _refusal(outputs: int, width: int, cost) -> str:
    """The run's budget's refusal of the reader's Hessian on ``outputs`` output directions, in
    words (blank where it holds)."""
    try:
        check_budget(*cost(outputs, width), f"the whole Hessian ({outputs * width} directions)")
    except SpecError as refused:
        return str(refused)
    return ""


def _measured(p: Prepared, loss, settings: ScanSettings, device, steps):
    """Sample ``p`` at ``nbeta``, colder while the loss beyond its quadratic model moves the
    estimate by more than ``SHIFT_LIMIT`` (a fixed ``settings.nbeta`` is kept as given), and
    once longer where the real chains mix slower than the quadratic model's (its exact
    autocorrelation time sets the draws, the real loss's own time can be longer); the run
    longer is skipped where the draws' cap would make it the same run. ``(row, estimate)``."""
    nbeta = settings.nbeta or network_nbeta(_row_count(p.y, loss), settings.nbeta_factor)
    sampled_dtype = resolve_dtype(settings.dtype)
    sampled = p.model if p.model.__class__ is torch.nn.Linear else retyped(p.model, sampled_dtype)
    moving = Preconditioned(sampled, torch.ones(p.basis.shape[0], dtype=torch.bool),
                            p.moving_transform())  # fmt: skip
    data = (p.x, p.y, loss)
    for attempt in range(1 if settings.nbeta else NBETA_TRIES):
        config = settings_for(p, nbeta, settings)
        row, estimate = _sampled(p, moving, data, config, settings, device, steps)
        if abs(row.shift) <= SHIFT_LIMIT * _scale(row) or attempt == NBETA_TRIES - 1:
            break
        nbeta *= NBETA_RAISE  # colder: nearer the point, and within its basin if it has one
    longer = _longer(row)
    if longer > 1 and settings.steps is None and not _below_its_minimum(row, sampled_dtype):
        config = settings_for(p, nbeta, settings, longer)
        if config.steps > row.steps:
            row, estimate = _sampled(p, moving, data, config, settings, device, steps)
    colder = "" if attempt == 0 else (f"nbeta raised {NBETA_RAISE**attempt:g}x, to {nbeta:.3g}, "
                                      "for the quadratic model to describe the loss at the "
                                      "chains' scale; ")  # fmt: skip
    judged = _judged(replace(row, reason=colder + _block_note(row)), settings.chains,
                     sampled_dtype)  # fmt: skip
    return judged, estimate


def _longer(row: ScanRow) -> float:
    """How many times longer the chains must run for the bulk ESS the rule asks (1: none)."""
    ess = min(row.estimate.ess, row.quadratic.ess)
    if not math.isfinite(ess) or ess >= ESS_MIN:
        return 1.0
    return ESS_MARGIN * ESS_MIN / max(ess, 1.0)


def _block_note(row: ScanRow) -> str:
    if row.block is None:
        return ""
    first = "the first output" if row.block_outputs == 1 else \
        f"the first {row.block_outputs} outputs"
    why = f", as {row.block_why}" if row.block_why else ""
    return (f"on a block of {row.block} of the {row.certificate.quotient} directions "
            f"({first}){why}; ")  # fmt: skip


def settings_for(p: Prepared, nbeta: float, settings: ScanSettings,
                 longer: float = 1.0) -> SGLDConfig:  # fmt: skip
    """The SGLD settings in whitened coordinates: ``eps`` and ``gamma`` from the exact theory
    (``SCAN_TARGETS``), or as given; draws for a bulk ESS of ``ESS_MARGIN * ESS_MIN``; refused
    where the exact expectation falls short of ``LLC_SHARE`` of the measured part's LLC."""
    counted = p.mu[p.mu > 0.5]  # curvature 1; the rest the localization confines
    r = recommend(counted, nbeta=nbeta, bias=SCAN_TARGETS.bias, chains=settings.chains,
                  localization=SCAN_TARGETS.localization, se=SCAN_TARGETS.se,
                  max_steps=10**9)  # fmt: skip
    eps = settings.eps or r.eps
    gamma = r.gamma if settings.gamma is None else settings.gamma
    tau = energy_autocorrelation_time(p.mu, nbeta, gamma, eps)
    draws = min(settings.draws, math.ceil(longer * ESS_MARGIN * ESS_MIN * tau / settings.chains))
    steps = settings.steps or r.burnin + draws
    if steps <= r.burnin:
        raise EstimationError(f"steps ({steps}) must exceed the burn-in the theory asks for "
                              f"({r.burnin})")  # fmt: skip
    return SGLDConfig(eps=eps, gamma=gamma, nbeta=nbeta, chains=settings.chains, steps=steps,
                      burnin=r.burnin, dtype=settings.dtype)  # fmt: skip


def _sampled(p: Prepared, model, data, config: SGLDConfig, settings, device, steps):
    """``(row, the real chains' estimate)`` at ``config`` (:func:`settings_for`)."""
    nbeta = config.nbeta
    expected = expected_sgld_estimate(p.mu, nbeta, config.gamma, config.eps, config.steps,
                                      config.burnin)  # fmt: skip
    row = p.row
    quadratic_llc = float(np.sum(p.mu > 0.5)) / 2  # what the quadratic model's LLC is
    reach = float(expected.mean) / quadratic_llc
    if reach < LLC_SHARE:
        raise EstimationError(
            f"at eps {config.eps:.3g}, gamma {config.gamma:.3g} and nbeta {nbeta:.3g} (whitened "
            f"coordinates) the estimator's exact expectation is {expected.mean:.4g}, "
            f"{reach:.1%} of the quadratic model's LLC {quadratic_llc:g}: these settings "
            "cannot measure it"
        )
    hessian = torch.from_numpy(p.mu)  # whitened: the Hessian is diagonal
    measured = measure_with_quadratic(model, data[0], data[1], data[2], hessian, config,
                                      seed=settings.seed, device=device, progress=steps)
    e, q = measured.estimate, measured.quadratic
    if e.diverged_chains:
        raise EstimationError(_diverged(len(e.diverged_chains), config, data[2]))
    shifts = e.per_chain - q.per_chain
    return replace(row, estimate=EstimateSummary.of(e), quadratic=EstimateSummary.of(q),
                   shift=float(shifts.mean()),
                   shift_se=float(shifts.std(ddof=1) / math.sqrt(len(shifts))),
                   expected=float(expected.mean),
                   expected_se=float(expected.standard_error(settings.chains)),
                   eps=config.eps, gamma=config.gamma, nbeta=nbeta, burnin=config.burnin,
                   steps=config.steps), e  # fmt: skip


def _scale(row: ScanRow) -> float:
    """The LLC of what is measured: the prediction's upper end (the reader's, or its
    block's)."""
    return float(Fraction(row.block_high))


def _judged(row: ScanRow, chains: int, dtype: torch.dtype) -> ScanRow:
    """The claim (the measured LLC against the prediction) on chains that pass the protocol,
    and the sampler's check (:mod:`llcgeo.reconcile.protocol`) beside it. Chains whose loss
    fell below the refitted point's say it is no minimum: no claim, and no lower end."""
    sampler = coupled_verdict(Coupled(row.estimate, row.quadratic, row.expected, row.shift,
                                      _scale(row), chains))  # fmt: skip
    if _below_its_minimum(row, dtype):
        return replace(row, verdict="inconclusive", sampler=sampler.verdict, low="0",
                       reason=row.reason + _no_minimum_found(row) + "; sampler check: "
                       + sampler.reason)  # fmt: skip
    claim, said = _against_prediction(row)
    verdict = claim if sampler.verdict == "agree" else "inconclusive"
    return replace(row, verdict=verdict, sampler=sampler.verdict,
                   reason=row.reason + said + "; sampler check: " + sampler.reason)


def _below_its_minimum(row: ScanRow, dtype: torch.dtype) -> bool:
    """Whether the chains' loss fell below the refitted point's by more than rounding in
    ``dtype`` explains. At a minimum of the region the chains explore no draw's loss is below
    it, so no draw's ``nbeta (L - L*)`` is negative: a negative mean says the point is a
    critical point that is no minimum (a degenerate one, whose zero curvature hides a fall of
    higher order), or one the chains left."""
    rounding = ROUNDING_ULPS * torch.finfo(dtype).eps * abs(row.loss_after) * row.nbeta
    return row.estimate.mean < -rounding


def _no_minimum_found(row: ScanRow) -> str:
    return (f"measured {row.estimate.mean:.4g} +/- {row.estimate.se:.2g}: the chains' loss fell "
            f"below the refitted point's, so that point (gradient below the refit's bound, "
            f"Hessian rank {row.rank}) is no minimum where they moved: a degenerate critical "
            "point the loss falls from at higher order, or a minimum whose basin they left; "
            "what they measured is no LLC of it, and half the rank is no proven bound")


def _against_prediction(row: ScanRow) -> tuple[str, str]:
    """``agree`` where the measured LLC is within ``SHIFT_LIMIT`` of an exact prediction plus
    ``Z_AGREE`` standard errors (or inside the proven interval widened by them), else
    ``disagree``; with the sentence that says so."""
    low, high = float(Fraction(row.low)), _scale(row)
    est, se = row.estimate.mean, row.estimate.se
    allowance = Z_AGREE * se + (SHIFT_LIMIT * high if low == high else 0.0)
    inside = low - allowance <= est <= high + allowance
    what = f"{high:g}" if low == high else f"[{low:g}, {high:g}]"
    verdict = "agree" if inside else "disagree"
    return verdict, (f"measured {est:.4g} +/- {se:.2g} against the prediction {what} "
                     f"(allowance {allowance:.3g}): {verdict}")


def _checked(row, basis: np.ndarray, outputs: int, taken: int) -> np.ndarray:
    """The quotient's basis (:func:`~llcgeo.scanner.certify.quotient_factors`), held to the
    certificate's count."""
    expected = row.certificate.quotient // outputs * taken
    if basis.shape[1] != expected:
        raise ScanError(f"the quotient's basis has {basis.shape[1]} directions, the theory "
                        f"{expected}: please report this")  # fmt: skip
    return basis


def _ranked(row: ScanRow, whitened: Whitened, before: float, after: float) -> ScanRow:
    """``row`` with the measured Hessian's rank and gap, and the lower end they prove: the LLC
    is at least half the Hessian's rank where the count is trusted (a block's rank is at most
    the whole quotient's)."""
    rank, gap = whitened.rank, whitened.gap
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


NO_MINIMUM = (
    "the loss has no minimum at finite weights: every sample is classified correctly, so "
    "scaling the logits up lowers the cross-entropy without end; train with label smoothing "
    "(--label-smoothing 0.1) or weight decay, and scan with the loss it was trained to"
)


def classified_without_end(gm, x, y, loss) -> bool:
    """Whether the plain cross-entropy has no minimum along the logits' scale: with every
    label the strict argmax of its logits, ``L(c z)`` falls for every ``c > 1`` (exact, for a
    reader whose output is the logits: scaling its weights and bias scales them)."""
    if not isinstance(loss, CrossEntropy) or loss.label_smoothing or y.is_floating_point():
        return False
    with torch.no_grad():
        logits = gm(**x) if isinstance(x, dict) else gm(x)
    logits = logits.reshape(-1, logits.shape[-1])
    top = logits.topk(2, dim=-1)
    right = top.indices[:, 0] == y.reshape(-1)
    return bool((right & (top.values[:, 0] > top.values[:, 1])).all())


def _diverged(count: int, config: SGLDConfig, loss) -> str:
    text = (f"{count} of {config.chains} chains diverged (eps {config.eps:.3g}, gamma "
            f"{config.gamma:.3g}), so no LLC was measured")  # fmt: skip
    plain = isinstance(loss, CrossEntropy) and not loss.label_smoothing
    return text + ("; a classifier trained without label smoothing or weight decay may have no "
                   "minimum at finite weights" if plain else "")  # fmt: skip
