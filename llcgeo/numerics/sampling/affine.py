"""SGLD on an exactly quadratic loss, as the affine map it is.

For ``L(w) - L(w*) = 1/2 D^T H D + g^T D`` (``D = w - w*``), one SGLD step is

    D <- D A + b + sqrt(eps) noise_level xi,
    A = I - (eps/2)(nbeta H + gamma I),   b = -(eps/2) nbeta g

(entries a mask freezes keep ``A``'s identity row and no ``b`` or noise). Each step is then one
matrix product on all chains at once, and the recorded losses ``1/2 D^T H D + g^T D`` are formed
afterwards, a block of steps at a time. The Gaussian draws are made one step at a time with the
same shape, order and generator as :func:`llcgeo.numerics.sampling.sgld.build_kernel`'s, so
the chains are the kernel's chains: the same numbers up to rounding (a test holds them to 1e-10).
Small problems pay per operation, not per entry, so this is several times faster there; where the
parameters are many, the dense ``A`` (``P x P``) costs more than the path's structured step,
and :func:`affine_run_fits` says no. A linear layer's Hessian is ``I_m (x) S``
(:class:`BlockQuadratic`): its step is one ``(chains m, p) x (p, p)`` product, however many
rows the layer has.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from llcgeo.numerics.sampling.sgld import ChainRun, SGLDState

MAX_PARAMETERS = 256  # a dense A beyond this costs more than a structured step
BLOCK_BYTES = 8 << 20  # the positions held at once to form their losses


class Quadratic(NamedTuple):
    """``L(w) - L(w*) = 1/2 D^T H D + g^T D`` in the problem's own coordinates (``D = w -
    centre``), ``H`` the full Hessian ``(P, P)``, ``g`` the gradient at the centre ``(P,)``."""

    hessian: torch.Tensor
    gradient: torch.Tensor

    def dense(self) -> Quadratic:
        return self


class BlockQuadratic(NamedTuple):
    """The same loss where ``H = I_m (x) S``: the positions, read in ``order`` (``(P,)``, the
    flat index of each entry), are ``m`` rows of ``p`` that ``S`` ``(p, p)`` acts on alone;
    ``gradient`` ``(m, p)`` is in that order."""

    block: torch.Tensor
    gradient: torch.Tensor
    order: torch.Tensor

    def dense(self) -> Quadratic:
        inverse = torch.argsort(self.order).to(self.block.device)
        hessian = torch.block_diag(*[self.block] * self.gradient.shape[0])[inverse][:, inverse]
        return Quadratic(hessian, self.gradient.reshape(-1)[inverse])


def affine_run_fits(posterior, quadratic, config) -> bool:
    """Whether ``config``'s run of ``posterior`` (a path's
    :class:`~llcgeo.numerics.paths.problem.Posterior`) is full batch on a known ``quadratic``
    (``None``: none is known) small enough for a dense ``A`` (or, unmasked, for a dense block
    of it), with neither of the kernel's extras the driver leaves out (a watched acceptance, a
    bounding box). Whether the sampler's step is this affine map is its registry entry's to say
    (:data:`~llcgeo.numerics.sampling.kernels.KERNELS`)."""
    plain = not config.acceptance and config.bounding_box is None
    if not plain or config.batch_size is not None or quadratic is None:
        return False
    if _blocks(quadratic, posterior.mask):
        return dense_fits(quadratic.block.shape[0])
    return dense_fits(posterior.start.numel())


def dense_fits(parameters: int) -> bool:
    """Whether the driver runs a dense ``A`` over this many parameters (beyond
    ``MAX_PARAMETERS`` a structured step costs less)."""
    return parameters <= MAX_PARAMETERS


def _blocks(quadratic, mask) -> bool:
    return isinstance(quadratic, BlockQuadratic) and mask is None


def run_affine(posterior, quadratic, config, *, eps: float, gamma: float, steps: int,
               burnin: int, generator: torch.Generator, progress=None) -> ChainRun:  # fmt: skip
    """The :class:`~llcgeo.numerics.sampling.sgld.ChainRun` of ``steps`` plain SGLD steps of
    ``posterior``, whose loss is exactly ``quadratic``: the same chains the kernel would run."""
    if _blocks(quadratic, posterior.mask):
        return _run_blocks(posterior, quadratic, config, eps=eps, gamma=gamma, steps=steps,
                           burnin=burnin, generator=generator, progress=progress)  # fmt: skip
    start = posterior.start.expand(config.chains, -1)
    a_t, b, scale = _step_map(posterior, quadratic, config, eps, gamma)
    h, g = (t.to(start) for t in quadratic.dense())

    def advance(offsets: torch.Tensor, out: torch.Tensor) -> None:
        noise = torch.randn(offsets.shape, generator=generator, dtype=start.dtype,
                            device=start.device)  # fmt: skip
        torch.addmm(noise.mul_(scale).add_(b), offsets, a_t, out=out)

    losses, offsets = _drive(start - posterior.centre, advance, lambda held: _losses(held, h, g),
                             config.chains, steps, progress)  # fmt: skip
    final = SGLDState(offsets + posterior.centre, steps)
    return ChainRun(losses[:, burnin:], losses.amax(dim=1), final)


def _drive(offsets: torch.Tensor, advance, losses_of, chains: int, steps: int, progress):
    """``(losses (chains, steps), final offsets)`` of ``steps`` calls of ``advance(offsets,
    out)``, each writing the next offsets into ``out``; a block of steps is held at once and
    ``losses_of`` forms their losses ``(count, chains)`` together."""
    losses = torch.empty(chains, steps, dtype=offsets.dtype)
    block = max(1, BLOCK_BYTES // (8 * offsets.numel()))
    every = max(1, steps // 100)
    for first in range(0, steps, block):
        count = min(block, steps - first)
        # held[k] is where step first + k starts (its loss is recorded there)
        held = offsets.new_empty(count + 1, *offsets.shape)
        held[0] = offsets
        for k in range(count):
            advance(held[k], out=held[k + 1])
            if progress is not None and ((first + k + 1) % every == 0 or first + k + 1 == steps):
                progress(first + k + 1, steps)
        losses[:, first : first + count] = losses_of(held[:count]).T.cpu()
        offsets = held[count].clone()
    return losses, offsets


def _step_map(posterior, quadratic, config, eps: float, gamma: float):
    """``(A^T, b, noise scale)``: a frozen entry keeps its identity row, no drift and no
    noise (its column stays: a frozen offset still pulls on the entries that move)."""
    h, g = quadratic.dense()
    size = h.shape[0]
    a = torch.eye(size, dtype=h.dtype, device=h.device) * (1 - 0.5 * eps * gamma)
    a = a - (0.5 * eps * posterior.nbeta) * h
    b = -(0.5 * eps * posterior.nbeta) * g
    scale = torch.full((size,), math.sqrt(eps) * config.noise_level, dtype=h.dtype,
                       device=h.device)  # fmt: skip
    if posterior.mask is not None:
        frozen = ~posterior.mask
        a[frozen, :] = 0.0
        a[frozen, frozen] = 1.0
        b, scale = b.masked_fill(frozen, 0.0), scale.masked_fill(frozen, 0.0)
    dtype = posterior.start.dtype
    return a.T.contiguous().to(dtype), b.to(dtype), scale.to(posterior.start.device, dtype)


def _losses(held: torch.Tensor, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``1/2 D^T H D + g^T D`` for every held position ``(steps, chains)``."""
    flat = held.reshape(-1, held.shape[-1])
    values = torch.linalg.vecdot(flat, torch.addmm(g, flat, h, alpha=0.5))
    return values.view(held.shape[:2])


