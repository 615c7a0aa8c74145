"""The Hessian of a reader inside the network from its structure, where everything after it
acts on each row of its output alone.

A reader's output ``Y`` has one row a position (a sample's, or each token's of a sequence). Where
every operation after the reader maps row ``s`` of its inputs to row ``s`` of its output (an
activation, a linear map of the features, a norm over the last axis, a residual sum) and the loss
sums over rows (the cross-entropy, the Gaussian loss), the loss is ``sum_s l_s(y_s)`` with
``y_s = W z_s + b``. Its Hessian in the reader's parameters is then exactly
``sum_s G_s (x) z_s z_s^T``, ``G_s`` the Hessian of ``l_s`` in ``y_s``: the curvature of all that
follows, its second-order terms included. The Hessian in ``Y`` is block-diagonal over rows, so
one product with a coordinate set in every row gives that column of every ``G_s``: ``m``
Hessian-vector products in the outputs, not one a quotient direction in the weights.

:func:`row_wise` proves the structure operation by operation, from the list of those known to
act row by row (``ELEMENTWISE``, ``LAST_AXIS``), on the values the graph takes; anything else
(attention, a sum over rows, a reshape, a loss it does not know) is named, and the reader's
Hessian is taken by products in its weights instead.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import fx
from torch.func import grad, jvp, vmap

from llcgeo.errors import in_brief
from llcgeo.limits import check_budget
from llcgeo.numerics.paths.losses import CrossEntropy, gaussian_loss
from llcgeo.numerics.paths.module import copied
from llcgeo.scanner.reader import linear_map_hessian, node_values
from llcgeo.scanner.trace import op_name

aten = torch.ops.aten
OUTPUT = "reader_output"
COORDINATES_AT_ONCE = 32  # output coordinates probed together

# operations that act entry by entry: row s of the output reads row s of each input alone
ELEMENTWISE = {
    aten.gelu.default, aten.relu.default, aten.tanh.default, aten.sigmoid.default,
    aten.silu.default, aten.softplus.default, aten.elu.default, aten.leaky_relu.default,
    aten.exp.default, aten.log.default, aten.neg.default, aten.sqrt.default, aten.rsqrt.default,
    aten.square.default, aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.add.Tensor,
    aten.sub.Tensor, aten.rsub.Scalar, aten.mul.Tensor, aten.div.Tensor, aten.reciprocal.default,
    aten.erf.default, aten.mish.default, aten.hardswish.default, aten.hardtanh.default,
    aten.clamp.default, aten.relu6.default, aten.hardsigmoid.default, aten.log1p.default,
    aten.expm1.default, aten.gt.Scalar, aten.lt.Scalar, aten.ge.Scalar, aten.le.Scalar,
    aten.where.self, aten.masked_fill.Scalar, aten.zeros_like.default, aten.ones_like.default,
    aten.full_like.default, aten.clone.default, aten.alias.default, aten.contiguous.default,
    aten.dropout.default,
}  # fmt: skip
# operations that mix the last axis of a row and nothing else: where its dimension argument is
LAST_AXIS = {
    aten.linear.default: None, aten.layer_norm.default: None, aten.rms_norm.default: None,
    aten.softmax.int: 1, aten._softmax.default: 1, aten.log_softmax.int: 1,
    aten._log_softmax.default: 1, aten.mean.dim: 1, aten.sum.dim_IntList: 1, aten.amax.default: 1,
    aten.logsumexp.default: 1,
}  # fmt: skip
REDUCTIONS = {aten.mean.dim, aten.sum.dim_IntList, aten.amax.default, aten.logsumexp.default}
SEPARABLE_LOSSES = (CrossEntropy,)  # by exact type: a subclass may weigh one sample by others


def downstream(model: fx.GraphModule, node_name: str) -> fx.GraphModule:
    """A copy of ``model`` (a reader model, upstream frozen) in which the reader's output is an
    input, ``reader_output``: the loss as a function of ``Y``."""
    out = copied(model)
    graph = out.graph
    node = next(n for n in graph.nodes if n.name == node_name)
    with graph.inserting_before(next(iter(graph.nodes))):
        placeholder = graph.placeholder(OUTPUT)
    node.replace_all_uses_with(placeholder)
    graph.erase_node(node)
    graph.eliminate_dead_code()
    out.recompile()
    return out


def why_not_row_wise(model: fx.GraphModule, x, loss, node_name: str) -> str | None:
    """``None`` where the Hessian of ``model``'s reader (node ``node_name``, upstream frozen)
    can be taken from its structure (:func:`row_wise`); otherwise why not (and the products
    in the weights, which need no structure, take it)."""
    if isinstance(model.graph._codegen, fx.graph._PyTreeCodeGen):
        return "the model's inputs are a dict, or it has several outputs"
    try:
        outputs = reader_values(model, x, node_name)[1]
        inputs = {**inputs_of(model, x), OUTPUT: outputs}
        return row_wise(downstream(model, node_name), inputs, loss)
    except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as error:
        return f"its structure could not be followed ({in_brief(error)})"


def row_wise(model: fx.GraphModule, inputs: dict, loss) -> str | None:
    """``None`` where ``model`` (from :func:`downstream`) maps each row of ``reader_output`` to
    the same row of its output alone and ``loss`` sums over the output's rows; otherwise the
    first operation (or the loss) that does not, in words."""
    if not (type(loss) in SEPARABLE_LOSSES or loss is gaussian_loss):
        return f"the loss {loss!r} ({type(loss).__name__}) is not known to sum over positions"
    values = _values(model, inputs)
    reached = {n for n in model.graph.nodes if n.op == "placeholder" and n.target == OUTPUT}
    rows = values[next(iter(reached))].shape[:-1]
    for node in model.graph.nodes:
        if node.op == "output" or not any(a in reached for a in node.all_input_nodes):
            continue
        why = _not_row_wise(node, reached, values, rows)
        if why:
            return f"{node.name} ({op_name(node)}) {why}"
        reached.add(node)
    (last,) = [a for a in _output_nodes(model) if isinstance(a, fx.Node)] or [None]
    if last is None or last not in reached or values[last].shape[:-1] != rows:
        return "the model's output is not the rows of what follows the reader"
    return None


def _not_row_wise(node: fx.Node, reached: set, values: dict, rows) -> str | None:
    value = values[node]
    if not isinstance(value, torch.Tensor) or value.shape[:-1] != rows:
        return "does not keep one row a position"
    moving = [a for a in node.all_input_nodes if a in reached]
    if node.target == aten.dropout.default and (len(node.args) < 3 or node.args[2]):
        return "draws at random (dropout in training mode)"
    if node.target in ELEMENTWISE:
        # every reached value keeps the rows, so broadcasting can only spread the last axis
        same = all(values[a].dim() == value.dim() for a in moving)
        return None if same else "broadcasts a value of the reader's across positions"
    if node.target not in LAST_AXIS:
        return "is not known to act on each position alone"
    others = []  # by position: a node given twice (linear(h, h)) is one input node
    fx.node.map_arg((node.args[1:], node.kwargs), others.append)
    if node.args[0] not in reached or any(a in reached for a in others):
        return "mixes the reader's output into a parameter"
    if not _last_axis_only(node, value.dim()):
        return "acts beyond the last axis"
    return None


def _last_axis_only(node: fx.Node, dims: int) -> bool:
    position = LAST_AXIS[node.target]
    if node.target in (aten.layer_norm.default, aten.rms_norm.default):
        return len(node.args[1]) == 1
    if position is None:  # a linear map of the features
        return True
    axes = node.args[position] if position < len(node.args) else None
    axes = [axes] if isinstance(axes, int) else list(axes or [])
    keeps = node.target not in REDUCTIONS or _keepdim(node)
    return keeps and len(axes) == 1 and int(axes[0]) % dims == dims - 1


def _keepdim(node: fx.Node) -> bool:
    return bool(node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False))


def _output_nodes(model: fx.GraphModule) -> list:
    output = next(n for n in model.graph.nodes if n.op == "output")
    args = output.args[0]
    return list(args) if isinstance(args, (tuple, list)) else [args]


def _placeholders(model: fx.GraphModule) -> list[str]:
    return [n.target for n in model.graph.nodes if n.op == "placeholder"]


def _in_order(model: fx.GraphModule, inputs: dict) -> list:
    return [inputs[name] for name in _placeholders(model)]


def _values(model: fx.GraphModule, inputs: dict) -> dict:
    return node_values(model, *_in_order(model, inputs))


def inputs_of(model: fx.GraphModule, x) -> dict:
    """``model``'s inputs by placeholder name (``x`` a tensor: its one input, or a dict)."""
    if isinstance(x, dict):
        return x
    (name,) = _placeholders(model)
    return {name: x}


