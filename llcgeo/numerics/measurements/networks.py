"""The small networks the network suite trains, whose softmax head reads normalized features.

Two models: an MLP on a real data set (the digits) and a small transformer on a synthetic
sequence task (:func:`~llcgeo.numerics.measurements.training.sequence_task`). Both end in a
final norm (:data:`NORMS`) and a linear softmax head, and both expose ``features`` (what the head
reads) and ``head``. Training them is :mod:`~llcgeo.numerics.measurements.training`; their
head's loss, its minimum and its exact Hessian, :mod:`~llcgeo.numerics.measurements.heads`.
"""

from __future__ import annotations

import torch
from torch import nn

from llcgeo.errors import EstimationError

NORMS = ("layernorm", "layernorm-affine", "rmsnorm", "none")


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
