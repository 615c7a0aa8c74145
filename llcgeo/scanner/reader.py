"""The network as a function of one reader's parameters, the rest frozen; its refit, and its
Hessian on the reader's quotient.

:func:`reader_model` copies the traced graph, turns every other parameter into a buffer and
gives the reader node parameters of its own (``reader_weight``, ``reader_bias``): a tied weight
then moves only where this reader reads it. The copy is an ``nn.Module`` like any other, so
:func:`llcgeo.numerics.estimate.model_problem` samples it on the general path.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import fx
from torch.func import functional_call, grad, hessian, jvp, vmap
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from llcgeo.errors import EstimationError
from llcgeo.limits import check_budget, run_seconds
from llcgeo.numerics.measurements.heads import MINIMUM_GRADIENT, kronecker_mean, linear_head
from llcgeo.numerics.paths.data import take
from llcgeo.numerics.paths.module import as_buffers, copied, named_parts
from llcgeo.scanner.trace import Reader
from llcgeo.thresholds import FLAT

WEIGHT, BIAS = "reader_weight", "reader_bias"
REFIT_ITERATIONS = 500
NEWTON_STEPS = 20  # damped; near the minimum each squares the gradient's relative size
DAMPING_TRIES = 30  # each raises the damping tenfold
DIRECTIONS_AT_ONCE = 32  # Hessian-vector products batched together


def reader_model(gm: fx.GraphModule, reader: Reader, dtype: torch.dtype,
                 moving_bias: bool) -> fx.GraphModule:  # fmt: skip
    """A copy of ``gm`` in ``dtype`` whose only parameters are the reader's weight (and its
    bias where ``moving_bias``)."""
    out = copied(gm).to(dtype)
    weight = out.get_parameter(reader.weight).detach().clone()
    bias = out.get_parameter(reader.bias).detach().clone() if moving_bias else None
    as_buffers(out)
    out.register_parameter(WEIGHT, torch.nn.Parameter(weight.T if reader.transposed else weight))
    node = next(n for n in out.graph.nodes if n.name == reader.node)
    with out.graph.inserting_before(node):
        w = out.graph.get_attr(WEIGHT)
        if node.target != torch.ops.aten.linear.default:  # a product z @ W^T
            w = out.graph.call_function(torch.ops.aten.t.default, (w,))
        args = list(node.args)
        args[1] = w
        if bias is not None:
            out.register_parameter(BIAS, torch.nn.Parameter(bias))
            args[2] = out.graph.get_attr(BIAS)
        node.args = tuple(args)
    out.graph.eliminate_dead_code()
    out.recompile()
    return out


FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def retyped(model: fx.GraphModule, dtype: torch.dtype) -> fx.GraphModule:
    """A copy of ``model`` in ``dtype`` whose operations make their tensors in ``dtype`` too
    (the trace ran in float64, and an operation such as ``zeros_like(mask, dtype=...)`` keeps
    the dtype it saw)."""
    out = copied(model).to(dtype)
    for node in out.graph.nodes:
        node.args = tuple(dtype if a in FLOATS else a for a in node.args)
        if node.kwargs.get("dtype") in FLOATS:
            node.kwargs = {**node.kwargs, "dtype": dtype}
    out.recompile()
    return out


def frozen_upstream(model: fx.GraphModule, x):
    """``(model', x')``: ``model`` (from :func:`reader_model`) taking, beside its input, the
    values on ``x`` of the nodes its reader's parameters do not reach (``x'`` holds them), so
    that a step recomputes only what follows the reader. A value that is not one row a sample
    (a transposed copy, a size) is recomputed from those it is made of. ``(model, x)``
    unchanged for inputs in a dict or several outputs."""
    single = isinstance(model.graph._codegen, fx.graph._PyTreeCodeGen) and (
        model.graph._codegen.pytree_info.out_spec.is_leaf()
    )
    if not isinstance(x, torch.Tensor) or not single:
        return model, x
    after = _reached(model.graph, lambda n: n.op == "get_attr" and n.target in (WEIGHT, BIAS))
    data = _reached(model.graph, lambda n: n.op == "placeholder")
    values = node_values(model, x)
    while True:
        frontier = [n for n in model.graph.nodes if n in data and n not in after
                    and n.op != "placeholder" and any(u in after for u in n.users)]  # fmt: skip
        apart = {n for n in frontier if not _one_row_a_sample(values[n], len(x))}
        if not apart:
            break
        after |= apart
    out = copied(model)
    inputs = _cut(out.graph, [n.name for n in frontier], after={n.name for n in after})
    out.recompile()
    (name,) = (n.target for n in out.graph.nodes
               if n.op == "placeholder" and n.target not in inputs)  # fmt: skip
    return out, {name: x, **{key: values[n] for key, n in zip(inputs, frontier)}}


def _one_row_a_sample(value, samples: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() > 0 and len(value) == samples


def _reached(graph: fx.Graph, start) -> set:
    """The nodes that ``start`` picks, and every node computed from them."""
    reached = set()
    for node in graph.nodes:  # in topological order
        if start(node) or any(a in reached for a in node.all_input_nodes):
            reached.add(node)
    return reached


def node_values(model: fx.GraphModule, *inputs) -> dict:
    """Every node's value on ``inputs`` (in the order of the graph's placeholders)."""
    interpreter = fx.Interpreter(model, garbage_collect_values=False)
    with torch.no_grad():
        interpreter.run(*inputs)
    return interpreter.env


def _cut(graph: fx.Graph, frontier: list[str], after: set[str]) -> list[str]:
    """Make each ``frontier`` node an input of ``graph`` for the nodes in ``after``; drop what
    no longer feeds the output, and return the new inputs' names."""
    nodes = {n.name: n for n in graph.nodes}
    first = next(iter(graph.nodes))
    names = []
    for name in frontier:
        with graph.inserting_before(first):
            placeholder = graph.placeholder(f"cached_{name}")
        nodes[name].replace_all_uses_with(placeholder, lambda user: user.name in after)
        names.append(placeholder.target)
    output = next(n for n in graph.nodes if n.op == "output")
    output.args = output.args[0]  # a single output, returned as itself
    graph.set_codegen(fx.graph.CodeGen())
    graph.eliminate_dead_code()
    return names


