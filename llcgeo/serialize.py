"""Plain-JSON forms of specs and results, and the stable hash that keys a case.

>>> from llcgeo.manifolds import Sphere
>>> to_jsonable(Sphere(3))
{'type': 'Sphere', 'd': 3, 'radius': '1'}
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
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


def from_jsonable(kind: Any, value: Any) -> Any:
    """The ``kind`` that :func:`to_jsonable` turned into ``value``, read back by ``kind``'s type
    hints: dataclasses field by field (a ``"type"`` key must name ``kind``; a key it has no field
    for, or a field without a default that is missing, is a ``ValueError`` naming it), tuples,
    optional values, fractions and plain numbers. The one decoder of every stored record.

    >>> from llcgeo.manifolds import Sphere
    >>> from_jsonable(Sphere, to_jsonable(Sphere(3))) == Sphere(3)
    True
    >>> from_jsonable(tuple[float, ...], [1, 2.5])
    (1.0, 2.5)
    """
    return _typed(kind, value, False)


def from_output(kind: Any, value: Any) -> Any:
    """:func:`from_jsonable` for what :func:`to_output` wrote, where a ``null`` float was a NaN
    or an infinity (read back as NaN: which one is not kept).

    >>> from_output(tuple[float, ...], [1.0, None])
    (1.0, nan)
    """
    return _typed(kind, value, True)


def _typed(kind: Any, value: Any, nulls: bool) -> Any:
    if value is None and _optional(kind):
        return None
    if value is None and nulls and kind is float:
        return math.nan
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return _from_union(arguments, value, nulls)
    if dataclasses.is_dataclass(kind):
        return _from_fields(kind, value, nulls)
    if origin is tuple:
        return _from_tuple(arguments, value, nulls)
    if origin in (list, dict):
        return _from_container(origin, arguments, value, nulls)
    return _from_plain(kind, value)


def _optional(kind: Any) -> bool:
    return kind is Any or type(None) in typing.get_args(kind)


def _from_union(arguments: tuple, value: Any, nulls: bool) -> Any:
    choices = [a for a in arguments if a is not type(None)]
    if isinstance(value, dict) and "type" in value:  # a dataclass names itself
        named = [a for a in choices if getattr(a, "__name__", None) == value["type"]]
        choices = named or choices
    errors = []
    for choice in choices:
        try:
            return _typed(choice, value, nulls)
        except (TypeError, ValueError) as error:
            errors.append(str(error))
    raise ValueError(f"{value!r} is none of {choices}: {'; '.join(errors)}")


def _from_fields(kind: type, value: Any, nulls: bool) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"a {kind.__name__} is a JSON object, got {type(value).__name__}")
    if value.get("type", kind.__name__) != kind.__name__:
        raise ValueError(f"a record of a {value['type']} where a {kind.__name__} belongs")
    hints, fields = _fields_of(kind)
    unknown = sorted(set(value) - set(fields) - {"type"})
    if unknown:
        raise ValueError(f"a {kind.__name__} has no field {unknown[0]!r}")
    return kind(**{name: _typed(hints[name], value[name], nulls) for name in fields
                   if name in value})  # fmt: skip


@functools.cache
def _fields_of(kind: type) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``kind``'s resolved type hints and the names of its fields set at init, found once a
    class (a store's records repeat the same few classes thousands of times)."""
    names = tuple(f.name for f in dataclasses.fields(kind) if f.init)
    return typing.get_type_hints(kind), names


def _from_tuple(arguments: tuple, value: Any, nulls: bool) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"a tuple is a JSON array, got {type(value).__name__}")
    if len(arguments) == 2 and arguments[1] is Ellipsis:
        return tuple(_typed(arguments[0], v, nulls) for v in value)
    if arguments and len(arguments) != len(value):
        raise ValueError(f"a tuple of {len(arguments)} items, got {len(value)}")
    return tuple(value) if not arguments else tuple(
        _typed(a, v, nulls) for a, v in zip(arguments, value))  # fmt: skip


def _from_container(origin: type, arguments: tuple, value: Any, nulls: bool) -> Any:
    if origin is list:
        return [_typed(arguments[0] if arguments else Any, v, nulls) for v in value]
    inner = arguments[1] if arguments else Any
    return {k: _typed(inner, v, nulls) for k, v in value.items()}


def _from_plain(kind: Any, value: Any) -> Any:
    if kind is Any or kind is object:
        return value
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is Fraction:
        return Fraction(value)
    if isinstance(kind, type) and not isinstance(value, kind):
        raise ValueError(f"expected a {kind.__name__}, got {value!r}")
    return value


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
