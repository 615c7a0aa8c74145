"""One (norm, reader) pair's row: certified, refitted, its Hessian ranked, sampled, judged."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError, LLCGeoError, ScanError, in_brief
from llcgeo.numerics.device import resolve_dtype
from llcgeo.numerics.measurements.quadratic_model import measure_with_quadratic
from llcgeo.numerics.paths.losses import CrossEntropy
from llcgeo.reconcile.model import EstimateSummary
from llcgeo.reconcile.protocol import Coupled, coupled_verdict
from llcgeo.reconcile.stats import numerical_rank
from llcgeo.scanner.block import WHITENED_RANGE, Whitened, block_outputs, whitening
from llcgeo.scanner.certify import (
    certify,
    image_spec,
    moving_bias,
    output_directions,
    quotient_basis,
)
from llcgeo.scanner.reader import (
    features,
    frozen_upstream,
    head_model,
    is_head,
    quotient_hessian,
    reader_model,
    refit,
    retyped,
)
from llcgeo.scanner.rows import NOT_MEASURED, ScanRow, ScanSettings
from llcgeo.scanner.trace import Norm, Reader
from llcgeo.theory.calibration import network_nbeta, network_recommendation
from llcgeo.theory.sgld import energy_autocorrelation_time, expected_sgld_estimate
from llcgeo.thresholds import ESS_MIN, RANK_GAP

ESS_MARGIN = 1.25  # the autocorrelation times are exact for the quadratic model alone

def scan_row(gm, norm: Norm, reader: Reader, x, y, loss, settings, device, steps) -> ScanRow:
    classes_read = isinstance(loss, CrossEntropy)
    spec = image_spec(norm, *_norm_parameters(gm, norm))
    cert = certify(spec, reader, classes_read, settings.refine)
    row = ScanRow(norm.node, norm.kind, reader.weight, reader.outputs, reader.inputs,
                  moving_bias(reader, settings.refine), reader.tied,
                  reader.logits and classes_read, cert, image=cert.image, low="0",
                  high=str(Fraction(cert.quotient, 2)))  # fmt: skip
    if not settings.measure or (settings.only and reader.weight not in settings.only):
        return replace(row, verdict=NOT_MEASURED, reason="not measured (certificates only)")
    if row.logits and classified_without_end(gm, x, y, loss):
        return replace(row, reason="not measured: " + NO_MINIMUM)
    within = cert.quotient <= settings.hessian_directions
    measure = _measured_head if within and is_head(reader, x, classes_read) else _measured_whitened
    try:
        return measure(row, gm, reader, spec, (x, y, loss), settings, device, classes_read,
                       steps)  # fmt: skip
    except LLCGeoError as error:
        return replace(row, reason=f"not measured: {error}")
    except (RuntimeError, ValueError, IndexError, TypeError) as error:  # torch, on this model
        return replace(row, reason=f"not measured: torch failed on this reader "
                       f"({in_brief(error)})")  # fmt: skip


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
    nbeta = network_nbeta(row_count, settings.nbeta_factor)
    r = network_recommendation(spectrum, nbeta=nbeta, chains=settings.chains,
                               max_burnin=settings.max_burnin)  # fmt: skip
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
    r = network_recommendation(mu, nbeta=nbeta, chains=settings.chains,
                               max_burnin=settings.max_burnin,
                               localization=gamma / (gamma + nbeta * smallest))  # fmt: skip
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
    if e.diverged_chains:
        raise EstimationError(_diverged(len(e.diverged_chains), config, loss))
    shifts = e.per_chain - q.per_chain
    expected = expected_sgld_estimate(spectrum, nbeta, r.gamma, r.eps, config.steps, r.burnin)
    shift_se = float(shifts.std(ddof=1) / math.sqrt(len(shifts)))
    row = replace(row, estimate=EstimateSummary.of(e), quadratic=EstimateSummary.of(q),
                   shift=float(shifts.mean()), shift_se=shift_se, expected=float(expected.mean),
                   expected_se=float(expected.standard_error(settings.chains)), eps=r.eps,
                   gamma=r.gamma, nbeta=nbeta)  # fmt: skip
    return _judged(row, settings.chains)


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


def _draws(r, nbeta: float, spectrum: np.ndarray, settings: ScanSettings) -> int:
    """Draws a chain for a bulk ESS of ``ESS_MARGIN`` times ``ESS_MIN`` over the chains, at most
    ``settings.draws``, from the quadratic model's exact autocorrelation time."""
    tau = energy_autocorrelation_time(spectrum, nbeta, r.gamma, r.eps)
    return min(settings.draws, math.ceil(ESS_MARGIN * ESS_MIN * tau / settings.chains))


def _judged(row: ScanRow, chains: int) -> ScanRow:
    """The coupled-measurement verdict (:mod:`llcgeo.reconcile.protocol`), the shift held to
    the lower end of the prediction (or the measured part's upper end where that is 0)."""
    scale = float(Fraction(row.low)) or float(Fraction(row.block_high))
    judged = coupled_verdict(Coupled(row.estimate, row.quadratic, row.expected, row.shift,
                                     scale, chains))  # fmt: skip
    return replace(row, verdict=judged.verdict, reason=judged.reason)
