"""``llcgeo verify``: one case, predicted, measured and reconciled, with its verdict."""

from __future__ import annotations

import sys

from llcgeo.commands._common import (
    add_case_parser,
    add_json_argument,
    case_from_args,
    print_json,
    print_table,
    settled,
    step_progress,
)


def register(sub) -> None:
    p = add_case_parser(sub, "verify", help="reconcile one case: theory, SGLD measurement, verdict")
    add_json_argument(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from llcgeo.reconcile import Case, reconcile_case
    from llcgeo.serialize import significant

    manifold, layer, refine, config = case_from_args(args)
    config, problem = settled(args, manifold, layer, refine, config)
    case = Case(manifold, layer, refine, args.n, config, seed=args.seed, sigma=args.sigma)
    result = reconcile_case(
        case, device=args.device, problem=problem, progress=step_progress(sys.stderr)
    )
    record = {
        "verdict": result.verdict,
        "predicted_llc": result.predicted_llc,
        "predicted_llc_exact": result.predicted_llc_exact,
        "tested_against": significant(result.reference),
        "mode": result.mode,
        "llc_mean": significant(result.llc_mean),
        "se": significant(result.se),
        "z" if result.dof is None else "t": significant(result.z, 4),
        "reasons": list(result.reasons),
        "rhat": significant(result.rhat, 4),
        "ess": significant(result.ess, 4),
        "diverged_chains": list(result.diverged_chains),
        "seconds": significant(result.seconds, 3),
        "device": result.device,
        "case": result.case,
    }
    if args.json:
        print_json(record)
    else:
        shown = {k: v for k, v in record.items() if k != "case"}
        shown["reasons"] = "; ".join(result.reasons) or "-"
        print_table(list(shown.items()))
    return 0
