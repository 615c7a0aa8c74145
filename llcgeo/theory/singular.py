"""Exact learning coefficients of singular linear models, on any data geometry.

**Reduced-rank regression** ``y = B A x`` (input ``M``, hidden ``H``, output ``N``, true rank
``r``; Aoyagi and Watanabe 2005, "Stochastic complexities of reduced rank regression in Bayesian
estimation", Neural Networks 18(7)). Every case of their theorem:

1. ``N + r <= M + H``, ``M + r <= N + H``, ``H + r <= M + N``: when ``M + H + N + r`` is even,
   ``lambda = (2(H + r)(M + N) - (M - N)^2 - (H + r)^2) / 8``, multiplicity 1; when odd, the
   same plus ``1/8``, multiplicity 2.
2. ``M + H < N + r``: ``lambda = (H M - H r + N r) / 2``.
3. ``N + H < M + r``: ``lambda = (H N - H r + M r) / 2``.
4. ``M + N < H + r``: ``lambda = M N / 2``.

**Deep linear networks** ``y = W_L ... W_1 x`` with widths ``H_1`` (input), ..., ``H_{L+1}``
(output) and true rank ``r`` (Aoyagi 2024, "Consideration on the learning efficiency of
multiple-layered neural networks with linear units", Neural Networks 172). With ``M_j = H_j - r``
let ``S`` be the set of the ``l + 1`` smallest ``M_j`` such that ``max_S M < min_(not S) M``,
``sum_S M >= l max_S M`` and ``sum_S M < l min_(not S) M`` (the conditions on the complement hold
vacuously when it is empty). With ``s = sum_S M``, ``c = ceil(s / l)`` and ``a = s - (c - 1) l``::

    lambda = (r (H_1 + H_{L+1}) - r^2) / 2 + a (l - a) / (4 l) - l (l - 1) s^2 / (4 l^2)
             + 1/2 sum_{i < j in S} M_i M_j,            multiplicity a (l - a) + 1.

For ``L = 2`` it agrees with the reduced-rank theorem (tested on a grid), and for ``L = 1`` it is
the regular ``H_1 H_2 / 2``.

**Data on a manifold.** Components of ``W_1`` that act orthogonally to the span of the data
change no output, so the coefficient is the closed form with the input width replaced by the
dimension of the data's linear span (:mod:`llcgeo.theory.support`); with a bias in the first
layer only (``W_1 x + b_1``), by the affine hull's dimension plus one (``z = (x, 1)``). ``r`` is
the rank of the teacher's map on that space, so it cannot exceed it.

>>> rrr_coefficient(4, 3, 4, 1), dln_coefficient((4, 3, 4), 1)
(Coefficient(llc=Fraction(6, 1), multiplicity=1), Coefficient(llc=Fraction(6, 1), multiplicity=1))
>>> dln_coefficient((3, 4, 5, 6), 1)
Coefficient(llc=Fraction(7, 1), multiplicity=2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from llcgeo.errors import SpecError
from llcgeo.manifolds import dimension, is_manifold
from llcgeo.validate import integer


class Coefficient(NamedTuple):
    """A learning coefficient and its multiplicity (the power of ``log n``)."""

    llc: Fraction
    multiplicity: int


def _check(widths: Sequence[int], rank: int) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or len(widths) < 2:
        raise SpecError(
            f"widths must list the input, any hidden and the output width, got {widths!r}"
        )
    widths = tuple(dimension(w, f"width {i}") for i, w in enumerate(widths))
    integer(rank, "rank", 0)
    if rank > min(widths):
        raise SpecError(
            f"the true rank {rank} is above the narrowest width {min(widths)} of {widths}: no "
            "product of these maps has that rank"
        )
    return widths


def rrr_coefficient(inputs: int, hidden: int, outputs: int, rank: int) -> Coefficient:
    """The reduced-rank regression theorem of Aoyagi and Watanabe (2005), every case."""
    m, h, n = _check((inputs, hidden, outputs), rank)
    r = rank
    if m + h < n + r:
        return Coefficient(Fraction(h * m - h * r + n * r, 2), 1)
    if n + h < m + r:
        return Coefficient(Fraction(h * n - h * r + m * r, 2), 1)
    if m + n < h + r:
        return Coefficient(Fraction(m * n, 2), 1)
    base = 2 * (h + r) * (m + n) - (m - n) ** 2 - (h + r) ** 2
    if (m + h + n + r) % 2 == 0:
        return Coefficient(Fraction(base, 8), 1)
    return Coefficient(Fraction(base + 1, 8), 2)


def _deficient_set(deficits: Sequence[int]) -> list[int]:
    """The ``l + 1`` smallest ``M_j`` that satisfy Aoyagi's three conditions."""
    ordered = sorted(deficits)
    for size in range(2, len(ordered) + 1):
        chosen, rest, ell = ordered[:size], ordered[size:], size - 1
        total = sum(chosen)
        below_rest = not rest or (max(chosen) < min(rest) and total < ell * min(rest))
        if below_rest and total >= ell * max(chosen):
            return chosen
    raise SpecError(f"no subset of {deficits} meets the conditions of Aoyagi's theorem")


