"""The ``llcgeo`` command line: a thin dispatcher over ``llcgeo.commands.<name>``.

Each command module offers ``register(subparsers)``; heavy imports happen inside its handler, so
``llcgeo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from llcgeo.errors import LLCGeoError

COMMANDS = ("predict", "estimate", "verify", "report", "check")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llcgeo",
        description="Predict, measure and reconcile the LLC of linear layers on manifold data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"llcgeo.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except LLCGeoError as err:
        print(f"llcgeo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"llcgeo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
