"""LayerNorm and RMSNorm, written once for every measurement that applies them (the samplers'
normalized images, the LayerNorm-geometry, isometry and Lipschitz suites).

Over the last axis, with ``c = a - mean(a)`` (LayerNorm) or ``c = a`` (RMSNorm) and the
population mean square: ``N(a) = gain * c / sqrt(mean(c**2) + eps) + bias``.

>>> a = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
>>> layer_norm(a).sum().item(), rms_norm(a).square().mean().item()
(0.0, 1.0)
"""

from __future__ import annotations

import torch

KINDS = ("none", "layernorm", "rmsnorm")


def normalize(a: torch.Tensor, kind: str, eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c / sqrt(mean(c**2) + eps), 1 / sqrt(mean(c**2) + eps))`` for ``kind`` in ``KINDS``:
    the normalized tensor and its scale, the local Lipschitz factor of the normalization
    (``"none"``: ``a`` and ones)."""
    if kind == "none":
        return a, torch.ones(a.shape[:-1], dtype=a.dtype, device=a.device)
    centred = a - a.mean(-1, keepdim=True) if kind == "layernorm" else a
    scale = (centred.square().mean(-1, keepdim=True) + eps).rsqrt()
    return centred * scale, scale.squeeze(-1)


def layer_norm(a: torch.Tensor, gain=None, bias=None, eps: float = 0.0) -> torch.Tensor:
    """LayerNorm of ``a`` over its last axis, with an optional ``gain`` and ``bias``."""
    out = normalize(a, "layernorm", eps)[0]
    out = out if gain is None else gain * out
    return out if bias is None else out + bias


def rms_norm(a: torch.Tensor, gain=None, eps: float = 0.0) -> torch.Tensor:
    """RMSNorm of ``a`` over its last axis, with an optional ``gain``."""
    out = normalize(a, "rmsnorm", eps)[0]
    return out if gain is None else gain * out
