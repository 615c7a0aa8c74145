"""The softmax-head fast path: a ``torch.nn.Linear`` on fixed ``(n, d)`` features under the
cross-entropy, for every chain in two batched matrix products.

With logits ``u = W z + b``, probabilities ``p = softmax(u)`` and (smoothed) target
distribution ``t``, the per-sample loss is ``-sum_k t_k log p_k`` and its gradient in ``u``
is ``p - t``, so ``grad_W = mean_i (p_i - t_i) z_i^T`` and ``grad_b = mean_i (p_i - t_i)``:
no autograd, no ``vmap``. It gives the general path's numbers (a test holds them to 1e-9) and
serves the weight-refined LLC of a classifier's head on its frozen features.
"""

from __future__ import annotations

import torch

from llcgeo.config import SGLDConfig
from llcgeo.numerics.paths.data import gather
from llcgeo.numerics.paths.problem import Exact, Footprint, Posterior, Problem


def smoothed_targets(labels: torch.Tensor, classes: int, smoothing: float, dtype):
    """``(1 - s) onehot(y) + s / K`` for each label (torch's ``label_smoothing``)."""
    onehot = torch.nn.functional.one_hot(labels, classes).to(dtype)
    return (1 - smoothing) * onehot + smoothing / classes


def softmax_problem(x, labels, weight, bias, config: SGLDConfig, mask, smoothing: float):
    """The :class:`Problem` of a linear softmax head at ``(weight, bias)`` on features ``x``
    (``(n, d)``, on the device, in the run's dtype) with integer ``labels``; positions are
    flat in ``nn.Linear``'s parameter order (``W`` row-major, then ``b``)."""
    classes, d = weight.shape
    targets = smoothed_targets(labels, classes, smoothing, x.dtype)
    size = classes * d

    # sum_k t_k u_k is linear in (W, b): its mean over rows is <M, W> + <t_mean, b>
    moment = targets.T @ x / x.shape[0]
    mean_targets = targets.mean(dim=0)

    def loss_and_grad(position: torch.Tensor, batch):
        # classes before rows: every reduction over the K classes runs along whole rows
        w = position[:, :size].view(-1, classes, d)
        xb = x if batch is None else gather(x, batch)
        if batch is None:
            m, t_mean = moment, mean_targets
        else:
            tb = gather(targets, batch)
            m = tb.transpose(1, 2) @ xb / xb.shape[1]
            t_mean = tb.mean(dim=1)
        logits = torch.matmul(w, xb.transpose(-1, -2))  # (chains, K, rows)
        if bias is not None:
            logits = logits + position[:, size:, None]
        top = logits.amax(dim=1, keepdim=True)
        p = logits.sub_(top).exp_()
        total = p.sum(dim=1, keepdim=True)
        # -sum_k t_k log p_k = top + log sum_k e^(u_k - top) - sum_k t_k u_k, as sum_k t_k = 1
        linear = (w * m).sum(dim=(1, 2))
        if bias is not None:
            linear = linear + (position[:, size:] * t_mean).sum(dim=-1)
        loss = (top + total.log()).mean(dim=(1, 2)) - linear
        p = p.div_(total)
        grad_w = (torch.matmul(p, xb).div_(p.shape[2]) - m).reshape(-1, size)
        if bias is None:
            return loss, grad_w
        return loss, torch.cat([grad_w, p.mean(dim=2) - t_mean], dim=1)

    parts = [weight.reshape(-1)] + ([] if bias is None else [bias.reshape(-1)])
    centre = torch.cat(parts).to(x.device, x.dtype)
    init_loss = float(loss_and_grad(centre[None], None)[0][0])

    def excess(position: torch.Tensor, batch):
        loss, grad = loss_and_grad(position, batch)
        return loss - init_loss, grad

    n = x.shape[0]
    rows = n if config.batch_size is None else config.batch_size
    gathered = 0 if config.batch_size is None else rows * (d + classes)
    work = x.element_size() * (3 * rows * classes + gathered + 4 * classes * (d + 1))
    posterior = Posterior(excess, centre, centre, mask, init_loss, n, config.resolved_nbeta(n))
    exact = Exact(certified_flat=_certified_flat(x, classes, bias, mask))
    return Problem(posterior, exact, Footprint(work))


ROUNDING = 1e-10  # a singular value of the features this far below the largest is zero


def _certified_flat(x: torch.Tensor, classes: int, bias, mask) -> int:
    """Directions the loss is exactly flat along, within the coordinates that move: the shift
    symmetry (one vector added to every row of ``W``, one number to every entry of ``b``:
    no probability changes) and a row of ``W`` on the features' null space (no logit changes;
    null to rounding)."""
    d = x.shape[1]
    values, vectors = torch.linalg.eigh(x.T.double() @ x.double())
    null = vectors[:, values <= ROUNDING * values.max()].T  # (k, d)
    size = classes * d + (classes if bias is not None else 0)
    directions = []
    for j in range(d):  # the shift of every row by e_j
        directions.append(_flat_direction(size, classes, d, rows=range(classes), column=j))
    if bias is not None:
        shift = torch.zeros(size, dtype=torch.float64)
        shift[classes * d :] = 1.0
        directions.append(shift)
    for u in null:
        for c in range(classes):
            directions.append(_flat_direction(size, classes, d, rows=[c], vector=u))
    basis = torch.stack(directions)
    if mask is not None:
        basis = basis[(basis[:, ~mask.to("cpu")] == 0).all(dim=1)]
    return int(torch.linalg.matrix_rank(basis)) if len(basis) else 0


def _flat_direction(size, classes, d, *, rows, column=None, vector=None) -> torch.Tensor:
    out = torch.zeros(size, dtype=torch.float64)
    for c in rows:
        if vector is None:
            out[c * d + column] = 1.0
        else:
            out[c * d : (c + 1) * d] = vector
    return out
