"""Small trained networks whose softmax head reads normalized features, and that head's loss.

Two models, trained here from a seed in seconds on a CPU: an MLP on a real data set (the
digits, given as arrays) and a small transformer on a synthetic sequence task it generates
(:func:`sequence_task`). Both end in a final norm (:data:`NORMS`) and a linear softmax head.
With every other parameter frozen, the head sees fixed features ``z``; its cross-entropy is
then a convex function of the head alone, refitted here to its minimum
(:func:`fit_head`), with the exact Hessian :func:`head_hessian` (``E[A(p) (x) z~ z~^T]``,
:mod:`llcgeo.theory.softmax`).

Training and the head's loss use smoothed labels (:data:`SMOOTHING`): a trained classifier
separates its training set, so with one-hot labels the cross-entropy has no finite minimum;
smoothing keeps one and leaves the Hessian's formula unchanged.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import torch
from torch import nn

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError
from llcgeo.numerics.device import resolve_device, thread_policy
from llcgeo.numerics.losses import cross_entropy
from llcgeo.numerics.problem import quadratic_problem
from llcgeo.numerics.result import LLCEstimate

NORMS = ("layernorm", "layernorm-affine", "rmsnorm", "none")
SMOOTHING = 0.1
MINIMUM_GRADIENT = 1e-8  # a fitted head with a larger gradient is not at its minimum
F64 = torch.float64


def norm_layer(kind: str, width: int) -> nn.Module:
    """``layernorm``: a learned gain, no bias (the plane stays through the origin);
    ``layernorm-affine``: gain and bias; ``rmsnorm``: a learned gain; ``none``."""
    if kind == "layernorm":
        return nn.LayerNorm(width, bias=False)
    if kind == "layernorm-affine":
        return nn.LayerNorm(width)
    if kind == "rmsnorm":
        return nn.RMSNorm(width)
    if kind == "none":
        return nn.Identity()
    raise EstimationError(f"norm must be one of {NORMS}, got {kind!r}")


class MLPClassifier(nn.Module):
    """``x -> norm(gelu(W1 x + b1)) -> W2 z + b2``: one hidden layer, then the head."""

    def __init__(self, inputs: int, hidden: int, classes: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(inputs, hidden), nn.GELU(), norm_layer(norm, hidden))
        self.head = nn.Linear(hidden, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Block(nn.Module):
    """A pre-norm transformer block: causal self-attention, then a GELU MLP; ``norm`` as
    :func:`norm_layer` (a LayerNorm with gain and bias by default)."""

    def __init__(self, width: int, heads: int, norm: str = "layernorm-affine"):
        super().__init__()
        self.norm1, self.norm2 = norm_layer(norm, width), norm_layer(norm, width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = h.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=h.device).triu(1)
        a = self.norm1(h)
        h = h + self.attention(a, a, a, attn_mask=causal, need_weights=False)[0]
        return h + self.mlp(self.norm2(h))


class TinyTransformer(nn.Module):
    """Token and position embeddings, ``blocks`` blocks (their norms ``block_norm``), a final
    norm ``norm``, an unembedding without bias (as in most transformers)."""

    def __init__(self, vocab: int, width: int, length: int, norm: str, blocks=2, heads=2,
                 block_norm: str = "layernorm-affine"):  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(0.02 * torch.randn(length, width))
        self.blocks = nn.Sequential(*(Block(width, heads, block_norm) for _ in range(blocks)))
        self.final_norm = norm_layer(norm, width)
        self.head = nn.Linear(width, vocab, bias=False)

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids) + self.position[: ids.shape[1]]
        return self.final_norm(self.blocks(h))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ids))


def sequence_task(n: int, length: int, vocab: int, seed: int):
    """``(ids, labels)``: uniform random tokens; the label at position ``t`` is
    ``(x_t + x_{t-1}) mod vocab`` (``x_{-1} = 0``), so the model must look one token back."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(vocab, (n, length), generator=g)
    previous = torch.cat([torch.zeros(n, 1, dtype=ids.dtype), ids[:, :-1]], dim=1)
    return ids, (ids + previous) % vocab


def train(model: nn.Module, inputs, labels, *, steps: int, lr: float, batch: int | None, seed):
    """Adam on the smoothed cross-entropy, full batch or minibatches drawn from ``seed``;
    returns the final full-batch loss."""
    loss = cross_entropy(SMOOTHING)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        rows = slice(None) if batch is None else torch.randint(len(labels), (batch,), generator=g)
        optimizer.zero_grad()
        loss(model(inputs[rows]), labels[rows]).mean().backward()
        optimizer.step()
    with torch.no_grad():
        return float(loss(model(inputs), labels).mean())


