"""Each normalization in a traced network, and every linear map that reads its output.

A model is traced with ``torch.export`` (a batch dimension left free), which leaves one graph of
ATen operations whatever the model's Python: ``nn.LayerNorm`` and ``F.layer_norm`` both appear
as ``aten.layer_norm``, ``nn.Linear``, ``F.linear`` and the packed Q, K, V projection of
``nn.MultiheadAttention`` as ``aten.linear``. A *reader* of a norm is a linear map whose input is
the norm's output, reached through operations that only move whole feature vectors about
(views, transposes that keep the last axis, selections of rows): it then sees exactly the norm's
image. Any other use (an activation, a residual sum) is reported as a use that is not a reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import fx

from llcgeo.errors import ScanError, in_brief

aten = torch.ops.aten


class NormOp(NamedTuple):
    """Where a norm operation keeps its arguments: ``kind`` is ``"layernorm"`` or
    ``"rmsnorm"`` (the image's geometry), the rest are positions in ``node.args``."""

    kind: str
    shape: int
    gain: int
    bias: int | None


NORM_OPS: dict = {
    aten.layer_norm.default: NormOp("layernorm", 1, 2, 3),
    aten.rms_norm.default: NormOp("rmsnorm", 1, 2, None),
}


def register_norm(target, kind: str, *, shape: int, gain: int, bias: int | None = None) -> None:
    """Count ``target`` (an ATen overload) as a norm of ``kind`` whose normalized shape, gain and
    bias are its arguments at those positions."""
    if kind not in ("layernorm", "rmsnorm"):
        raise ScanError(f"a norm's kind is 'layernorm' or 'rmsnorm', got {kind!r}")
    NORM_OPS[target] = NormOp(kind, shape, gain, bias)


# operations that move whole feature vectors (the last axis) about and change none of them
_MOVERS = {
    aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.contiguous.default,
    aten.clone.default, aten.alias.default, aten.detach.default, aten.transpose.int,
    aten.permute.default, aten.select.int, aten.slice.Tensor, aten.unsqueeze.default,
    aten.squeeze.dim, aten.unflatten.int, aten.flatten.using_ints, aten.expand.default,
    aten.dropout.default,
}  # fmt: skip
_LINEAR = {aten.linear.default}
_MATMUL = {aten.matmul.default, aten.mm.default}
_TRANSPOSE = {aten.t.default, aten.transpose.int, aten.permute.default}


@dataclass
class Reader:
    """A linear map ``y = W z (+ b)`` of a norm's output: ``weight`` and ``bias`` name the
    parameters (``transposed``: the graph holds ``W^T``, as in ``z @ P``)."""

    node: str
    weight: str
    bias: str | None
    outputs: int
    inputs: int
    transposed: bool = False
    tied: bool = False  # the weight is read elsewhere in the network too
    logits: bool = False  # its output reaches the network's output, through sums at most
    direct: bool = False  # its output is the network's output (moved about, nothing added)


@dataclass
class Norm:
    """A normalization over the last axis, its trained gain and bias, and who reads it."""

    node: str
    kind: str
    width: int
    gain: str | None
    bias: str | None
    readers: list[Reader] = field(default_factory=list)
    other_uses: list[str] = field(default_factory=list)
    note: str = ""


def trace(model: torch.nn.Module, example) -> fx.GraphModule:
    """``model`` as one ATen graph, its batch dimension free (``example``: two samples, a
    tensor or a dict of them)."""
    return export(model, example).module()


def export(model: torch.nn.Module, example) -> torch.export.ExportedProgram:
    """The ``torch.export`` program :func:`trace` takes its graph from."""
    args, kwargs = ((), example) if isinstance(example, dict) else ((example,), {})
    batch = {0: torch.export.Dim.AUTO}
    shapes = {k: batch for k in kwargs} if kwargs else (batch,)
    try:
        program = torch.export.export(model.eval(), args, kwargs, dynamic_shapes=shapes)
    except Exception as error:  # any failure of the tracer is the model's, said in its words
        raise ScanError(
            f"the tracer cannot follow the model ({in_brief(error, 300)}); scan "
            "needs a model torch.export can trace with a free batch dimension"
        ) from None
    return program


def _last_axis_kept(node: fx.Node) -> bool:
    """Whether a mover keeps every feature vector whole (the last axis stays last, unsplit)."""
    val, source = node.meta.get("val"), node.args[0].meta.get("val")
    if val is None or source is None or val.dim() == 0 or val.shape[-1] != source.shape[-1]:
        return False
    last = source.dim() - 1
    if node.target == aten.transpose.int:
        return all(int(a) % source.dim() != last for a in node.args[1:3])
    if node.target == aten.permute.default:
        return int(node.args[1][-1]) % source.dim() == last
    if node.target in (aten.select.int, aten.slice.Tensor):
        return int(node.args[1]) % source.dim() != last
    if node.target == aten.unsqueeze.default:
        return int(node.args[1]) % (source.dim() + 1) != last + 1
    return True


def _parameter(node) -> tuple[str, bool] | None:
    """``(name, transposed)`` where ``node`` is a parameter, or a transpose of one."""
    if isinstance(node, fx.Node) and node.op == "get_attr":
        return node.target, False
    if isinstance(node, fx.Node) and node.target in _TRANSPOSE and node.args[0].op == "get_attr":
        return node.args[0].target, True
    return None


_SUMS = {aten.add.Tensor, aten.sub.Tensor}


def _reaches_output(node: fx.Node, through=frozenset()) -> bool:
    """Whether ``node``'s value is the graph's output, through movers and ``through`` only
    (``_SUMS``: a term of the logits, as a head on a residual branch is; adding one number to
    every logit of a term adds it to every logit of the sum, which the cross-entropy ignores)."""
    passes = _MOVERS | through
    for user in node.users:
        if user.op == "output" or (user.target in passes and _reaches_output(user, through)):
            return True
    return False


def _reader(gm: fx.GraphModule, node: fx.Node, source: fx.Node) -> Reader | None:
    """The reader ``node`` makes of ``source``, or None where it is not a linear map of it."""
    if node.target in _LINEAR and node.args[0] is source:
        weight = _parameter(node.args[1])
        bias = node.args[2] if len(node.args) > 2 else None
        if weight is None or weight[1] or (bias is not None and _parameter(bias) is None):
            return None
        name, transposed = weight[0], False
    elif node.target in _MATMUL and node.args[0] is source and _parameter(node.args[1]):
        (name, transposed), bias = _parameter(node.args[1]), None
        transposed = not transposed  # z @ P reads W = P^T; z @ W^T reads W
    else:
        return None
    shape = gm.get_parameter(name).shape
    if len(shape) != 2:
        return None
    outputs, inputs = (shape[1], shape[0]) if transposed else (shape[0], shape[1])
    bias_name = None if bias is None else bias.target
    uses = sum(1 for n in gm.graph.nodes if n.op == "get_attr" and n.target == name
               for _ in n.users)  # fmt: skip
    return Reader(node.name, name, bias_name, outputs, inputs, transposed, tied=uses > 1,
                  logits=_reaches_output(node, _SUMS), direct=_reaches_output(node))  # fmt: skip


def _read(gm: fx.GraphModule, norm: Norm, value: fx.Node) -> None:
    """Follow ``value`` (the norm's output, or a moved copy of it) to its readers."""
    for user in value.users:
        if user.target in _MOVERS and _last_axis_kept(user):
            _read(gm, norm, user)
            continue
        reader = _reader(gm, user, value)
        if reader is not None:
            norm.readers.append(reader)
        else:
            norm.other_uses.append(f"{user.name} ({op_name(user)})")


def op_name(node: fx.Node) -> str:
    return str(getattr(node.target, "__name__", node.target)).removesuffix(".default")


def _arg(node: fx.Node, position: int | None):
    return node.args[position] if position is not None and position < len(node.args) else None


def _attribute(node) -> str | None:
    if node is None:
        return None
    if isinstance(node, fx.Node) and node.op == "get_attr":
        return node.target
    raise ScanError(f"the norm's gain or bias is computed ({node}), not a parameter")


def find_norms(gm: fx.GraphModule) -> list[Norm]:
    """Every norm over the last axis in ``gm``, with its readers; a norm over several axes is
    listed with a note and no readers."""
    norms = []
    for node in gm.graph.nodes:
        op = NORM_OPS.get(node.target) if node.op == "call_function" else None
        if op is None:
            continue
        shape = list(node.args[op.shape])
        try:
            gain, bias = _attribute(_arg(node, op.gain)), _attribute(_arg(node, op.bias))
        except ScanError as error:
            norms.append(Norm(node.name, op.kind, int(shape[-1]), None, None, note=str(error)))
            continue
        norm = Norm(node.name, op.kind, int(shape[-1]), gain, bias)
        if len(shape) != 1:
            norm.note = f"normalizes over {len(shape)} axes; scan reads norms over the last one"
        else:
            _read(gm, norm, node)
        norms.append(norm)
    return norms
