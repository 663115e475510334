"""Loading: DICOM series (any orientation, tilt, gaps, compression, multi-frame, mixed folders),
single-file formats, series listing, privacy, and the real scans."""

from __future__ import annotations

import hashlib

import dicom_factory as factory
import numpy as np
import pytest
import SimpleITK as sitk

from planner import cli
from planner.errors import GeometryError, UnsupportedInputError
from planner.loading import format_series_table, list_series, load
from planner.sitk_bridge import volume_to_sitk
from planner.volume import Volume

#: Largest error of a loaded value against the field: half a stored unit (rounding on write).
ROUNDING_HU = 0.5 + 1e-6


def field_error(volume: Volume, valid_kji: np.ndarray | None = None) -> float:
    """Largest |value - linear_field(voxel LPS)| over the (valid) voxels of a volume."""
    k, j, i = np.indices(volume.array.shape)
    expected = factory.linear_field(volume.index_to_lps(np.stack([i, j, k], axis=-1)))
    error = np.abs(volume.array.astype(float) - expected)
    if valid_kji is not None:
        error = error[valid_kji]
    return float(error.max())


def assert_grid(volume: Volume, written: factory.WrittenSeries, step_mm: float) -> None:
    np.testing.assert_allclose(volume.direction, written.direction, atol=1e-6)
    np.testing.assert_allclose(volume.origin_lps, written.positions_lps[0], atol=1e-5)
    np.testing.assert_allclose(volume.spacing_xyz, [*written.pixel_spacing_ij, step_mm], atol=1e-5)
    assert volume.shape_ijk[:2] == (written.columns, written.rows)


# ---------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("orientation", sorted(factory.ORIENTATIONS))
def test_series_loads_exactly_in_any_orientation(tmp_path, orientation):
    written = factory.write_series(
        tmp_path, direction=orientation, names="noext", nested=True, seed=3
    )
    factory.write_non_dicom_files(tmp_path)
    volume = load(tmp_path)
    assert_grid(volume, written, 2.0)
    assert volume.shape_ijk == (12, 10, 8)
    assert volume.modality == "CT" and volume.array.dtype == np.int16
    assert field_error(volume) <= ROUNDING_HU


def test_order_comes_from_positions_not_names_or_instance_numbers(tmp_path):
    written = factory.write_series(tmp_path, names="reverse", direction="axial_flipped", seed=5)
    volume = load(tmp_path)
    # k runs along the slice normal (row x column), whatever the file order.
    assert np.all(np.diff(written.normal_mm) > 0)
    assert_grid(volume, written, 2.0)
    assert field_error(volume) <= ROUNDING_HU


def test_datasets_without_preamble_or_file_meta_are_found(tmp_path):
    """Old exports: raw implicit-VR datasets, no 'DICM' magic, no extension."""
    import pydicom
    from pydicom.dataset import Dataset

    written = factory.write_series(tmp_path, names="noext", direction="coronal", seed=8)
    for path in written.paths:
        plain = Dataset()
        plain.update(pydicom.dcmread(path))
        pydicom.dcmwrite(path, plain, implicit_vr=True, little_endian=True)
        assert path.read_bytes()[128:132] != b"DICM"
    volume = load(tmp_path)
    assert_grid(volume, written, 2.0)
    assert field_error(volume) <= ROUNDING_HU


def test_mr_keeps_float_scanner_values(tmp_path):
    factory.write_series(
        tmp_path, modality="MR", slope=0.25, intercept=3.5, direction="oblique_sagittal"
    )
    volume = load(tmp_path, modality="MR")
    assert volume.modality == "MR" and volume.array.dtype == np.float32
    assert field_error(volume) <= 0.25 / 2 + 1e-4
    assert load(tmp_path).modality == "MR"  # no CT in the folder: the MR volume is chosen


def test_small_jitter_is_regular(tmp_path):
    offsets = np.arange(8) * 2.0 + np.array([0, 0.04, -0.03, 0.05, 0, -0.04, 0.03, 0])
    written = factory.write_series(tmp_path, stack_offsets_mm=offsets)
    volume = load(tmp_path)
    assert volume.spacing_xyz[2] == pytest.approx(2.0)
    np.testing.assert_allclose(volume.origin_lps, written.positions_lps[0], atol=1e-5)


def _valid_after_tilt(volume: Volume, written: factory.WrittenSeries) -> np.ndarray:
    """Voxels whose in-plane position lies inside the acquired slice of the same k."""
    k, j, i = np.indices(volume.array.shape)
    points = volume.index_to_lps(np.stack([i, j, k], axis=-1))
    relative = points - written.positions_lps[k]
    u = relative @ written.direction[:, 0] / written.pixel_spacing_ij[0]
    v = relative @ written.direction[:, 1] / written.pixel_spacing_ij[1]
    eps = 1e-6
    return (u > -eps) & (u < written.columns - 1 + eps) & (v > -eps) & (v < written.rows - 1 + eps)


