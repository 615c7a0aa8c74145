"""Measure what ``llcgeo.theory`` predicts: data on manifolds and batched SGLD LLC estimates.

Pure torch/numpy: no sympy, no files, no drawing. Chains advance together as a batch dimension;
randomness comes from explicit generators seeded from one integer.

Its rooms, each importing only from those below it: :mod:`~llcgeo.numerics.sampling` (the
kernels and their diagnostics, knowing no model), :mod:`~llcgeo.numerics.paths` (a model and its
data made into a :class:`~llcgeo.numerics.paths.problem.Problem`), the runner that joins the
two with :mod:`~llcgeo.numerics.estimate`, :mod:`~llcgeo.numerics.plan` and
:mod:`~llcgeo.numerics.sweep` beside it, and :mod:`~llcgeo.numerics.measurements` (the suites'
measurements and the data on each manifold). :mod:`~llcgeo.numerics.device` and
:mod:`~llcgeo.numerics.result` serve them all.
"""

from llcgeo.config import SGLDConfig
from llcgeo.numerics.estimate import estimate_llc
from llcgeo.numerics.measurements.isometry import IsometrySpec, IsometryTrace, simulate_isometry
from llcgeo.numerics.measurements.layernorm_geometry import (
    LayerNormSampling,
    measure_layernorm_geometry,
)
from llcgeo.numerics.measurements.lipschitz import LipschitzSpec, measure_lipschitz
from llcgeo.numerics.measurements.manifold_data import sample
from llcgeo.numerics.measurements.teacher_student import (
    LinearMeasurement,
    TeacherStudent,
    measure_linear,
    teacher_student,
)
from llcgeo.numerics.paths.losses import cross_entropy
from llcgeo.numerics.paths.masks import refine_masks
from llcgeo.numerics.result import LLCEstimate
from llcgeo.numerics.sampling.diagnostics import ess, rhat
from llcgeo.numerics.sampling.kernels import KERNELS
from llcgeo.numerics.sampling.sgld import (
    SGLDInfo,
    SGLDState,
    bounding_box,
    build_kernel,
    init,
    localized_gradient,
    run_chains,
)

__all__ = [
    "KERNELS",
    "IsometrySpec",
    "IsometryTrace",
    "LLCEstimate",
    "LayerNormSampling",
    "LinearMeasurement",
    "LipschitzSpec",
    "SGLDConfig",
    "SGLDInfo",
    "SGLDState",
    "TeacherStudent",
    "bounding_box",
    "build_kernel",
    "cross_entropy",
    "localized_gradient",
    "ess",
    "estimate_llc",
    "init",
    "measure_layernorm_geometry",
    "measure_linear",
    "measure_lipschitz",
    "refine_masks",
    "rhat",
    "run_chains",
    "sample",
    "simulate_isometry",
    "teacher_student",
]