def _mean_loss(model, x, y, loss):
    shapes = {name: p.shape for name, p in model.named_parameters()}
    args, kwargs = ((), x) if isinstance(x, dict) else ((x,), {})

    def value(flat: torch.Tensor) -> torch.Tensor:
        parts = named_parts(flat, shapes)
        return loss(functional_call(model, parts, args, kwargs), y).mean()

    return value


def refit(model, x, y, loss, basis: torch.Tensor, curvature) -> tuple[float, float]:
    """Move ``model``'s reader to the minimum of its loss near where it is (L-BFGS on the
    quotient, in float64, as a start, then damped Newton steps on its exact Hessian: each
    step the Levenberg-Marquardt one that lowers the loss, so an indefinite Hessian on the
    way cannot throw it off; the certified-flat directions cannot lower it).
    ``curvature(model)`` gives that Hessian (:func:`quotient_hessian`, or a head's
    :func:`head_hessian`). Returns the loss before and after; refuses, with the trained point's
    gradient, a point whose gradient on the quotient stays above ``MINIMUM_GRADIENT`` after
    ``NEWTON_STEPS`` steps, or as many as the run's time limit holds."""
    value = _mean_loss(model, x, y, loss)
    start = parameters_to_vector(model.parameters()).detach()
    began = time.perf_counter()
    moved = _lbfgs(value, start, basis)
    gradient, damping, steps = basis.T @ grad(value)(moved), 0.0, 0
    out_of_time = False
    while float(gradient.norm()) >= MINIMUM_GRADIENT and steps < NEWTON_STEPS:
        out_of_time = not _time_for_one_more(began, steps)
        if out_of_time:
            break
        _place(model, moved)
        moved, damping = _damped_newton(value, moved, basis, curvature(model), gradient, damping)
        gradient, steps = basis.T @ grad(value)(moved), steps + 1
    _place(model, moved if float(gradient.norm()) < MINIMUM_GRADIENT else start)
    if not float(gradient.norm()) < MINIMUM_GRADIENT:
        trained = float((basis.T @ grad(value)(start)).norm())
        lead = (f"the reader's refit reached no minimum within the run's time limit "
                f"({run_seconds():.3g} s)" if out_of_time else
                "the reader's loss has no minimum within reach")  # fmt: skip
        raise NoMinimum(
            float(value(start)),
            f"{lead}: its gradient on the quotient is {trained:.3g} at the trained point and "
            f"{float(gradient.norm()):.3g} after L-BFGS and {steps} damped Newton steps (a "
            f"minimum needs below {MINIMUM_GRADIENT:g})"
        )
    return float(value(start)), float(value(moved))