@pytest.mark.parametrize("tilt_deg", [-12.0, 20.0])
def test_gantry_tilt_is_corrected_onto_an_orthogonal_grid(tmp_path, tilt_deg):
    written = factory.write_series(tmp_path, tilt_deg=tilt_deg, direction="oblique", seed=9)
    volume = load(tmp_path)
    np.testing.assert_allclose(volume.direction, written.direction, atol=1e-6)
    # The slice planes are cos(tilt) * 2 mm apart along their normal.
    assert volume.spacing_xyz[2] == pytest.approx(2.0 * np.cos(np.radians(tilt_deg)), abs=1e-5)
    assert volume.shape_ijk[1] > written.rows  # widened to hold every shifted slice
    valid = _valid_after_tilt(volume, written)
    assert valid.mean() > 0.5
    assert field_error(volume, valid) <= ROUNDING_HU
    assert any(
        f"gantry tilt of {abs(tilt_deg):.1f} degrees corrected" in n for n in volume.info.notes
    )


def test_missing_slice_is_refused_with_its_location(tmp_path):
    offsets = np.delete(np.arange(9) * 2.0, 5)  # the slice at 10 mm is missing
    written = factory.write_series(tmp_path, stack_offsets_mm=offsets, origin_lps=(0, 0, 0))
    with pytest.raises(GeometryError) as caught:
        load(tmp_path)
    message = str(caught.value)
    assert "4.00 mm between slices at 8.00 and 12.00 mm" in message
    assert written.paths[4].name in message and written.paths[5].name in message
    assert "median step is 2.00 mm" in message and "allow_resample" in message


def test_uneven_spacing_is_refused(tmp_path):
    offsets = [0.0, 2.0, 4.0, 6.0, 8.5, 10.5, 12.5, 14.5]
    factory.write_series(tmp_path, stack_offsets_mm=offsets, origin_lps=(0, 0, 0))
    with pytest.raises(GeometryError, match="2.50 mm between slices at 6.00 and 8.50 mm"):
        load(tmp_path)


def test_gap_is_resampled_when_allowed(tmp_path):
    offsets = np.delete(np.arange(10) * 2.0, [3, 6])
    written = factory.write_series(tmp_path, stack_offsets_mm=offsets, direction="coronal")
    volume = load(tmp_path, allow_resample=True)
    assert_grid(volume, written, 2.0)
    assert volume.shape_ijk[2] == 10
    # Linear interpolation between slices reproduces the linear field.
    assert field_error(volume) <= ROUNDING_HU
    assert any("resampled to a regular 2.00 mm grid" in note for note in volume.info.notes)


# ---------------------------------------------------------------------------------- series choice
def _mixed_folder(tmp_path):
    study = "1.2.826.0.1.3680043.8.498.1"
    big_ct = factory.write_series(tmp_path / "a", shape_ijk=(8, 8, 9), study_uid=study, seed=1)
    small_ct = factory.write_series(tmp_path / "b", shape_ijk=(8, 8, 5), study_uid=study, seed=2)
    mr = factory.write_series(
        tmp_path / "c", shape_ijk=(8, 8, 12), modality="MR", study_uid=study, seed=3
    )
    factory.write_localizer(tmp_path / "a", study)
    factory.write_non_image_objects(tmp_path, study)
    factory.write_non_dicom_files(tmp_path)
    return big_ct, small_ct, mr


def test_picks_the_ct_with_most_slices_and_skips_other_objects(tmp_path):
    big_ct, small_ct, mr = _mixed_folder(tmp_path)
    volume = load(tmp_path)
    assert volume.info.series_uid == big_ct.series_uid
    assert volume.shape_ijk[2] == 9
    assert load(tmp_path, modality="MR").info.series_uid == mr.series_uid
    assert load(tmp_path, series=small_ct.series_uid).shape_ijk[2] == 5


def test_series_listing_says_what_each_series_is(tmp_path):
    big_ct, _, mr = _mixed_folder(tmp_path)
    summaries = {s.series_uid: s for s in list_series(tmp_path)}
    assert len(summaries) == 8  # 3 volumes, localizer, SR, RTSTRUCT, PR, secondary capture
    assert summaries[big_ct.series_uid].is_volume
    assert summaries[big_ct.series_uid].spacing_xyz == (0.8, 0.9, 2.0)
    assert summaries[big_ct.series_uid].orientation == "LPS"
    assert summaries[big_ct.series_uid].n_slices == 9
    assert [s.series_uid for s in summaries.values() if s.is_default] == [big_ct.series_uid]
    assert summaries[mr.series_uid].modality == "MR"
    skipped = sorted(s.status for s in summaries.values() if not s.is_volume)
    assert skipped == [
        "skipped: localizer (scout) images",
        "skipped: presentation state",
        "skipped: radiotherapy object (RTSTRUCT/RTPLAN/RTDOSE)",
        "skipped: secondary capture",
        "skipped: structured report",
    ]
    table = format_series_table(list(summaries.values()))
    assert big_ct.series_uid in table and "0.8 x 0.9 x 2" in table
    assert len(table.splitlines()) == 10  # header, 8 series, footnote on the default


