"""Command-line interface: ``sacroplan``. A thin layer over the Python API.

Exit codes: 0 plan written (safe or caution), 3 plan written but unsafe or infeasible,
2 bad input (a :class:`~planner.errors.PlannerError`), 1 internal error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from planner import __version__
from planner.errors import PlannerError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_UNSAFE = 3


def _cmd_series(args: argparse.Namespace) -> int:
    from planner.loading import format_series_table, list_series

    print(format_series_table(list_series(args.path)))
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    from planner.loading import load

    volume = load(args.input, series=args.series)
    print(f"loaded {volume!r}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sacroplan",
        description="Plan an interpedicular sacroplasty needle path from CT. Research use only.",
    )
    parser.add_argument("--version", action="version", version=f"sacroplan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    series = commands.add_parser("series", help="list the image series found in a folder")
    series.add_argument("path")
    series.set_defaults(handler=_cmd_series)

    plan = commands.add_parser("plan", help="plan a needle path for one CT")
    plan.add_argument("input", help="DICOM folder, multi-frame DICOM, NIfTI, NRRD or MHA file")
    plan.add_argument("-o", "--output", required=True, help="output folder")
    plan.add_argument("--series", default=None, help="SeriesInstanceUID to use from a DICOM folder")
    plan.set_defaults(handler=_cmd_plan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except PlannerError as error:
        print(f"sacroplan: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print("sacroplan: error: out of memory", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("sacroplan: interrupted", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