def _run_blocks(posterior, quadratic, config, *, eps: float, gamma: float, steps: int,
                burnin: int, generator: torch.Generator, progress=None) -> ChainRun:  # fmt: skip
    """:func:`run_affine` for ``H = I_m (x) S``, unmasked: the chains held as ``(chains m, p)``
    rows in the block order, each step's noise drawn in the kernel's order and read in this."""
    q, start = quadratic, posterior.start
    chains, (m, p) = config.chains, q.gradient.shape
    s, g = q.block.to(start), q.gradient.to(start)
    order = q.order.to(start.device)
    identity = torch.eye(p, dtype=s.dtype, device=s.device)
    a_t = (identity * (1 - 0.5 * eps * gamma) - (0.5 * eps * posterior.nbeta) * s).T.contiguous()
    b, scale = g.mul(-0.5 * eps * posterior.nbeta), math.sqrt(eps) * config.noise_level

    def advance(offsets: torch.Tensor, out: torch.Tensor) -> None:
        noise = torch.randn((chains, m * p), generator=generator, dtype=start.dtype,
                            device=start.device).index_select(1, order)  # fmt: skip
        drift = torch.add(b, noise.view(chains, m, p), alpha=scale).view(-1, p)
        torch.addmm(drift, offsets, a_t, out=out)

    offsets = (start - posterior.centre).index_select(0, order).expand(chains, -1).reshape(-1, p)
    losses, offsets = _drive(offsets, advance, lambda held: _block_losses(held, s, g, chains),
                             chains, steps, progress)  # fmt: skip
    position = offsets.view(chains, -1).index_select(1, torch.argsort(order)) + posterior.centre
    return ChainRun(losses[:, burnin:], losses.amax(dim=1), SGLDState(position, steps))


def _block_losses(held: torch.Tensor, s: torch.Tensor, g: torch.Tensor, chains: int):
    """``1/2 <D, D S> + <G, D>`` for every held position ``(steps, chains)``."""
    pulled = torch.mm(held.view(-1, s.shape[0]), s).view(-1, *g.shape).mul_(0.5).add_(g)
    return torch.linalg.vecdot(held.view(-1, g.numel()), pulled.view(-1, g.numel())).view(
        held.shape[0], chains
    )