def dln_coefficient(widths: Sequence[int], rank: int) -> Coefficient:
    """The deep linear network theorem of Aoyagi (2024); ``widths`` from input to output."""
    widths = _check(widths, rank)
    r = rank
    chosen = _deficient_set([w - r for w in widths])
    ell, total = len(chosen) - 1, sum(chosen)
    ceiling = -(-total // ell)
    a = total - (ceiling - 1) * ell
    pairs = sum(
        chosen[i] * chosen[j] for i in range(len(chosen)) for j in range(i + 1, len(chosen))
    )
    llc = (
        Fraction(r * (widths[0] + widths[-1]) - r * r, 2)
        + Fraction(a * (ell - a), 4 * ell)
        - Fraction(ell * (ell - 1) * total * total, 4 * ell * ell)
        + Fraction(pairs, 2)
    )
    return Coefficient(llc, a * (ell - a) + 1)


@dataclass(frozen=True)
class SingularPrediction:
    """The coefficient of a linear network on a manifold's data, and on Gaussian data (the
    same widths with the full input), with the drop between them and the widths it used."""

    widths: tuple[int, ...]
    effective_widths: tuple[int, ...]
    rank: int
    coefficient: Coefficient
    unconstrained: Coefficient

    @property
    def llc(self) -> Fraction:
        return self.coefficient.llc

    @property
    def llc_drop(self) -> Fraction:
        return self.unconstrained.llc - self.coefficient.llc

    @property
    def regular_drop(self) -> Fraction:
        """What the one-layer (regular) formula would predict for the drop: ``(input width -
        effective input width)`` times the output width, halved."""
        return Fraction((self.widths[0] - self.effective_widths[0]) * self.widths[-1], 2)


def singular_llc(
    manifold, hidden: Sequence[int], outputs: int, rank: int, *, bias: bool = False
) -> SingularPrediction:
    """The exact coefficient of ``y = W_L ... W_1 x (+ b_1 inside)`` on ``manifold``'s data.

    >>> from llcgeo.manifolds import LayerNormImage
    >>> p = singular_llc(LayerNormImage(4), [3], 4, 1)
    >>> p.llc, p.llc_drop, p.regular_drop
    (Fraction(5, 1), Fraction(1, 1), Fraction(2, 1))
    """
    from llcgeo.theory.support import affine_support

    if not is_manifold(manifold):
        raise SpecError(f"no data geometry is known for {type(manifold).__name__}")
    support = affine_support(manifold)
    effective = support.affine_dimension + 1 if bias else support.span_dimension
    full = manifold.d + 1 if bias else manifold.d
    widths = (full, *hidden, outputs)
    effective_widths = (effective, *hidden, outputs)
    _check(widths, rank)
    return SingularPrediction(
        widths, effective_widths, rank, dln_coefficient(effective_widths, rank),
        dln_coefficient(widths, rank),
    )  # fmt: skip
