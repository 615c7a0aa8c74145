"""Exact, symbolic predictions (sympy): spans, Hessian ranks, LLCs, SGLD expectations."""

from llcgeo.theory.hermite import (
    ACTIVATIONS,
    correlation_map,
    hermite_coefficients,
    mean_field_correlations,
    nonlinearity_strength,
    relu_hermite_coefficient,
)
from llcgeo.theory.hypersurface import as_hypersurface, second_fundamental_form
from llcgeo.theory.layernorm_geometry import LayerNormEllipsoid, layernorm_ellipsoid
from llcgeo.theory.lipschitz import log_input_bound, log_parameter_bound
from llcgeo.theory.llc import (
    D_SYMBOL,
    M_SYMBOL,
    LLCPrediction,
    PopulationHessian,
    population_hessian,
    predicted_llc,
)
from llcgeo.theory.moments import bump_curvature_eigenvalue, bump_normal_moments, second_moment
from llcgeo.theory.sgld import (
    SGLDExpectation,
    expectation_at,
    expected_sgld_estimate,
    minibatch_expectation,
)
from llcgeo.theory.singular import (
    Coefficient,
    SingularPrediction,
    dln_coefficient,
    rrr_coefficient,
    singular_llc,
)
from llcgeo.theory.support import (
    AffineSupport,
    affine_hull_dimension,
    affine_support,
    is_affinely_flat,
    span_dimension,
)

shape_operator = second_fundamental_form

__all__ = [
    "Coefficient",
    "SingularPrediction",
    "dln_coefficient",
    "rrr_coefficient",
    "singular_llc",
    "ACTIVATIONS",
    "D_SYMBOL",
    "M_SYMBOL",
    "AffineSupport",
    "LLCPrediction",
    "LayerNormEllipsoid",
    "PopulationHessian",
    "SGLDExpectation",
    "affine_hull_dimension",
    "affine_support",
    "as_hypersurface",
    "bump_curvature_eigenvalue",
    "bump_normal_moments",
    "correlation_map",
    "expectation_at",
    "minibatch_expectation",
    "expected_sgld_estimate",
    "hermite_coefficients",
    "is_affinely_flat",
    "layernorm_ellipsoid",
    "log_input_bound",
    "log_parameter_bound",
    "mean_field_correlations",
    "nonlinearity_strength",
    "population_hessian",
    "predicted_llc",
    "relu_hermite_coefficient",
    "second_fundamental_form",
    "second_moment",
    "shape_operator",
    "span_dimension",
]
