"""The affine hull of a support as exact linear algebra: the type every derivation of a support
returns (its own module, so that the named families, hypersurfaces and parametrizations can all
build one without importing each other).

>>> s = AffineSupport(3, ((Fraction(1), Fraction(1), Fraction(1)),), (Fraction(1),))
>>> s.affine_dimension, s.span_dimension
(2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

Vector = tuple[Fraction, ...]


@dataclass(frozen=True)
class AffineSupport:
    """``{x in R^d : forms[i] . x = values[i]}``, the rows of ``forms`` linearly independent."""

    d: int
    forms: tuple[Vector, ...] = ()
    values: tuple[Fraction, ...] = ()

    @property
    def affine_dimension(self) -> int:
        return self.d - len(self.forms)

    @property
    def span_dimension(self) -> int:
        return self.d - len(self.linear_forms())

    def linear_forms(self) -> tuple[Vector, ...]:
        """A basis of the linear forms vanishing on the support's linear span."""
        pivot = next((j for j, c in enumerate(self.values) if c != 0), None)
        if pivot is None:
            return self.forms
        cj, row_j = self.values[pivot], self.forms[pivot]
        return tuple(
            tuple(cj * a - ci * b for a, b in zip(row, row_j))
            for i, (row, ci) in enumerate(zip(self.forms, self.values))
            if i != pivot
        )

    def affine_witness(self) -> sp.Matrix:
        """Rows ``(a, -c)``: each affine form ``a . x - c`` vanishes on the support."""
        rows = [[*map(sp.Rational, a), -sp.Rational(c)] for a, c in zip(self.forms, self.values)]
        return sp.Matrix(len(rows), self.d + 1, [v for r in rows for v in r])

    def linear_witness(self) -> sp.Matrix:
        """Rows ``a``: each linear form ``a . x`` vanishes on the support."""
        rows = self.linear_forms()
        return sp.Matrix(len(rows), self.d, [sp.Rational(v) for r in rows for v in r])
