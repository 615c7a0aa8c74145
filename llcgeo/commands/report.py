"""``llcgeo report``: run a suite of experiments and write the comparison report."""

from __future__ import annotations

import argparse
import sys

from llcgeo.commands._common import add_executor_arguments, executor_from_args

DESCRIPTION = """\
Run every case of a suite (reusing finished cases from the results store under --out), then
write report.md, a self-contained report.html, one PNG per experiment, results.json (claims and
cases), claims.csv and one cases_<experiment>.csv per experiment. Interrupt at any time: a rerun
picks up where it stopped. The exit status is 0 whenever the report was written, whatever its
verdicts; 2 on bad input."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="run a suite of experiments and write the comparison report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--suite",
        default="all",
        help="paper, geometry, isometry, lipschitz, singular, network or all (default all: "
        "every claim)",
    )
    parser.add_argument(
        "--experiment",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="run only these experiments of the suite",
    )
    parser.add_argument(
        "--out", default="reports/latest", help="output folder (default %(default)s)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--scale", default="small", choices=("small", "full"))
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_executor_arguments(parser)
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from llcgeo.suites import select, suite

    experiments = select(suite(args.suite), args.experiment)
    print_outcome(run_sweep(args, experiments, scale=args.scale))
    return 0


def run_sweep(args, experiments, **options):
    """``run_experiments`` on the executor the flags name, with the progress display unless
    ``--quiet``, the verdict rules as the report's preamble."""
    from llcgeo.reconcile.verdict import THRESHOLDS_MARKDOWN
    from llcgeo.report import run_experiments

    printer = None if args.quiet else ProgressPrinter(sys.stderr)
    options.setdefault("preamble", THRESHOLDS_MARKDOWN)
    try:
        with executor_from_args(args) as executor:
            return run_experiments(experiments, out=args.out, device=args.device,
                                   progress=printer, executor=executor, **options)  # fmt: skip
    finally:
        if printer is not None:
            printer.close()


class ProgressPrinter:
    """One updating line on a terminal; one line per finished case otherwise (logs, CI)."""

    def __init__(self, stream):
        self.stream = stream
        self.live = stream.isatty()
        self.open_line = False

    def __call__(self, event) -> None:
        if event.phase == "plan":
            to_run = event.total - event.reused
            self._line(
                f"{event.total} cases: {event.reused} reused from the store, {to_run} to run"
            )
        elif event.phase == "problem":
            self._line(f"warning: {event.message}")
        elif self.live:
            self._update(_describe(event))
        elif event.phase == "done":
            self._line(_describe(event))

    def _line(self, text: str) -> None:
        self.close()
        print(text, file=self.stream, flush=True)

    def _update(self, text: str) -> None:
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self.open_line = True

    def close(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False


def _describe(event) -> str:
    from llcgeo.report.formatting import format_seconds

    verb = "running" if event.phase == "start" else "finished"
    left = "estimating" if event.remaining is None else f"~{format_seconds(event.remaining)}"
    return (
        f"case {event.index} of {event.total} ({event.experiment}) {verb}; "
        f"elapsed {format_seconds(event.elapsed)}, left {left}"
    )


def print_outcome(report) -> None:
    from llcgeo.report.formatting import format_seconds

    paths = report.paths
    print(f"report: {paths.markdown}")
    print(f"        {paths.html}")
    print(f"data:   {paths.results_json}, {paths.claims_csv}, {len(paths.cases_csv)} cases CSV")
    print(
        f"{report.computed} cases computed, {report.reused} reused, "
        f"in {format_seconds(report.seconds)}"
    )
    if report.problems:
        print(f"{len(report.problems)} stored case(s) were untrusted and recomputed (see report)")
    claims = [(r.name, c) for r in report.results for c in r.claims]
    for name, claim in claims:
        print(f"  {claim.verdict:<12}  {name}: {claim.claim}")
    counts = {
        v: sum(c.verdict == v for _, c in claims) for v in ("agree", "disagree", "inconclusive")
    }
    print(
        f"{len(claims)} claims: {counts['agree']} agree, {counts['disagree']} disagree, "
        f"{counts['inconclusive']} inconclusive."
    )
    if counts["disagree"] or counts["inconclusive"]:
        print("Verdicts other than agree are findings, explained in the report; exit status 0.")
