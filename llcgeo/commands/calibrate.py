"""``llcgeo calibrate``: SGLD settings for a named case, from its Hessian and the exact theory."""

from __future__ import annotations

import sys

from llcgeo.commands._common import (
    add_case_parser,
    add_json_argument,
    calibrated,
    case_from_args,
    case_problem,
    print_columns,
    print_json,
    print_note,
    print_table,
    step_progress,
)
from llcgeo.config import TARGETS


def register(sub) -> None:
    p = add_case_parser(
        sub,
        "calibrate",
        help="recommend eps, gamma, burn-in and steps from theory, with the reasons",
        description="Fit the layer to teacher-student data on the manifold (as estimate does), "
        "compute its Hessian spectrum, and choose the SGLD settings whose exact step-size "
        "bias, localization bias and standard error meet the targets.",
    )
    g = p.add_argument_group("targets (fractions of the LLC)")
    g.add_argument("--bias-target", type=float, default=TARGETS.bias, help="step-size bias")
    g.add_argument(
        "--localization-target", type=float, default=TARGETS.localization,
        help="localization bias",
    )  # fmt: skip
    g.add_argument("--se-target", type=float, default=TARGETS.se, help="standard error")
    add_json_argument(p)
    p.add_argument(
        "--figure",
        metavar="PNG",
        help="also run the estimate on a grid around the choice (eps x 1/8..4, gamma x 0.1..10, "
        "one batch) and draw it there, with the exact curve",
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    manifold, layer, refine, config = case_from_args(args)
    problem = case_problem(args, manifold, layer, refine, config)
    calibration = calibrated(args, problem, config)
    r, c = calibration.recommendation, calibration.config
    record = {
        "eps": c.eps,
        "gamma": c.gamma,
        "steps": c.steps,
        "burnin": c.burnin,
        "chains": c.chains,
        "nbeta": calibration.nbeta,
        "expected_estimate": r.expected,
        "expected_se": r.standard_error,
        "llc_of_the_curved_directions": r.llc,
        "hessian_eigenvalues": [float(v) for v in calibration.spectrum],
        "reasons": list(r.reasons),
    }
    if args.figure:
        record["grid"] = _evidence(args, problem, calibration)
    if args.json:
        print_json(record)
        return 0
    shown = ("hessian_eigenvalues", "reasons", "grid")
    print_table([(k, v) for k, v in record.items() if k not in shown])
    print("why:")
    for reason in r.reasons:
        print_note(reason, first="  - ")
    if args.figure:
        print(f"the grid around the choice, one batch (figure: {args.figure}):")
        print_columns(GRID_HEADERS, [_grid_row(p) for p in record["grid"]])
    return 0


GRID_HEADERS = ("eps", "gamma", "estimate", "expected", "R-hat", "ESS", "diverged")


def _grid_row(point: dict) -> tuple[str, ...]:
    expected = point["expected"]
    return (
        f"{point['eps']:.3g}", f"{point['gamma']:.3g}",
        f"{point['mean']:.3f} +- {point['se']:.3f}",
        "-" if expected is None else f"{expected:.3f}",
        f"{point['rhat']:.3f}", f"{point['ess']:.0f}", str(point["diverged"]),
    )  # fmt: skip


def _evidence(args, problem, calibration) -> list[dict]:
    """Run the grid on the case's problem, write its figure to ``args.figure``; the points as
    plain records."""
    from llcgeo.reconcile.calibration import evidence, evidence_figure
    from llcgeo.report.figures import save

    points = evidence(
        problem, calibration, seed=args.seed, progress=step_progress(sys.stderr, "the grid")
    )
    save(evidence_figure(points, calibration), args.figure)
    return [p._asdict() for p in points]
