"""The LLC of a softmax head on features that lie on a manifold.

The head is ``p(y | z) = softmax(W z + b)`` over ``K`` classes, ``W`` of shape ``K x d``, and
the loss is the cross-entropy ``L(W, b) = E[-sum_k q_k(z) log p_k(z)]`` for any target
distribution ``q(. | z)`` (one-hot labels, smoothed labels, or a teacher's probabilities).

**Hessian.** Write ``z~ = (z, 1)`` with a bias (``z~ = z`` without) and ``Theta = (W, b)``.
The logits are ``u = Theta z~``; ``d(-sum q_k log p_k)/du = p - q`` and
``d^2/du^2 = A(p) = diag(p) - p p^T``, whatever ``q`` is. By the chain rule, the Hessian in
``vec(Theta)`` is

    H = E[A(p(z)) (x) z~ z~^T],

and ``vec(V)^T H vec(V) = E[(V z~)^T A(p(z)) (V z~)]`` for a direction ``V`` (``K x d~``).

**Its kernel.** Let every class have positive probability on the support ``S``, true at any
finite ``Theta``. Then ``A(p)`` is positive semi-definite with kernel exactly ``span{1}``
(``u^T A u = Var_p(u)``, zero only when ``u`` is constant on classes of positive
probability). So ``V`` is in ``ker H`` iff ``V z~ in span{1}`` for every ``z`` in ``S``,
and, ``V`` being linear, iff this holds on the linear span ``Z`` of ``{z~ : z in S}``.
Split ``V = 1 v^T + P V`` with ``P = I - 11^T/K`` (``v^T = 1^T V / K``). ``V z~ in span{1}``
iff ``P V z~ = 0``; so the kernel is ``{1 v^T : v in R^d~}`` (``d~`` dimensions) plus the
``P V`` whose rows vanish on ``Z`` (``(K - 1)(d~ - r)`` dimensions, ``r = dim Z``), and

    rank H = K d~ - d~ - (K - 1)(d~ - r) = (K - 1) r.

``r`` is the rank of ``E[z~ z~^T]``: the dimension of the linear span of the support (``W``
alone), the affine hull plus one (``W`` and ``b``), or 1 (``b`` alone), exactly as for the
Gaussian loss (:mod:`llcgeo.theory.llc`), which has ``m`` where the head has ``K - 1``.

**Its LLC.** Both kernel parts leave every probability unchanged on ``S``: ``softmax`` is
invariant to adding a constant to all logits, and rows vanishing on ``Z`` change no logit.
So the loss is exactly constant along the affine subspace ``Theta* + ker H``, and strictly
convex across it (its Hessian there is ``H`` restricted to a complement, positive
definite). At a minimum ``Theta*`` the loss is therefore a regular model of
``(K - 1) r`` parameters times a flat factor, and

    LLC = (K - 1) r / 2.

After LayerNorm (the features on a hyperplane through the origin, ``r = d - 1`` for ``W``)
the head's LLC is ``(K - 1)(d - 1)/2``; after RMSNorm (a sphere, ``r = d``) it is
``(K - 1) d / 2``. The drop is ``(K - 1)/2``, not ``m/2 = K/2``: one of the ``K`` output
directions is already flat for every input. With a learned LayerNorm bias the plane misses
the origin (``r = d`` for ``W``) and the head's own bias decides, as for softmax inputs.

A minimum needs the loss to stay bounded below along every escaping direction. With one-hot
labels that a head can separate, the infimum is at infinity; smoothed labels (every class
keeps some target mass) give a finite minimum and leave ``H`` unchanged.

>>> from llcgeo.manifolds import LayerNormImage, RMSNormImage, SoftmaxHead
>>> from llcgeo.theory.llc import predicted_llc
>>> head = SoftmaxHead(10)
>>> predicted_llc(LayerNormImage(16), head).llc, predicted_llc(RMSNormImage(16), head).llc
(135/2, 72)
>>> predicted_llc(LayerNormImage(16), head).closed_form
(K - 1)*(d - 1)/2
"""

from __future__ import annotations

import sympy as sp

K_SYMBOL = sp.Symbol("K", positive=True, integer=True)


def softmax_hessian(features, probabilities, *, bias: bool = False) -> sp.Matrix:
    """The exact ``E[A(p) (x) z~ z~^T]`` of the empirical distribution of ``features`` (rows
    ``z_i``) with class probabilities ``probabilities`` (rows ``p_i``), in ``vec(Theta)``
    order (class-major): the reference the rank formula is tested against.

    >>> h = softmax_hessian([[1, -1], [2, -2]], [[sp.Rational(1, 2)] * 2] * 2)
    >>> h.shape, h.rank()
    ((4, 4), 1)
    """
    rows = []
    for z, p in zip(features, probabilities, strict=True):
        zt = sp.Matrix([*z, 1] if bias else list(z))
        pv = sp.Matrix(p)
        a = sp.diag(*pv) - pv * pv.T
        rows.append(sp.kronecker_product(a, zt * zt.T))
    return sum(rows[1:], rows[0]) / len(rows)
