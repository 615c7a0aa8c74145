"""Teacher-student data on a manifold and the measured LLC of a linear layer fitted to it.

The seed is split into independent streams (``data``, ``teacher``, ``noise``, ``sgld``), so
changing, say, ``sigma`` leaves the points ``x`` and the SGLD noise as they were.

>>> from llcgeo.manifolds import LayerNormImage, LinearLayer
>>> config = SGLDConfig(eps=1e-4, chains=2, steps=200, burnin=50)
>>> r = measure_linear(LayerNormImage(4), LinearLayer(2), "all", 1000, config, seed=0,
...                    device="cpu")
>>> r.hessian_eigenvalues.shape, float(r.hessian_eigenvalues[0]) < 1e-12
((8,), True)
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from llcgeo.config import SGLDConfig
from llcgeo.errors import SpecError
from llcgeo.limits import check_linear_run
from llcgeo.manifolds import LinearLayer, check_refine, check_samples
from llcgeo.numerics.device import make_generator, resolve_device, stream, thread_policy
from llcgeo.numerics.estimate import estimate_problem
from llcgeo.numerics.measurements.manifold_data import sample
from llcgeo.numerics.paths.linear import design_matrix, linear_problem
from llcgeo.numerics.paths.masks import flatten_masks, refine_masks
from llcgeo.numerics.paths.problem import Problem
from llcgeo.numerics.result import LLCEstimate
from llcgeo.validate import non_negative

CPU = torch.device("cpu")


@dataclass(frozen=True)
class TeacherStudent:
    """``y = theta_T z + sigma * noise`` (``z = x`` or ``(x, 1)``, ``theta_T = [W*, b*]`` with
    N(0, 1) entries) and the least-squares fit ``fitted`` of ``theta`` on the sample: the chain
    centre, where the empirical gradient vanishes. Float64 tensors on the CPU."""

    inputs: torch.Tensor
    targets: torch.Tensor
    teacher: torch.Tensor
    fitted: torch.Tensor
    bias: bool

    def __post_init__(self):
        n, p = self.inputs.shape[0], self.inputs.shape[1] + self.bias
        if self.targets.shape[0] != n or self.fitted.shape != (self.targets.shape[1], p):
            raise SpecError("targets and fitted parameters do not match the inputs")

    def as_linear(self) -> torch.nn.Linear:
        """The fit as a float64 ``torch.nn.Linear`` (with a bias when the fit has one)."""
        d = self.inputs.shape[1]
        layer = torch.nn.Linear(d, self.fitted.shape[0], bias=self.bias, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(self.fitted[:, :d])
            if self.bias:
                layer.bias.copy_(self.fitted[:, d])
        return layer


def least_squares(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The minimum-norm ``theta`` (``(m, p)``) minimising ``|y - z theta^T|^2`` (float64, SVD
    based, so rank-deficient ``z`` such as LayerNorm data without a bias is handled)."""
    return torch.linalg.lstsq(
        z.to(CPU, torch.float64), y.to(CPU, torch.float64), driver="gelsd"
    ).solution.T


def teacher_student(manifold, layer: LinearLayer, n: int, *, seed: int, sigma: float = 0.5):
    """Draw ``x`` from ``manifold``, a teacher, noisy targets, and fit the student."""
    non_negative(sigma, "sigma")
    x = sample(manifold, n, generator=make_generator(stream(seed, "data"), CPU))
    z = design_matrix(x, layer.bias)
    teacher = torch.randn(
        layer.m,
        z.shape[1],
        generator=make_generator(stream(seed, "teacher"), CPU),
        dtype=torch.float64,
    )
    noise = torch.randn(
        n, layer.m, generator=make_generator(stream(seed, "noise"), CPU), dtype=torch.float64
    )
    y = z @ teacher.T + sigma * noise
    return TeacherStudent(x, y, teacher, least_squares(z, y), layer.bias)


