"""Scan a folder for DICOM files and describe each image frame by its header alone.

The scan reads headers only (``stop_before_pixels=True``), so it is fast; pixels are read later,
for the chosen series only (:mod:`planner.dicom_pixels`). Each image frame becomes one
:class:`DicomSlice` (a single-frame file gives one, a multi-frame file one per frame), and the
slices are grouped by SeriesInstanceUID into :class:`DicomSeries`.

Privacy: no patient name, ID, birth date, accession number or institution is read into these
records, so nothing downstream can leak them.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

#: Bytes before the "DICM" magic in a Part 10 file.
PREAMBLE_BYTES = 128
DICOM_MAGIC = b"DICM"

#: SOP classes that hold a CT or MR image the planner can stack into a volume.
VOLUME_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2": "CT",  # Legacy Converted Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4": "MR",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4": "MR",  # Legacy Converted Enhanced MR
}

#: SOP class prefixes of objects that are not images to stack, with a short name for messages.
NON_IMAGE_SOP_PREFIXES = (
    ("1.2.840.10008.5.1.4.1.1.88.", "structured report"),
    ("1.2.840.10008.5.1.4.1.1.481.", "radiotherapy object (RTSTRUCT/RTPLAN/RTDOSE)"),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation state"),
    ("1.2.840.10008.5.1.4.1.1.7", "secondary capture"),
    ("1.2.840.10008.5.1.4.1.1.66", "segmentation or registration object"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated document"),
    ("1.2.840.10008.1.3.10", "DICOMDIR"),
)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
#: Files with these suffixes and no DICOM magic are not parsed at all.
NON_DICOM_SUFFIXES = (
    ".nii",
    ".nii.gz",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".raw",
    ".txt",
    ".json",
    ".xml",
    ".html",
    ".pdf",
    ".png",
    ".jpg",
    ".jpeg",
    ".zip",
    ".gz",
    ".csv",
    ".py",
)
#: Values longer than this are not read while scanning a file without the DICOM magic (bytes).
DEFER_BYTES = 1024

#: Modalities of non-image objects (used when the SOP class is missing).
NON_IMAGE_MODALITIES = {"SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "PR", "SEG", "KO", "REG", "DOC"}

#: ImageType values that mark a localizer (scout, topogram, surview).
LOCALIZER_IMAGE_TYPES = {"LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW"}


@dataclass(frozen=True)
class DicomSlice:
    """One image frame, described by its header.

    ``orientation`` is ImageOrientationPatient (row direction then column direction, LPS unit
    vectors), ``position_lps`` the LPS centre (mm) of the frame's first pixel, ``pixel_spacing``
    the DICOM PixelSpacing ``(between rows, between columns)`` in mm.
    """

    path: Path
    frame: int | None
    sop_class_uid: str
    modality: str
    rows: int
    columns: int
    orientation: tuple[float, ...] | None
    position_lps: tuple[float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    instance_number: int | None = None
    image_type: tuple[str, ...] = ()
    transfer_syntax: str = ""
    samples_per_pixel: int = 1
    bits_allocated: int = 16

    @property
    def label(self) -> str:
        """File name (and frame number) for messages."""
        name = self.path.name
        return name if self.frame is None else f"{name} frame {self.frame + 1}"


@dataclass(frozen=True)
class DicomSeries:
    """Every object found with one SeriesInstanceUID."""

    series_uid: str
    study_uid: str
    modality: str
    sop_class_uid: str
    description: str
    kernel: str
    slices: tuple[DicomSlice, ...]
    n_files: int
    #: Why the whole series cannot be a volume (``""`` when it can).
    skip_reason: str = ""


@dataclass
class FolderScan:
    """Result of scanning a folder: series found, and files that looked like DICOM but failed."""

    series: list[DicomSeries] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------------------- file level
def has_dicom_magic(path: Path) -> bool:
    """True if the file carries the Part 10 preamble and ``DICM`` magic."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(PREAMBLE_BYTES + len(DICOM_MAGIC))
    except OSError:
        return False
    return head[PREAMBLE_BYTES:] == DICOM_MAGIC


def read_header(path: Path) -> pydicom.Dataset | None:
    """Read a DICOM header without pixels, or return None if the file is not DICOM.

    Files without the Part 10 preamble (old raw datasets) are accepted when they parse and
    carry a SOPClassUID and a SeriesInstanceUID.

    Raises
    ------
    pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError
        When a file that claims to be DICOM (it has the magic) cannot be parsed.
    """
    with warnings.catch_warnings():
        # pydicom warnings may quote element values (including names): never show them.
        warnings.simplefilter("ignore")
        if has_dicom_magic(path):
            return _checked_part10(pydicom.dcmread(path, stop_before_pixels=True))
        if path.name.lower().endswith(NON_DICOM_SUFFIXES):
            return None
        try:
            # Deferring long values keeps a large non-DICOM file from being read whole.
            dataset = pydicom.dcmread(
                path, stop_before_pixels=True, force=True, defer_size=DEFER_BYTES
            )
        except Exception:  # noqa: BLE001 - any parse failure means "not DICOM" for such a file
            return None
    if "SOPClassUID" in dataset and "SeriesInstanceUID" in dataset:
        return dataset
    return None


