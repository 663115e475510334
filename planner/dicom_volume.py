"""From a scanned DICOM folder to a `Volume`: pick the series, check its geometry, read pixels.

Loading happens in two phases so that a volume too large for memory is refused before any
pixel is read: :func:`choose_series` and :func:`prepare_stack` use headers only;
:func:`read_volume` then reads the pixels of the chosen frames.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.dicom import DicomSeries, FolderScan
from planner.dicom_geometry import MAX_STEP_DEVIATION, SliceStack, build_stack
from planner.dicom_pixels import read_frames
from planner.dicom_regrid import regularise
from planner.errors import (
    CorruptInputError,
    GeometryError,
    InputNotFoundError,
    UnsupportedInputError,
    WrongModalityError,
)
from planner.volume import Volume, VolumeInfo

#: Modalities the planner loads, in order of preference when none is asked for.
VOLUME_MODALITIES = ("CT", "MR")
#: Characters of the sha256 hex digest that name a case.
CASE_ID_CHARS = 12
INT16_MIN, INT16_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max
#: Files named in a message before "and N more".
MAX_NAMED = 3


def case_id_from(text: str) -> str:
    """Short, non-reversible name of a case: the first 12 hex digits of sha256(text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:CASE_ID_CHARS]


def _names(paths) -> str:
    names = [Path(p).name for p in paths]
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return ", ".join(names[:MAX_NAMED]) + more


def _describe(series: DicomSeries) -> str:
    text = f"{series.series_uid} ({series.modality or '?'}, {len(series.slices)} images"
    if series.skip_reason:
        text += f", {series.skip_reason}"
    return text + ")"


def _nothing_found(scan: FolderScan, where: str) -> None:
    if scan.unreadable:
        path, reason = scan.unreadable[0]
        raise CorruptInputError(
            f"{where}: {len(scan.unreadable)} file(s) look like DICOM but cannot be read "
            f"({path.name}: {reason}); the files are truncated or corrupt"
        )
    if not scan.other_files:
        raise InputNotFoundError(f"{where}: the folder is empty (no files, even in subfolders)")
    images = [p for p in scan.other_files if p.name.lower().endswith(IMAGE_FILE_SUFFIXES)]
    hint = f"; it holds {_names(images)}: pass that file instead" if images else ""
    raise InputNotFoundError(
        f"{where}: no DICOM files among the {len(scan.other_files)} file(s) in this folder{hint}"
    )


#: Suffixes of single-file volume formats, mentioned when a folder holds no DICOM.
IMAGE_FILE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def choose_series(
    scan: FolderScan, where: str, series_uid: str | None = None, modality: str | None = None
) -> DicomSeries:
    """The series to load: the one named, else the CT (or MR) volume with the most images.

    Raises
    ------
    InputNotFoundError
        No DICOM in the folder, or the named series is absent.
    UnsupportedInputError
        No CT/MR volume series, the named series is not one, or it has another modality.
    """
    if not scan.series:
        _nothing_found(scan, where)
    if series_uid is not None:
        return _named_series(scan, where, series_uid, modality)
    volumes = [s for s in scan.series if not s.skip_reason]
    wanted = (modality,) if modality else VOLUME_MODALITIES
    for candidate_modality in wanted:
        candidates = [s for s in volumes if s.modality == candidate_modality]
        if candidates:
            return max(candidates, key=lambda s: (len(s.slices), s.series_uid))
    found = "; ".join(_describe(s) for s in scan.series[:MAX_NAMED])
    if len(scan.series) > MAX_NAMED:
        found += f"; and {len(scan.series) - MAX_NAMED} more"
    if modality and volumes:
        other = sorted({s.modality for s in volumes})
        raise WrongModalityError(
            f"{where}: no {modality} series, only {'/'.join(other)} volume(s): {found}. "
            f"Load it as {other[0]} (modality={other[0]!r}) if that is what you meant",
            other,
        )
    raise UnsupportedInputError(f"{where}: no CT or MR volume series found; found {found}")


def _named_series(
    scan: FolderScan, where: str, series_uid: str, modality: str | None
) -> DicomSeries:
    matches = [s for s in scan.series if s.series_uid == series_uid.strip()]
    if not matches:
        available = ", ".join(s.series_uid for s in scan.series[:MAX_NAMED])
        raise InputNotFoundError(
            f"{where}: no series with SeriesInstanceUID {series_uid}; found {available} "
            "(run `sacroplan series` on the folder to list them)"
        )
    chosen = matches[0]
    if chosen.skip_reason:
        raise UnsupportedInputError(
            f"{where}: series {series_uid} is not a volume: {chosen.skip_reason}"
        )
    if modality and chosen.modality != modality:
        raise UnsupportedInputError(
            f"{where}: series {series_uid} is {chosen.modality}, but {modality} was asked for"
        )
    return chosen


