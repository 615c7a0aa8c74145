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
    SoftmaxHead,
    Sphere,
)

__version__ = "0.1.0"

_LAZY = {
    "predicted_llc": "llcgeo.theory",
    "expected_sgld_estimate": "llcgeo.theory",
    "estimate_llc": "llcgeo.numerics",
    "SGLDConfig": "llcgeo.config",
    "LLCEstimate": "llcgeo.numerics",
    "reconcile_case": "llcgeo.reconcile",
    "calibrate": "llcgeo.reconcile.calibration",
    "scan": "llcgeo.report.scan",
    "scan_run": "llcgeo.report.scan_run",
    "to_arviz": "llcgeo.report.arviz",
}
# subpackages are modules, never functions: ``llcgeo.reconcile`` is always the package
_SUBPACKAGES = ("theory", "numerics", "reconcile", "report", "commands", "testing")


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return import_module(f"llcgeo.{name}")
    raise AttributeError(f"module 'llcgeo' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})


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
    "SoftmaxHead",
    "SpecError",
    "Sphere",
    *_LAZY,
]
