"""Command-line interface: ``sacroplan``. A thin layer over the Python API.

Exit codes: 0 plan written (safe or caution), 3 plan written but unsafe or infeasible,
2 bad input (a :class:`~planner.errors.PlannerError`), 1 internal error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from planner import __version__
from planner.errors import PlannerError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_UNSAFE = 3

LEVEL_CHOICES = ("S1", "S2", "S3", "S4", "S5")
NEEDLE_CHOICES = ("13G", "11G", "10G")


def _lps_point(text: str) -> tuple[float, float, float]:
    """argparse type for ``X,Y,Z`` in LPS mm."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z in mm, got {text!r}") from error
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 comma-separated numbers, got {text!r}")
    return values  # type: ignore[return-value]


def _progress(args: argparse.Namespace):
    if getattr(args, "quiet", False):
        return None
    start = time.perf_counter()

    def report(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.2f} s] {message}", file=sys.stderr, flush=True)

    return report


def _summary(result) -> dict:
    plan = result.plan
    return {
        "case": result.case_id,
        "verdict": plan["verdict"],
        "feasible": plan.get("feasible", True),
        "reasons": plan.get("reasons", []),
        "output_dir": str(result.output_dir),
        "report": str(Path(result.output_dir) / "report.pdf"),
        "metrics": plan.get("metrics", {}),
        "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
    }


def _finish(args: argparse.Namespace, result) -> int:
    if getattr(args, "json", False):
        print(json.dumps(_summary(result), indent=2))
    elif not getattr(args, "quiet", False):
        print(f"verdict: {result.verdict}; plan written to {result.output_dir}", file=sys.stderr)
        for reason in result.plan.get("reasons", []):
            print(f"  - {reason}", file=sys.stderr)
    if not getattr(args, "json", False):
        # On stdout even with -q: the one line a script needs to open the result.
        print(f"report: {Path(result.output_dir) / 'report.pdf'}")
    return EXIT_UNSAFE if result.written_unsafe else EXIT_OK


def _request_from_args(args: argparse.Namespace):
    from planner.pipeline import CaseRequest

    if args.sacrum_label is not None and args.segmentation is None:
        raise PlannerError("--sacrum-label needs --segmentation LABELMAP")
    target = args.target if args.target is not None else args.target_level
    return CaseRequest(
        input_path=Path(args.input),
        output_dir=Path(args.output),
        series=args.series,
        target=target,
        lesion_path=Path(args.lesion) if args.lesion else None,
        needle=args.needle,
        config_path=Path(args.config) if args.config else None,
        save_masks=args.save_masks,
        segmentation_path=Path(args.segmentation) if args.segmentation else None,
        sacrum_label=args.sacrum_label,
        show_identifiers=args.show_identifiers,
        allow_resample=args.allow_resample,
        modality=args.modality,
        mri_path=Path(args.mri) if args.mri else None,
        mri_series=args.mri_series,
        mri_contrast=args.mri_contrast,
        lesion_mri_path=Path(args.lesion_mri) if args.lesion_mri else None,
        lesion_seed_mr_lps=args.lesion_seed,
    )


def _cmd_plan(args: argparse.Namespace) -> int:
    from planner.pipeline import run_case

    return _finish(args, run_case(_request_from_args(args), _progress(args)))


def _cmd_demo(args: argparse.Namespace) -> int:
    from planner.pipeline import CaseRequest, run_case
    from planner.sample import sample_case_path

    request = CaseRequest(input_path=sample_case_path(), output_dir=Path(args.output))
    return _finish(args, run_case(request, _progress(args)))


def _cmd_series(args: argparse.Namespace) -> int:
    from planner.loading import format_series_table, list_series

    print(format_series_table(list_series(args.path)))
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    from planner.batch import run_batch

    summary = run_batch(
        Path(args.cases),
        Path(args.output),
        workers=args.workers,
        needle=args.needle,
        config_path=Path(args.config) if args.config else None,
        progress=_progress(args),
    )
    if not args.quiet:
        print(f"summary: {summary.csv_path}", file=sys.stderr)
    return summary.exit_code


