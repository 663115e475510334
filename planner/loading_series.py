"""``sacroplan series``: what each series in a folder is, without patient identifiers."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from planner.dicom import DicomSeries, has_dicom_magic, read_header, scan_folder, series_from_file
from planner.dicom_geometry import build_stack
from planner.dicom_volume import choose_series
from planner.errors import InputNotFoundError, PlannerError
from planner.volume import orientation_code


@dataclass(frozen=True)
class SeriesSummary:
    """One line of ``sacroplan series``: what a series is, without patient identifiers.

    ``spacing_xyz`` is in mm along i, j, k (k: median step between slices); ``status`` says
    ``"volume"`` (with remarks such as gantry tilt or gaps) or why the series is skipped.
    """

    series_uid: str
    modality: str
    description: str
    n_slices: int
    spacing_xyz: tuple[float, float, float] | None
    orientation: str
    is_volume: bool
    status: str
    #: True for the series ``load(path)`` picks when no series is named.
    is_default: bool = False


def _summarise(series: DicomSeries, where: str) -> SeriesSummary:
    base = dict(
        series_uid=series.series_uid,
        modality=series.modality or "?",
        description=series.description,
        n_slices=len(series.slices) or series.n_files,
    )
    if series.skip_reason:
        return SeriesSummary(
            **base,
            spacing_xyz=None,
            orientation="",
            is_volume=False,
            status=f"skipped: {series.skip_reason}",
        )
    try:
        stack = build_stack(series, where)
    except PlannerError as error:
        reason = str(error).replace(f"{where}: ", "").replace(f"{where} ", "")
        return SeriesSummary(
            **base, spacing_xyz=None, orientation="", is_volume=False, status=f"skipped: {reason}"
        )
    remarks = []
    if stack.is_tilted:
        remarks.append(f"gantry tilt {stack.tilt_deg:.1f} deg (corrected on load)")
    irregular = stack.irregular_steps()
    if irregular:
        remarks.append(
            f"uneven spacing/gap at {len(irregular)} place(s), largest step "
            f"{stack.steps_mm.max():.2f} mm (load needs allow_resample)"
        )
    if stack.excluded:
        remarks.append(f"{len(stack.excluded)} localizer/other image(s) left out")
    spacing = (*stack.pixel_spacing_ij.tolist(), stack.median_step_mm)
    return SeriesSummary(
        series_uid=series.series_uid,
        modality=base["modality"],
        description=series.description,
        n_slices=len(stack.slices),
        spacing_xyz=tuple(round(float(s), 4) for s in spacing),
        orientation=orientation_code(stack.direction),
        is_volume=True,
        status="; ".join(["volume", *remarks]),
    )


def list_series(path: str | os.PathLike) -> list[SeriesSummary]:
    """Describe every series in a DICOM folder (or the one volume in a file).

    Raises
    ------
    PlannerError
        Missing path, empty folder, or a folder with no DICOM file.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or folder; check the path")
    if path.is_dir():
        scan = scan_folder(path)
        if not scan.series:
            choose_series(scan, str(path))  # raises the right "nothing here" error
        summaries = [_summarise(series, str(path)) for series in scan.series]
        try:
            default_uid = choose_series(scan, str(path)).series_uid
        except PlannerError:
            default_uid = None
        return [replace(s, is_default=s.series_uid == default_uid) for s in summaries]
    if has_dicom_magic(path) or read_header(path) is not None:
        return [_summarise(series_from_file(path), str(path))]
    from planner.loading import load  # loading re-exports this module: import late

    volume = load(path)
    return [
        SeriesSummary(
            series_uid="",
            modality=volume.modality,
            description=volume.info.source_format,
            n_slices=volume.shape_ijk[2],
            spacing_xyz=tuple(round(float(s), 4) for s in volume.spacing_xyz),
            orientation=orientation_code(volume.direction),
            is_volume=True,
            status="volume",
        )
    ]


def format_series_table(summaries: list[SeriesSummary]) -> str:
    """A plain-text table of series summaries (one row per series)."""
    if not summaries:
        return "no series found"
    header = (
        "#",
        "SeriesInstanceUID",
        "Mod",
        "Images",
        "Spacing (mm)",
        "Orient",
        "Description",
        "Status",
    )
    rows = [header]
    for number, summary in enumerate(summaries, start=1):
        spacing = (
            " x ".join(f"{s:.3g}" for s in summary.spacing_xyz) if summary.spacing_xyz else "-"
        )
        rows.append(
            (
                f"{number}{'*' if summary.is_default else ''}",
                summary.series_uid or "-",
                summary.modality,
                str(summary.n_slices),
                spacing,
                summary.orientation or "-",
                summary.description or "-",
                summary.status,
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    if any(summary.is_default for summary in summaries):
        lines.append("* loaded when no series is named")
    return "\n".join(lines)