def _time_for_one_more(began: float, steps: int) -> bool:
    """Whether one more Newton step, taking as long as the mean of those before (the L-BFGS
    start counted as one), ends within the run's time limit of ``began``."""
    spent = time.perf_counter() - began
    return spent + spent / (steps + 1) <= run_seconds()


class NoMinimum(EstimationError):
    """The refit found no minimum near the trained point, whose ``loss`` this is."""

    def __init__(self, loss: float, why: str):
        super().__init__(why)
        self.loss = loss


def _place(model, vector: torch.Tensor) -> None:
    with torch.no_grad():
        vector_to_parameters(vector.clone(), model.parameters())


def _damped_newton(value, moved, basis, hessian: np.ndarray, gradient, damping: float):
    """``(point, damping)`` after one Levenberg-Marquardt step ``-(H + mu I)^-1 g``: ``mu`` at
    least ``FLAT`` of the Hessian's scale and large enough for ``H + mu I`` to have a Cholesky
    factor (positive definite), raised tenfold until the loss falls (and lowered tenfold after
    a step that lowers it); the point unchanged where none does. A factor, not an
    eigendecomposition: a tenth of the work on a whole quotient."""
    h = torch.from_numpy(hessian)
    floor = FLAT * max(float(h.diagonal().abs().max()), 1e-300)
    identity = torch.eye(len(h), dtype=h.dtype)
    current = float(value(moved))
    mu = max(damping, floor)
    for _ in range(DAMPING_TRIES):
        factor, info = torch.linalg.cholesky_ex(h + mu * identity)
        if int(info) == 0:
            trial = moved - basis @ torch.cholesky_solve(gradient[:, None], factor)[:, 0]
            if float(value(trial)) < current:
                return trial, max(mu / 10, floor)
        mu *= 10
    return moved, mu


