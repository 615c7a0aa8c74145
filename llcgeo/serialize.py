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
    """Dataclasses become ``{"type": ..., field: ...}``; fractions and expressions become text;
    floats stay floats, NaN and infinities included (see :func:`dumps_exact`)."""
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
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    return obj


NONFINITE = "nonfinite"  # the key of the object that stands for NaN or an infinity in the store
NONFINITE_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}  # text -> float


def _map_floats(obj: Any, nonfinite, finite=None) -> Any:
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return nonfinite(obj)
        return obj if finite is None else finite(obj)
    if isinstance(obj, dict):
        return {k: _map_floats(v, nonfinite, finite) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_floats(v, nonfinite, finite) for v in obj]
    return obj


def dumps_exact(obj: Any, indent: int | None = 1) -> str:
    """Strict JSON that :func:`loads_exact` reads back float for float: NaN and infinities are
    written as ``{"nonfinite": "nan"}`` (``"inf"``, ``"-inf"``).

    >>> loads_exact(dumps_exact({"a": [float("nan"), 1.5, float("-inf")]}))
    {'a': [nan, 1.5, -inf]}
    """
    plain = _map_floats(to_jsonable(obj), lambda v: {NONFINITE: str(v)})
    return json.dumps(plain, indent=indent, allow_nan=False)


def _decode(pairs: list[tuple[str, Any]]) -> Any:
    if len(pairs) == 1 and pairs[0][0] == NONFINITE and pairs[0][1] in NONFINITE_VALUES:
        return NONFINITE_VALUES[pairs[0][1]]
    return dict(pairs)


def loads_exact(text: str) -> Any:
    """The value :func:`dumps_exact` wrote (bare ``NaN``/``Infinity`` are refused)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, object_pairs_hook=_decode, parse_constant=refuse)


def to_output(obj: Any, digits: int | None = None) -> Any:
    """Plain values for JSON that other programs read: NaN and infinities become ``null``
    (a record says why through its status fields), every number stays a JSON number, rounded
    to ``digits`` significant digits when given."""
    finite = None if digits is None else (lambda v: significant(v, digits))
    return _map_floats(to_jsonable(obj), lambda v: None, finite)


def dumps_output(obj: Any, indent: int | None = 1, digits: int | None = None) -> str:
    """Strict JSON of :func:`to_output`: valid for every parser."""
    return json.dumps(to_output(obj, digits), indent=indent, allow_nan=False)


def significant(value: float | None, digits: int = 6) -> float | None:
    """``value`` rounded to ``digits`` significant digits for people to read (a z-score needs
    no 17); non-finite values and None pass through.

    >>> significant(1.9040990898540802), significant(0.00012345678, 3)
    (1.9041, 0.000123)
    """
    if value is None or not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def stable_hash(obj: Any, salt: str = "") -> str:
    """A short hex digest of the canonical JSON form of ``obj`` (plus ``salt``)."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":")) + salt
    return hashlib.sha256(text.encode()).hexdigest()[:20]
