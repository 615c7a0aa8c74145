"""The fast path for a linear layer ``y = W x (+ b)`` under the Gaussian loss.

With ``z = x`` (or ``(x, 1)`` with a bias), ``theta = [W, b]`` and ``D = theta - theta*``, the
loss is exactly quadratic::

    L(theta) - L(theta*) = 1/2 tr(D S D^T) + <G*, D>,   S = Z^T Z / n,   G* = grad L(theta*)

so a full-batch step costs ``O(chains m p^2)`` whatever ``n`` is, and the loss difference is this
quadratic form rather than a difference of two large numbers. A minibatch step uses the same form
with the batch's own ``S_B``, ``G_B`` (formed once per step for all chains), which is exactly the
minibatch loss at ``theta* + D`` that devinterp records. Positions are ``D`` flattened in
``torch.nn.Linear``'s parameter order (``weight`` row-major, then ``bias``), so masks and noise
line up entry for entry with the general :mod:`llcgeo.numerics.paths.module` path.

>>> x = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
>>> s = second_moment(design_matrix(x, bias=True))
>>> hessian_eigenvalues(s, None, Layout(m=1, d=1, bias=True)).round(4).tolist()
[0.0729, 3.4271]
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.numerics.device import resolve_dtype
from llcgeo.numerics.paths.problem import Exact, Footprint, Posterior, Problem
from llcgeo.numerics.sampling.affine import BlockQuadratic

MOMENT_COORDINATES = 32  # the fourth moment has this many squared rows and columns at most


class DataMoments(NamedTuple):
    """The data's moments on the moving coordinates of ``z`` that the exact minibatch
    expectation needs (:func:`llcgeo.theory.sgld.minibatch_expectation` says what each is)."""

    second: np.ndarray
    fourth: np.ndarray
    gradient: np.ndarray
    outputs: int
    n: int


def data_moments(z: torch.Tensor, residual: torch.Tensor, moving) -> DataMoments | None:
    """:class:`DataMoments` of ``z[:, moving]`` (float64, on the CPU), or None when there are
    more than ``MOMENT_COORDINATES`` moving coordinates (the fourth moment would be too big)."""
    if len(moving) > MOMENT_COORDINATES:
        return None
    zj = z[:, list(moving)].to(torch.float64)
    n, q = zj.shape
    outer = (zj[:, :, None] * zj[:, None, :]).reshape(n, q * q)
    weights = residual.to(torch.float64).square().sum(dim=1)
    return DataMoments(
        (zj.T @ zj / n).cpu().numpy(),
        (outer.T @ outer / n).cpu().numpy(),
        ((zj * weights[:, None]).T @ zj / n).cpu().numpy(),
        residual.shape[1],
        n,
    )


def moving_columns(mask: torch.Tensor | None, layout: Layout) -> list[int]:
    """The columns of ``z`` that move in the first row of ``theta`` (every refine mask moves the
    same columns in every row)."""
    if mask is None:
        return list(range(layout.p))
    rows = layout.matrix(mask.detach().cpu().to(torch.float64)[None])[0]
    return [j for j in range(layout.p) if rows[0, j] > 0.5]


class Layout(NamedTuple):
    """How a flat vector ``(chains, m*d [+ m])`` maps to ``theta`` of shape ``(chains, m, p)``."""

    m: int
    d: int
    bias: bool

    @property
    def p(self) -> int:
        return self.d + self.bias

    def order(self) -> torch.Tensor:
        """Flat index of each entry of ``theta``, row-major: ``W[i, j] -> i d + j``,
        ``b[i] -> m d + i``."""
        weight = torch.arange(self.m * self.d).view(self.m, self.d)
        if not self.bias:
            return weight.reshape(-1)
        bias = torch.arange(self.m * self.d, self.m * self.p).view(self.m, 1)
        return torch.cat([weight, bias], dim=1).reshape(-1)

    def matrix(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.index_select(1, self.order().to(flat.device)).view(-1, self.m, self.p)

    def flat(self, theta: torch.Tensor) -> torch.Tensor:
        inverse = torch.argsort(self.order()).to(theta.device)
        return theta.reshape(theta.shape[0], -1).index_select(1, inverse)

    def permutations(self, device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(to_matrix, to_flat)`` index tensors for the hot loop, ``None`` without a bias
        (where both orders coincide and reshapes are views)."""
        if not self.bias:
            return None
        order = self.order()
        return order.to(device), torch.argsort(order).to(device)