def _augmented(z: torch.Tensor, with_bias: bool) -> torch.Tensor:
    return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1) if with_bias else z


def head_hessian(z: torch.Tensor, weight: torch.Tensor, bias, *, moving_bias: bool):
    """The exact Hessian of the mean cross-entropy of ``softmax(W z + b)`` in the entries that
    move (``W`` row-major, then ``b`` when ``moving_bias``), at ``(weight, bias)``: the mean
    over samples of ``A(p) (x) z~ z~^T`` with ``A(p) = diag p - p p^T``. Label smoothing
    does not enter it."""
    z = z.to(F64)
    p = torch.softmax(_logits(z, weight.to(F64), None if bias is None else bias.to(F64)), dim=1)
    a = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    zt = _augmented(z, moving_bias)
    k, width = p.shape[1], zt.shape[1]
    outer = (zt[:, :, None] * zt[:, None, :]).reshape(len(z), -1)
    full = (a.reshape(len(z), -1).T @ outer / len(z)).view(k, k, width, width)
    full = full.permute(0, 2, 1, 3).reshape(k * width, k * width)  # (class, feature) order
    order = [c * width + i for c in range(k) for i in range(z.shape[1])]
    if moving_bias:
        order += [c * width + width - 1 for c in range(k)]
    index = torch.tensor(order)
    return full[index][:, index]


def _logits(z, weight, bias):
    return z @ weight.T + (0 if bias is None else bias)


def _head_loss(z, labels, weight, bias):
    return cross_entropy(SMOOTHING)(_logits(z, weight, bias), labels).mean()


def fit_head(z, labels, weight, bias, *, moving_bias: bool, iterations: int = 200):
    """``(weight, bias, gradient norm)`` at the minimum of the head's smoothed cross-entropy
    on fixed features ``z``, by damped Newton steps (Levenberg-Marquardt) from
    ``(weight, bias)``: a step ``(H + mu I)^-1 g`` is kept when it lowers the loss or the
    gradient (near the minimum the loss changes below its rounding), and ``mu`` shrinks after
    a kept step and grows after a refused one. The loss is convex, so this reaches the
    minimum; along the Hessian's kernel the loss is flat and the step stays tiny."""
    z, weight = z.to(F64), weight.detach().to(F64).clone()
    bias = None if bias is None else bias.detach().to(F64).clone()
    loss = _head_loss(z, labels, weight, bias)
    grad = _gradient(z, labels, weight, bias, moving_bias)
    mu = None
    for _ in range(iterations):
        if float(grad.norm()) < 1e-13:
            break
        h = head_hessian(z, weight, bias, moving_bias=moving_bias)
        scale = float(h.diagonal().mean())
        mu = 1e-3 * scale if mu is None else mu
        step = torch.linalg.solve(h + mu * torch.eye(len(h), dtype=F64), grad)
        cand = _moved(weight, bias, -step, moving_bias)
        cand_loss = _head_loss(z, labels, *cand)
        cand_grad = _gradient(z, labels, *cand, moving_bias)
        if cand_loss < loss or cand_grad.norm() < grad.norm():
            (weight, bias), loss, grad = cand, cand_loss, cand_grad
            mu = max(mu / 10, 1e-14 * scale)
        else:
            mu *= 10
    norm = float(grad.norm())
    if not norm < MINIMUM_GRADIENT:
        raise EstimationError(
            f"the head's loss has no minimum within reach: its gradient is still {norm:.3g} "
            f"after {iterations} damped Newton steps (the minimum needs below "
            f"{MINIMUM_GRADIENT:g}); a larger label smoothing keeps the minimum closer"
        )
    return weight, bias, norm


def _gradient(z, labels, weight, bias, moving_bias: bool) -> torch.Tensor:
    w = weight.clone().requires_grad_(True)
    b = None if bias is None else bias.clone().requires_grad_(moving_bias)
    loss = _head_loss(z, labels, w, b)
    moving = [w, b] if moving_bias else [w]
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, moving)])


def _moved(weight, bias, step, moving_bias: bool):
    size = weight.numel()
    weight = weight + step[:size].view_as(weight)
    if moving_bias:
        bias = bias + step[size:]
    return weight, bias