def _add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, help="output folder (replaced whole)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--target",
        type=_lps_point,
        metavar="X,Y,Z",
        help="target point in LPS mm (default: centre of the S3 body)",
    )
    target.add_argument(
        "--target-level",
        choices=LEVEL_CHOICES,
        default=None,
        help="target the centre of this sacral body",
    )
    target.add_argument("--lesion", metavar="MASK", help="lesion mask; target its centre")
    parser.add_argument(
        "--needle",
        choices=NEEDLE_CHOICES,
        default="13G",
        help="needle gauge (default 13G, 2.41 mm)",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML file: thresholds and C-arm")
    parser.add_argument(
        "--save-masks",
        action="store_true",
        help="write masks/{sacrum,canal,foramina,levels}.nii.gz on the input grid",
    )
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to plan on")
    parser.add_argument(
        "--segmentation",
        metavar="LABELMAP",
        help="use this label map's sacrum instead of segmenting",
    )
    parser.add_argument(
        "--sacrum-label",
        type=int,
        metavar="N",
        help="label of the sacrum in --segmentation (e.g. 92 for TotalSegmentator)",
    )
    parser.add_argument(
        "--modality",
        choices=("CT", "MR"),
        default="CT",
        help="MR plans on a T1-weighted MRI alone (bone margins from MRI: caution)",
    )
    mri = parser.add_argument_group("MRI of the same patient")
    mri.add_argument("--mri", metavar="MR", help="MRI (DICOM folder or file), registered to the CT")
    mri.add_argument("--mri-series", metavar="UID", help="SeriesInstanceUID of the MRI")
    # planner.phantom.MR_CONTRASTS holds the same list; importing it costs the CLI 0.7 s.
    mri.add_argument("--mri-contrast", choices=("T1", "T2", "STIR"), help="MRI weighting")
    lesion = mri.add_mutually_exclusive_group()
    lesion.add_argument("--lesion-mri", metavar="MASK", help="lesion drawn on the MRI")
    lesion.add_argument(
        "--lesion-seed",
        type=_lps_point,
        metavar="X,Y,Z",
        help="a point inside the lesion on the MRI (MR LPS mm); it is grown",
    )
    parser.add_argument(
        "--allow-resample",
        action="store_true",
        help="resample DICOM series with missing slices or uneven spacing instead of refusing",
    )
    parser.add_argument(
        "--show-identifiers",
        action="store_true",
        help="name the case by its patient identifiers (default: a short hash)",
    )


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sacroplan",
        description="Plan an interpedicular sacroplasty needle path from CT. "
        "Research use only; not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"sacroplan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="plan a needle path for one CT")
    plan.add_argument("input", help="DICOM folder, multi-frame DICOM, NIfTI, NRRD or MHA file")
    _add_plan_options(plan)
    _add_output_options(plan)
    plan.set_defaults(handler=_cmd_plan)

    demo = commands.add_parser("demo", help="plan the bundled sample case")
    demo.add_argument("-o", "--output", default="sacroplan-demo", help="output folder")
    _add_output_options(demo)
    demo.set_defaults(handler=_cmd_demo)

    series = commands.add_parser("series", help="list the image series found in a folder")
    series.add_argument("path")
    series.set_defaults(handler=_cmd_series)

    batch = commands.add_parser("batch", help="plan every case in a folder, in parallel")
    batch.add_argument("cases", help="folder whose entries (folders or files) are cases")
    batch.add_argument("-o", "--output", required=True, help="output folder")
    batch.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    batch.add_argument("--needle", choices=NEEDLE_CHOICES, default="13G")
    batch.add_argument("--config", metavar="FILE")
    batch.add_argument("-q", "--quiet", action="store_true")
    batch.set_defaults(handler=_cmd_batch)
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
    except KeyboardInterrupt:
        print("sacroplan: interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as error:  # noqa: BLE001 - the last line of defence: no traceback to users
        print(
            f"sacroplan: internal error: {type(error).__name__}: {error} "
            "(please report it with the command you ran)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
