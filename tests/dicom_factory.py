"""Write small synthetic DICOM objects with pydicom, with known geometry and values.

Every image voxel holds ``linear_field(lps)`` (rounded to the stored precision), a linear
function of its LPS position, so a loaded volume can be checked voxel by voxel against
``linear_field(volume.index_to_lps(ijk))``: any error in ordering, orientation, spacing, origin,
rescale or tilt correction shows up as a value error. Linear interpolation reproduces a linear
field exactly, so resampled volumes can be checked the same way.

Patient attributes are set to fake values (``FAKE_*``) so tests can assert they never leak.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

FAKE_PATIENT_NAME = "FAKE^PATIENT^SACROTEST"
FAKE_PATIENT_ID = "FAKE-ID-73915"
FAKE_BIRTH_DATE = "19010101"
FAKE_ACCESSION = "FAKEACC4242"
FAKE_INSTITUTION = "FAKE INSTITUTION OF TESTING"
FAKE_IDENTIFIERS = (
    "FAKE^PATIENT",
    "SACROTEST",
    FAKE_PATIENT_ID,
    FAKE_BIRTH_DATE,
    FAKE_ACCESSION,
    FAKE_INSTITUTION,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
COMPREHENSIVE_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
PRESENTATION_STATE_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"

#: LPS field coefficients: value = FIELD_OFFSET + FIELD_GRADIENT . lps (per mm).
FIELD_OFFSET = 100.0
FIELD_GRADIENT = np.array([3.0, -5.0, 7.0])


def linear_field(points_lps: np.ndarray) -> np.ndarray:
    """Voxel value at LPS points (mm): ``100 + 3 x - 5 y + 7 z``."""
    return FIELD_OFFSET + np.asarray(points_lps, dtype=float) @ FIELD_GRADIENT


def rotation(axis_lps, angle_deg: float) -> np.ndarray:
    """(3, 3) rotation about an LPS axis (Rodrigues)."""
    axis = np.asarray(axis_lps, dtype=float)
    axis /= np.linalg.norm(axis)
    angle = np.radians(angle_deg)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _direction(row, column) -> np.ndarray:
    row, column = np.asarray(row, float), np.asarray(column, float)
    return np.column_stack([row, column, np.cross(row, column)])


#: Slice orientations by name: columns are the LPS directions of i (row), j (column), normal.
ORIENTATIONS = {
    "axial": _direction((1, 0, 0), (0, 1, 0)),
    "axial_flipped": _direction((-1, 0, 0), (0, 1, 0)),
    "sagittal": _direction((0, 1, 0), (0, 0, -1)),
    "coronal": _direction((1, 0, 0), (0, 0, -1)),
    "oblique": rotation((1, 2, 0.5), 23.0) @ _direction((1, 0, 0), (0, 1, 0)),
    "oblique_sagittal": rotation((0, 0, 1), 17.0) @ _direction((0, 1, 0), (0, 0, -1)),
}


@dataclass
class WrittenSeries:
    """What was written: enough to predict the loaded volume exactly."""

    folder: Path
    paths: list[Path]
    series_uid: str
    study_uid: str
    direction: np.ndarray
    pixel_spacing_ij: tuple[float, float]
    #: (n, 3) LPS of the first pixel of each slice, ordered along the slice normal.
    positions_lps: np.ndarray
    rows: int
    columns: int

    @property
    def normal_mm(self) -> np.ndarray:
        return self.positions_lps @ self.direction[:, 2]


class UidMaker:
    """Deterministic UIDs from a seed string."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return generate_uid(entropy_srcs=[self.seed, str(self.count)])