@dataclass(frozen=True)
class PreparedStack:
    """Header-phase result: the chosen series, its ordered stack, and the output grid size."""

    series: DicomSeries
    stack: SliceStack
    resample: bool
    notes: tuple[str, ...]

    def output_shape_ijk(self) -> tuple[int, int, int]:
        """Size (i, j, k) of the volume to be built, from headers (tilt widens it a little)."""
        first = self.stack.slices[0]
        n_slices = len(self.stack.slices)
        if self.resample:
            extent = self.stack.normal_mm[-1] - self.stack.normal_mm[0]
            n_slices = int(extent / self.stack.median_step_mm) + 1
        drift_pixels = np.ptp(self.stack.inplane_mm / self.stack.pixel_spacing_ij, axis=0)
        extra = np.where(drift_pixels > 0, np.ceil(drift_pixels) + 1, 0).astype(int)
        columns, rows = first.columns + extra[0], first.rows + extra[1]
        return (int(columns), int(rows), int(n_slices))


def prepare_stack(
    series: DicomSeries, where: str, allow_resample: bool, unreadable=()
) -> PreparedStack:
    """Order the series along its normal and decide how to make it a regular grid.

    Raises
    ------
    GeometryError
        A 2D image, invalid orientation or spacing, duplicate positions, or a gap / uneven
        spacing when ``allow_resample`` is False (the message says where).
    """
    stack = build_stack(series, where)
    notes = []
    if stack.excluded:
        reasons = sorted({reason for _, reason in stack.excluded})
        notes.append(f"{len(stack.excluded)} image(s) of the series left out: {', '.join(reasons)}")
    if stack.is_tilted:
        notes.append(
            f"gantry tilt of {stack.tilt_deg:.1f} degrees corrected: each slice shifted in its "
            "plane (linear interpolation) onto an orthogonal grid"
        )
    irregular = stack.irregular_steps()
    if irregular and not allow_resample:
        where_gap = stack.describe_step(irregular[0])
        more = f" (and {len(irregular) - 1} more place(s))" if len(irregular) > 1 else ""
        lost = f"; {len(unreadable)} unreadable file(s): {_names(unreadable)}" if unreadable else ""
        raise GeometryError(
            f"{where}: missing slices or uneven slice spacing in series {series.series_uid}: "
            f"{where_gap}{more}, where the median step is {stack.median_step_mm:.2f} mm "
            f"(more than {MAX_STEP_DEVIATION:.0%} off){lost}. Re-export the complete series, or "
            "allow resampling (allow_resample=True) to interpolate a regular grid"
        )
    if irregular:
        notes.append(
            f"uneven slice spacing at {len(irregular)} place(s) (largest step "
            f"{stack.steps_mm.max():.2f} mm): resampled to a regular "
            f"{stack.median_step_mm:.2f} mm grid by linear interpolation between slices"
        )
    return PreparedStack(series, stack, bool(irregular), tuple(notes))


def _fits_int16(array: np.ndarray) -> bool:
    return bool(array.size) and INT16_MIN <= array.min() and array.max() <= INT16_MAX


def read_volume(prepared: PreparedStack, source_format: str) -> Volume:
    """Read the pixels of a prepared stack and build the `Volume` (CT in HU, MR as float32)."""
    stack, series = prepared.stack, prepared.series
    values = read_frames(stack.slices)
    regridded = prepared.resample or stack.is_tilted
    grid = regularise(stack, values, float(values.min()), prepared.resample)
    array = grid.array
    integral_rescale = all(
        s.rescale_slope == 1.0 and float(s.rescale_intercept).is_integer() for s in stack.slices
    )
    if series.modality == "CT" and not regridded and integral_rescale and _fits_int16(array):
        array = array.astype(np.int16)
    info = VolumeInfo(
        series_description=series.description,
        kernel=series.kernel,
        source_format=source_format,
        case_id=case_id_from(series.study_uid or series.series_uid),
        series_uid=series.series_uid,
        notes=prepared.notes,
    )
    return Volume(
        array=array,
        origin_lps=grid.origin_lps,
        spacing_xyz=grid.spacing_xyz,
        direction=grid.direction,
        modality=series.modality,
        info=info,
    )