def test_listing_flags_tilt_and_gaps(tmp_path):
    tilted = factory.write_series(tmp_path / "tilt", tilt_deg=15.0, seed=1)
    gapped = factory.write_series(
        tmp_path / "gap", stack_offsets_mm=[0, 2, 4, 8, 10, 12], study_uid=tilted.study_uid
    )
    summaries = {s.series_uid: s for s in list_series(tmp_path)}
    assert summaries[tilted.series_uid].status == "volume; gantry tilt 15.0 deg (corrected on load)"
    assert summaries[gapped.series_uid].status.startswith(
        "volume; uneven spacing/gap at 1 place(s), largest step 4.00 mm"
    )


def test_unreadable_file_beside_a_good_series_is_noted(tmp_path):
    factory.write_series(tmp_path / "good", seed=2)
    broken = factory.write_series(tmp_path / "broken", shape_ijk=(4, 4, 3), seed=3)
    factory.truncate(broken.paths[0], 300)
    volume = load(tmp_path / "good")
    assert volume.info.notes == ()
    volume = load(tmp_path)  # the 8-slice series wins; the cut file is reported, not fatal
    assert volume.shape_ijk == (12, 10, 8)
    assert "1 unreadable file(s) in the folder ignored" in volume.info.notes


def test_localizer_inside_the_series_is_left_out(tmp_path):
    written = factory.write_series(tmp_path, seed=4)
    factory.write_localizer(tmp_path, written.study_uid, series_uid=written.series_uid)
    volume = load(tmp_path)
    assert volume.shape_ijk == (12, 10, 8)
    assert field_error(volume) <= ROUNDING_HU
    assert any("left out" in note for note in volume.info.notes)


@pytest.mark.parametrize(("written", "asked"), [("MR", "CT"), ("CT", "MR")])
def test_the_other_modality_is_refused_with_a_hint(tmp_path, written, asked):
    factory.write_series(tmp_path, modality=written, slope=1.0, intercept=0.0)
    with pytest.raises(UnsupportedInputError, match=f"no {asked} series, only {written}"):
        load(tmp_path, modality=asked)
    path = tmp_path / "multiframe.dcm"
    factory.write_enhanced_ct(path)
    if asked == "MR":
        with pytest.raises(UnsupportedInputError, match="the file is CT, not MR"):
            load(path, modality="MR")


# ---------------------------------------------------------------------------------- encodings
@pytest.mark.parametrize("syntax", ["implicit", "rle", "jpeg2000", "jpeg-lossless"])
def test_transfer_syntaxes_decode(tmp_path, syntax):
    written = factory.write_series(tmp_path, syntax=syntax, direction="sagittal", seed=6)
    volume = load(tmp_path)
    assert_grid(volume, written, 2.0)
    assert field_error(volume) <= ROUNDING_HU


@pytest.mark.parametrize("syntax", ["rle", "jpeg2000", "jpeg-lossless"])
def test_compressed_data_fall_back_to_simpleitk(tmp_path, monkeypatch, syntax):
    """Where pydicom has no decoder (no pylibjpeg), GDCM decodes, and rescales only once."""
    import planner.dicom_pixels as pixels

    def no_decoder(path):
        raise RuntimeError("no decoder plugin (simulated)")

    monkeypatch.setattr(pixels, "_stored_with_pydicom", no_decoder)
    factory.write_series(tmp_path, syntax=syntax, modality="MR", slope=0.5, intercept=-20.0)
    volume = load(tmp_path)
    assert field_error(volume) <= 0.25 + 1e-4


def test_undecodable_syntax_names_it_and_what_to_install(tmp_path):
    written = factory.write_series(tmp_path, syntax="bogus-j2k")
    with pytest.raises(UnsupportedInputError) as caught:
        load(tmp_path)
    message = str(caught.value)
    assert "JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90)" in message
    assert "pip install pylibjpeg pylibjpeg-openjpeg" in message
    assert any(path.name in message for path in written.paths)
    assert "\n" not in message


@pytest.mark.parametrize("simple", [False, True])
def test_multiframe_file_loads(tmp_path, simple):
    path = tmp_path / "multiframe.dcm"
    written = factory.write_enhanced_ct(path, simple=simple, direction="oblique")
    volume = load(path)
    assert volume.info.source_format == "DICOM multi-frame"
    assert_grid(volume, written, 2.0)
    assert field_error(volume) <= ROUNDING_HU
    assert load(tmp_path).info.series_uid == written.series_uid  # found in a folder too


