"""Exact affine hulls of parametrized manifolds ``t -> phi(t)``.

Every coordinate is rewritten in exponentials and expanded into a sum of terms
``coefficient * t^a * exp(p(t))``. For polynomial ``p`` (sin, cos and exp of polynomial
arguments, and polynomials) such functions with distinct ``(a, p)`` are linearly independent, so
an affine form ``c . phi(t) = const`` holds on the parameter box exactly when ``c`` is orthogonal
to the coefficient vector of every non-constant term (real and imaginary parts). The argument
is exact only when every coefficient is rational, so the linear algebra is over Q: a
coefficient such as ``pi`` or ``sin(1)`` (from ``pi*t`` or ``sin(t + 1)``) is refused, naming
it. So is every branch of a many-valued function (``sqrt(t**2)``, ``t**(1/2)``), whose
identities depend on the parameter range (``sqrt(t**2) = t`` on ``[0, 1]`` only).

>>> from llcgeo.manifolds import ParametricManifold
>>> s = parametric_support(ParametricManifold(["cos(t)", "sin(t)", "1"], ["t"]))
>>> s.affine_dimension, s.forms, s.values
(2, ((Fraction(0, 1), Fraction(0, 1), Fraction(1, 1)),), (Fraction(1, 1),))
"""

from __future__ import annotations

from collections import defaultdict

import sympy as sp

from llcgeo.errors import DerivationError
from llcgeo.expr import branches
from llcgeo.manifolds import ParametricManifold
from llcgeo.theory.affine import AffineSupport
from llcgeo.theory.symbolic import fraction, symbols_for, to_sympy


def _terms(expr: sp.Expr, params) -> dict[sp.Expr, sp.Expr]:
    """``expr`` as {function of t: numeric coefficient}, the constant under key 1."""
    expanded = sp.expand(sp.powsimp(sp.expand(expr.rewrite(sp.exp))))
    out: dict[sp.Expr, sp.Expr] = defaultdict(lambda: sp.Integer(0))
    for term in sp.Add.make_args(expanded):
        coeff, function = term.as_independent(*params, as_Add=False)
        out[function] += coeff
    return out


def _defined(phi, names, index: int) -> sp.Expr:
    """``phi[index]`` in sympy, or ``DerivationError`` when it is undefined everywhere or takes
    a branch (see the module's note)."""
    taken = branches(phi)
    if taken:
        raise DerivationError(
            f"phi[{index}] takes a branch of a many-valued function ({', '.join(taken)}): its "
            "identities with the other coordinates depend on the parameter ranges, which llcgeo "
            "does not decide; write the branch out (t for sqrt(t**2) when t >= 0), or measure "
            "this manifold without a prediction"
        )
    expr = to_sympy(phi, names)
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise DerivationError(
            f"phi[{index}] is undefined at every parameter value (it divides by zero)"
        )
    return expr


def _rational(value: sp.Expr, where: str) -> sp.Rational:
    value = sp.expand(value)
    if not value.is_Rational:
        raise DerivationError(
            f"{where} has the coefficient {value}, which is not rational: llcgeo decides hulls "
            "exactly over Q only (the forms of this hull would need that number)"
        )
    return value


def _constraint_rows(columns: list[dict], keys) -> sp.Matrix:
    rows = []
    for key in keys:
        coeffs = [sp.expand(col.get(key, 0)) for col in columns]
        where = f"the term {key} of phi"
        rows.append([_rational(sp.re(c), where) for c in coeffs])
        rows.append([_rational(sp.im(c), where) for c in coeffs])
    return sp.Matrix(rows) if rows else sp.zeros(0, len(columns))


def parametric_support(manifold: ParametricManifold) -> AffineSupport:
    """The affine hull of ``{phi(t) : t in the parameter box}``."""
    names = symbols_for(manifold.parameters)
    params = [names[p] for p in manifold.parameters]
    columns = [_terms(_defined(phi, names, i), params) for i, phi in enumerate(manifold.phi)]
    keys = sorted({k for col in columns for k in col if k != 1}, key=sp.default_sort_key)
    rows = _constraint_rows(columns, keys)
    basis = rows.nullspace() if rows.rows else sp.eye(manifold.d).columnspace()
    constant = [_rational(col.get(sp.Integer(1), 0), "the constant part of phi") for col in columns]
    forms, values = [], []
    for vec in basis:
        scaled = vec * sp.ilcm(*[sp.fraction(v)[1] for v in vec])
        forms.append(tuple(fraction(v) for v in scaled))
        values.append(fraction(sum(a * c for a, c in zip(scaled, constant))))
    return AffineSupport(manifold.d, tuple(forms), tuple(values))
