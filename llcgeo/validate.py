"""The checks every spec and entry point applies to plain numbers, stated once (standard library
only). Each returns the checked value or raises :class:`~llcgeo.errors.SpecError` naming it.

>>> positive(2, "eps"), integer(3, "chains")
(2.0, 3)
>>> non_negative(-1, "gamma")
Traceback (most recent call last):
...
llcgeo.errors.SpecError: gamma must be non-negative, got -1
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from llcgeo.errors import SpecError


def finite(value: Any, name: str) -> float:
    """A real number that is neither NaN nor infinite (booleans are not numbers here)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not ok or not math.isfinite(value):
        raise SpecError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive(value: Any, name: str) -> float:
    """A finite number above zero."""
    if finite(value, name) <= 0:
        raise SpecError(f"{name} must be positive, got {value!r}")
    return float(value)


def non_negative(value: Any, name: str) -> float:
    """A finite number of at least zero."""
    if finite(value, name) < 0:
        raise SpecError(f"{name} must be non-negative, got {value!r}")
    return float(value)


def integer(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An ``int`` (not a bool, not a float) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise SpecError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SpecError(f"{name} must be at most {maximum}, got {value}")
    return value


def entries(
    values: Any,
    what: str,
    read: Callable[[Any, str], Any],
    length: int | None = None,
    against: str = "the dimension d",
) -> tuple:
    """``read(value, "what[i]")`` of each entry of a sequence (not a string), and, when
    ``length`` is given, exactly that many of them."""
    if isinstance(values, (str, bytes)):
        raise SpecError(f"{what} must be a sequence of numbers, got the string {values!r}")
    vec = tuple(read(v, f"{what}[{i}]") for i, v in enumerate(values))
    if length is not None and len(vec) != length:
        raise SpecError(f"{what} has {len(vec)} entries but {against} is {length}")
    return vec
