"""Data on each manifold family, drawn with torch from an explicit generator.

One function, :func:`sample`, maps any spec of :mod:`llcgeo.manifolds` to draws from exactly the
distribution in that module's table (``a ~ N(0, I_d)`` throughout). Draws are made in float64 on
the generator's device and then converted, so the same seed gives the same points in every dtype.

>>> from llcgeo.manifolds import LayerNormImage
>>> g = torch.Generator().manual_seed(0)
>>> x = sample(LayerNormImage(4), 3, generator=g)
>>> x.shape, bool(x.sum(1).abs().max() < 1e-12)
(torch.Size([3, 4]), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from llcgeo import manifolds as mf
from llcgeo.errors import EstimationError, SpecError
from llcgeo.expr import fold
from llcgeo.limits import MAX_SAMPLES
from llcgeo.numerics.measurements.norms import layer_norm, rms_norm
from llcgeo.validate import integer

TORCH_FUNCTIONS = {"sin": torch.sin, "cos": torch.cos, "exp": torch.exp, "sqrt": torch.sqrt}
TORCH_CONSTANTS = {"pi": math.pi}
NEWTON_CHUNK = 1 << 16
NEWTON_STEPS = 60
NEWTON_ROUNDS = 8


def sample(spec, n: int, *, generator: torch.Generator, device="cpu", dtype=torch.float64):
    """``n`` points of ``spec``'s data distribution, a tensor of shape ``(n, spec.d)``.

    >>> from llcgeo.manifolds import Sphere
    >>> g = torch.Generator().manual_seed(1)
    >>> x = sample(Sphere(3, radius=2), 5, generator=g)
    >>> bool(torch.allclose(x.norm(dim=1), torch.full((5,), 2.0, dtype=torch.float64)))
    True
    """
    integer(n, "n (the number of samples)", 1, MAX_SAMPLES)
    draw = _SAMPLERS.get(type(spec))
    if draw is None:
        raise SpecError(f"no sampler for {type(spec).__name__}; expected a llcgeo.manifolds spec")
    x = draw(spec, n, generator)
    if not torch.isfinite(x).all():
        raise EstimationError(
            f"sampling {spec!r} produced NaN or infinite coordinates; the spec's formula is not "
            "finite on all of its domain (e.g. sqrt of a negative number, or LayerNorm with d=1)"
        )
    return x.to(device=device, dtype=dtype)


def gaussian_draws(n: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of ``N(0, I_d)`` in float64 on the generator's device (every family's
    ``a``)."""
    return torch.randn(n, d, generator=generator, dtype=torch.float64, device=generator.device)


def _vector(values, d: int, default: float, like: torch.Tensor) -> torch.Tensor:
    if values is None:
        return torch.full((d,), default, dtype=like.dtype, device=like.device)
    return torch.tensor([float(v) for v in values], dtype=like.dtype, device=like.device)


def _gaussian(spec: mf.Gaussian, n, generator):
    return gaussian_draws(n, spec.d, generator)


def _layernorm(spec: mf.LayerNormImage, n, generator):
    a = gaussian_draws(n, spec.d, generator)
    gain, bias = _vector(spec.gain, spec.d, 1.0, a), _vector(spec.bias, spec.d, 0.0, a)
    return layer_norm(a, gain, bias, float(spec.eps))


def _rmsnorm(spec: mf.RMSNormImage, n, generator):
    a = gaussian_draws(n, spec.d, generator)
    return rms_norm(a, _vector(spec.gain, spec.d, 1.0, a), float(spec.eps))


def _sphere(spec: mf.Sphere, n, generator):
    a = gaussian_draws(n, spec.d, generator)
    return float(spec.radius) * a / a.norm(dim=1, keepdim=True)


def _simplex(spec: mf.Simplex, n, generator):
    return torch.softmax(gaussian_draws(n, spec.d, generator), dim=1)


def _ellipsoid(spec: mf.Ellipsoid, n, generator):
    a = gaussian_draws(n, spec.d, generator)
    return _vector(spec.axes, spec.d, 1.0, a) * a / a.norm(dim=1, keepdim=True)


def _hyperplane(spec: mf.Hyperplane, n, generator):
    """Orthogonal projection ``a - (normal . a - offset) normal / |normal|^2``."""
    a = gaussian_draws(n, spec.d, generator)
    normal = _vector(spec.normal, spec.d, 0.0, a)
    residual = a @ normal - float(spec.offset)
    return a - residual[:, None] * normal / normal.dot(normal)


def _bumped_hyperplane(spec: mf.BumpedHyperplane, n, generator):
    """``x = (u, h(u_1))``, ``h = kappa/2 u_1^2`` on the strip ``|u_1| < half_width``, else 0."""
    u = gaussian_draws(n, spec.d - 1, generator)
    u1 = u[:, 0]
    inside = u1.abs() < spec.half_width
    height = torch.where(inside, 0.5 * float(spec.kappa) * u1.square(), torch.zeros_like(u1))
    return torch.cat([u, height[:, None]], dim=1)


def _fold_columns(expr, names, columns: torch.Tensor) -> torch.Tensor:
    """``expr`` evaluated row-wise with ``names[j]`` bound to ``columns[:, j]``."""
    env = {name: columns[:, j] for j, name in enumerate(names)}
    value = fold(expr, env, TORCH_FUNCTIONS, float, TORCH_CONSTANTS)
    return torch.as_tensor(value, dtype=columns.dtype, device=columns.device).expand(
        columns.shape[0]
    )


