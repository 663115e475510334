"""Write phantoms (or any `Volume`) as NIfTI and as a DICOM series that any viewer opens.

The DICOM geometry follows the `Volume` exactly: each slice is ``array[k]`` with rows along j and
columns along i, so ``ImageOrientationPatient`` holds the LPS directions of i then j,
``PixelSpacing`` is (row spacing = j, column spacing = i), and ``ImagePositionPatient`` of slice k
is the centre of voxel ``(0, 0, k)``. Oblique, flipped and permuted grids are written as they are.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from planner.errors import PlannerError
from planner.sitk_bridge import volume_to_sitk
from planner.volume import Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
#: Default fake identity written into phantom series (so privacy tests can look for it).
FAKE_PATIENT_NAME = "PHANTOM^SACRUM"
FAKE_PATIENT_ID = "PHANTOM-0001"
#: CT stored values are unsigned with this intercept, as most scanners write them.
CT_RESCALE_INTERCEPT = -1024.0
#: Largest stored value of MR series (rescaled to keep 12 bits of precision).
MR_STORED_MAX = 4095.0
DS_DECIMALS = 6  # digits after the point for decimal strings (DS max 16 characters)


def write_nifti(volume: Volume, path: str | Path) -> Path:
    """Write a volume (image or label map) as NIfTI (.nii or .nii.gz); returns the path."""
    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise PlannerError(f"NIfTI path must end with .nii or .nii.gz, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume_to_sitk(volume), str(path), useCompression=path.name.endswith(".gz"))
    return path


def _ds(value: float) -> str:
    text = f"{value:.{DS_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _uid(seed: str | None, *parts) -> str:
    if seed is None:
        return generate_uid()
    return generate_uid(entropy_srcs=[seed, *(str(p) for p in parts)])


def _stored_pixels(volume: Volume) -> tuple[np.ndarray, float, float, int]:
    """(stored array, slope, intercept, pixel representation) for 16-bit storage."""
    values = volume.array.astype(np.float64)
    if volume.modality == "CT":
        stored = np.rint(values - CT_RESCALE_INTERCEPT)
        if stored.min() >= 0 and stored.max() <= np.iinfo(np.uint16).max:
            return stored.astype(np.uint16), 1.0, CT_RESCALE_INTERCEPT, 0
        clipped = np.clip(np.rint(values), np.iinfo(np.int16).min, np.iinfo(np.int16).max)
        return clipped.astype(np.int16), 1.0, 0.0, 1
    low = float(values.min())
    span = float(values.max()) - low
    slope = span / MR_STORED_MAX if span > 0 else 1.0
    stored = np.rint((values - low) / slope)
    return stored.astype(np.uint16), slope, low, 0


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    *,
    patient_name: str = FAKE_PATIENT_NAME,
    patient_id: str = FAKE_PATIENT_ID,
    series_description: str | None = None,
    uid_seed: str | None = None,
    study_uid: str | None = None,
    series_number: int = 1,
) -> list[Path]:
    """Write a volume as a DICOM series, one file per slice, named without extension.

    Parameters
    ----------
    volume : Volume
        CT (HU, stored unsigned with intercept -1024) or MR (rescaled to 12 bits).
    folder : path
        Created if missing. Files get random-looking names (hashes of their UIDs), so file-name
        order says nothing about slice order.
    patient_name, patient_id : str
        Fake identity written into every file.
    series_description : str, optional
        Default: the volume's ``info.series_description``.
    uid_seed : str, optional
        Derive every UID (and so every file name) from this text: the same seed writes
        byte-identical files. Default: fresh random UIDs from :func:`pydicom.uid.generate_uid`.
    study_uid : str, optional
        Put the series into an existing study (e.g. a CT and an MR of one phantom).

    Returns
    -------
    list of Path
        The files written, in slice order (k = 0, 1, ...).
    """
    if volume.modality not in ("CT", "MR"):
        raise PlannerError(f"only CT and MR volumes can be written as DICOM, got {volume.modality}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stored, slope, intercept, representation = _stored_pixels(volume)
    n_k, n_j, n_i = volume.array.shape
    spacing_i, spacing_j, spacing_k = (float(v) for v in volume.spacing_xyz)
    axis_i, axis_j, axis_k = (volume.direction[:, a] for a in range(3))
    normal = np.cross(axis_i, axis_j)
    is_ct = volume.modality == "CT"
    study_uid = study_uid or _uid(uid_seed, "study")
    series_uid = _uid(uid_seed, "series", series_number)
    frame_uid = _uid(uid_seed, "frame", series_number)
    description = (
        series_description if series_description is not None else volume.info.series_description
    )
    stamp = (
        datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
        if uid_seed
        else datetime.now(UTC)
    )
    paths = []
    for k in range(n_k):
        position = volume.index_to_lps(np.array([0.0, 0.0, float(k)]))
        sop_uid = _uid(uid_seed, "instance", series_number, k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE if is_ct else MR_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.Modality = volume.modality
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.PatientPosition = "HFS"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = stamp.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = stamp.strftime("%H%M%S")
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = "sacroplan synthetic phantom"
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        if is_ct:
            ds.KVP = "120"
            ds.ConvolutionKernel = volume.info.kernel or "STANDARD"
            ds.RescaleType = "HU"
            ds.WindowCenter = "300"
            ds.WindowWidth = "1500"
        else:
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in (*axis_i, *axis_j)]
        ds.PixelSpacing = [_ds(spacing_j), _ds(spacing_i)]
        ds.SliceThickness = _ds(spacing_k)
        ds.SpacingBetweenSlices = _ds(spacing_k)
        ds.SliceLocation = _ds(float(position @ normal))
        ds.Rows = n_j
        ds.Columns = n_i
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = representation
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = _ds(slope)
        ds.PixelData = (
            np.ascontiguousarray(stored[k]).astype(stored.dtype.newbyteorder("<")).tobytes()
        )
        name = hashlib.sha1(sop_uid.encode()).hexdigest()[:16].upper()
        path = folder / name
        _save(ds, path)
        paths.append(path)
    return paths


def _save(ds: Dataset, path: Path) -> None:
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:  # pydicom < 3
        ds.is_little_endian = True
        ds.is_implicit_VR = False
        ds.save_as(path, write_like_original=False)
