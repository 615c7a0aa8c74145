"""Measure what ``llcgeo.theory`` predicts: data on manifolds and batched SGLD LLC estimates.

Pure torch/numpy: no sympy, no files, no drawing. Chains advance together as a batch dimension;
randomness comes from explicit generators seeded from one integer.
"""

from llcgeo.config import SGLDConfig
from llcgeo.numerics.diagnostics import ess, rhat
from llcgeo.numerics.estimate import estimate_llc
from llcgeo.numerics.isometry import IsometrySpec, IsometryTrace, simulate_isometry
from llcgeo.numerics.kernels import KERNELS
from llcgeo.numerics.layernorm_geometry import LayerNormSampling, measure_layernorm_geometry
from llcgeo.numerics.lipschitz import LipschitzSpec, measure_lipschitz
from llcgeo.numerics.masks import refine_masks
from llcgeo.numerics.measure import (
    LinearMeasurement,
    TeacherStudent,
    measure_linear,
    teacher_student,
)
from llcgeo.numerics.result import LLCEstimate
from llcgeo.numerics.samplers import sample
from llcgeo.numerics.sgld import (
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