@dataclass(frozen=True)
class LinearMeasurement:
    """A measured LLC with what theory needs to predict it: the eigenvalues (float64, with
    multiplicity ``m``) of the block of the sample Hessian ``I_m (x) Z^T Z / n`` that moves, the
    ``nbeta`` used and the sample size ``n``; on a minibatch run, ``moments`` computes the
    data's moments for the exact minibatch expectation when first asked
    (:attr:`data_moments`)."""

    estimate: LLCEstimate
    hessian_eigenvalues: np.ndarray
    nbeta: float
    n: int
    moments: Any = None  # () -> DataMoments | None, on a minibatch run

    @functools.cached_property
    def data_moments(self):
        """:class:`llcgeo.numerics.paths.linear.DataMoments` (None on a full-batch run, or for a
        layer too wide for its fourth moment), computed once, when a verdict first needs it."""
        return None if self.moments is None else self.moments()

    def __post_init__(self):
        values = np.array(self.hessian_eigenvalues, dtype=np.float64)
        if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise SpecError("hessian_eigenvalues must be a 1-D array of finite values >= 0")
        values.flags.writeable = False
        object.__setattr__(self, "hessian_eigenvalues", values)


def measure_linear(
    manifold,
    layer: LinearLayer,
    refine: str,
    n: int,
    config: SGLDConfig,
    *,
    seed: int,
    sigma: float = 0.5,
    device="auto",
    progress=None,
):
    """The SGLD estimate of the (weight-refined) LLC of ``layer`` fitted to teacher-student
    data on ``manifold``, centred at the least-squares fit."""
    started = time.perf_counter()
    problem = case_problem(manifold, layer, refine, n, config, seed=seed, sigma=sigma,
                           device=device)  # fmt: skip
    return measure_problem(problem, config, seed=seed, progress=progress, started=started)


def case_problem(manifold, layer: LinearLayer, refine: str, n: int, config: SGLDConfig, *,
                 seed: int, sigma: float = 0.5, device="auto") -> Problem:  # fmt: skip
    """The fast-path :class:`~llcgeo.numerics.paths.problem.Problem` of a case: its teacher-student
    data drawn from ``seed``, the layer fitted, the block of the Hessian ``refine`` moves. It
    depends on ``config`` only through nbeta, the dtype and the batch size, so a calibration
    on it holds for the measurement that follows (:func:`measure_problem`)."""
    check_refine(refine, layer)
    check_samples(n)
    sizes = dict(n=n, d=manifold.d, m=layer.m, bias=layer.bias)
    check_linear_run(**sizes, chains=config.chains, steps=config.steps)
    target = resolve_device(device)
    with thread_policy(config.chains * layer.m * (manifold.d + layer.bias), target):
        data = teacher_student(manifold, layer, n, seed=seed, sigma=sigma)
        return _problem(data, layer, refine, config, target)


def measure_problem(problem: Problem, config: SGLDConfig, *, seed: int, progress=None,
                    started: float | None = None) -> LinearMeasurement:  # fmt: skip
    """The :class:`LinearMeasurement` of a case's problem at these settings."""
    started = time.perf_counter() if started is None else started
    estimate = estimate_problem(problem, config, seed=seed, progress=progress, started=started)
    exact, posterior = problem.exact, problem.posterior
    return LinearMeasurement(
        estimate, exact.hessian_eigenvalues, posterior.nbeta, posterior.n, exact.moments
    )


def _problem(data: TeacherStudent, layer: LinearLayer, refine: str, config, target):
    """The fast-path problem around the fit (it carries the eigenvalues of the Hessian block
    that the refinement moves)."""
    d = data.inputs.shape[1]
    shapes = {"weight": torch.Size([layer.m, d])}
    if layer.bias:
        shapes["bias"] = torch.Size([layer.m])
    mask = flatten_masks(shapes, refine_masks(layer, refine, d), device=target)
    x, y, theta = (t.to(target) for t in (data.inputs, data.targets, data.fitted))
    return linear_problem(x, y, theta, config, mask)
