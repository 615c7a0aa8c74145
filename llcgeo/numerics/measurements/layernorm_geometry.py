"""Where LayerNorm's outputs actually land: samples measured against a predicted hyperellipsoid.

Inputs ``a ~ N(0, input_variance I_N)`` go through
``LN(a) = g * (a - mean(a)) / sqrt(var(a) + eps) + b`` (population variance). For the outputs
``y`` and the predicted principal axes ``u_k`` (rows of ``axes``), with ``c = y - b``:

* hyperplane deviation ``|alpha . c| / |alpha|``, ``alpha = 1/g`` (0 up to rounding);
* Mahalanobis radius ``sqrt(c^T G^-2 c)`` (below ``sqrt(N)``) and its squared deficit
  ``1 - c^T G^-2 c / N`` (how far inside the surface a sample lies);
* along each axis, the largest ``|u_k . c|`` (at most the semi-axis) and the mean of
  ``(u_k . c)**2``.

>>> spec = LayerNormSampling(gain=(1.0, 2.0, 3.0), eps=0.0, samples=500)
>>> m = measure_layernorm_geometry(spec, axes=((1.0, 0.0, 0.0),), device="cpu")
>>> m.max_plane_deviation < 1e-12, abs(m.max_radius - 3 ** 0.5) < 1e-12
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from llcgeo.errors import SpecError
from llcgeo.numerics.device import (
    check_draws,
    generators,
    resolve_device,
    resolve_dtype,
    small_operation,
)
from llcgeo.numerics.measurements.norms import layer_norm
from llcgeo.validate import finite, integer, non_negative, positive

KEEP = 400  # samples returned as they are, for a scatter plot


@dataclass(frozen=True)
class LayerNormSampling:
    """LayerNorm with ``gain`` (no zero entry), ``bias`` (default 0), ``eps``, fed ``samples``
    Gaussian inputs of variance ``input_variance`` drawn from ``seed``."""

    gain: tuple[float, ...]
    bias: tuple[float, ...] | None = None
    eps: float = 1e-5
    samples: int = 10_000
    input_variance: float = 1.0
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self):
        gain = tuple(finite(g, f"gain[{i}]") for i, g in enumerate(self.gain))
        if len(gain) < 2:
            raise SpecError(f"LayerNorm needs at least 2 coordinates, got {len(gain)}")
        for i, g in enumerate(gain):
            if g == 0:
                raise SpecError(
                    f"gain[{i}] = 0: coordinate {i} of the output is the constant bias[{i}], "
                    f"so the image lies in the subspace {{y_{i} = bias[{i}]}}; give non-zero gains"
                )
        object.__setattr__(self, "gain", gain)
        bias = (0.0,) * len(gain) if self.bias is None else self.bias
        bias = tuple(finite(b, f"bias[{i}]") for i, b in enumerate(bias))
        if len(bias) != len(gain):
            raise SpecError(f"bias has {len(bias)} entries but gain has {len(gain)}")
        object.__setattr__(self, "bias", bias)
        non_negative(self.eps, "eps")
        positive(self.input_variance, "input_variance")
        integer(self.samples, "samples", 2)
        check_draws(self.seed, self.dtype)


@dataclass(frozen=True)
class GeometryMeasurement:
    """What the samples show (see the module docstring); ``deficit_*`` are of ``1 - r**2``,
    ``axis_*`` per row of the given axes; ``projected`` the first samples' axis coordinates."""

    spec: LayerNormSampling
    max_plane_deviation: float
    max_radius: float
    deficit_mean: float
    deficit_sd: float
    axis_max: tuple[float, ...]
    axis_mean_square: tuple[float, ...]
    axis_square_sd: tuple[float, ...]
    projected: tuple[tuple[float, ...], ...]
    device: str


def sample_layernorm(spec: LayerNormSampling, device: str = "auto") -> torch.Tensor:
    """``spec.samples`` outputs of LayerNorm on Gaussian inputs, shape ``(samples, N)``."""
    dev, dtype = resolve_device(device), resolve_dtype(spec.dtype)
    (generator,) = generators(spec.seed, 1, dev)
    n = len(spec.gain)
    a = torch.randn(spec.samples, n, generator=generator, dtype=dtype, device=dev)
    gain = torch.tensor(spec.gain, dtype=dtype, device=dev)
    bias = torch.tensor(spec.bias, dtype=dtype, device=dev)
    return layer_norm(a * math.sqrt(spec.input_variance), gain, bias, spec.eps)


def _axes_tensor(axes, n: int, like: torch.Tensor) -> torch.Tensor:
    out = torch.tensor([list(map(float, u)) for u in axes], dtype=like.dtype, device=like.device)
    if out.ndim != 2 or out.shape[1] != n:
        raise SpecError(
            f"axes must be a list of vectors of length {n}, got shape {tuple(out.shape)}"
        )
    return out


def measure_layernorm_geometry(
    spec: LayerNormSampling, axes, device: str = "auto"
) -> GeometryMeasurement:
    """Sample LayerNorm and measure the outputs against ``axes`` (unit vectors, one per row)."""
    entries = spec.samples * len(spec.gain)
    with small_operation(device, entries):
        return _measure(spec, axes, sample_layernorm(spec, device))


def _measure(spec: LayerNormSampling, axes, y: torch.Tensor) -> GeometryMeasurement:
    n = y.shape[1]
    gain = torch.tensor(spec.gain, dtype=y.dtype, device=y.device)
    c = y - torch.tensor(spec.bias, dtype=y.dtype, device=y.device)
    alpha = 1 / gain
    plane = (c @ alpha).abs() / alpha.norm()
    r2 = (c / gain).pow(2).sum(-1) / n
    coords = c @ _axes_tensor(axes, n, y).T
    square = coords.pow(2)
    return GeometryMeasurement(
        spec=spec,
        max_plane_deviation=float(plane.max()),
        max_radius=float((n * r2).sqrt().max()),
        deficit_mean=float((1 - r2).mean()),
        deficit_sd=float((1 - r2).std()),
        axis_max=tuple(coords.abs().amax(0).tolist()),
        axis_mean_square=tuple(square.mean(0).tolist()),
        axis_square_sd=tuple(square.std(0).tolist()),
        projected=tuple(tuple(row) for row in coords[:KEEP].tolist()),
        device=str(y.device),
    )
