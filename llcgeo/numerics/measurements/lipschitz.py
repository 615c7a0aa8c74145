"""Local Lipschitz constants of deep random MLPs, with respect to inputs and to parameters.

The network, ``W_l`` with i.i.d. ``N(0, weight_scale**2 / width)`` entries, ``l = 1..depth``::

    a_l = W_l x_{l-1},    x_l = act(N(a_l)),    f(x_0) = x_depth

with ``N`` the identity ("none"), LayerNorm (``(a - mean a) / sqrt(var a + eps)``) or RMSNorm
(``a / sqrt(mean(a**2) + eps)``), gains 1 and no bias. Inputs ``x_0 ~ N(0, input_variance I)``.

At each input and for each depth ``L`` in ``spec.depths`` (the first ``L`` layers of the same
networks), power iteration with ``torch.func`` estimates

* the input Lipschitz constant ``|| d f / d x_0 ||_2`` (iterating ``v <- J^T J v``), and
* the parameter Lipschitz constant ``|| d f / d (W_1, ..., W_L) ||_2`` (Frobenius norm on the
  weights; iterating ``u <- J J^T u`` in output space, see :func:`parameter_lipschitz`).

Both estimates are ``|J v|`` (or ``|J^T u|``) for a unit vector, hence lower bounds of the true
spectral norm.
Alongside, the ingredients of the layer-wise bounds: ``||W_l||_2`` (exact, by SVD), the
normalization's local Lipschitz factor ``1 / sqrt(var(a_l) + eps)`` (LayerNorm) or
``1 / sqrt(mean(a_l**2) + eps)`` (RMSNorm) at each input, and ``|x_{l-1}|``.
All networks and inputs are one batched tensor; the only Python loops run over layers, depths
and iterations.

>>> spec = LipschitzSpec("relu", "layernorm", width=16, depths=(1, 2), networks=2, points=3)
>>> m = measure_lipschitz(spec, device="cpu")
>>> len(m.input_lipschitz), len(m.input_lipschitz[0]), len(m.input_lipschitz[0][0])
(2, 3, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import jvp, vjp

from llcgeo.errors import SpecError
from llcgeo.limits import MAX_DEPTH
from llcgeo.numerics.device import check_draws, generators, resolve_dtype, small_operation
from llcgeo.numerics.measurements.isometry import activation
from llcgeo.numerics.measurements.norms import KINDS, normalize
from llcgeo.validate import integer, non_negative, positive

NORMALIZATIONS = KINDS


@dataclass(frozen=True)
class LipschitzSpec:
    """``networks`` random MLPs of width ``width``, probed at ``points`` inputs each, for every
    depth in ``depths`` (increasing), by ``iterations`` power-iteration steps."""

    activation: str
    normalization: str = "none"
    width: int = 64
    depths: tuple[int, ...] = (1, 2, 4, 8)
    weight_scale: float = 2.0
    input_variance: float = 1.0
    networks: int = 4
    points: int = 8
    iterations: int = 30
    eps: float = 1e-5
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self):
        activation(self.activation)
        if self.normalization not in NORMALIZATIONS:
            raise SpecError(
                f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        integer(self.width, "width")
        depths = tuple(self.depths)
        if not depths:
            raise SpecError("depths must list at least one depth")
        for depth in depths:
            integer(depth, "depth")
        if list(depths) != sorted(set(depths)) or depths[-1] > MAX_DEPTH:
            raise SpecError(f"depths must increase strictly, up to {MAX_DEPTH}, got {depths}")
        object.__setattr__(self, "depths", depths)
        for name in ("networks", "points", "iterations"):
            integer(getattr(self, name), name)
        positive(self.weight_scale, "weight_scale")
        positive(self.input_variance, "input_variance")
        non_negative(self.eps, "eps")
        check_draws(self.seed, self.dtype)


@dataclass(frozen=True)
class LipschitzMeasurement:
    """Nested tuples indexed ``[network][point][depth index]`` for the two estimates,
    ``[network][layer]`` for ``weight_norms``, ``[network][point][layer]`` for
    ``norm_factors`` (1 without normalization) and ``input_norms`` (``|x_{l-1}|``)."""

    spec: LipschitzSpec
    input_lipschitz: tuple
    parameter_lipschitz: tuple
    weight_norms: tuple
    norm_factors: tuple
    input_norms: tuple
    device: str


def forward(weights, x: torch.Tensor, spec: LipschitzSpec, shifts=None) -> torch.Tensor:
    """``x_L`` for ``x`` of shape ``(networks, points, width)`` and weights stacked per network
    ``(networks, width, width)``; ``shifts[l]``, if given, is added to ``a_l``."""
    act = activation(spec.activation)
    for layer, w in enumerate(weights):
        pre = x @ w.transpose(-1, -2)
        if shifts is not None:
            pre = pre + shifts[layer]
        x = act(normalize(pre, spec.normalization, spec.eps)[0])
    return x


def _trace(weights, x: torch.Tensor, spec: LipschitzSpec):
    """Per layer: the normalization's local factor and the layer input's norm, ``(R, B, L)``."""
    factors, norms = [], []
    act = activation(spec.activation)
    for w in weights:
        norms.append(x.norm(dim=-1))
        normed, factor = normalize(x @ w.transpose(-1, -2), spec.normalization, spec.eps)
        factors.append(factor)
        x = act(normed)
    return torch.stack(factors, -1), torch.stack(norms, -1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    # a dead ReLU network has J = 0; keep its iterate at 0 rather than 0/0
    return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def input_lipschitz(weights, x, spec: LipschitzSpec, generator) -> torch.Tensor:
    """``|J v|`` after power iteration on ``J^T J``, ``J = d f / d x`` at each input, ``(R, B)``.

    Output ``(r, b)`` depends on input ``(r, b)`` only, so one ``jvp`` / ``vjp`` over the whole
    batch applies every input's own Jacobian at once.
    """

    def fn(inputs):
        return forward(weights, inputs, spec)

    def push(v):
        return jvp(fn, (x,), (v,))[1]

    _, pull = vjp(fn, x)
    v = _unit(torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device))
    for _ in range(spec.iterations):
        v = _unit(pull(push(v))[0])
    return push(v).norm(dim=-1)


def parameter_lipschitz(weights, x, spec: LipschitzSpec, generator, input_norms):
    """``|J^T u|`` after power iteration on ``J J^T``, ``J = d f(x) / d weights``, ``(R, B)``.

    ``f`` depends on ``W_l`` through ``a_l = W_l x_{l-1}`` only, so with ``s_l`` a shift added to
    ``a_l`` (at ``s = 0``): ``J_W[G] = J_s[G x_{l-1}]`` and ``J_W^T u = (J_s^T u) x_{l-1}^T``,
    which makes ``J J^T u = sum_l |x_{l-1}|**2 J_{s_l} J_{s_l}^T u``. The shifts are per input,
    so one ``vjp`` / ``jvp`` pair gives every input its own parameter Jacobian.
    ``input_norms`` is ``|x_{l-1}|`` per network, input and layer.
    """
    zeros = tuple(torch.zeros_like(x) for _ in weights)
    square = input_norms[..., : len(weights)].pow(2)

    def fn(shifts):
        return forward(weights, x, spec, shifts)

    _, pull = vjp(fn, zeros)

    def step(u):
        (pulled,) = pull(u)
        tangents = tuple(c * square[..., layer, None] for layer, c in enumerate(pulled))
        norm = sum(c.pow(2).sum(-1) * square[..., layer] for layer, c in enumerate(pulled))
        return jvp(fn, (zeros,), (tangents,))[1], norm.sqrt()

    u = _unit(torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device))
    for _ in range(spec.iterations):
        u = _unit(step(u)[0])
    return step(u)[1]


def measure_lipschitz(spec: LipschitzSpec, device: str = "auto") -> LipschitzMeasurement:
    """Draw the networks and inputs from ``spec.seed`` and measure every depth."""
    entries = spec.networks * spec.width * max(spec.width, spec.points)
    with small_operation(device, entries) as dev:
        return _measure_lipschitz(spec, dev)


def _measure_lipschitz(spec: LipschitzSpec, dev: torch.device) -> LipschitzMeasurement:
    dtype = resolve_dtype(spec.dtype)
    draw, probe = generators(spec.seed, 2, dev)
    shape = (spec.networks, spec.width, spec.width)
    std = spec.weight_scale / math.sqrt(spec.width)
    weights = tuple(
        torch.randn(shape, generator=draw, dtype=dtype, device=dev) * std
        for _ in range(spec.depths[-1])
    )
    x = torch.randn(spec.networks, spec.points, spec.width, generator=draw, dtype=dtype, device=dev)
    x = x * math.sqrt(spec.input_variance)
    factors, norms = _trace(weights, x, spec)
    by_depth = [
        (
            input_lipschitz(weights[:depth], x, spec, probe),
            parameter_lipschitz(weights[:depth], x, spec, probe, norms),
        )
        for depth in spec.depths
    ]
    return LipschitzMeasurement(
        spec=spec,
        input_lipschitz=_nested(torch.stack([m[0] for m in by_depth], -1)),
        parameter_lipschitz=_nested(torch.stack([m[1] for m in by_depth], -1)),
        weight_norms=_nested(torch.stack([torch.linalg.matrix_norm(w, 2) for w in weights], -1)),
        norm_factors=_nested(factors),
        input_norms=_nested(norms),
        device=str(dev),
    )


def _nested(t: torch.Tensor):
    out = t.cpu().tolist()

    def freeze(v):
        return tuple(freeze(i) for i in v) if isinstance(v, list) else v

    return freeze(out)
