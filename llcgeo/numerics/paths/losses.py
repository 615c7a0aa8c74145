"""Per-sample losses, ``loss(outputs, targets) -> (batch,)``, and the checks that make a wrong
pairing of loss and targets a clear error instead of a silent number.

>>> out = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
>>> [round(v, 4) for v in cross_entropy()(out, torch.tensor([0, 0])).tolist()]
[0.1269, 2.1269]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from llcgeo.errors import EstimationError
from llcgeo.validate import between

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES = ("gaussian", "cross_entropy")


def gaussian_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``1/2 |y - f(x)|^2`` per sample (summed over output entries): the Gaussian negative
    log-likelihood up to a constant.

    >>> gaussian_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])).tolist()
    [2.5]
    """
    if outputs.shape != targets.shape:
        raise EstimationError(
            f"the model's outputs have shape {tuple(outputs.shape)} but the targets have shape "
            f"{tuple(targets.shape)}"
        )
    return 0.5 * (outputs - targets).square().reshape(outputs.shape[0], -1).sum(dim=1)


class CrossEntropy:
    """The cross-entropy of logits ``(batch, K)`` against class labels ``(batch,)``, or of
    logits ``(batch, T, K)`` against token labels ``(batch, T)`` averaged over the ``T``
    positions; float targets of the logits' shape are read as class probabilities.
    ``label_smoothing`` mixes each one-hot label with the uniform distribution: every class
    keeps some target mass, so a separable data set still has a finite minimum. (A class, not
    a closure, so that a model path can recognize it: a linear head takes a fast path.)"""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = between(label_smoothing, "label_smoothing", 0, 1, open_high=True)

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        classes = outputs.shape[-1]
        flat = targets.reshape(-1, classes) if targets.is_floating_point() else targets.reshape(-1)
        per_position = F.cross_entropy(
            outputs.reshape(-1, classes),
            flat,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        return per_position.view(outputs.shape[0], -1).mean(dim=1)

    def __repr__(self) -> str:
        return f"CrossEntropy(label_smoothing={self.label_smoothing:g})"


def cross_entropy(label_smoothing: float = 0.0) -> CrossEntropy:
    """The per-sample cross-entropy (:class:`CrossEntropy`)."""
    return CrossEntropy(label_smoothing)


def per_sample_loss(loss) -> PerSampleLoss:
    """A loss by name (``LOSSES``) or a callable ``loss(outputs, targets) -> (batch,)``."""
    if loss == "gaussian":
        return gaussian_loss
    if loss == "cross_entropy":
        return cross_entropy()
    if callable(loss):
        return loss
    raise EstimationError(f"loss must be one of {LOSSES} or a callable, got {loss!r}")


def _per_sample(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["n", *map(str, shape)]) + ")"


def named_loss(loss) -> str | None:
    """The name in ``LOSSES`` that ``loss`` is (a :class:`CrossEntropy` at any smoothing is
    the cross-entropy), or ``None`` for another callable: the name decides which targets are
    refused."""
    if isinstance(loss, CrossEntropy):
        return "cross_entropy"
    return loss if isinstance(loss, str) and loss in LOSSES else None


def check_gaussian_targets(targets: torch.Tensor) -> None:
    """Integer targets under the Gaussian loss would be class labels read as numbers, and
    one-hot rows class labels fitted by squares: both are refused with the fix (a user who
    means squares on one-hot rows passes :func:`gaussian_loss` itself)."""
    if not targets.is_floating_point():
        raise EstimationError(
            "the targets are integers (class labels or token ids?) but the loss is Gaussian: "
            "use loss='cross_entropy', or give float targets"
        )
    if is_one_hot(targets):
        raise EstimationError(
            "the targets are one-hot rows (class labels?) but the loss is Gaussian: use "
            "loss='cross_entropy' with the labels (targets.argmax(-1)), or pass "
            "llcgeo.numerics.paths.losses.gaussian_loss as the loss to fit them by squares on "
            "purpose"
        )


def is_one_hot(targets: torch.Tensor) -> bool:
    """Whether every row of ``targets`` (at least two columns) is a one-hot vector."""
    if targets.dim() < 2 or targets.shape[-1] < 2:
        return False
    binary = bool(((targets == 0) | (targets == 1)).all())
    return binary and bool((targets.sum(dim=-1) == 1).all())


def check_targets(loss, per_sample: tuple[int, ...], targets: torch.Tensor) -> None:
    """Refuse targets the named loss would misread: integer targets under the Gaussian loss
    (class labels taken as numbers), labels outside the model's ``K`` classes, shapes that do
    not pair. ``per_sample`` is the shape of the model's output for one sample (its last entry
    ``K`` under the cross-entropy)."""
    per_sample = tuple(per_sample)
    if loss == "gaussian":
        check_gaussian_targets(targets)
        if tuple(targets.shape[1:]) != per_sample:
            raise EstimationError(
                f"the model's outputs have shape {_per_sample(per_sample)} but the targets have "
                f"shape {_per_sample(tuple(targets.shape[1:]))}"
            )
    if loss != "cross_entropy":
        return
    if not per_sample:
        raise EstimationError(
            "cross_entropy reads K logits a sample, but the model's output is one number a "
            "sample; give it outputs of shape (n, K), or use another loss"
        )
    if targets.is_floating_point():
        if targets.shape[1:] != per_sample:
            raise EstimationError(
                f"float targets for cross_entropy are class probabilities of the outputs' shape "
                f"{per_sample} per sample, got {tuple(targets.shape[1:])}"
            )
        return
    if targets.shape[1:] != per_sample[:-1]:
        raise EstimationError(
            f"the model's outputs {per_sample} per sample need labels of shape "
            f"{per_sample[:-1]}, got {tuple(targets.shape[1:])}"
        )
    classes = per_sample[-1]
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= classes:
        raise EstimationError(
            f"a class label lies outside 0..{classes - 1} (the model has {classes} outputs): "
            f"labels range over {low}..{high}"
        )