def _lbfgs(value, start: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    coords = torch.zeros(basis.shape[1], dtype=start.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([coords], max_iter=REFIT_ITERATIONS, tolerance_grad=1e-14,
                                  tolerance_change=0.0, line_search_fn="strong_wolfe")  # fmt: skip

    def closure():
        optimizer.zero_grad()
        out = value(start + basis @ coords)
        out.backward()
        return out

    optimizer.step(closure)
    return (start + basis @ coords.detach()).detach()


def quotient_hessian(model, x, y, loss, basis: torch.Tensor) -> np.ndarray:
    """``B^T H B``: the Hessian of the mean loss in the reader's parameters at their current
    values, on the quotient's basis ``B``, by exact Hessian-vector products (forward over
    reverse: a third faster than reverse over reverse), ``DIRECTIONS_AT_ONCE`` at a time."""
    products = _hessian_products(model, _mean_loss(model, x, y, loss))
    directions = basis.shape[1]
    what = f"the reader's Hessian on {directions} directions of {basis.shape[0]} parameters"
    nbytes = hessian_bytes(basis.shape[0], directions)
    check_budget(nbytes, None, what)
    chunks = basis.T.split(DIRECTIONS_AT_ONCE)
    columns = []
    began = time.perf_counter()
    for chunk in chunks:
        columns.append(products(chunk) @ basis)
        if len(columns) == 1:  # planned from the first batch, before the rest runs
            check_budget(nbytes, hessian_seconds(time.perf_counter() - began, directions), what)
    h = torch.cat(columns).numpy()
    return (h + h.T) / 2


def batch_seconds(model, x, y, loss) -> float:
    """Seconds a batch of ``DIRECTIONS_AT_ONCE`` Hessian-vector products of the reader's loss
    takes here, as :func:`quotient_hessian` takes them, timed."""
    products = _hessian_products(model, _mean_loss(model, x, y, loss))
    probes = torch.zeros(DIRECTIONS_AT_ONCE, basis_rows(model), dtype=torch.float64)
    began = time.perf_counter()
    products(probes)
    return time.perf_counter() - began


def hessian_seconds(batch_seconds: float, directions: int) -> float:
    """The planned time of :func:`quotient_hessian` on ``directions`` directions, a batch of
    ``DIRECTIONS_AT_ONCE`` products taking ``batch_seconds``: as many batches as they fill."""
    return batch_seconds * math.ceil(directions / DIRECTIONS_AT_ONCE)


def _hessian_products(model, value):
    """A function taking a batch of directions in the reader's parameters (one a row) to their
    products with the Hessian of ``value`` at the current parameters."""
    centre = parameters_to_vector(model.parameters()).detach()
    gradient = grad(value)

    def product(v: torch.Tensor) -> torch.Tensor:
        return jvp(gradient, (centre,), (v,))[1]

    def products(directions: torch.Tensor) -> torch.Tensor:
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            return vmap(product)(directions)

    return products


def hessian_bytes(parameters: int, directions: int) -> int:
    """Peak bytes of :func:`quotient_hessian` (float64): the basis, a batch of products, the
    Hessian, its symmetrized copy and the eigendecomposition that follows."""
    return 8 * (parameters * (directions + DIRECTIONS_AT_ONCE) + 4 * directions * directions)


def head_hessian(head: torch.nn.Linear, x, y, loss, factors) -> np.ndarray:
    """``B^T H B`` for a linear head whose outputs the loss reads directly, ``B = E x R``
    (:func:`~llcgeo.scanner.certify.quotient_factors`), exactly and without a single
    Hessian-vector product: the loss is a mean over rows of ``l(W z_s + b, y_s)``, and ``A_s``,
    the Hessian of ``l`` in the head's outputs, comes per row from ``torch.func``
    (:func:`linear_map_hessian`)."""
    with torch.no_grad():
        outputs = head(x)
    return linear_map_hessian(x, lambda part: output_curvature(loss, outputs[part], y[part]),
                              factors)  # fmt: skip


def linear_map_hessian(z: torch.Tensor, curvature, factors) -> np.ndarray:
    """``B^T H B``, ``B = E x R``, for the mean over rows of a loss read through a linear map
    ``W z_s + b`` whose Hessian in row ``s``'s outputs is ``curvature(rows)[s]`` (a slice of
    rows, ``(len, m, m)``): ``H = mean_s A_s x z_s z_s^T`` (``z_s`` with a 1 for a moving bias),
    on the quotient ``mean_s (E^T A_s E) x (R^T z_s)(R^T z_s)^T``
    (:func:`~llcgeo.numerics.measurements.heads.kronecker_mean`)."""
    directions, rows = (torch.from_numpy(f).to(z) for f in factors)
    q, r = directions.shape[1], rows.shape[1]
    features = z if rows.shape[0] == z.shape[1] else torch.cat([z, z.new_ones(len(z), 1)], 1)
    check_budget(hessian_bytes(directions.shape[0] * rows.shape[0], q * r), None,
                 f"the reader's Hessian on {q * r} directions")  # fmt: skip
    h = kronecker_mean(lambda part: directions.T @ curvature(part) @ directions,
                       features @ rows, q).numpy()  # fmt: skip
    return (h + h.T) / 2


def output_curvature(loss, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The Hessian of the per-sample ``loss`` in each row's outputs, ``(rows, m, m)``."""

    def one(out, target):
        return loss(out[None], target[None])[0]

    return vmap(hessian(one))(outputs, targets)


def basis_rows(model) -> int:
    """The rows of a basis over ``model``'s parameters: their entries in all."""
    return sum(p.numel() for p in model.parameters())


def evaluation_rows(n: int, rows: int, seed: int):
    """The samples the scan's loss is taken on: all ``n`` of them, or ``rows`` drawn from ``seed``
    where there are more."""
    if n <= rows:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:rows]


def subset(x, y, index):
    return (x, y) if index is None else (take(x, index), y[index])


def is_head(reader: Reader, x, classes_read: bool) -> bool:
    """Whether the reader's output is the logits the cross-entropy reads: then nothing after it
    but the loss depends on its weight, and it is sampled on its input features alone."""
    return classes_read and reader.direct and isinstance(x, torch.Tensor)


def features(gm: fx.GraphModule, reader: Reader, x: torch.Tensor) -> torch.Tensor:
    """The reader's input on every sample, one row a feature vector (samples x positions)."""
    node = next(n for n in gm.graph.nodes if n.name == reader.node)
    value = node_values(gm, x)[node.args[0]]
    return value.reshape(-1, value.shape[-1])


def head_model(gm: fx.GraphModule, reader: Reader, moving_bias: bool):
    """``(nn.Linear at the reader's parameters, param_masks)`` in float64."""
    weight = gm.get_parameter(reader.weight).detach()
    bias = None if reader.bias is None else gm.get_parameter(reader.bias).detach()
    return linear_head(weight.T if reader.transposed else weight, bias, moving_bias=moving_bias)