def _reorder(x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    return x if index is None else x.index_select(1, index)


def design_matrix(x: torch.Tensor, bias: bool) -> torch.Tensor:
    """``Z = X`` or ``[X, 1]``."""
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1) if bias else x


def second_moment(z: torch.Tensor) -> torch.Tensor:
    """``S = Z^T Z / n``: the Hessian of the loss in each row of ``theta``."""
    return z.T @ z / z.shape[0]


def hessian_eigenvalues(s: torch.Tensor, mask: torch.Tensor | None, layout: Layout) -> np.ndarray:
    """Eigenvalues (float64, ascending) of the principal block of ``I_m (x) S`` that ``mask``
    (flat, in ``layout`` order) lets move; all ``m p`` of them when ``mask`` is ``None``.

    The Hessian is block-diagonal over the rows of ``theta``, so each row contributes the
    eigenvalues of ``S`` restricted to its moving columns. ``S`` is positive semi-definite, so
    rounding below zero is clipped to 0.
    """
    s64 = s.detach().to("cpu", torch.float64).numpy()
    if mask is None:
        rows = np.ones((layout.m, s64.shape[0]), dtype=bool)
    else:
        rows = layout.matrix(mask.detach().cpu().to(torch.float64)[None])[0].numpy() > 0.5
    values = [
        np.repeat(np.linalg.eigvalsh(s64[np.ix_(cols, cols)]), count)
        for cols, count in _row_patterns(rows)
        if cols.any()
    ]
    return np.sort(np.clip(np.concatenate(values), 0.0, None))


