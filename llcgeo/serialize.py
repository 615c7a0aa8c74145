"""Plain-JSON forms of specs and results, and the stable hash that keys a case.

>>> from llcgeo.manifolds import Sphere
>>> to_jsonable(Sphere(3))
{'type': 'Sphere', 'd': 3, 'radius': '1'}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from fractions import Fraction
from typing import Any

from llcgeo.expr import EXPR_TYPES, to_text


def to_jsonable(obj: Any) -> Any:
    """Dataclasses become ``{"type": ..., field: ...}``; fractions and expressions become text."""
    if isinstance(obj, EXPR_TYPES):
        return to_text(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = to_jsonable(getattr(obj, f.name))
        return out
    if isinstance(obj, Fraction):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    return obj


def stable_hash(obj: Any, salt: str = "") -> str:
    """A short hex digest of the canonical JSON form of ``obj`` (plus ``salt``)."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":")) + salt
    return hashlib.sha256(text.encode()).hexdigest()[:20]
