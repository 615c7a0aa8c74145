"""``llcgeo predict``: the exact LLC of a linear layer on a manifold."""

from __future__ import annotations

from llcgeo.commands._common import (
    add_manifold_arguments,
    layer_from_args,
    manifold_from_args,
    print_json,
    print_table,
)


def register(sub) -> None:
    p = sub.add_parser("predict", help="exact Hessian rank and LLC (theory only)")
    add_manifold_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def prediction_record(args, manifold, layer, refine) -> dict:
    from llcgeo.theory import affine_support, predicted_llc

    pred = predicted_llc(manifold, layer, refine)
    support = affine_support(manifold)
    return {
        "manifold": args.manifold,
        "spec": repr(manifold),
        "d": manifold.d,
        "m": layer.m,
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


def exact_pair(name: str, value) -> dict:
    """``name`` as a JSON number and ``name_exact`` as its exact text (``10.5`` and ``"21/2"``)."""
    return {name: float(value), f"{name}_exact": str(value)}


def run(args) -> int:
    manifold = manifold_from_args(args)
    layer, refine = layer_from_args(args)
    record = prediction_record(args, manifold, layer, refine)
    if args.json:
        print_json(record)
        return 0
    # a table shows the exact text of a value that has one
    shown = {k: record.get(f"{k}_exact", v) for k, v in record.items() if not k.endswith("_exact")}
    witness = shown.pop("witness")  # its exact text
    shown["witness"] = "; ".join("(" + ", ".join(row) + ")" for row in witness[:4]) or "none"
    if len(witness) > 4:
        shown["witness"] += f"; ... ({len(witness)} forms)"
    print_table(list(shown.items()))
    return 0
