"""``llcgeo predict``: the exact LLC of a linear layer or softmax head on a manifold."""

from __future__ import annotations

from llcgeo.commands._common import (
    add_json_argument,
    add_manifold_arguments,
    layer_from_args,
    manifold_from_args,
    print_json,
    print_table,
)


def register(sub) -> None:
    p = sub.add_parser("predict", help="exact Hessian rank and LLC (theory only)")
    add_manifold_arguments(p)
    p.add_argument(
        "--classes",
        type=int,
        help="a softmax head of this many classes under cross-entropy, instead of --m",
    )
    g = p.add_argument_group(
        "a deep linear network y = W_L ... W_1 x instead of one layer (reduced-rank regression "
        "with one hidden width)"
    )
    g.add_argument("--hidden", help="hidden widths, comma-separated, e.g. 3 or 4,2,3")
    g.add_argument("--rank", type=int, default=None, help="the teacher's true rank")
    add_json_argument(p)
    p.set_defaults(handler=run)


def _hidden(text: str) -> list[int]:
    from llcgeo.errors import SpecError

    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise SpecError(f"--hidden must be comma-separated integers, got {text!r}") from None


def singular_record(args, manifold) -> dict:
    """The exact coefficient of a deep linear network on the manifold's data."""
    from llcgeo.errors import SpecError
    from llcgeo.theory.singular import singular_llc

    if args.rank is None:
        raise SpecError("--hidden needs --rank, the true rank of the teacher's map")
    if args.refine != "all":
        raise SpecError("a deep linear network is predicted for all its parameters only")
    if args.m is None or args.classes is not None:
        raise SpecError("--hidden needs --m, the network's output dimension (no --classes)")
    p = singular_llc(manifold, _hidden(args.hidden), args.m, args.rank, bias=args.bias)
    return {
        "manifold": args.manifold,
        "spec": repr(manifold),
        "widths": list(p.widths),
        "effective_widths": list(p.effective_widths),
        "rank": p.rank,
        **exact_pair("llc", p.llc),
        "multiplicity": p.coefficient.multiplicity,
        **exact_pair("llc_unconstrained", p.unconstrained.llc),
        **exact_pair("llc_drop", p.llc_drop),
        **exact_pair("regular_drop", p.regular_drop),
    }


def prediction_record(args, manifold, layer, refine) -> dict:
    from llcgeo.theory import affine_support, predicted_llc

    pred = predicted_llc(manifold, layer, refine)
    support = affine_support(manifold)
    return {
        "manifold": args.manifold,
        "spec": repr(manifold),
        "d": manifold.d,
        **_head_size(layer),
        "bias": layer.bias,
        "refine": refine,
        "span_dimension": support.span_dimension,
        "affine_hull_dimension": support.affine_dimension,
        "hessian_rank": pred.hessian_rank,
        **exact_pair("llc", pred.llc),
        **exact_pair("llc_unconstrained", pred.llc_unconstrained),
        **exact_pair("llc_drop", pred.llc_drop),
        "flat": pred.flat,
        "closed_form": str(pred.closed_form),
        "witness": [[float(v) for v in pred.witness.row(i)] for i in range(pred.witness.rows)],
        "witness_exact": [[str(v) for v in pred.witness.row(i)] for i in range(pred.witness.rows)],
    }


def _head_size(layer) -> dict:
    from llcgeo.manifolds import SoftmaxHead

    return {"classes": layer.classes} if isinstance(layer, SoftmaxHead) else {"m": layer.m}


def exact_pair(name: str, value) -> dict:
    """``name`` as a JSON number and ``name_exact`` as its exact text (``10.5`` and ``"21/2"``)."""
    return {name: float(value), f"{name}_exact": str(value)}


def run(args) -> int:
    manifold = manifold_from_args(args)
    if args.hidden is not None:
        record = singular_record(args, manifold)
    else:
        layer, refine = layer_from_args(args)
        record = prediction_record(args, manifold, layer, refine)
    if args.json:
        print_json(record)
        return 0
    # a table shows the exact text of a value that has one
    shown = {k: record.get(f"{k}_exact", v) for k, v in record.items() if not k.endswith("_exact")}
    witness = shown.pop("witness", None)  # its exact text
    if witness is not None:
        shown["witness"] = "; ".join("(" + ", ".join(row) + ")" for row in witness[:4]) or "none"
        if len(witness) > 4:
            shown["witness"] += f"; ... ({len(witness)} forms)"
    print_table(list(shown.items()))
    return 0
