"""``llcgeo check``: derive, measure and reconcile the claims of hypothesis files."""

from __future__ import annotations

import argparse

from llcgeo.commands._common import add_executor_arguments, add_json_argument, print_note

DESCRIPTION = """\
Each FILE (TOML; see examples/hypotheses/README.md) names a manifold, a layer, sampler settings
and claims such as llc = "m*(d-1)/2". Every file is checked first (all problems are reported
before anything runs); then each claim is derived exactly, measured with SGLD and reconciled,
and a report like that of `llcgeo report` is written under --out, one section per file.
Exit status: 0 when every claim agrees, 1 when any claim disagrees or is inconclusive, 2 on bad
input."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check the claims of hypothesis files (TOML)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="hypothesis files (.toml)")
    parser.add_argument(
        "--out", default="reports/check", help="output folder (default %(default)s)"
    )
    add_json_argument(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_executor_arguments(parser)
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from llcgeo.hypotheses.judging import hypothesis_experiment
    from llcgeo.hypotheses.schema import load_hypotheses

    hypotheses = load_hypotheses(args.files)  # every file checked before torch or the report load
    from llcgeo.commands.report import run_sweep

    experiments = [hypothesis_experiment(h) for h in hypotheses]
    report = run_sweep(args, experiments, scale="small", title="Hypothesis check")
    outcome = check_outcome(hypotheses, report)
    if args.json:
        from llcgeo.commands._common import print_json

        print_json(outcome)
    else:
        print_outcome(outcome)
    return 0 if outcome["verdict"] == "agree" else 1


def check_outcome(hypotheses, report) -> dict:
    """The verdict of every file and claim, and where the report is, as plain values; a file's
    verdict and the whole check's are :func:`llcgeo.reconcile.stats.combined` of their parts."""
    from llcgeo.reconcile.stats import combined

    results = {r.name: r for r in report.results}
    files = []
    for h in hypotheses:
        claims = [
            {"claim": c.claim, "prediction": c.prediction, "measurement": c.measurement,
             "verdict": c.verdict, "note": c.note}
            for c in results[h.name].claims
        ]  # fmt: skip
        verdict = combined(c["verdict"] for c in claims)
        files.append({"file": h.source, "name": h.name, "verdict": verdict, "claims": claims})
    paths = report.paths
    return {
        "verdict": combined(f["verdict"] for f in files),
        "files": files,
        "report": {"markdown": str(paths.markdown), "html": str(paths.html),
                   "results_json": str(paths.results_json),
                   "claims_csv": str(paths.claims_csv),
                   "cases_csv": [str(p) for p in paths.cases_csv]},
        "computed": report.computed,
        "reused": report.reused,
    }  # fmt: skip


def print_outcome(outcome: dict) -> None:
    from llcgeo.reconcile.model import VERDICTS

    for f in outcome["files"]:
        print(f"{f['verdict']:<12}  {f['file']}")
        for c in f["claims"]:
            line = f"{c['claim']}: predicted {c['prediction']}, measured {c['measurement']}"
            print_note(line, first=f"  {c['verdict']:<12}  ", rest=" " * 16)
            if c["verdict"] != "agree" and c["note"]:
                print_note(c["note"], first=" " * 16, rest=" " * 16)
    counts = {v: sum(f["verdict"] == v for f in outcome["files"]) for v in VERDICTS}
    total = len(outcome["files"])
    print(
        f"{total} file{'s' if total != 1 else ''}: {counts['agree']} agree, "
        f"{counts['disagree']} disagree, {counts['inconclusive']} inconclusive."
    )
    print(f"report: {outcome['report']['markdown']}")
    print(f"        {outcome['report']['html']}")