def base_dataset(
    sop_class: str,
    modality: str,
    study_uid: str,
    series_uid: str,
    uid: UidMaker,
    syntax: str = ExplicitVRLittleEndian,
) -> FileDataset:
    """A Part 10 dataset with fake patient attributes and the given identity."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid()
    meta.TransferSyntaxUID = syntax
    dataset = FileDataset(None, Dataset(), file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientName = FAKE_PATIENT_NAME
    dataset.PatientID = FAKE_PATIENT_ID
    dataset.PatientBirthDate = FAKE_BIRTH_DATE
    dataset.AccessionNumber = FAKE_ACCESSION
    dataset.InstitutionName = FAKE_INSTITUTION
    dataset.StudyInstanceUID = study_uid
    dataset.SeriesInstanceUID = series_uid
    dataset.Modality = modality
    dataset.StudyDate = "20260101"
    return dataset


def _set_pixels(dataset: FileDataset, stored: np.ndarray) -> None:
    """Uncompressed 16-bit pixel data (signed if any value is negative)."""
    signed = bool(stored.min() < 0)
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = int(signed)
    dataset.Rows, dataset.Columns = stored.shape[-2:]
    dataset.PixelData = stored.astype("<i2" if signed else "<u2").tobytes()


def _encode_with_gdcm(dataset: FileDataset, stored: np.ndarray, compressor: str) -> None:
    """Replace the pixel data with a GDCM-encoded (JPEG family) copy of ``stored``."""
    pixel_type = np.int16 if stored.min() < 0 else np.uint16
    image = sitk.GetImageFromArray(stored.astype(pixel_type))
    with tempfile.TemporaryDirectory() as scratch:
        path = str(Path(scratch) / "encoded.dcm")
        writer = sitk.ImageFileWriter()
        writer.SetImageIO("GDCMImageIO")
        writer.SetFileName(path)
        writer.SetUseCompression(True)
        writer.SetCompressor(compressor)
        writer.Execute(image)
        encoded = dcmread(path)
    for keyword in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        setattr(dataset, keyword, getattr(encoded, keyword))
    dataset["PixelData"] = encoded["PixelData"]
    dataset.file_meta.TransferSyntaxUID = encoded.file_meta.TransferSyntaxUID


def encode(dataset: FileDataset, stored: np.ndarray, syntax: str) -> None:
    """Store ``stored`` (rows, cols) in ``dataset`` with a named transfer syntax.

    ``syntax``: ``explicit``, ``implicit``, ``rle`` (pydicom's numpy encoder), ``jpeg2000`` and
    ``jpeg-lossless`` (encoded by SimpleITK's GDCM), or ``bogus-j2k`` (a JPEG 2000 transfer
    syntax over a payload that is not a JPEG 2000 codestream).
    """
    _set_pixels(dataset, stored)
    if syntax == "implicit":
        dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif syntax == "rle":
        dataset.compress(RLELossless, generate_instance_uid=False)
    elif syntax == "jpeg2000":
        _encode_with_gdcm(dataset, stored, "JPEG2000")
    elif syntax == "jpeg-lossless":
        _encode_with_gdcm(dataset, stored, "JPEG")
    elif syntax == "bogus-j2k":
        dataset.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(range(64)) * 4])
        dataset["PixelData"].VR = "OB"
        dataset["PixelData"].is_undefined_length = True
        dataset.file_meta.TransferSyntaxUID = JPEG2000Lossless
    elif syntax != "explicit":
        raise ValueError(f"unknown syntax {syntax!r}")


def stored_values(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Integers a scanner would store for modality values."""
    return np.rint((values - intercept) / slope).astype(np.int64)


def slice_values(position_lps, direction, pixel_spacing_ij, rows: int, columns: int) -> np.ndarray:
    """(rows, columns) field values of one slice whose first pixel is at ``position_lps``."""
    j, i = np.mgrid[0:rows, 0:columns]
    points = (
        np.asarray(position_lps, float)
        + i[..., None] * pixel_spacing_ij[0] * direction[:, 0]
        + j[..., None] * pixel_spacing_ij[1] * direction[:, 1]
    )
    return linear_field(points)


def _file_name(rng: np.random.Generator, names: str, index: int) -> str:
    token = "".join(rng.choice(list("0123456789abcdef"), 10))
    if names == "noext":
        return f"IM{token}"
    if names == "reverse":
        return f"slice{999 - index:04d}.dcm"
    return f"{token}.dcm"


def write_series(
    folder: Path,
    *,
    shape_ijk: tuple[int, int, int] = (12, 10, 8),
    pixel_spacing_ij: tuple[float, float] = (0.8, 0.9),
    slice_step_mm: float = 2.0,
    direction: np.ndarray | str = "axial",
    origin_lps=(-5.0, -4.0, -8.0),
    modality: str = "CT",
    stack_offsets_mm=None,
    tilt_deg: float = 0.0,
    slope: float = 1.0,
    intercept: float = -1024.0,
    syntax: str = "explicit",
    names: str = "random",
    nested: bool = False,
    series_uid: str | None = None,
    study_uid: str | None = None,
    description: str = "synthetic",
    kernel: str = "B30f",
    image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
    seed: int = 0,
) -> WrittenSeries:
    """Write a single-frame CT or MR series; files and InstanceNumbers are shuffled.

    Parameters
    ----------
    shape_ijk : (columns, rows, slices)
    direction : (3, 3) array or a key of :data:`ORIENTATIONS`
        Columns: row direction, column direction, slice normal.
    stack_offsets_mm : sequence of float, optional
        Position of each slice along the stacking axis (default ``k * slice_step_mm``): gaps
        and uneven spacing come from here.
    tilt_deg : float
        Gantry tilt: slices are stacked along ``cos(t) normal + sin(t) column``, not the normal.
    names : {"random", "noext", "reverse"}
        File names uncorrelated with position, without extension, or in reverse order.
    """
    folder = Path(folder)
    uid = UidMaker(f"{folder}-{seed}")
    rng = np.random.default_rng(seed)
    direction = ORIENTATIONS[direction] if isinstance(direction, str) else np.asarray(direction)
    series_uid = series_uid or uid()
    study_uid = study_uid or uid()
    columns, rows, n_slices = shape_ijk
    if stack_offsets_mm is None:
        stack_offsets_mm = np.arange(n_slices) * slice_step_mm
    tilt = np.radians(tilt_deg)
    stack_axis = np.cos(tilt) * direction[:, 2] + np.sin(tilt) * direction[:, 1]
    positions = np.asarray(origin_lps, float) + np.outer(stack_offsets_mm, stack_axis)
    sop_class = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    instance_numbers = rng.permutation(len(positions)) + 1
    paths = []
    for index, position in enumerate(positions):
        dataset = base_dataset(sop_class, modality, study_uid, series_uid, uid)
        dataset.ImageType = list(image_type)
        dataset.SeriesDescription = description
        if kernel:
            dataset.ConvolutionKernel = kernel
        dataset.InstanceNumber = int(instance_numbers[index])
        dataset.ImagePositionPatient = [f"{v:.6f}" for v in position]
        dataset.ImageOrientationPatient = [f"{v:.8f}" for v in direction[:, :2].T.reshape(-1)]
        dataset.PixelSpacing = [pixel_spacing_ij[1], pixel_spacing_ij[0]]
        dataset.SliceThickness = slice_step_mm
        dataset.RescaleSlope = slope
        dataset.RescaleIntercept = intercept
        values = slice_values(position, direction, pixel_spacing_ij, rows, columns)
        encode(dataset, stored_values(values, slope, intercept), syntax)
        subfolder = folder / f"sub{index % 3}" / "deeper" if nested else folder
        subfolder.mkdir(parents=True, exist_ok=True)
        path = subfolder / _file_name(rng, names, index)
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    order = np.argsort(positions @ direction[:, 2])
    return WrittenSeries(
        folder=folder,
        paths=[paths[o] for o in order],
        series_uid=series_uid,
        study_uid=study_uid,
        direction=direction,
        pixel_spacing_ij=pixel_spacing_ij,
        positions_lps=positions[order],
        rows=rows,
        columns=columns,
    )


def write_enhanced_ct(
    path: Path,
    *,
    shape_ijk: tuple[int, int, int] = (12, 10, 8),
    pixel_spacing_ij: tuple[float, float] = (0.8, 0.9),
    slice_step_mm: float = 2.0,
    direction: np.ndarray | str = "oblique",
    origin_lps=(-5.0, -4.0, -8.0),
    simple: bool = False,
    seed: int = 0,
) -> WrittenSeries:
    """One multi-frame CT file, frames stored in shuffled order.

    ``simple=False``: Enhanced CT with per-frame PlanePositionSequence and shared functional
    groups. ``simple=True``: a plain multi-frame CT with one ImagePositionPatient and
    SpacingBetweenSlices (frames then in acquisition order).
    """
    uid = UidMaker(f"{path}-{seed}")
    rng = np.random.default_rng(seed)
    direction = ORIENTATIONS[direction] if isinstance(direction, str) else np.asarray(direction)
    columns, rows, n_frames = shape_ijk
    positions = np.asarray(origin_lps, float) + np.outer(
        np.arange(n_frames) * slice_step_mm, direction[:, 2]
    )
    order = np.arange(n_frames) if simple else rng.permutation(n_frames)
    intercept = -1024.0
    sop_class = CT_IMAGE_STORAGE if simple else ENHANCED_CT_STORAGE
    dataset = base_dataset(sop_class, "CT", uid(), uid(), uid)
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    dataset.SeriesDescription = "multi-frame"
    dataset.NumberOfFrames = n_frames
    orientation = [f"{v:.8f}" for v in direction[:, :2].T.reshape(-1)]
    spacing = [pixel_spacing_ij[1], pixel_spacing_ij[0]]
    if simple:
        dataset.ImagePositionPatient = [f"{v:.6f}" for v in positions[0]]
        dataset.ImageOrientationPatient = orientation
        dataset.PixelSpacing = spacing
        dataset.SpacingBetweenSlices = slice_step_mm
        dataset.RescaleSlope, dataset.RescaleIntercept = 1.0, intercept
    else:
        shared = Dataset()
        measures, plane, transform = Dataset(), Dataset(), Dataset()
        measures.PixelSpacing = spacing
        measures.SliceThickness = slice_step_mm
        plane.ImageOrientationPatient = orientation
        transform.RescaleSlope, transform.RescaleIntercept = 1.0, intercept
        transform.RescaleType = "HU"
        shared.PixelMeasuresSequence = Sequence([measures])
        shared.PlaneOrientationSequence = Sequence([plane])
        shared.PixelValueTransformationSequence = Sequence([transform])
        dataset.SharedFunctionalGroupsSequence = Sequence([shared])
        frames = []
        for frame in order:
            item, position = Dataset(), Dataset()
            position.ImagePositionPatient = [f"{v:.6f}" for v in positions[frame]]
            item.PlanePositionSequence = Sequence([position])
            frames.append(item)
        dataset.PerFrameFunctionalGroupsSequence = Sequence(frames)
    stored = np.stack(
        [
            stored_values(
                slice_values(positions[f], direction, pixel_spacing_ij, rows, columns),
                1.0,
                intercept,
            )
            for f in order
        ]
    )
    _set_pixels(dataset, stored)
    dataset.save_as(path, enforce_file_format=True)
    return WrittenSeries(
        folder=Path(path).parent,
        paths=[Path(path)],
        series_uid=str(dataset.SeriesInstanceUID),
        study_uid=str(dataset.StudyInstanceUID),
        direction=direction,
        pixel_spacing_ij=pixel_spacing_ij,
        positions_lps=positions,
        rows=rows,
        columns=columns,
    )


def write_localizer(folder: Path, study_uid: str, series_uid: str | None = None, seed=7) -> Path:
    """A sagittal LOCALIZER image (its own series unless ``series_uid`` is given)."""
    uid = UidMaker(f"{folder}-localizer-{seed}")
    dataset = base_dataset(CT_IMAGE_STORAGE, "CT", study_uid, series_uid or uid(), uid)
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    dataset.SeriesDescription = "topogram"
    dataset.ImagePositionPatient = [0, -50, 50]
    dataset.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    dataset.PixelSpacing = [1.0, 1.0]
    dataset.RescaleSlope, dataset.RescaleIntercept = 1.0, -1024.0
    dataset.InstanceNumber = 1
    _set_pixels(dataset, np.full((16, 20), 1000, dtype=np.int64))
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / f"localizer{seed}"
    dataset.save_as(path, enforce_file_format=True)
    return path


def write_non_image_objects(folder: Path, study_uid: str, seed: int = 11) -> list[Path]:
    """An SR, an RTSTRUCT, a presentation state and a secondary capture (with CT modality)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    uid = UidMaker(f"{folder}-objects-{seed}")
    paths = []
    for name, sop_class, modality in (
        ("report", COMPREHENSIVE_SR_STORAGE, "SR"),
        ("structures", RTSTRUCT_STORAGE, "RTSTRUCT"),
        ("state", PRESENTATION_STATE_STORAGE, "PR"),
    ):
        dataset = base_dataset(sop_class, modality, study_uid, uid(), uid)
        dataset.SeriesDescription = name
        path = folder / f"{name}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    capture_series = uid()
    for index in range(4):  # a multi-image secondary capture that looks like a small stack
        dataset = base_dataset(SECONDARY_CAPTURE_STORAGE, "CT", study_uid, capture_series, uid)
        dataset.SeriesDescription = "screenshot"
        dataset.ImagePositionPatient = [0, 0, float(index)]
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        dataset.PixelSpacing = [1.0, 1.0]
        _set_pixels(dataset, np.full((8, 8), 10 * index, dtype=np.int64))
        path = folder / f"capture{index}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_non_dicom_files(folder: Path) -> list[Path]:
    """Files a real export folder holds besides DICOM: text, JSON, binary junk, a hidden file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "README.txt": b"exported by a scanner\n",
        "index.json": b'{"series": 1}',
        "junk.bin": bytes(range(256)) * 3,
        ".DS_Store": b"\x00\x00\x00\x01Bud1" + b"\x00" * 60,
        "notes": b"no extension, not DICOM",
    }
    paths = []
    for name, data in contents.items():
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def truncate(path: Path, keep_bytes: int) -> None:
    """Cut a file to its first ``keep_bytes`` bytes."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:keep_bytes])