def _checked_part10(dataset: pydicom.Dataset) -> pydicom.Dataset | None:
    """A Part 10 header, None for a DICOMDIR, or an error for a header cut short."""
    media_class = str(getattr(getattr(dataset, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if media_class == DICOMDIR_SOP_CLASS:
        return None
    if "SeriesInstanceUID" not in dataset or "SOPClassUID" not in dataset:
        # pydicom stops quietly at the end of a file: a header without these was cut short.
        raise InvalidDicomError("incomplete header (no SeriesInstanceUID): truncated file?")
    return dataset


def _floats(value, count: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count:
        return None
    return numbers


def _get(dataset, keyword: str, default=None):
    value = getattr(dataset, keyword, default) if dataset is not None else default
    return default if value in (None, "") else value


def _first_item(dataset, keyword: str):
    sequence = _get(dataset, keyword)
    return sequence[0] if sequence else None


def _functional(dataset, frame_groups, sequence: str, keyword: str):
    """A value from a per-frame functional group, else from the shared one."""
    for groups in (frame_groups, _first_item(dataset, "SharedFunctionalGroupsSequence")):
        item = _first_item(groups, sequence)
        value = _get(item, keyword)
        if value is not None:
            return value
    return None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return "/".join(str(v) for v in value)
    return str(value)


def _slice_common(dataset, path: Path) -> dict:
    sop_class = str(_get(dataset, "SOPClassUID", ""))
    return {
        "path": path,
        "sop_class_uid": sop_class,
        "modality": str(_get(dataset, "Modality", "")).upper(),
        "rows": int(_get(dataset, "Rows", 0)),
        "columns": int(_get(dataset, "Columns", 0)),
        "image_type": tuple(str(v).upper() for v in (_get(dataset, "ImageType", []) or [])),
        "transfer_syntax": str(
            getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", "")
        ),
        "samples_per_pixel": int(_get(dataset, "SamplesPerPixel", 1)),
        "bits_allocated": int(_get(dataset, "BitsAllocated", 16)),
    }


def slices_from_header(dataset, path: Path) -> list[DicomSlice]:
    """The image frames a header describes: one for a single-frame file, N for a multi-frame one."""
    common = _slice_common(dataset, path)
    n_frames = int(_get(dataset, "NumberOfFrames", 1) or 1)
    if n_frames <= 1 and "PerFrameFunctionalGroupsSequence" not in dataset:
        spacing = _floats(_get(dataset, "PixelSpacing"), 2)
        return [
            DicomSlice(
                frame=None,
                orientation=_floats(_get(dataset, "ImageOrientationPatient"), 6),
                position_lps=_floats(_get(dataset, "ImagePositionPatient"), 3),
                pixel_spacing=spacing,
                rescale_slope=float(_get(dataset, "RescaleSlope", 1.0)),
                rescale_intercept=float(_get(dataset, "RescaleIntercept", 0.0)),
                instance_number=_int_or_none(_get(dataset, "InstanceNumber")),
                **common,
            )
        ]
    return _multiframe_slices(dataset, common, n_frames)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _multiframe_slices(dataset, common: dict, n_frames: int) -> list[DicomSlice]:
    """Frames of an enhanced (functional groups) or simple (one position + offsets) multi-frame."""
    per_frame = _get(dataset, "PerFrameFunctionalGroupsSequence") or []
    top_orientation = _floats(_get(dataset, "ImageOrientationPatient"), 6)
    top_position = _floats(_get(dataset, "ImagePositionPatient"), 3)
    top_spacing = _floats(_get(dataset, "PixelSpacing"), 2)
    offsets_mm = _simple_frame_offsets(dataset, n_frames)
    slices = []
    for frame in range(n_frames):
        groups = per_frame[frame] if frame < len(per_frame) else None
        orientation = _floats(
            _functional(dataset, groups, "PlaneOrientationSequence", "ImageOrientationPatient"), 6
        )
        position = _floats(
            _functional(dataset, groups, "PlanePositionSequence", "ImagePositionPatient"), 3
        )
        spacing = _floats(_functional(dataset, groups, "PixelMeasuresSequence", "PixelSpacing"), 2)
        slope = _functional(dataset, groups, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _functional(
            dataset, groups, "PixelValueTransformationSequence", "RescaleIntercept"
        )
        orientation = orientation or top_orientation
        if position is None and top_position is not None and orientation and offsets_mm is not None:
            normal = np.cross(orientation[:3], orientation[3:])
            position = tuple(float(v) for v in np.add(top_position, offsets_mm[frame] * normal))
        slices.append(
            DicomSlice(
                frame=frame,
                orientation=orientation,
                position_lps=position,
                pixel_spacing=spacing or top_spacing,
                rescale_slope=float(
                    slope if slope is not None else _get(dataset, "RescaleSlope", 1)
                ),
                rescale_intercept=float(
                    intercept if intercept is not None else _get(dataset, "RescaleIntercept", 0)
                ),
                instance_number=frame + 1,
                **common,
            )
        )
    return slices


def _simple_frame_offsets(dataset, n_frames: int) -> np.ndarray | None:
    """Offsets (mm, along the slice normal) of the frames of a multi-frame file without
    per-frame positions: GridFrameOffsetVector, else SpacingBetweenSlices, else SliceThickness."""
    grid = _get(dataset, "GridFrameOffsetVector")
    if grid is not None and len(grid) == n_frames:
        return np.asarray([float(v) for v in grid])
    step = _get(dataset, "SpacingBetweenSlices") or _get(dataset, "SliceThickness")
    if step is None:
        return None
    return np.arange(n_frames) * float(step)


# ---------------------------------------------------------------------------------- folder level
def iter_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder``, recursively, in a stable (sorted) order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            found.append(Path(root) / name)
    return found


def scan_folder(folder: Path) -> FolderScan:
    """Read the header of every file under ``folder`` and group DICOM objects by series."""
    scan = FolderScan()
    by_series: dict[str, list[tuple[pydicom.Dataset, Path]]] = {}
    for path in iter_files(folder):
        try:
            dataset = read_header(path)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as error:
            scan.unreadable.append((path, _short_reason(error)))
            continue
        if dataset is None:
            scan.other_files.append(path)
            continue
        uid = str(_get(dataset, "SeriesInstanceUID", "")) or f"(no series UID: {path.name})"
        by_series.setdefault(uid, []).append((dataset, path))
    for uid in sorted(by_series):
        scan.series.append(_series_from_headers(uid, by_series[uid]))
    return scan


def series_from_file(path: Path) -> DicomSeries:
    """One DICOM file (typically multi-frame) as a series of its frames."""
    dataset = read_header(path)
    if dataset is None:
        raise InvalidDicomError(f"{path} is not a DICOM file")
    uid = str(_get(dataset, "SeriesInstanceUID", "")) or path.name
    return _series_from_headers(uid, [(dataset, path)])


def _short_reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:160]


def _series_from_headers(uid: str, headers: list[tuple[pydicom.Dataset, Path]]) -> DicomSeries:
    first = headers[0][0]
    slices: list[DicomSlice] = []
    sop_classes = []
    for dataset, path in headers:
        sop_classes.append(str(_get(dataset, "SOPClassUID", "")))
        if _non_image_reason(dataset) is None:
            slices.extend(slices_from_header(dataset, path))
    modality = str(_get(first, "Modality", "")).upper()
    sop_class = max(set(sop_classes), key=sop_classes.count)
    return DicomSeries(
        series_uid=uid,
        study_uid=str(_get(first, "StudyInstanceUID", "")),
        modality=modality,
        sop_class_uid=sop_class,
        description=_text(_get(first, "SeriesDescription")),
        kernel=_text(_get(first, "ConvolutionKernel")),
        slices=tuple(slices),
        n_files=len(headers),
        skip_reason=_series_skip_reason(first, slices),
    )


def _non_image_reason(dataset) -> str | None:
    """Why a header is not an image frame to stack, or None if it is one."""
    sop_class = str(_get(dataset, "SOPClassUID", ""))
    for prefix, name in NON_IMAGE_SOP_PREFIXES:
        if sop_class.startswith(prefix):
            return name
    modality = str(_get(dataset, "Modality", "")).upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"non-image object (modality {modality})"
    if "Rows" not in dataset or "Columns" not in dataset:
        return "no image (no Rows/Columns)"
    return None


def _series_skip_reason(first, slices: list[DicomSlice]) -> str:
    reason = _non_image_reason(first)
    if reason is not None:
        return reason
    sop_class = str(_get(first, "SOPClassUID", ""))
    modality = str(_get(first, "Modality", "")).upper()
    if sop_class not in VOLUME_SOP_CLASSES and modality not in ("CT", "MR"):
        name = UID(sop_class).name if sop_class else "unknown SOP class"
        return f"not a CT or MR image ({modality or '?'}, {name})"
    if not slices:
        return "no image frames"
    if all(LOCALIZER_IMAGE_TYPES & set(s.image_type) for s in slices):
        return "localizer (scout) images"
    if any(s.samples_per_pixel != 1 for s in slices):
        return "colour images (more than one sample per pixel)"
    if any(s.orientation is None or s.position_lps is None for s in slices):
        return "images without position or orientation (ImagePositionPatient missing)"
    if any(s.pixel_spacing is None for s in slices):
        return "images without PixelSpacing"
    return ""