# ---------------------------------------------------------------------------------- other formats
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_single_file_formats_keep_lps_geometry(tmp_path, suffix):
    direction = factory.ORIENTATIONS["oblique_sagittal"]
    array = np.random.default_rng(0).integers(-1000, 2000, (7, 6, 5)).astype(np.int16)
    original = Volume(array, (10.0, -20.0, 30.0), (0.7, 0.8, 2.5), direction)
    path = tmp_path / f"volume{suffix}"
    sitk.WriteImage(volume_to_sitk(original), str(path))
    volume = load(path)
    assert volume.same_grid(original, tolerance_mm=1e-4)
    np.testing.assert_array_equal(volume.array, array)
    assert volume.modality == "CT" and volume.info.source_format
    expected_id = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    assert volume.info.case_id == expected_id
    assert load(path, modality="MR").array.dtype == np.float32
    mask = load(path, modality="SEG")
    assert mask.modality == "SEG" and mask.array.dtype == np.int16


# ---------------------------------------------------------------------------------- privacy
def test_no_patient_identifier_leaves_the_loader(tmp_path, capsys):
    written = factory.write_series(tmp_path, description="pelvis 1mm", kernel="Br40")
    factory.write_non_image_objects(tmp_path, written.study_uid)
    volume = load(tmp_path)
    assert volume.info.case_id == hashlib.sha256(written.study_uid.encode()).hexdigest()[:12]
    assert volume.info.series_description == "pelvis 1mm" and volume.info.kernel == "Br40"
    assert cli.main(["series", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    texts = [repr(volume), repr(volume.info), captured.out, captured.err]
    texts.append(format_series_table(list_series(tmp_path)))
    for text in texts:
        for identifier in factory.FAKE_IDENTIFIERS:
            assert identifier.lower() not in text.lower()


# ---------------------------------------------------------------------------------- real scans
REAL_SCANS = {
    # case: (file, size_ijk, spacing_xyz, direction diagonal in LPS)
    "pengwin-001": (
        "ct_boneonly.nii.gz",
        (512, 512, 274),
        (0.86328125, 0.86328125, 1.0),
        (1, 1, 1),
    ),
    "pengwin-003": (
        "ct_boneonly.nii.gz",
        (429, 318, 341),
        (0.97070312, 0.97070312, 1.0),
        (-1, -1, 1),
    ),
    "totalseg-example": ("ct.nii.gz", (122, 101, 112), (3.0, 3.0, 3.0), (-1, -1, 1)),
}


@pytest.mark.parametrize("case", sorted(REAL_SCANS))
def test_real_scans_load_as_their_readme_states(shared_data, case):
    name, size_ijk, spacing_xyz, diagonal = REAL_SCANS[case]
    volume = load(shared_data / case / name)
    assert volume.shape_ijk == size_ijk
    np.testing.assert_allclose(volume.spacing_xyz, spacing_xyz, atol=1e-5)
    np.testing.assert_allclose(volume.direction, np.diag(diagonal), atol=1e-6)
    array = volume.array
    assert np.issubdtype(array.dtype, np.integer)
    # Hounsfield units: cortical bone well above 1000 HU somewhere in every scan.
    assert array.max() > 1000
    if case.startswith("pengwin"):
        # Bone-only: exactly 0 outside the bones, which fill a small part of the box.
        assert array[0, 0, 0] == 0 and array[-1, -1, -1] == 0
        assert np.mean(array == 0) > 0.9
    else:
        assert array.min() < -900  # air


# ---------------------------------------------------------------------------------- real encoders
PYDICOM_MR_ENCODINGS = [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",  # pydicom needs pyjpegls: GDCM decodes it
]


@pytest.mark.parametrize("name", PYDICOM_MR_ENCODINGS)
def test_files_from_other_encoders_decode_losslessly(tmp_path, name):
    """pydicom's bundled MR slice, encoded by other tools, stacked into a 4-slice series."""
    import pydicom
    from pydicom.data import get_testdata_file

    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.float32)
    source = get_testdata_file(name)
    series_uid = pydicom.uid.generate_uid(entropy_srcs=[name])
    for k in range(4):
        dataset = pydicom.dcmread(source)
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[name, str(k)])
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        position = [float(v) for v in dataset.ImagePositionPatient]
        dataset.ImagePositionPatient = [position[0], position[1], position[2] + 1.5 * k]
        dataset.save_as(tmp_path / f"slice{k}")
    volume = load(tmp_path, modality="MR")
    assert volume.shape_ijk == (64, 64, 4)
    np.testing.assert_allclose(volume.spacing_xyz, [0.3125, 0.3125, 1.5])
    for k in range(4):
        np.testing.assert_array_equal(volume.array[k], reference)
