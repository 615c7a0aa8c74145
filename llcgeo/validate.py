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
import numbers
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from llcgeo.errors import SpecError


def _shown(value: Any) -> str:
    return str(value) if isinstance(value, Fraction) else repr(value)


def _real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def finite(value: Any, name: str) -> float:
    """A real number (an int, float or exact ``Fraction``; not a bool) that is neither NaN nor
    infinite."""
    if not _real(value) or not math.isfinite(value):
        raise SpecError(f"{name} must be a finite number, got {_shown(value)}")
    return float(value)


def positive(value: Any, name: str) -> float:
    """A finite number above zero."""
    if finite(value, name) <= 0:
        raise SpecError(f"{name} must be positive, got {_shown(value)}")
    return float(value)


def non_negative(value: Any, name: str) -> float:
    """A finite number of at least zero."""
    if finite(value, name) < 0:
        raise SpecError(f"{name} must be non-negative, got {_shown(value)}")
    return float(value)


def between(value: Any, name: str, low: float, high: float, *, open_low=False, open_high=False):
    """A finite number in the interval from ``low`` to ``high``, each end closed unless said
    open.

    >>> between(0.5, "fraction", 0, 1)
    0.5
    >>> between(1, "decay", 0, 1, open_high=True)
    Traceback (most recent call last):
    ...
    llcgeo.errors.SpecError: decay must lie in [0, 1), got 1
    """
    x = finite(value, name)
    above = x > low if open_low else x >= low
    below = x < high if open_high else x <= high
    if not (above and below):
        shown = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise SpecError(f"{name} must lie in {shown}, got {_shown(value)}")
    return x


def integer(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer (a Python or numpy integer; not a bool, not a float) in ``[minimum,
    maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SpecError(f"{name} must be an integer, got {value!r}")
    value = int(value)
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
