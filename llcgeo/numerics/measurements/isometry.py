"""How the Gram matrix of a batch evolves through a deep random MLP, batched over networks.

Three layer types, ``W`` with i.i.d. ``N(0, weight_variance / width)`` entries::

    "norm_after_act":   x <- LN(act(W x))
    "norm_before_act":  x <- act(LN(W x))
    "no_norm":          x <- act(W x)

LN has no gain or bias and uses the population variance over the ``width`` units. A layer needs
only the pre-activations of the batch, and for Gaussian ``W`` those are exactly
``A = S Z`` with ``S = (weight_variance G / width)**(1/2)``, ``G = X X^T`` the batch's Gram
matrix and ``Z`` standard normal of shape ``(batch, width)``: row ``i`` of ``W`` gives the
``N(0, S**2)`` vector ``(w_i . x_1, ..., w_i . x_n)``, independently over ``i``. So a layer costs
``O(batch * width)`` draws instead of ``width**2``, and depth 100 at width 4096 is cheap.

Measured per layer and network: the isometry gap ``-log I(G)``,
``I(G) = det(G)**(1/n) / (tr(G)/n)`` (0 exactly when ``G`` is a multiple of the identity), the
mean off-diagonal cosine ``G_ab / sqrt(G_aa G_bb)`` and its largest absolute value.

>>> trace = simulate_isometry(IsometrySpec("relu", width=64, depth=3, networks=2), device="cpu")
>>> len(trace.gap[0]), trace.gap[0][0] > trace.gap[0][3]
(4, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llcgeo.errors import SpecError
from llcgeo.limits import MAX_DEPTH
from llcgeo.numerics.device import check_draws, generators, resolve_dtype, small_operation
from llcgeo.numerics.measurements.norms import layer_norm
from llcgeo.validate import between, integer, positive

ORDERS = ("norm_after_act", "norm_before_act", "no_norm")
ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sin": torch.sin,
    "gelu": torch.nn.functional.gelu,
    "linear": lambda x: x,
}


def activation(name: str):
    """The torch function of an activation name (a :class:`SpecError` for an unknown one)."""
    if name not in ACTIVATIONS:
        raise SpecError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


@dataclass(frozen=True)
class IsometrySpec:
    """A batch of ``batch`` inputs with pairwise cosine ``rho0`` (each ``|x|**2 = width``), sent
    through ``networks`` independent random MLPs of ``depth`` layers."""

    activation: str
    order: str = "norm_after_act"
    width: int = 256
    batch: int = 4
    depth: int = 20
    networks: int = 8
    rho0: float = 0.9
    weight_variance: float = 1.0
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self):
        activation(self.activation)
        if self.order not in ORDERS:
            raise SpecError(f"order must be one of {ORDERS}, got {self.order!r}")
        integer(self.width, "width", 1)
        integer(self.batch, "batch", 2)
        integer(self.depth, "depth", 1, MAX_DEPTH)
        integer(self.networks, "networks", 1)
        between(
            self.rho0,
            "rho0 (full-rank batch)",
            -1 / (self.batch - 1),
            1,
            open_low=True,
            open_high=True,
        )
        positive(self.weight_variance, "weight_variance")
        check_draws(self.seed, self.dtype)


@dataclass(frozen=True)
class IsometryTrace:
    """Per network (outer) and layer ``0..depth`` (inner): gap, mean and max |cosine|."""

    spec: IsometrySpec
    gap: tuple[tuple[float, ...], ...]
    mean_cosine: tuple[tuple[float, ...], ...]
    max_cosine: tuple[tuple[float, ...], ...]
    device: str


def isometry_gap(gram: torch.Tensor) -> torch.Tensor:
    """``-log I(G) = log(tr(G)/n) - mean(log eig(G))`` over the last two axes (``+inf`` when
    ``G`` is singular)."""
    eig = torch.linalg.eigvalsh(gram)
    return eig.mean(-1).log() - eig.clamp_min(0).log().mean(-1)


def cosines(gram: torch.Tensor) -> torch.Tensor:
    """The off-diagonal cosines ``G_ab / sqrt(G_aa G_bb)``, flattened per leading index."""
    scale = gram.diagonal(dim1=-2, dim2=-1).rsqrt()
    cos = gram * scale[..., :, None] * scale[..., None, :]
    n = gram.shape[-1]
    off = ~torch.eye(n, dtype=torch.bool, device=gram.device)
    return cos[..., off]


def _inputs(spec: IsometrySpec, generator, device, dtype) -> torch.Tensor:
    n = spec.batch
    target = torch.full((n, n), spec.rho0, dtype=dtype, device=device)
    target.fill_diagonal_(1.0)
    z = torch.randn(spec.networks, n, spec.width, generator=generator, dtype=dtype, device=device)
    x = torch.linalg.cholesky(target) @ z
    return x * (spec.width / x.pow(2).sum(-1, keepdim=True)).sqrt()


def _layer(x: torch.Tensor, spec: IsometrySpec, generator) -> torch.Tensor:
    gram = x @ x.transpose(-1, -2) * (spec.weight_variance / spec.width)
    eig, vec = torch.linalg.eigh(gram)
    root = vec @ torch.diag_embed(eig.clamp_min(0).sqrt()) @ vec.transpose(-1, -2)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    pre = root @ z
    act = ACTIVATIONS[spec.activation]
    if spec.order == "norm_after_act":
        return layer_norm(act(pre))
    if spec.order == "norm_before_act":
        return act(layer_norm(pre))
    return act(pre)


def _measure(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gram = x @ x.transpose(-1, -2)
    cos = cosines(gram)
    return isometry_gap(gram), cos.mean(-1), cos.abs().amax(-1)


def simulate_isometry(spec: IsometrySpec, device: str = "auto") -> IsometryTrace:
    """Run ``spec.networks`` networks side by side (one batched tensor) and measure every layer."""
    with small_operation(device, spec.networks * spec.width * spec.width) as dev:
        return _simulate_isometry(spec, dev)


def _simulate_isometry(spec: IsometrySpec, dev: torch.device) -> IsometryTrace:
    dtype = resolve_dtype(spec.dtype)
    (generator,) = generators(spec.seed, 1, dev)
    x = _inputs(spec, generator, dev, dtype)
    rows = [_measure(x)]
    for _ in range(spec.depth):
        x = _layer(x, spec, generator)
        rows.append(_measure(x))
    gap, mean_cos, max_cos = (torch.stack(col, dim=-1).cpu().tolist() for col in zip(*rows))
    return IsometryTrace(
        spec=spec,
        gap=_tuples(gap),
        mean_cosine=_tuples(mean_cos),
        max_cosine=_tuples(max_cos),
        device=str(dev),
    )


def _tuples(rows: list[list[float]]) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(row) for row in rows)
