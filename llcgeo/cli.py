"""The ``llcgeo`` command line: a thin dispatcher over ``llcgeo.commands.<name>``.

Each command module offers ``register(subparsers)``; heavy imports happen inside its handler, so
``llcgeo --help`` stays fast. Every command takes the limits of :mod:`llcgeo.limits`
(``--time-limit``, ``--max-memory``). Whatever goes wrong, a user sees one line naming it and
exit status 2, never a traceback (``LLCGEO_DEBUG=1`` shows the traceback of an internal error).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module

from llcgeo.errors import DEBUG_ENV, LLCGeoError, in_brief
from llcgeo.limits import MEMORY_ENV, TIME_ENV, Budget, using

COMMANDS = ("predict", "estimate", "verify", "calibrate", "report", "check", "scan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llcgeo",
        description="Predict, measure and reconcile the LLC of linear layers on manifold data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"llcgeo.commands.{name}").register(sub)
    for command in sub.choices.values():
        add_limit_arguments(command)
    return parser


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("limits (see llcgeo.limits)")
    g.add_argument(
        "--time-limit",
        metavar="SECONDS",
        help="bound on each exact derivation (default 60) and on the planned time of each "
        f"sampling run (default 600); also {TIME_ENV}; 'inf': none",
    )
    g.add_argument(
        "--max-memory",
        metavar="GB",
        help=f"memory a run may plan to use (default 2, or half the RAM if less; also "
        f"{MEMORY_ENV}; 'inf': none)",
    )


def budget_of(args) -> Budget:
    """The budget of the limit flags, each flag not given taken from the environment; built,
    and so checked, before any work (a bad value fails now, not mid-run)."""
    return Budget.of(args.max_memory, args.time_limit, base=Budget.from_environment())


@contextmanager
def limits_of(args) -> Iterator[Budget]:
    """The limit flags' budget in force for every layer below while the command runs (by a
    context variable: ``main`` may be called many times in one process, and the environment
    is left as it is)."""
    with using(budget_of(args)) as budget:
        yield budget


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with limits_of(args):
            return int(args.handler(args) or 0)
    except LLCGeoError as err:
        return _fail(args.command, str(err))
    except KeyboardInterrupt:
        print(f"llcgeo {args.command}: interrupted", file=sys.stderr)
        return 130
    except RecursionError:
        return _fail(args.command, "the input is nested too deeply to process")
    except MemoryError:
        return _fail(args.command, "out of memory; use smaller sizes (see --max-memory)")
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        return _fail(
            args.command,
            f"internal error ({in_brief(err, 300)}); rerun with {DEBUG_ENV}=1 for the "
            "traceback and please report it",
        )


def _fail(command: str, message: str) -> int:
    print(f"llcgeo {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
