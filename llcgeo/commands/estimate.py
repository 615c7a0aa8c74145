"""``llcgeo estimate``: measure the LLC of a linear layer on manifold data with batched SGLD."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from llcgeo.commands._common import (
    add_case_parser,
    add_json_argument,
    case_from_args,
    print_json,
    print_note,
    print_table,
    settled,
    step_progress,
)
from llcgeo.config import CLI_SGLD, DTYPES


def register(subparsers) -> None:
    parser = add_case_parser(
        subparsers,
        "estimate",
        help="estimate the (weight-refined) LLC with SGLD",
        description="Fit a linear layer to teacher-student data on a manifold and estimate its "
        "local learning coefficient with SGLD (all chains batched).",
    )
    g = parser.add_argument_group("precision and output")
    g.add_argument("--dtype", default=CLI_SGLD.dtype, choices=DTYPES)
    add_json_argument(g)
    g.add_argument(
        "--acceptance",
        action="store_true",
        help="record the Metropolis acceptance probability of the SGLD steps (a step-size check)",
    )
    g.add_argument("--trace", metavar="PNG", help="draw each chain's loss trace there")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from llcgeo.numerics.measurements.teacher_student import measure_problem
    from llcgeo.serialize import to_jsonable

    manifold, layer, refine, config = case_from_args(args)
    config = replace(config, dtype=args.dtype)
    config, problem = settled(args, manifold, layer, refine, config)
    progress = step_progress(sys.stderr)
    result = measure_problem(problem, config, seed=args.seed, progress=progress)
    estimate = result.estimate
    for warning in estimate.warnings:
        print_note(warning, first="llcgeo estimate: warning: ", stream=sys.stderr)
    if args.trace:
        _draw_trace(estimate, args.trace)
    if args.json:
        settings = {
            "manifold": to_jsonable(manifold),
            "layer": to_jsonable(layer),
            "refine": refine,
            "sigma": args.sigma,
        }
        print_json({**estimate.to_dict(), **settings})
        return 0
    print_table(_rows(estimate, manifold, layer, refine))
    return 0


def _rows(estimate, manifold, layer, refine) -> list[tuple[str, object]]:
    config = estimate.config
    batch = "full" if config.batch_size is None else str(config.batch_size)
    return [
        ("manifold", manifold),
        ("layer", f"{layer}, refine={refine}"),
        ("n, nbeta", f"{estimate.n}, {estimate.nbeta:.6g}"),
        (
            "sgld",
            f"eps={config.eps:g} gamma={config.gamma:g} batch={batch} "
            f"chains={config.chains} steps={config.steps} burnin={config.burnin}",
        ),
        ("llc", f"{estimate.mean:.4f} +- {estimate.se:.4f} (standard error over chains)"),
        ("per chain", " ".join(f"{v:.3f}" for v in estimate.per_chain)),
        ("diverged", ", ".join(map(str, estimate.diverged_chains)) or "none"),
        ("rhat, ess", f"{estimate.rhat:.4f}, {estimate.ess:.0f}"),
        *(
            [("acceptance", f"{estimate.acceptance_rate:.3f} (Metropolis, not applied)")]
            if estimate.acceptance_rate is not None
            else []
        ),
        ("device, time", f"{estimate.device}, {estimate.seconds:.2f} s"),
    ]


def _draw_trace(estimate, path: str) -> None:
    from llcgeo.report.figures import save
    from llcgeo.report.traces import trace_figure

    save(trace_figure(estimate), path)