def _parametric(spec: mf.ParametricManifold, n, generator):
    """``x = phi(t)`` with ``t_j ~ Uniform(ranges_j)``."""
    lo = torch.tensor([float(r[0]) for r in spec.ranges], dtype=torch.float64)
    hi = torch.tensor([float(r[1]) for r in spec.ranges], dtype=torch.float64)
    u = torch.rand(
        n, len(spec.parameters), generator=generator, dtype=torch.float64, device=generator.device
    )
    t = lo.to(u.device) + (hi - lo).to(u.device) * u
    return torch.stack([_fold_columns(p, spec.parameters, t) for p in spec.phi], dim=1)


def _newton_project(spec: mf.ImplicitHypersurface, x: torch.Tensor):
    """Newton steps ``x <- x - F grad F / |grad F|^2``; returns the points and which converged.

    Rows are independent, so they are projected ``NEWTON_CHUNK`` at a time: the autograd graph,
    one tensor per node of ``F``, then holds a bounded number of rows whatever ``n`` is.
    """
    parts = [_newton_chunk(spec, chunk) for chunk in x.split(NEWTON_CHUNK)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _newton_chunk(spec: mf.ImplicitHypersurface, x: torch.Tensor):
    for _ in range(NEWTON_STEPS):
        value, grad = _value_and_gradient(spec, x)
        if not value.requires_grad:  # F is a constant: there is nothing to project onto
            return x.detach(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        with torch.no_grad():
            x = x - (value / grad.square().sum(dim=1))[:, None] * grad
    return x.detach(), _regular_zeros(spec, x.detach())


def _value_and_gradient(spec: mf.ImplicitHypersurface, x: torch.Tensor):
    x = x.detach().requires_grad_(True)
    value = _fold_columns(spec.F, spec.variables, x)
    if not value.requires_grad:
        return value, torch.zeros_like(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value, grad


def _regular_zeros(spec: mf.ImplicitHypersurface, x: torch.Tensor) -> torch.Tensor:
    """Which rows are regular zeros of F (:func:`llcgeo.manifolds.regular_zeros`)."""
    value, grad = _value_and_gradient(spec, x)
    h = mf.REGULAR_PROBE * float(spec.scale)
    u = torch.tensor(mf.regular_probe(spec.d), dtype=x.dtype, device=x.device)
    _, moved = _value_and_gradient(spec, x + h * u)
    with torch.no_grad():
        finite = torch.isfinite(x).all(dim=1) & torch.isfinite(value)
        size, slope = 1.0 + x.abs().amax(dim=1), grad.norm(dim=1)
        change = (moved - grad).norm(dim=1)
        return finite & mf.regular_zeros(value, slope, change, size, float(spec.scale))


def _implicit(spec: mf.ImplicitHypersurface, n, generator):
    """``scale * a`` projected onto ``F = 0``; points that do not reach a regular zero are
    redrawn, as many as the rate so far says are needed."""
    kept, have, drawn, overflowed = [], 0, 0, 0
    for _ in range(NEWTON_ROUNDS):
        rate = max(have / drawn, 1 / 64) if drawn else 1.0
        count = min(max(math.ceil(1.5 * (n - have) / rate), 16), 64 * n + 16)
        start = float(spec.scale) * gaussian_draws(count, spec.d, generator)
        x, ok = _newton_project(spec, start)
        kept.append(x[ok])
        have, drawn = have + int(ok.sum()), drawn + count
        overflowed += int((~torch.isfinite(x).all(dim=1)).sum())
        if have >= n:
            return torch.cat(kept)[:n].detach()
    raise EstimationError(_projection_failure(spec, n, have, overflowed))


def _projection_failure(spec: mf.ImplicitHypersurface, n: int, have: int, overflowed: int) -> str:
    if overflowed and not have:
        return (
            f"Newton projection onto F = 0 overflowed float64 for {overflowed} starting points "
            "and found no regular zero: F or its gradient is too large there (divide F by its "
            "largest coefficient), or every zero of F is singular (a repeated factor)"
        )
    return (
        f"Newton projection onto F = 0 reached a regular zero (grad F != 0) for only {have} of "
        f"the {n} points asked for after {NEWTON_ROUNDS} rounds; is the zero set of F real and "
        f"near radius ~{spec.scale}, and is no factor of F repeated?"
    )


_SAMPLERS: dict[type, Callable[..., torch.Tensor]] = {
    mf.Gaussian: _gaussian,
    mf.LayerNormImage: _layernorm,
    mf.RMSNormImage: _rmsnorm,
    mf.Sphere: _sphere,
    mf.Simplex: _simplex,
    mf.Ellipsoid: _ellipsoid,
    mf.Hyperplane: _hyperplane,
    mf.BumpedHyperplane: _bumped_hyperplane,
    mf.ParametricManifold: _parametric,
    mf.ImplicitHypersurface: _implicit,
}


def register_sampler(spec: type):
    """Decorator: ``draw(spec, n, generator) -> (n, spec.d)`` float64 tensor on the
    generator's device becomes how :func:`sample` draws a registered family's data (see
    :func:`llcgeo.manifolds.register_family`)."""

    def register(draw: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        _SAMPLERS[spec] = draw
        return draw

    return register