def reader_values(model: fx.GraphModule, x, node_name: str):
    """``(z, Y)``: the reader's input and output in ``model`` on ``x``, one row a position."""
    values = _values(model, inputs_of(model, x))
    node = next(n for n in model.graph.nodes if n.name == node_name)
    return values[node.args[0]], values[node]


def output_rows(model: fx.GraphModule, x, node_name: str) -> int:
    """The rows of the reader's output on ``x`` (a sample's, or each position's), as
    :func:`output_hessians` counts them."""
    return reader_values(model, x, node_name)[1][..., 0].numel()


def output_hessians(after: fx.GraphModule, x: dict, y, loss, outputs: torch.Tensor,
                    used: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """``G``, ``(rows, k, k)``: the Hessian of the mean loss in each row of the reader's
    ``outputs`` (``(..., m)``), between the ``k`` output coordinates ``used``, by ``k``
    Hessian-vector products in the outputs."""
    rows, k = outputs[..., 0].numel(), len(used)
    check_budget(output_hessian_bytes(rows, k), None, f"the Hessians of {rows} rows in {k} outputs")

    def value(reader_output):
        return loss(after(*_in_order(after, {**x, OUTPUT: reader_output})), y).mean()

    gradient = grad(value)
    columns = []
    for chunk in used.split(COORDINATES_AT_ONCE):
        probes = outputs.new_zeros(len(chunk), *outputs.shape)
        probes[torch.arange(len(chunk)), ..., chunk] = 1
        products = vmap(lambda v: jvp(gradient, (outputs,), (v,))[1])(probes)
        columns.append(products[..., used].reshape(len(chunk), rows, k))
    g = torch.cat(columns).permute(1, 2, 0)  # [s, i, j] = d2 l / dy_si dy_sj
    return (g + g.transpose(1, 2)) / 2


def output_hessian_bytes(rows: int, outputs: int) -> int:
    """Peak bytes of :func:`output_hessians` (float64): the Hessians, their symmetrized copy
    and a batch of products."""
    return 8 * rows * outputs * (2 * outputs + COORDINATES_AT_ONCE)


def rowwise_hessian(model, x, y, loss, factors, node_name: str) -> np.ndarray:
    """``B^T H B`` on the quotient ``B = E x R`` of a reader whose downstream is row-wise
    (:func:`row_wise` holds), at the reader's current parameters."""
    z, outputs = reader_values(model, x, node_name)
    directions, rows = factors
    used = np.flatnonzero(np.abs(directions).sum(axis=1))  # a block's outputs, or all of them
    after = downstream(model, node_name)
    g = output_hessians(after, inputs_of(model, x), y, loss, outputs, torch.from_numpy(used))
    g = g * len(g)  # G holds the loss's mean over rows, which linear_map_hessian takes again
    return linear_map_hessian(z.reshape(-1, z.shape[-1]), lambda part: g[part],
                              (directions[used], rows))  # fmt: skip

