"""Every bad input gets a `PlannerError` naming the file and the problem, and through the CLI
exit code 2 with exactly one line on stderr (no traceback, no native ITK/GDCM chatter)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import dicom_factory as factory
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from planner import cli
from planner.errors import (
    CorruptInputError,
    GeometryError,
    ImageContentError,
    InputNotFoundError,
    PlannerError,
    UnsupportedInputError,
    VolumeTooLargeError,
)
from planner.loading import MEMORY_LIMIT_ENV, load
from planner.sitk_bridge import volume_to_sitk
from planner.volume import Volume

NIFTI_INT16 = 4  # NIfTI-1 datatype codes: signed 16-bit integers, 32-bit floats
NIFTI_FLOAT32 = 16
_NUMPY_TYPES = {NIFTI_INT16: ("<i2", 16), NIFTI_FLOAT32: ("<f4", 32)}


def write_nifti(
    path: Path,
    array_ijk: np.ndarray,
    pixdim=(1.0, 1.0, 1.0),
    sform=None,
    dims=None,
    datatype: int = NIFTI_INT16,
) -> Path:
    """A NIfTI-1 file written byte by byte (so headers SimpleITK refuses to write are possible).

    ``array_ijk`` is indexed [i, j, k] (NIfTI's own order); ``dims`` overrides the header sizes
    (for a header that claims more voxels than the file holds).
    """
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    shape = tuple(array_ijk.shape) if dims is None else tuple(dims)
    struct.pack_into("<8h", header, 40, len(shape), *shape, *([1] * (7 - len(shape))))
    numpy_type, bitpix = _NUMPY_TYPES[datatype]
    struct.pack_into("<2h", header, 70, datatype, bitpix)
    pixels = [1.0, *pixdim, *([1.0] * (7 - len(pixdim)))]
    struct.pack_into("<8f", header, 76, *pixels)
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<f", header, 112, 1.0)  # scl_slope
    struct.pack_into("<2h", header, 252, 0 if sform is not None else 1, 1 if sform else 0)
    if sform is not None:
        struct.pack_into("<12f", header, 280, *np.asarray(sform, float).reshape(-1))
    header[344:348] = b"n+1\x00"
    data = bytes(header) + bytes(4) + np.asarray(array_ijk, numpy_type).tobytes(order="F")
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_mha(path: Path, spacing="1 1 1", matrix="1 0 0 0 1 0 0 0 1") -> Path:
    """A MetaImage written by hand (SimpleITK refuses to write zero spacing or shear)."""
    array = np.arange(4 * 5 * 6, dtype="<i2")
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"TransformMatrix = {matrix}\nOffset = 0 0 0\nElementSpacing = {spacing}\n"
        "DimSize = 4 5 6\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + array.tobytes())
    return path


def random_ijk(shape=(6, 5, 4), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1500, shape).astype(np.int16)


def write_sitk(path: Path, array_kji: np.ndarray, **kwargs) -> Path:
    image = sitk.GetImageFromArray(array_kji, **kwargs)
    sitk.WriteImage(image, str(path))
    return path


# ---------------------------------------------------------------------------------- cases
# Each builder makes a bad input under tmp_path and returns (path, error class, text the
# message must hold). The message must also name the path.


def missing_path(tmp):
    return tmp / "nowhere" / "ct.nii.gz", InputNotFoundError, "no such file or folder"


def empty_folder(tmp):
    (tmp / "empty" / "sub").mkdir(parents=True)
    return tmp / "empty", InputNotFoundError, "folder is empty"


def folder_without_dicom(tmp):
    factory.write_non_dicom_files(tmp / "docs")
    return tmp / "docs", InputNotFoundError, "no DICOM files among the 5 file(s)"


def folder_with_a_nifti(tmp):
    (tmp / "case").mkdir()
    write_sitk(tmp / "case" / "ct.nii.gz", random_ijk().T.copy())
    return tmp / "case", InputNotFoundError, "it holds ct.nii.gz: pass that file instead"


def folder_of_non_images(tmp):
    factory.write_non_image_objects(tmp / "objects", "1.2.3.4")
    return tmp / "objects", UnsupportedInputError, "no CT or MR volume series found"


def dicom_truncated_pixels(tmp):
    written = factory.write_series(tmp / "series")
    victim = written.paths[3]
    factory.truncate(victim, victim.stat().st_size - 100)
    return tmp / "series", CorruptInputError, f"{victim.name}: pixel data cannot be read"


def dicom_file_truncated_header(tmp):
    written = factory.write_series(tmp / "series")
    factory.truncate(written.paths[0], 300)
    return written.paths[0], CorruptInputError, "DICOM header cannot be read"


def dicom_folder_all_truncated(tmp):
    written = factory.write_series(tmp / "series", shape_ijk=(4, 4, 3))
    for path in written.paths:
        factory.truncate(path, 300)
    return tmp / "series", CorruptInputError, "3 file(s) look like DICOM but cannot be read"


def nifti_truncated(tmp):
    path = write_nifti(tmp / "cut.nii", random_ijk())
    factory.truncate(path, 400)
    return path, CorruptInputError, "the file is truncated (it holds 400 bytes; its header needs"


def nifti_gz_truncated(tmp):
    path = write_sitk(tmp / "cut.nii.gz", random_ijk((40, 30, 20)).T.copy())
    factory.truncate(path, path.stat().st_size // 2)
    return path, CorruptInputError, "the file is truncated (it cannot be decompressed to the end"


def nifti_gz_garbage(tmp):
    path = tmp / "garbage.nii.gz"
    path.write_bytes(bytes(range(256)) * 8)
    return path, CorruptInputError, "cannot read the NIfTI header"


def not_an_image(tmp):
    path = tmp / "notes.txt"
    path.write_text("not an image\n" * 20)
    return path, UnsupportedInputError, "not a DICOM, NIfTI, NRRD or MetaImage file"


def dicom_single_slice(tmp):
    factory.write_series(tmp / "one", shape_ijk=(8, 8, 1))
    return tmp / "one", GeometryError, "a 2D image, not a volume"


def nifti_2d(tmp):
    path = write_nifti(tmp / "flat.nii", random_ijk((6, 5)))
    return path, GeometryError, "a 2D image (6x5), not a volume"


def nifti_single_slice(tmp):
    path = write_sitk(tmp / "slab.nii.gz", random_ijk((7, 1, 5)).T.copy())
    return path, GeometryError, "a 2D image (7x5), not a volume"


def png_2d(tmp):
    path = write_sitk(tmp / "photo.png", np.arange(30, dtype=np.uint8).reshape(5, 6))
    return path, GeometryError, "a 2D image"


def nifti_4d(tmp):
    path = write_sitk(tmp / "series4d.nii.gz", random_ijk((3, 4, 5, 6)).T.copy(), isVector=False)
    return path, UnsupportedInputError, "a 4D image"


def constant_volume(tmp):
    path = write_sitk(tmp / "constant.nii.gz", np.full((5, 6, 7), 40, np.int16))
    return path, ImageContentError, "volume is constant (every voxel is 40)"


def _with_nan_and_inf() -> np.ndarray:
    array = np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32)
    array[2, 3, 4] = np.nan
    array[1, 1, 1] = np.inf
    return array


def nan_values_mha(tmp):
    path = write_sitk(tmp / "nan.mha", _with_nan_and_inf())
    return path, ImageContentError, "2 NaN or infinite voxel values"


def nan_values_nifti(tmp):
    # ITK would read these NaN/inf as 0: the loader checks the raw data first.
    path = write_nifti(tmp / "nan.nii.gz", _with_nan_and_inf().T, datatype=NIFTI_FLOAT32)
    return path, ImageContentError, "2 NaN or infinite voxel values"


SHEAR = [[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]


def nifti_sheared(tmp):
    path = write_nifti(tmp / "sheared.nii", random_ijk(), sform=SHEAR)
    return path, GeometryError, "not orthonormal"


def mha_sheared(tmp):
    path = write_mha(tmp / "sheared.mha", matrix="1 0 0 0.5 1 0 0 0 1")
    return path, GeometryError, "not orthonormal"


def dicom_not_perpendicular(tmp):
    row, column = np.array([1.0, 0, 0]), np.array([0.3, 1.0, 0]) / np.hypot(0.3, 1.0)
    skewed = np.column_stack(
        [row, column, np.cross(row, column) / np.linalg.norm(np.cross(row, column))]
    )
    factory.write_series(tmp / "skew", direction=skewed)
    return tmp / "skew", GeometryError, "not perpendicular"


def nifti_zero_spacing(tmp):
    path = write_nifti(tmp / "zero.nii", random_ijk(), pixdim=(1.0, 0.0, 1.0))
    return path, GeometryError, "pixdim[2]) is 0.0 mm; spacing must be positive"


def nifti_negative_spacing(tmp):
    path = write_nifti(tmp / "negative.nii.gz", random_ijk(), pixdim=(1.0, 1.0, -2.0))
    return path, GeometryError, "pixdim[3]) is -2.0 mm"


def mha_zero_spacing(tmp):
    path = write_mha(tmp / "zero.mha", spacing="1 0 1")
    return path, GeometryError, "spacing must be positive"


def dicom_zero_pixel_spacing(tmp):
    factory.write_series(tmp / "zero", pixel_spacing_ij=(0.0, 0.9))
    return tmp / "zero", GeometryError, "spacing must be positive"


def dicom_duplicate_positions(tmp):
    factory.write_series(tmp / "dup", stack_offsets_mm=[0, 2, 4, 4, 6, 8])
    return tmp / "dup", GeometryError, "slices share a position"


def nifti_too_large(tmp):
    path = write_nifti(tmp / "huge.nii", random_ijk(), dims=(30000, 30000, 30000))
    return path, VolumeTooLargeError, "30000x30000x30000 voxels"


def dicom_too_large(tmp):
    written = factory.write_series(tmp / "huge", shape_ijk=(4, 4, 4))
    for path in written.paths:  # headers claim 30000 x 30000 pixels; the data are tiny
        dataset = pydicom.dcmread(path)
        dataset.Rows = dataset.Columns = 30000
        dataset.save_as(path)
    return tmp / "huge", VolumeTooLargeError, "the volume is 30000x30000x4 voxels"


CASES = [
    missing_path,
    empty_folder,
    folder_without_dicom,
    folder_with_a_nifti,
    folder_of_non_images,
    dicom_truncated_pixels,
    dicom_file_truncated_header,
    dicom_folder_all_truncated,
    nifti_truncated,
    nifti_gz_truncated,
    nifti_gz_garbage,
    not_an_image,
    dicom_single_slice,
    nifti_2d,
    nifti_single_slice,
    png_2d,
    nifti_4d,
    constant_volume,
    nan_values_mha,
    nan_values_nifti,
    nifti_sheared,
    mha_sheared,
    dicom_not_perpendicular,
    nifti_zero_spacing,
    nifti_negative_spacing,
    mha_zero_spacing,
    dicom_zero_pixel_spacing,
    dicom_duplicate_positions,
    nifti_too_large,
    dicom_too_large,
]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_bad_input_raises_a_named_planner_error(tmp_path, case):
    path, error_class, text = case(tmp_path)
    with pytest.raises(error_class) as caught:
        load(path)
    message = str(caught.value)
    assert text in message
    assert str(path) in message or any(p.name in message for p in Path(path).rglob("*"))
    assert "\n" not in message


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_cli_plan_exits_2_with_one_line(tmp_path, capfd, case):
    path, _, text = case(tmp_path)
    code = cli.main(["plan", str(path), "-o", str(tmp_path / "out")])
    captured = capfd.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sacroplan: error: ") and text in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "out").exists()


SERIES_CASES = [missing_path, empty_folder, folder_without_dicom, nifti_sheared, nifti_4d]


@pytest.mark.parametrize("case", SERIES_CASES, ids=[case.__name__ for case in SERIES_CASES])
def test_cli_series_exits_2_with_one_line(tmp_path, capfd, case):
    path, _, text = case(tmp_path)
    assert cli.main(["series", str(path)]) == 2
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and text in lines[0]


def test_memory_limit_is_configurable(tmp_path, monkeypatch):
    original = Volume(random_ijk().T.copy(), (0, 0, 0), (1, 1, 1))
    path = tmp_path / "small.nii.gz"
    sitk.WriteImage(volume_to_sitk(original), str(path))
    assert load(path).shape_ijk == (6, 5, 4)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "0.0001")  # 105 bytes
    with pytest.raises(VolumeTooLargeError, match=MEMORY_LIMIT_ENV):
        load(path)


def test_unknown_series_and_bad_modality_are_named(tmp_path):
    factory.write_series(tmp_path)
    with pytest.raises(InputNotFoundError, match="no series with SeriesInstanceUID 1.2.3"):
        load(tmp_path, series="1.2.3")
    with pytest.raises(PlannerError, match="modality must be CT, MR or SEG"):
        load(tmp_path, modality="PET")


def _folder_with_user_file(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    return folder, "notes.txt"


def _path_under_a_file(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "a_file").write_text("x")
    return tmp_path / "a_file" / "out", "cannot be created"


@pytest.mark.parametrize("case", [_folder_with_user_file, _path_under_a_file])
def test_cli_bad_output_folder_exits_2_and_keeps_the_users_files(tmp_path, capfd, case):
    """The output folder is replaced whole: one holding other files is refused, not emptied."""
    output, text = case(tmp_path)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    code = cli.main(["demo", "-o", str(output), "-q"])
    captured = capfd.readouterr()
    lines = captured.err.splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert lines[0].startswith("sacroplan: error: ") and text in lines[0]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
