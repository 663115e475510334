"""Checks of NIfTI-1 files for what SimpleITK would silently change.

ITK reads a zero ``pixdim`` as 1 mm, takes the absolute value of a negative one, reads NaN and
infinite voxels as 0, and may read a truncated ``.nii.gz`` without complaint. The planner must
refuse such files instead, so their header and data are checked here first (the header with
``struct``, the data with numpy; no NIfTI library is needed).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.errors import CorruptInputError, GeometryError, ImageContentError
from planner.volume import check_direction

#: Size of a NIfTI-1 header, which its first field repeats (bytes).
NIFTI1_HEADER_BYTES = 348
#: gzip stores the uncompressed size modulo 2**32 in its last four bytes.
GZIP_SIZE_MODULUS = 2**32
#: Bytes decompressed at a time when a gzip file must be read through.
CHUNK_BYTES = 1 << 24
#: NIfTI datatype codes of floating-point voxels, with their numpy types (little-endian).
FLOAT_DATATYPES = {16: "f4", 64: "f8"}


@dataclass(frozen=True)
class NiftiHeader:
    """The NIfTI-1 header fields the checks need."""

    endian: str
    dim: tuple[int, ...]
    datatype: int
    bitpix: int
    pixdim: tuple[float, ...]
    vox_offset: float
    qform_code: int
    sform_code: int
    srows: np.ndarray  # (3, 4) sform matrix

    @property
    def n_voxels(self) -> int:
        n_dims = int(np.clip(self.dim[0], 1, 7))
        return int(np.prod([max(1, int(n)) for n in self.dim[1 : n_dims + 1]], dtype=np.float64))

    @property
    def data_bytes(self) -> int:
        return self.n_voxels * max(self.bitpix, 8) // 8


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_nifti_header(path: Path) -> NiftiHeader | None:
    """Parse a NIfTI-1 header; None for NIfTI-2 or anything else (SimpleITK decides then).

    Raises
    ------
    CorruptInputError
        The file cannot be decompressed or is shorter than a header.
    """
    try:
        with _open(path) as stream:
            raw = stream.read(NIFTI1_HEADER_BYTES)
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptInputError(f"{path}: cannot read the NIfTI header ({error})") from None
    if len(raw) < NIFTI1_HEADER_BYTES:
        raise CorruptInputError(f"{path}: the NIfTI header is truncated ({len(raw)} bytes)")
    for endian in "<>":
        if struct.unpack_from(endian + "i", raw, 0)[0] == NIFTI1_HEADER_BYTES:
            break
    else:
        return None
    qform_code, sform_code = struct.unpack_from(endian + "2h", raw, 252)
    return NiftiHeader(
        endian=endian,
        dim=struct.unpack_from(endian + "8h", raw, 40),
        datatype=struct.unpack_from(endian + "h", raw, 70)[0],
        bitpix=struct.unpack_from(endian + "h", raw, 72)[0],
        pixdim=struct.unpack_from(endian + "8f", raw, 76),
        vox_offset=struct.unpack_from(endian + "f", raw, 108)[0],
        qform_code=qform_code,
        sform_code=sform_code,
        srows=np.array(struct.unpack_from(endian + "12f", raw, 280)).reshape(3, 4),
    )


def check_nifti_header(path: Path) -> None:
    """Refuse zero or negative pixdim and a sheared sform that has no qform to fall back on.

    Raises
    ------
    GeometryError, CorruptInputError
    """
    header = read_nifti_header(path)
    if header is None:
        return
    n_spatial = max(0, min(int(header.dim[0]), 3))
    for axis in range(1, n_spatial + 1):
        value = header.pixdim[axis]
        if not (np.isfinite(value) and value > 0):
            raise GeometryError(
                f"{path}: voxel spacing (pixdim[{axis}]) is {value} mm; spacing must be positive"
            )
    if header.sform_code > 0 and header.qform_code <= 0:
        matrix = header.srows[:, :3]
        lengths = np.linalg.norm(matrix, axis=0)
        if np.any(lengths <= 0):
            raise GeometryError(f"{path}: the sform has a zero-length axis (zero spacing)")
        try:
            check_direction(matrix / lengths)
        except GeometryError as error:
            raise GeometryError(f"{path}: sform {error}") from None


def _count_decompressed(path: Path) -> int:
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                total += len(chunk)
    except (OSError, EOFError, zlib.error):
        return -1
    return total


def check_nifti_data(path: Path) -> None:
    """Refuse a truncated file, and NaN or infinite voxels (which ITK would read as 0).

    Call after the memory check: floating-point data are read once here.

    Raises
    ------
    CorruptInputError, ImageContentError
    """
    header = read_nifti_header(path)
    if header is None:
        return
    expected = int(header.vox_offset) + header.data_bytes
    compressed = path.name.lower().endswith(".gz")
    if compressed:
        with open(path, "rb") as stream:
            stream.seek(-4, 2)
            stored_size = struct.unpack("<I", stream.read(4))[0]
        actual = expected
        if stored_size != expected % GZIP_SIZE_MODULUS:
            actual = _count_decompressed(path)  # size field disagrees: read it through to know
    else:
        actual = path.stat().st_size
    if actual < expected:
        found = "cannot be decompressed to the end" if actual < 0 else f"holds {actual} bytes"
        raise CorruptInputError(
            f"{path}: the file is truncated (it {found}; its header needs {expected} bytes)"
        )
    if header.datatype in FLOAT_DATATYPES:
        _check_finite(path, header)


def _check_finite(path: Path, header: NiftiHeader) -> None:
    dtype = np.dtype(header.endian + FLOAT_DATATYPES[header.datatype])
    with _open(path) as stream:
        stream.seek(int(header.vox_offset))
        data = np.frombuffer(stream.read(header.data_bytes), dtype=dtype)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise ImageContentError(f"{path}: volume holds {bad} NaN or infinite voxel values")
