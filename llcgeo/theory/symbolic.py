"""Inert :mod:`llcgeo.expr` trees into sympy, without ever handing text to sympy.

>>> from llcgeo.expr import Binary, Num, Var
>>> from fractions import Fraction
>>> to_sympy(Binary("**", Var("x"), Num(Fraction(2))), {"x": sp.Symbol("x")})
x**2
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import sympy as sp

from llcgeo.expr import Expr, fold

SYMPY_FUNCTIONS = {"sin": sp.sin, "cos": sp.cos, "exp": sp.exp, "sqrt": sp.sqrt}
SYMPY_CONSTANTS = {"pi": sp.pi}


def rational(value: Fraction) -> sp.Rational:
    """An exact ``Fraction`` as a sympy rational."""
    return sp.Rational(value.numerator, value.denominator)


def fraction(value: sp.Rational) -> Fraction:
    """A sympy rational as an exact ``Fraction``."""
    return Fraction(int(value.p), int(value.q))


def to_sympy(expr: Expr, symbols: Mapping[str, sp.Basic]) -> sp.Expr:
    """The sympy expression of ``expr`` with each variable replaced by ``symbols[name]``."""
    return sp.Integer(0) + fold(
        expr,
        symbols,
        SYMPY_FUNCTIONS,
        number=rational,
        constants=SYMPY_CONSTANTS,
    )


def symbols_for(names) -> dict[str, sp.Symbol]:
    """Real sympy symbols named as the user named the variables."""
    return {name: sp.Symbol(name, real=True) for name in names}
