"""What the trained norm proves about each reader, exactly, whatever the rest of the network is.

The norm's gain and bias are read as exact rationals (every float is one), giving the norm's
image as a manifold spec (:class:`~llcgeo.manifolds.LayerNormImage` or
:class:`~llcgeo.manifolds.RMSNormImage`); :func:`llcgeo.theory.support.affine_support` gives its
exact affine hull. A change ``(dW, db)`` of a reader with ``dW z + db = 0`` on that hull changes
no output on any input, so the loss is exactly flat along it: those directions are *certified
flat*. The rest form the reader's *quotient*, of dimension ``q r`` with ``r`` the dimension of
the span of ``(z, 1)`` (a reader with a bias) or of ``z`` (without), and ``q`` the outputs, or
``K - 1`` for logits read by the cross-entropy (adding one number to every logit changes
nothing). That dimension is :func:`llcgeo.theory.predicted_llc`'s Hessian rank for a linear
layer or softmax head on that image, and the LLC lies between half the Hessian's rank on the
quotient and half the quotient's dimension (:mod:`llcgeo.scanner`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llcgeo import manifolds as mf
from llcgeo.scanner.trace import Norm, Reader
from llcgeo.theory import predicted_llc
from llcgeo.theory.support import affine_support


@dataclass(frozen=True)
class Certificate:
    """A reader's exact counts: ``parameters`` in all, ``quotient`` not certified flat."""

    parameters: int
    quotient: int
    unconstrained: int  # the quotient's dimension on Gaussian features (no norm)
    image: str  # the norm's image, in words

    @property
    def flat(self) -> int:
        return self.parameters - self.quotient

    @property
    def drop(self) -> int:
        """Twice the certified drop of the LLC against Gaussian features."""
        return self.unconstrained - self.quotient


def image_spec(norm: Norm, gain, bias):
    """The norm's image as a manifold spec, from its gain and bias (float sequences or None)."""
    if norm.kind == "layernorm":
        return mf.LayerNormImage(norm.width, gain=gain, bias=bias)
    return mf.RMSNormImage(norm.width, gain=gain)


def head_of(reader: Reader, classes_read: bool):
    """The theory's head for ``reader``: a softmax head where its output is the logits of the
    cross-entropy, else a linear layer."""
    bias = reader.bias is not None
    if classes_read and reader.logits:
        return mf.SoftmaxHead(reader.outputs, bias=bias)
    return mf.LinearLayer(reader.outputs, bias=bias)


def moving_bias(reader: Reader, refine: str) -> bool:
    """Whether the reader's bias moves: it has one, and ``refine`` is ``"all"`` (``"weight"``:
    the weight alone, the bias frozen)."""
    return reader.bias is not None and refine == "all"


def certify(spec, reader: Reader, classes_read: bool, refine: str = "all") -> Certificate:
    """The reader's exact counts on the norm image ``spec``, its weight (and, with ``refine``
    ``"all"``, its bias) moving."""
    head = head_of(reader, classes_read)
    prediction = predicted_llc(spec, head, refine if reader.bias is not None else "all")
    parameters = reader.outputs * (reader.inputs + moving_bias(reader, refine))
    hull = affine_support(spec)
    described = f"affine hull {hull.affine_dimension}, span {hull.span_dimension} of {spec.d}"
    return Certificate(parameters, int(prediction.hessian.rank),
                       int(2 * prediction.llc_unconstrained), described)  # fmt: skip


def output_directions(reader: Reader, classes_read: bool) -> int:
    """The quotient's output directions: every output, or one fewer for a softmax head's logits
    (adding one number to all of them changes nothing)."""
    return reader.outputs - isinstance(head_of(reader, classes_read), mf.SoftmaxHead)


def quotient_basis(spec, reader: Reader, classes_read: bool, refine: str = "all",
                   outputs: int | None = None) -> np.ndarray:  # fmt: skip
    """An orthonormal basis (``P x q r``, float64) of the reader's quotient, in the order of its
    flattened parameters (``W`` row-major, then ``b``): output directions (all of them, or those
    summing to zero for logits) times the row space the norm's image spans. ``outputs`` keeps
    the first that many output directions alone (a block of the quotient: for a reader that is
    not a softmax head, its first ``outputs`` rows). Column ``a r + b`` is output direction
    ``a`` times row direction ``b`` (:func:`quotient_factors`)."""
    factors = quotient_factors(spec, reader, classes_read, refine, outputs)
    return factored_basis(*factors, reader.inputs)


def factored_basis(directions: np.ndarray, rows: np.ndarray, inputs: int) -> np.ndarray:
    """The basis ``E x R`` of :func:`quotient_factors` in the order of the reader's flattened
    parameters (the bias's entries after the weight's, where ``R`` has a row for it)."""
    m, width = directions.shape[0], rows.shape[0]
    return _in_parameter_order(np.einsum("ia,jb->ijab", directions, rows).reshape(m, width, -1),
                               inputs)  # fmt: skip


def _in_parameter_order(by_entry: np.ndarray, inputs: int) -> np.ndarray:
    """``(m, width, columns)``, one slice an entry of the reader's ``m x width`` parameters (the
    bias's last), as rows in the order of its flattened parameters: the weight's, then the
    bias's where ``width`` has a column for it."""
    weight = by_entry[:, :inputs].reshape(by_entry.shape[0] * inputs, -1)
    if by_entry.shape[1] == inputs:
        return weight
    return np.concatenate([weight, by_entry[:, inputs]], axis=0)


def factored_product(directions: np.ndarray, rows: np.ndarray, inputs: int,
                     matrix: np.ndarray) -> np.ndarray:  # fmt: skip
    """``factored_basis(directions, rows, inputs) @ matrix``, one factor at a time: for a
    16 384-direction quotient about a hundredth of the dense product's work (which takes minutes
    on two cores)."""
    m, width = directions.shape[0], rows.shape[0]
    blocks = np.asarray(matrix).reshape(directions.shape[1], rows.shape[1], -1)
    by_row = np.matmul(rows, blocks)  # (q, width, columns)
    full = (directions @ by_row.reshape(directions.shape[1], -1)).reshape(m, width, -1)
    return _in_parameter_order(full, inputs)


def quotient_factors(spec, reader: Reader, classes_read: bool, refine: str = "all",
                     outputs: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(E, R)``: the quotient is ``E`` (``m x q``, orthonormal output directions) times ``R``
    (``width x r``, the orthonormal row directions the norm's image spans, ``width`` the
    reader's inputs plus one for a moving bias, whose entry is last)."""
    support = affine_support(spec)
    if moving_bias(reader, refine):
        forms = [[*map(float, a), -float(c)] for a, c in zip(support.forms, support.values)]
        width = reader.inputs + 1
    else:
        forms = [list(map(float, a)) for a in support.linear_forms()]
        width = reader.inputs
    rows = complement(np.asarray(forms, dtype=np.float64).reshape(-1, width), width)
    directions = np.eye(reader.outputs)
    if output_directions(reader, classes_read) < reader.outputs:
        directions = complement(np.ones((1, reader.outputs)), reader.outputs)
    return directions[:, :outputs], rows


def complement(forms: np.ndarray, width: int) -> np.ndarray:
    """An orthonormal basis (columns) of the vectors every row of ``forms`` annihilates (the
    rows are independent: an exact support's forms are a basis)."""
    if forms.shape[0] == 0:
        return np.eye(width)
    return np.linalg.svd(forms)[2][forms.shape[0] :].T
