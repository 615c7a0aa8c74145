"""How values read in a report: table cells, durations, and records flattened for CSV.

>>> format_cell(12.34567), format_cell(3.0), format_cell(float("nan")), format_cell([1, 2.5])
('12.35', '3', 'nan', '[1, 2.5]')
>>> format_cell("21/2"), format_cell("175167/9934")  # exact text; a long fraction as a decimal
('21/2', '17.63')
>>> format_seconds(0.42), format_seconds(75), format_seconds(3725)
('0.42 s', '1 min 15 s', '1 h 02 min')
>>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": None})
{'a.b': 1, 'a.c': '[1, 2]', 'd': None}
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from typing import Any

from llcgeo.serialize import to_jsonable

SIGNIFICANT = 4  # digits a table shows; results.json / results.csv hold every digit
MAX_LIST = 6  # longer numeric lists are abbreviated in tables
MAX_CELL = 80  # characters; longer cells are cut with an ellipsis
SHORT_FRACTION = 7  # characters; a longer exact fraction reads better as a decimal
FRACTION = re.compile(r"-?\d+/\d+")


def format_cell(value: Any) -> str:
    """A short, readable text for one table cell."""
    text = _format(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.{SIGNIFICANT}g}"
    if isinstance(value, (list, tuple)):
        return _format_list(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    if isinstance(value, str) and len(value) > SHORT_FRACTION and FRACTION.fullmatch(value):
        return f"{float(Fraction(value)):.{SIGNIFICANT}g}"  # 175167/9934 -> 17.63
    return str(value)


def _format_list(values: list | tuple) -> str:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric and len(values) > MAX_LIST:
        head = ", ".join(_format(v) for v in values[:3])
        return f"[{head}, …] ({len(values)} values)"
    return "[" + ", ".join(_format(v) for v in values) + "]"


def format_seconds(seconds: float) -> str:
    """A duration in the largest units that keep it short."""
    if seconds < 10:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted column names; lists become JSON text (one cell each)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, (list, tuple)):
        return {prefix: json.dumps(to_jsonable(value))}
    return {prefix: value}
