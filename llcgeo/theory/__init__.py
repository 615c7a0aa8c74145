"""Exact, symbolic predictions (sympy): spans, Hessian ranks, LLCs, SGLD expectations."""

from llcgeo.theory.hypersurface import as_hypersurface, second_fundamental_form
from llcgeo.theory.llc import (
    D_SYMBOL,
    M_SYMBOL,
    LLCPrediction,
    PopulationHessian,
    population_hessian,
    predicted_llc,
)
from llcgeo.theory.moments import bump_curvature_eigenvalue, bump_normal_moments, second_moment
from llcgeo.theory.sgld import SGLDExpectation, expected_sgld_estimate
from llcgeo.theory.support import (
    AffineSupport,
    affine_hull_dimension,
    affine_support,
    is_affinely_flat,
    span_dimension,
)

shape_operator = second_fundamental_form

__all__ = [
    "D_SYMBOL",
    "M_SYMBOL",
    "AffineSupport",
    "LLCPrediction",
    "PopulationHessian",
    "SGLDExpectation",
    "affine_hull_dimension",
    "affine_support",
    "as_hypersurface",
    "bump_curvature_eigenvalue",
    "bump_normal_moments",
    "expected_sgld_estimate",
    "is_affinely_flat",
    "population_hessian",
    "predicted_llc",
    "second_fundamental_form",
    "second_moment",
    "shape_operator",
    "span_dimension",
]
