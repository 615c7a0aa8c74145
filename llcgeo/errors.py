"""The package's own exceptions: each names what was wrong in words a user can act on."""


class LLCGeoError(Exception):
    """Base class of every error llcgeo raises on purpose."""


class SpecError(LLCGeoError, ValueError):
    """A manifold, layer or sampler specification is invalid."""


class ExpressionError(LLCGeoError, ValueError):
    """A user-supplied expression was rejected by the safe parser."""


class DerivationError(LLCGeoError, ValueError):
    """The exact derivation cannot be carried out for this input (says why)."""


class EstimationError(LLCGeoError, ValueError):
    """Inputs to an LLC estimate are inconsistent (shapes, masks, devices, data)."""


class ScanError(LLCGeoError, ValueError):
    """A network cannot be scanned: no norm, no linear reader, an op the tracer cannot follow,
    or a file in an unsafe format (says which)."""
