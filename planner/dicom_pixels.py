"""Read the pixels of ordered DICOM frames into one array of modality values.

pydicom decodes uncompressed data, RLE (numpy) and, when the pylibjpeg plugins are installed,
JPEG and JPEG 2000. Where pydicom cannot decode a compressed file, SimpleITK's GDCM reads it
(GDCM decodes JPEG lossless/baseline, JPEG-LS, JPEG 2000 and RLE natively). Only when both fail
is the file refused, with a message naming the transfer syntax and what to install.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from planner.dicom import DicomSlice
from planner.dicom_sitk import read_dicom_file_with_sitk
from planner.errors import CorruptInputError, UnsupportedInputError

#: pip packages that let pydicom decode each family of compressed transfer syntaxes.
DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",  # JPEG extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE lossless
}


def _syntax_name(uid: str) -> str:
    return f"{UID(uid).name} ({uid})" if uid else "an unknown transfer syntax"


def _is_compressed(uid: str) -> bool:
    try:
        return bool(uid) and UID(uid).is_compressed
    except (ValueError, AttributeError):
        return False


def _name_raw_encoding(dataset: pydicom.Dataset) -> None:
    """Give a dataset read without File Meta the transfer syntax it was found to use."""
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit_vr, little_endian = dataset.original_encoding
    if implicit_vr:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if little_endian else ExplicitVRBigEndian
    if meta is None:
        dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax


def _stored_with_pydicom(path: Path) -> np.ndarray:
    """Stored values of every frame, ``(frames, rows, cols)`` (no rescale applied)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # force: old datasets without the Part 10 preamble are valid input too.
        dataset = pydicom.dcmread(path, force=True)
        _name_raw_encoding(dataset)
        array = dataset.pixel_array
    n_frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    return array.reshape((n_frames, *array.shape[-2:]))


def _first_line(error: Exception) -> str:
    """The error's first line (with the next one when it ends in a colon), at most 200 chars."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    text = " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text[:200]


def read_file_frames(path: Path, transfer_syntax: str) -> tuple[np.ndarray, bool]:
    """Pixels of one file as ``(frames, rows, cols)``.

    Returns
    -------
    array : ndarray
        Stored values (from pydicom) or modality values (from SimpleITK, which rescales).
    rescaled : bool
        True if the values already had RescaleSlope/Intercept applied.

    Raises
    ------
    CorruptInputError
        Uncompressed pixel data that cannot be read (truncated file).
    UnsupportedInputError
        Compressed pixel data that neither pydicom nor SimpleITK can decode.
    """
    try:
        return _stored_with_pydicom(path), False
    except Exception as error:  # noqa: BLE001 - every decoder failure gets a message below
        pydicom_reason = _first_line(error)
    if not _is_compressed(transfer_syntax):
        raise CorruptInputError(
            f"{path}: pixel data cannot be read ({pydicom_reason}); the file is truncated or "
            "corrupt: re-export the series or remove the file"
        )
    try:
        return read_dicom_file_with_sitk(path), True
    except Exception as error:  # noqa: BLE001
        sitk_reason = _first_line(error)
    packages = DECODER_PACKAGES.get(str(transfer_syntax), "pylibjpeg pylibjpeg-libjpeg")
    raise UnsupportedInputError(
        f"{path}: pixel data use the compressed transfer syntax {_syntax_name(transfer_syntax)}, "
        f"which neither pydicom ({pydicom_reason}) nor SimpleITK/GDCM ({sitk_reason}) could "
        f"decode. Install a decoder (pip install {packages}) or convert the series to "
        "uncompressed DICOM (e.g. gdcmconv --raw); if a decoder is installed, the file is corrupt"
    )


def read_frames(slices: Sequence[DicomSlice]) -> np.ndarray:
    """Modality values (RescaleSlope/Intercept applied) of ordered frames, ``(n, rows, cols)``.

    Parameters
    ----------
    slices : sequence of DicomSlice
        Frames in the order wanted along k; frames of one multi-frame file are read once.

    Returns
    -------
    (n, rows, cols) float32 ndarray
    """
    first = slices[0]
    output = np.empty((len(slices), first.rows, first.columns), dtype=np.float32)
    cache: dict[Path, tuple[np.ndarray, bool]] = {}
    for index, piece in enumerate(slices):
        if piece.path not in cache:
            # Keep one file's frames at a time: a multi-frame file is read once.
            cache = {piece.path: read_file_frames(piece.path, piece.transfer_syntax)}
        frames, rescaled = cache[piece.path]
        frame = frames[piece.frame or 0]
        if frame.shape != (first.rows, first.columns):
            raise CorruptInputError(
                f"{piece.path}: image is {frame.shape[0]}x{frame.shape[1]} pixels but its header "
                f"says {first.rows}x{first.columns}"
            )
        if rescaled:
            output[index] = frame
        else:
            output[index] = frame * piece.rescale_slope + piece.rescale_intercept
    return output
