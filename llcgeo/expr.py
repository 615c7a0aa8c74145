"""A tiny, inert expression tree shared by ``theory`` (sympy) and ``numerics`` (torch).

User text never becomes code: :mod:`llcgeo.parse` checks it and builds these nodes, and each
layer *folds* the tree with its own arithmetic (:func:`fold`). Numbers are exact ``Fraction``s.

>>> e = Binary("+", Binary("**", Var("x"), Num(Fraction(2))), Num(Fraction(-1)))
>>> fold(e, {"x": 3}, {})
Fraction(8, 1)
>>> sorted(variables(e))
['x']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

FUNCTIONS = ("sin", "cos", "exp", "sqrt")
BINARY_OPS = ("+", "-", "*", "/", "**")


@dataclass(frozen=True)
class Num:
    value: Fraction


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Const:
    """A named mathematical constant (``pi``); each backend supplies its own value."""

    name: str


@dataclass(frozen=True)
class Neg:
    operand: Expr


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call:
    func: str
    arg: Expr


Expr = Num | Var | Const | Neg | Binary | Call
EXPR_TYPES = (Num, Var, Const, Neg, Binary, Call)
CONSTANTS = ("pi",)


def _apply(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b
    return a**b


def fold(
    expr: Expr,
    env: Mapping[str, Any],
    functions: Mapping[str, Callable[[Any], Any]],
    number: Callable[[Fraction], Any] = lambda q: q,
    constants: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate ``expr`` with the arithmetic of whatever ``env`` holds (sympy, torch, Fraction).

    An integer exponent stays an exact integer, so ``x**2`` folds to ``x*x`` in every backend.
    ``constants`` maps constant names to values (default: ``pi`` as a float).
    """
    if isinstance(expr, Num):
        return number(expr.value)
    if isinstance(expr, Const):
        return (constants or FLOAT_CONSTANTS)[expr.name]
    if isinstance(expr, Var):
        return env[expr.name]
    if isinstance(expr, Neg):
        return -fold(expr.operand, env, functions, number, constants)
    if isinstance(expr, Call):
        return functions[expr.func](fold(expr.arg, env, functions, number, constants))
    left = fold(expr.left, env, functions, number, constants)
    if expr.op == "**" and isinstance(expr.right, Num) and expr.right.value.denominator == 1:
        return left ** int(expr.right.value)
    return _apply(expr.op, left, fold(expr.right, env, functions, number, constants))


def variables(expr: Expr) -> frozenset[str]:
    """The names an expression mentions."""
    if isinstance(expr, Var):
        return frozenset({expr.name})
    if isinstance(expr, (Num, Const)):
        return frozenset()
    if isinstance(expr, (Neg, Call)):
        return variables(expr.operand if isinstance(expr, Neg) else expr.arg)
    return variables(expr.left) | variables(expr.right)


def branches(expr: Expr) -> list[str]:
    """The sub-expressions of ``expr`` that take a branch of a many-valued function: ``sqrt``
    and powers with a non-integer exponent of something that varies. Identities among them
    (``sqrt(t**2) = t``) hold on some ranges and not on others.

    >>> from llcgeo.parse import parse_expression
    >>> branches(parse_expression("sqrt(t**2) + t**(1/3) + t**2 + sqrt(2)*t", ["t"]))
    ['sqrt((t ** 2))', '(t ** (1/3))']
    """
    if isinstance(expr, (Num, Var, Const)):
        return []
    if isinstance(expr, Neg):
        return branches(expr.operand)
    if isinstance(expr, Call):
        own = [to_text(expr)] if expr.func == "sqrt" and variables(expr.arg) else []
        return own + branches(expr.arg)
    fractional = isinstance(expr.right, Num) and expr.right.value.denominator != 1
    own = [to_text(expr)] if expr.op == "**" and fractional and variables(expr.left) else []
    return own + branches(expr.left) + branches(expr.right)


def is_polynomial(expr: Expr) -> bool:
    """True when ``expr`` uses only + - * and non-negative integer powers (no calls, no division
    by anything but a constant)."""
    if isinstance(expr, (Num, Var)):
        return True
    if isinstance(expr, Const):
        return False
    if isinstance(expr, Neg):
        return is_polynomial(expr.operand)
    if isinstance(expr, Call):
        return False
    if expr.op == "**":
        exp = expr.right
        return (
            isinstance(exp, Num) and exp.value.denominator == 1 and exp.value >= 0
        ) and is_polynomial(expr.left)
    if expr.op == "/":
        return is_polynomial(expr.left) and not variables(expr.right)
    return is_polynomial(expr.left) and is_polynomial(expr.right)


def to_text(expr: Expr) -> str:
    """A fully parenthesised rendering that :func:`llcgeo.parse.parse_expression` reads back."""
    if isinstance(expr, Num):
        v = expr.value
        return str(v.numerator) if v.denominator == 1 else f"({v.numerator}/{v.denominator})"
    if isinstance(expr, (Var, Const)):
        return expr.name
    if isinstance(expr, Neg):
        return f"(-{to_text(expr.operand)})"
    if isinstance(expr, Call):
        return f"{expr.func}({to_text(expr.arg)})"
    return f"({to_text(expr.left)} {expr.op} {to_text(expr.right)})"


FLOAT_FUNCTIONS: Mapping[str, Callable[[float], float]] = {
    "sin": math.sin,
    "cos": math.cos,
    "exp": math.exp,
    "sqrt": math.sqrt,
}
FLOAT_CONSTANTS: Mapping[str, float] = {"pi": math.pi}


def substitute(expr: Expr, values: Mapping[str, Expr]) -> Expr:
    """``expr`` with each named variable replaced by ``values[name]`` (others kept).

    >>> substitute(Binary("*", Var("a"), Var("x")), {"a": Num(Fraction(2))})
    Binary(op='*', left=Num(value=Fraction(2, 1)), right=Var(name='x'))
    """
    if isinstance(expr, Var):
        return values.get(expr.name, expr)
    if isinstance(expr, (Num, Const)):
        return expr
    if isinstance(expr, Neg):
        return Neg(substitute(expr.operand, values))
    if isinstance(expr, Call):
        return Call(expr.func, substitute(expr.arg, values))
    return Binary(expr.op, substitute(expr.left, values), substitute(expr.right, values))
