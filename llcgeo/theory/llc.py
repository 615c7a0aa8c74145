"""The population Hessian of a linear layer or softmax head on manifold data, and its LLC.

For ``f(x) = W x (+ b)`` and the loss ``E[1/2 |y - f(x)|^2]``, the Hessian at the truth is
``I_m (x) E[z z^T]`` (``z = x``, or ``(x, 1)`` with a bias). Its rank is ``m`` times the rank of
the sub-block of ``E[z z^T]`` that moves; that rank is the dimension of the linear span of the
support (``W``), the affine hull plus one (``W`` and ``b``), or 1 (``b``). The LLC of such a
regular-in-its-span quadratic model is half the rank. Nothing of size ``(m d)^2`` is formed.
A softmax head of ``K`` classes has the same block with multiplicity ``K - 1`` in place of
``m`` (derived in :mod:`llcgeo.theory.softmax`).

>>> from llcgeo.manifolds import LayerNormImage, LinearLayer
>>> p = predicted_llc(LayerNormImage(8), LinearLayer(3))
>>> p.llc, p.llc_unconstrained, p.llc_drop, p.closed_form
(21/2, 12, 3/2, m*(d - 1)/2)
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from llcgeo import manifolds as mf
from llcgeo.limits import with_budget
from llcgeo.manifolds import Head, LinearLayer, check_refine
from llcgeo.theory.softmax import K_SYMBOL
from llcgeo.theory.support import AffineSupport, affine_support

M_SYMBOL, D_SYMBOL = (
    sp.Symbol("m", positive=True, integer=True),
    sp.Symbol("d", positive=True, integer=True),
)


@dataclass(frozen=True)
class PopulationHessian:
    """``I_m (x) B``, ``B`` the moving sub-block of ``E[z z^T]``, kept in factored form; for a
    softmax head ``m`` is ``K - 1``, the multiplicity of ``B``'s rank in the Hessian's.

    ``null_space`` rows span ``ker B`` (each row ``v`` has ``v . z = 0`` on the support).
    """

    m: int
    block_size: int
    block_rank: int
    null_space: sp.Matrix

    @property
    def size(self) -> int:
        return self.m * self.block_size

    @property
    def rank(self) -> int:
        return self.m * self.block_rank


@dataclass(frozen=True)
class LLCPrediction:
    """The predicted LLC of a layer on a manifold, with its derivation's witness."""

    manifold: mf.ManifoldSpec
    layer: Head
    refine: str
    hessian: PopulationHessian
    llc: sp.Rational
    llc_unconstrained: sp.Rational
    flat: bool
    closed_form: sp.Expr

    @property
    def hessian_rank(self) -> int:
        return self.hessian.rank

    @property
    def llc_drop(self) -> sp.Rational:
        return self.llc_unconstrained - self.llc

    @property
    def witness(self) -> sp.Matrix:
        return self.hessian.null_space


def _block(support: AffineSupport, layer: Head, refine: str) -> tuple[int, sp.Matrix]:
    """(size of the moving block, null-space rows of that block of ``E[z z^T]``)."""
    if refine == "bias":
        return 1, sp.zeros(0, 1)
    if refine == "all" and layer.bias:
        return support.d + 1, support.affine_witness()
    return support.d, support.linear_witness()


def population_hessian(
    manifold: mf.ManifoldSpec, layer: Head, refine: str = "all"
) -> PopulationHessian:
    """The structured population Hessian of ``layer`` on ``manifold``'s data."""
    check_refine(refine, layer)
    return _hessian(affine_support(manifold), layer, refine)


def _hessian(support: AffineSupport, layer: Head, refine: str) -> PopulationHessian:
    size, null = _block(support, layer, refine)
    return PopulationHessian(layer.multiplicity, size, size - null.rows, null)


def unconstrained_rank(d, layer: Head, refine: str):
    """Block rank on full-dimensional (Gaussian) data; ``d`` may be a symbol."""
    if refine == "bias":
        return 1
    return d + 1 if (refine == "all" and layer.bias) else d


def _closed_form(manifold, layer: Head, refine: str, block_rank: int) -> sp.Expr:
    d = manifold.d
    deficit = unconstrained_rank(d, layer, refine) - block_rank
    d_expr = D_SYMBOL if manifold.free_dimension else sp.Integer(d)
    multiplicity = M_SYMBOL if isinstance(layer, LinearLayer) else K_SYMBOL - 1
    return multiplicity * (unconstrained_rank(d_expr, layer, refine) - deficit) / 2


@with_budget
def predicted_llc(
    manifold: mf.ManifoldSpec,
    layer: Head,
    refine: str = "all",
    *,
    time_limit: float | None = None,
) -> LLCPrediction:
    """``LLC = rank(I_m (x) B) / 2`` for the moving block ``B`` of ``E[z z^T]``; a
    :class:`~llcgeo.manifolds.SoftmaxHead` of ``K`` classes has ``K - 1`` for ``m``.

    ``refine``: "all" (every parameter), "weight" (``W`` alone, ``b`` frozen), "bias"
    (``b`` alone). The drop is measured against Gaussian data with the same layer. A derivation
    that runs longer than ``time_limit`` seconds (``None``: the default of :mod:`llcgeo.limits`,
    ``math.inf``: no bound) raises ``DerivationError``.
    """
    check_refine(refine, layer)
    support = affine_support(manifold, seconds=time_limit)
    hessian = _hessian(support, layer, refine)
    unconstrained = layer.multiplicity * unconstrained_rank(manifold.d, layer, refine)
    return LLCPrediction(
        manifold=manifold,
        layer=layer,
        refine=refine,
        hessian=hessian,
        llc=sp.Rational(hessian.rank, 2),
        llc_unconstrained=sp.Rational(unconstrained, 2),
        flat=support.affine_dimension < manifold.d,
        closed_form=sp.factor(_closed_form(manifold, layer, refine, hessian.block_rank)),
    )
