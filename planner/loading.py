"""Load a CT or MR volume from a DICOM folder, a DICOM file, NIfTI, NRRD or MetaImage.

``load`` is the planner's single entry for images. Every problem a user can cause becomes a
:class:`~planner.errors.PlannerError` whose message names the file and the problem; the volume
is checked before it is returned (geometry, NaN/infinite or constant values), and a volume too
large for memory is refused from its header, before any voxel is allocated.

DICOM specifics live in ``planner.dicom*`` modules; single-file formats are read by SimpleITK
through :mod:`planner.sitk_bridge`. Nothing here reads or reports patient identifiers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from planner.dicom import DicomSeries, has_dicom_magic, scan_folder, series_from_file
from planner.dicom_sitk import quiet_native_stderr, sitk_error_text
from planner.dicom_volume import (
    PreparedStack,
    case_id_from,
    choose_series,
    prepare_stack,
    read_volume,
)
from planner.errors import (
    CorruptInputError,
    GeometryError,
    InputNotFoundError,
    PlannerError,
    UnsupportedInputError,
    VolumeTooLargeError,
)
from planner.loading_nifti import check_nifti_data, check_nifti_header
from planner.sitk_bridge import volume_from_sitk
from planner.volume import Volume, VolumeInfo, check_direction

#: Environment variable: memory (MB) a load may use; default: the kernel's MemAvailable.
MEMORY_LIMIT_ENV = "SACROPLAN_MEMORY_LIMIT_MB"
#: Share of the available memory one load may plan to use (the rest is for later stages).
MEMORY_FRACTION = 0.8
#: Bytes per output voxel at the peak of a DICOM load: float32 stack, regridded copy, int16.
DICOM_PEAK_BYTES_PER_VOXEL = 10
#: Extra bytes per voxel when SimpleITK reads a file: its buffer plus the numpy copy.
SITK_COPIES = 2
#: Assumed memory when /proc/meminfo cannot be read (bytes).
FALLBACK_MEMORY_BYTES = 4 * 1024**3
#: Modalities ``load`` accepts; "SEG" is a mask or label map (single-file formats only).
MODALITIES = ("CT", "MR", "SEG")

_FORMATS = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}


# ---------------------------------------------------------------------------------- memory
def memory_limit_bytes() -> int:
    """Bytes one load may use: ``$SACROPLAN_MEMORY_LIMIT_MB`` or 80 % of MemAvailable."""
    configured = os.environ.get(MEMORY_LIMIT_ENV)
    if configured:
        try:
            return int(float(configured) * 1024**2)
        except ValueError:
            raise UnsupportedInputError(
                f"{MEMORY_LIMIT_ENV}={configured!r} is not a number of megabytes"
            ) from None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * MEMORY_FRACTION)
    except OSError:
        pass
    return FALLBACK_MEMORY_BYTES


def check_memory(where: str, shape: tuple[int, ...], bytes_per_voxel: float) -> None:
    """Refuse a volume whose load would need more memory than is available.

    Raises
    ------
    VolumeTooLargeError
    """
    needed = float(np.prod([float(n) for n in shape])) * bytes_per_voxel
    limit = memory_limit_bytes()
    if needed > limit:
        size = "x".join(str(int(n)) for n in shape)
        raise VolumeTooLargeError(
            f"{where}: the volume is {size} voxels and needs about {needed / 1e9:.1f} GB to load, "
            f"more than the {limit / 1e9:.1f} GB available; crop or downsample it first "
            f"(or set {MEMORY_LIMIT_ENV} if more memory is free)"
        )


# ---------------------------------------------------------------------------------- public API
def load(
    path: str | os.PathLike,
    series: str | None = None,
    allow_resample: bool = False,
    modality: str | None = None,
) -> Volume:
    """Load one CT or MR volume, in LPS millimetres.

    Parameters
    ----------
    path : str or path-like
        A DICOM folder (scanned recursively; files need no extension; non-DICOM files are
        ignored), a DICOM file (multi-frame), or a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr)
        or MetaImage (.mha, .mhd) file.
    series : str, optional
        SeriesInstanceUID to load from a DICOM folder. Default: the CT volume series with the
        most images (MR if there is no CT, or if ``modality="MR"``).
    allow_resample : bool
        Resample a DICOM series with missing slices or uneven spacing onto a regular grid
        (recorded in ``volume.info.notes``) instead of refusing it.
    modality : {"CT", "MR", "SEG"}, optional
        The modality wanted. DICOM series of another modality are refused with a message;
        single-file formats carry no modality and are labelled with this one (default CT).
        ``"SEG"`` loads a mask or label map file as stored (integer values kept; an empty or
        constant mask is not an error here).

    Returns
    -------
    Volume
        CT in Hounsfield units (int16 when the stored values allow, else float32); MR as
        float32 in scanner units. Gantry tilt is corrected (see ``info.notes``).

    Raises
    ------
    PlannerError
        A subclass naming the file and the problem, for every input the planner cannot use.
    """
    path = Path(path)
    if modality is not None:
        modality = str(modality).upper()
        if modality not in MODALITIES:
            raise UnsupportedInputError(f"modality must be CT, MR or SEG, got {modality!r}")
    try:
        volume = _load_any(path, series, allow_resample, modality)
        if modality != "SEG":
            volume.check_values()
    except PlannerError as error:
        if str(path) in str(error):
            raise
        raise type(error)(f"{path}: {error}") from None
    return volume


def _load_any(path: Path, series, allow_resample: bool, modality) -> Volume:
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or folder; check the path")
    if path.is_dir() or has_dicom_magic(path):
        if modality == "SEG":
            raise UnsupportedInputError(
                f"{path}: masks and label maps are read from NIfTI, NRRD or MetaImage files, "
                "not DICOM; export the mask as NIfTI"
            )
    if path.is_dir():
        return _load_dicom_folder(path, series, allow_resample, modality)
    if path.stat().st_size == 0:
        raise CorruptInputError(f"{path}: the file is empty (0 bytes)")
    if has_dicom_magic(path):
        return _load_dicom_file(path, allow_resample, modality)
    return _load_image_file(path, modality)


def _load_dicom_folder(path: Path, series, allow_resample: bool, modality) -> Volume:
    scan = scan_folder(path)
    chosen = choose_series(scan, str(path), series, modality)
    unreadable = [p for p, _ in scan.unreadable]
    prepared = prepare_stack(chosen, str(path), allow_resample, unreadable)
    if unreadable:
        prepared = PreparedStack(
            prepared.series,
            prepared.stack,
            prepared.resample,
            (*prepared.notes, f"{len(unreadable)} unreadable file(s) in the folder ignored"),
        )
    return _read_prepared(prepared, str(path), "DICOM")


def _load_dicom_file(path: Path, allow_resample: bool, modality) -> Volume:
    try:
        series = series_from_file(path)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for broken files
        raise CorruptInputError(
            f"{path}: DICOM header cannot be read ({_first_line(error)}); the file is "
            "truncated or corrupt"
        ) from None
    _check_single_file_series(series, path, modality)
    prepared = prepare_stack(series, str(path), allow_resample)
    return _read_prepared(prepared, str(path), "DICOM multi-frame")


def _check_single_file_series(series: DicomSeries, path: Path, modality) -> None:
    if series.skip_reason:
        raise UnsupportedInputError(f"{path}: not an image volume: {series.skip_reason}")
    if len(series.slices) == 1:
        piece = series.slices[0]
        raise GeometryError(
            f"{path}: a single {piece.rows}x{piece.columns} DICOM image (2D); pass the folder "
            "that holds the whole series"
        )
    if modality and series.modality != modality:
        raise UnsupportedInputError(f"{path}: the file is {series.modality}, not {modality}")


def _read_prepared(prepared: PreparedStack, where: str, source_format: str) -> Volume:
    check_memory(where, prepared.output_shape_ijk(), DICOM_PEAK_BYTES_PER_VOXEL)
    return read_volume(prepared, source_format)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


# ---------------------------------------------------------------------------------- other formats
def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix, name_of_format in _FORMATS.items():
        if name.endswith(suffix):
            return name_of_format
    return ""


_PIXEL_BYTES = {
    sitk.sitkUInt8: 1,
    sitk.sitkInt8: 1,
    sitk.sitkUInt16: 2,
    sitk.sitkInt16: 2,
    sitk.sitkUInt32: 4,
    sitk.sitkInt32: 4,
    sitk.sitkFloat32: 4,
}


def _read_information(path: Path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_native_stderr() as captured:
        try:
            reader.ReadImageInformation()
        except RuntimeError as error:
            detail = sitk_error_text(error, captured)
            if "orthonormal" in detail:
                raise GeometryError(
                    f"{path}: the direction matrix is not orthogonal (sheared or skewed axes), "
                    "which the planner cannot use; resample it to an orthogonal grid"
                ) from None
            if _format_of(path):
                raise CorruptInputError(
                    f"{path}: cannot read the image header ({detail}); the file is truncated "
                    "or corrupt"
                ) from None
            raise UnsupportedInputError(
                f"{path}: not a DICOM, NIfTI, NRRD or MetaImage file (no reader recognises it)"
            ) from None
    return reader


def _check_header(path: Path, reader: sitk.ImageFileReader) -> tuple[int, ...]:
    """Validate dimension, spacing and direction from the header; return the 3D size."""
    size = tuple(int(n) for n in reader.GetSize())
    dimension = reader.GetDimension()
    if dimension == 4 and size[3] == 1:
        size = size[:3]
    elif dimension == 4:
        raise UnsupportedInputError(
            f"{path}: a 4D image ({'x'.join(map(str, size))}: {size[3]} volumes, e.g. a time "
            "series); extract one 3D volume first"
        )
    elif dimension == 2 or (dimension == 3 and min(size) == 1):
        plane = [str(n) for n in size if n > 1] if dimension == 3 else [str(n) for n in size]
        raise GeometryError(
            f"{path}: a 2D image ({'x'.join(plane)}), not a volume; the planner needs a 3D "
            "image (CT, MR or a mask)"
        )
    elif dimension != 3:
        raise UnsupportedInputError(f"{path}: a {dimension}D image; the planner needs 3D")
    spacing = np.asarray(reader.GetSpacing(), dtype=float)[:3]
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise GeometryError(
            f"{path}: voxel spacing {spacing.tolist()} mm; spacing must be positive"
        )
    if reader.GetNumberOfComponents() != 1:
        raise UnsupportedInputError(
            f"{path}: {reader.GetNumberOfComponents()} values per voxel (colour or vector "
            "image); the planner needs one grey value per voxel"
        )
    direction = np.asarray(reader.GetDirection(), dtype=float)
    if dimension == 4:
        direction = direction.reshape(4, 4)[:3, :3]
    try:
        check_direction(direction.reshape(3, 3))
    except GeometryError as error:
        raise GeometryError(f"{path}: {error}") from None
    return size


def _load_image_file(path: Path, modality) -> Volume:
    if _format_of(path) == "NIfTI":
        check_nifti_header(path)
    reader = _read_information(path)
    size = _check_header(path, reader)
    stored_bytes = _PIXEL_BYTES.get(reader.GetPixelID(), 8)
    check_memory(str(path), size, SITK_COPIES * stored_bytes + 4)
    if _format_of(path) == "NIfTI":
        check_nifti_data(path)
    with quiet_native_stderr() as captured:
        try:
            image = reader.Execute()
        except RuntimeError as error:
            raise CorruptInputError(
                f"{path}: cannot read the voxel data ({sitk_error_text(error, captured)}); "
                "the file is truncated or corrupt"
            ) from None
    if image.GetDimension() == 4:
        image = sitk.Extract(image, [*size, 0], [0, 0, 0, 0])
    modality = modality or "CT"
    info = VolumeInfo(
        source_format=_format_of(path) or "image file",
        case_id=case_id_from(str(path.resolve())),
    )
    volume = volume_from_sitk(image, modality, info)
    if modality == "MR" and volume.array.dtype != np.float32:
        volume = volume.with_array(volume.array.astype(np.float32))
    return volume


# The series listing lives in its own module; these names are part of this module's API.
from planner.loading_series import SeriesSummary, format_series_table, list_series  # noqa: E402

__all__ = ["SeriesSummary", "check_memory", "format_series_table", "list_series", "load"]
