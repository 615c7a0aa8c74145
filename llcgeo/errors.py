"""The package's own exceptions: each names what was wrong in words a user can act on."""


DEBUG_ENV = "LLCGEO_DEBUG"  # set: foreign errors keep their traceback


class LLCGeoError(Exception):
    """Base class of every error llcgeo raises on purpose."""


def in_brief(error: BaseException, limit: int = 160) -> str:
    r"""A foreign error in one line: its type and the first line of its message (at most
    ``limit`` characters of it), to quote inside one of ours.

    >>> in_brief(ValueError("bad shape\nmore detail"))
    'ValueError: bad shape'
    >>> in_brief(KeyError())
    'KeyError'
    """
    name, text = type(error).__name__, str(error).strip()
    return f"{name}: {text.splitlines()[0][:limit]}" if text else name


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
