"""llcgeo: how the geometry of normalization layers changes a linear layer's LLC.

Importing the package is cheap; each layer loads on first use, so ``llcgeo.theory`` never pulls
in torch and ``llcgeo.numerics`` never pulls in sympy.
"""

from importlib import import_module

from llcgeo.errors import (
    DerivationError,
    EstimationError,
    ExpressionError,
    LLCGeoError,
    SpecError,
)
from llcgeo.manifolds import (
    BumpedHyperplane,
    Ellipsoid,
    Gaussian,
    Hyperplane,
    ImplicitHypersurface,
    LayerNormImage,
    LinearLayer,
    ParametricManifold,
    RMSNormImage,
    Simplex,
    Sphere,
)

__version__ = "0.1.0"

_LAZY = {
    "predicted_llc": "llcgeo.theory",
    "expected_sgld_estimate": "llcgeo.theory",
    "estimate_llc": "llcgeo.numerics",
    "SGLDConfig": "llcgeo.numerics",
    "LLCEstimate": "llcgeo.numerics",
    "reconcile": "llcgeo.reconcile",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llcgeo' has no attribute {name!r}")


__all__ = [
    "BumpedHyperplane",
    "DerivationError",
    "Ellipsoid",
    "EstimationError",
    "ExpressionError",
    "Gaussian",
    "Hyperplane",
    "ImplicitHypersurface",
    "LLCGeoError",
    "LayerNormImage",
    "LinearLayer",
    "ParametricManifold",
    "RMSNormImage",
    "Simplex",
    "SpecError",
    "Sphere",
    *_LAZY,
]