def _row_patterns(rows: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Each distinct row of the boolean ``rows`` and how often it occurs (``np.unique`` with
    ``axis=0`` would import ``numpy.ma``: a tenth of a second of a fresh process's first call).
    """
    seen: dict[bytes, list] = {}
    for row in rows:
        seen.setdefault(row.tobytes(), [row, 0])[1] += 1
    return [(row, count) for row, count in seen.values()]


def _quadratic(layout: Layout, device):
    """``(position, S, G) -> (1/2 <D, D S> + <G, D>, D S + G)`` per chain: the loss relative to
    ``theta*`` and its gradient for a quadratic with curvature ``S`` and gradient ``G`` at
    ``theta*`` (``G`` also given flat, in position order, as ``flat_g``)."""
    to_matrix, to_flat = layout.permutations(device) or (None, None)

    def value_and_grad(position: torch.Tensor, s: torch.Tensor, g: torch.Tensor, flat_g):
        theta = _reorder(position, to_matrix).view(-1, layout.m, layout.p)
        grad = _reorder(torch.matmul(theta, s).add_(g).view(position.shape), to_flat)
        # with grad = D S + G: value = 1/2 <D, grad> + 1/2 <D, G>
        if flat_g.dim() == 2:  # one G per chain (each chain's own minibatch)
            value = torch.linalg.vecdot(position, grad.add(flat_g)).mul_(0.5)
        else:
            value = torch.addmv(
                torch.linalg.vecdot(position, grad), position, flat_g, beta=0.5, alpha=0.5
            )
        return value, grad

    def flatten(g: torch.Tensor) -> torch.Tensor:
        """``G`` ``(m, p)`` or ``(chains, m, p)`` in position order."""
        flat = _reorder(g.reshape(-1, layout.m * layout.p), to_flat)
        return flat[0] if g.dim() == 2 else flat

    return value_and_grad, flatten


def _full_batch(s: torch.Tensor, centre_grad: torch.Tensor, layout: Layout):
    """``L(theta* + D) - L(theta*)`` and its gradient: exact, and free of ``n``."""
    quadratic, flatten = _quadratic(layout, s.device)
    flat_g = flatten(centre_grad)
    return lambda position, batch: quadratic(position, s, centre_grad, flat_g)


def _minibatch(x: torch.Tensor, residual: torch.Tensor, init_loss: float, layout: Layout):
    """Each chain's batch loss ``L_B(theta* + D) - L(theta*)``, ``1/2 mean_B |e|^2 - L(theta*)``
    with errors ``e = D_W x + D_b - r`` (``r = y - theta* z``), and its gradient
    ``(mean_B e x^T, mean_B e)``; ``batch`` is ``(chains, |B|)``. It works in the position's
    own order (``W`` flat, then ``b``), so a step gathers the rows ``[x, r]`` once and needs
    two batched products and no permutation."""
    m, d = layout.m, layout.d
    joined = torch.cat([x, residual], dim=1)

    def loss_and_grad(position: torch.Tensor, batch: torch.Tensor):
        chains, size = batch.shape
        rows = joined.index_select(0, batch.reshape(-1)).view(chains, size, d + m)
        x_b, r_b = rows[:, :, :d], rows[:, :, d:]
        shift = position[:, m * d :].unsqueeze(1).sub(r_b) if layout.bias else r_b.neg()
        weight = position[:, : m * d].view(chains, m, d)
        errors = torch.baddbmm(shift, x_b, weight.transpose(1, 2))
        value = torch.linalg.vecdot(errors, errors, dim=-1).mean(dim=1).mul_(0.5).sub_(init_loss)
        grad = torch.bmm(errors.transpose(1, 2), x_b).view(chains, m * d)
        if layout.bias:
            grad = torch.cat([grad, errors.sum(dim=1)], dim=1)
        return value, grad.div_(size)

    return loss_and_grad


def linear_problem(x, y, theta, config: SGLDConfig, mask=None) -> Problem:
    """The :class:`Problem` of ``y ~ theta z`` around ``theta`` (``(m, p)``, bias last).

    ``x`` ``(n, d)`` and ``y`` ``(n, m)`` are float64 on the target device; the statistics are
    formed in float64 and cast once to ``config.dtype`` for the chains.
    """
    n, m, d = x.shape[0], y.shape[1], x.shape[1]
    layout = Layout(m, d, theta.shape[1] == d + 1)
    z = design_matrix(x, layout.bias)
    residual = y - z @ theta.T
    init_loss = float(0.5 * residual.square().sum(dim=1).mean())
    s = second_moment(z)
    nbeta = config.resolved_nbeta(n)
    dtype = resolve_dtype(config.dtype)
    gradient = -(residual.T @ z) / n if config.batch_size is None else None
    if gradient is not None:
        fn = _full_batch(s.to(dtype), gradient.to(dtype), layout)
    else:
        fn = _minibatch(x.to(dtype), residual.to(dtype), init_loss, layout)
    start = torch.zeros(m * z.shape[1], dtype=dtype, device=x.device)
    eigenvalues = hessian_eigenvalues(s, mask, layout)
    moments = None
    if config.batch_size is not None:
        moments = functools.partial(data_moments, z, residual, moving_columns(mask, layout))
    work = _work_per_chain(layout, config.batch_size, start.element_size())
    quadratic = None if gradient is None else BlockQuadratic(s, gradient, layout.order())
    exact = Exact(eigenvalues, quadratic=quadratic, moments=moments)
    return Problem(Posterior(fn, start, start, mask, init_loss, n, nbeta), exact, Footprint(work))


def _work_per_chain(layout: Layout, batch: int | None, itemsize: int) -> int:
    """A step's temporaries per chain: ``theta``, its gradient and the noise; on a minibatch
    also the gathered rows of ``Z`` and ``R`` and the batch's ``S_B``, ``G_B``."""
    m, p = layout.m, layout.p
    rows = 0 if batch is None else 2 * batch * (p + m) + 2 * p * p
    return itemsize * (6 * m * p + rows)