class TrainedHead(NamedTuple):
    """A trained model's frozen features, labels, and its head at the minimum of its loss."""

    model: nn.Module
    features: torch.Tensor  # (rows, width), float64
    labels: torch.Tensor  # (rows,)
    weight: torch.Tensor
    bias: torch.Tensor | None
    train_loss: float
    accuracy: float
    grad_norm: float


def trained_head(build, inputs, labels, *, steps, lr, batch, seed, moving_bias):
    """Build the model with ``build()`` (its initial parameters drawn from ``seed``), train it
    in float64, take its final-norm features on ``inputs`` (rows = samples, or samples x
    positions) and refit its head to the minimum."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build().to(F64)
    inputs = inputs.to(F64) if inputs.is_floating_point() else inputs
    # one thread: the reductions then run in one order, so a seed gives the same network in
    # every process and on every executor
    with thread_policy(0, torch.device("cpu")):
        loss = train(model, inputs, labels, steps=steps, lr=lr, batch=batch, seed=seed)
        with torch.no_grad():
            z = model.features(inputs)
        z, flat = z.reshape(-1, z.shape[-1]), labels.reshape(-1)
        head = model.head
        weight, bias, grad_norm = fit_head(z, flat, head.weight, head.bias, moving_bias=moving_bias)
    accuracy = float((_logits(z, weight, bias).argmax(1) == flat).double().mean())
    return TrainedHead(model, z, flat, weight, bias, loss, accuracy, grad_norm)


def head_module(trained: TrainedHead, *, moving_bias: bool):
    """``(nn.Linear at the fitted head, param_masks)``: the weight moves, the bias (where there
    is one) only where ``moving_bias``; for ``estimate_llc`` or ``calibrate`` on the features."""
    return linear_head(trained.weight, trained.bias, moving_bias=moving_bias)


def linear_head(weight: torch.Tensor, bias, *, moving_bias: bool):
    """``(nn.Linear in float64 at (weight, bias), param_masks)``: the weight moves, the bias
    (where there is one) only where ``moving_bias``."""
    classes, width = weight.shape
    head = nn.Linear(width, classes, bias=bias is not None, dtype=F64)
    masks = {"weight": torch.ones(classes, width, dtype=torch.bool)}
    with torch.no_grad():
        head.weight.copy_(weight)
        if bias is not None:
            head.bias.copy_(bias)
            masks["bias"] = torch.full((classes,), moving_bias, dtype=torch.bool)
    return head, masks


class HeadMeasurement(NamedTuple):
    """The head's SGLD estimate on its real loss and on its exact quadratic model, run with
    the same seed (so the same noise): their difference is what the terms beyond the quadratic
    add."""

    estimate: LLCEstimate
    quadratic: LLCEstimate


def measure_head(trained: TrainedHead, hessian, config: SGLDConfig, *, moving_bias, seed, device):
    """Both estimates of :class:`HeadMeasurement` for ``trained``'s head, the weight moving
    (and the bias where ``moving_bias``), under the smoothed cross-entropy."""
    head, masks = head_module(trained, moving_bias=moving_bias)
    loss = cross_entropy(SMOOTHING)
    return measure_with_quadratic(head, trained.features, trained.labels, loss, hessian, config,
                                  masks=masks, seed=seed, device=device)  # fmt: skip


def measure_with_quadratic(model, inputs, targets, loss, hessian, config: SGLDConfig, *,
                           masks=None, seed, device, progress=None) -> HeadMeasurement:  # fmt: skip
    """``model``'s estimate at its parameters and, with the same seed (the same noise), the
    estimate on its exact quadratic model ``hessian`` (on the entries ``masks`` move);
    ``progress(done, total)`` counts the steps of both runs."""
    from llcgeo.numerics.estimate import estimate_problem, model_problem

    target = resolve_device(device)
    with thread_policy(config.chains * hessian.shape[0], target):
        problem = model_problem(model, inputs, targets, config, masks, loss, target)
        real = estimate_problem(problem, config, seed=seed, progress=_part(progress, 0, 2),
                                started=time.perf_counter())  # fmt: skip
        quadratic = quadratic_problem(hessian, problem)
        model = estimate_problem(quadratic, config, seed=seed, progress=_part(progress, 1, 2),
                                 started=time.perf_counter())  # fmt: skip
    return HeadMeasurement(real, model)


def _part(progress, index: int, parts: int):
    """``progress`` for the ``index``-th of ``parts`` equal runs, as a share of them all."""
    if progress is None:
        return None
    return lambda done, total: progress(index * total + done, parts * total)
