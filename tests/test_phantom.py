"""The phantom: same LPS anatomy in every orientation and spacing, and its structural truths."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import SimpleITK as sitk

from planner.anatomy.model import FORAMEN_LABELS, LEVEL_LABELS, LEVEL_NAMES, SacralAnatomy
from planner.errors import PlannerError
from planner.phantom import (
    CONTRASTS,
    INFEASIBLE_HOOK_DEG,
    KYPHOTIC_RANGE_DEG,
    MR_CONTRASTS,
    RANGES,
    PhantomParams,
    make_phantom,
)
from planner.phantom.io import FAKE_PATIENT_ID, write_dicom_series, write_nifti
from planner.sitk_bridge import volume_from_sitk

ORIENTATIONS = ["LPS", "RAS", "flipped", "permuted", "permuted_flipped", "oblique"]
SPACING_MM = 2.0
#: A random case with a visible pose, drawn on a small field of view (fast).
PARAMS = PhantomParams.random(11, fov="sacrum", lesion=True, noise_hu=0.0)


@pytest.fixture(scope="module")
def phantoms():
    return {o: make_phantom(PARAMS, SPACING_MM, o) for o in ORIENTATIONS}


def _centroid_lps(mask_volume) -> np.ndarray:
    ijk = np.argwhere(mask_volume.array)[:, ::-1]
    return mask_volume.index_to_lps(ijk).mean(axis=0)


def _volume_mm3(mask_volume) -> float:
    return float(np.count_nonzero(mask_volume.array)) * mask_volume.voxel_volume_mm3


def _values_at_reference(reference, other) -> tuple[np.ndarray, np.ndarray, float]:
    """Voxel values of ``other`` at the voxel centres of ``reference`` (nearest voxel)."""
    ijk = np.argwhere(np.ones(reference.array.shape, bool))[:, ::-1]
    continuous = other.lps_to_index(reference.index_to_lps(ijk))
    nearest = np.rint(continuous).astype(int)
    off_grid = float(np.abs(continuous - nearest).max())
    values = other.array[nearest[:, 2], nearest[:, 1], nearest[:, 0]]
    return reference.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]], values, off_grid


def test_landmarks_identical_in_every_orientation(phantoms):
    reference = phantoms["LPS"].truth
    for orientation, phantom in phantoms.items():
        truth = phantom.truth
        np.testing.assert_allclose(truth.hiatus_apex_lps, reference.hiatus_apex_lps, atol=1e-9)
        np.testing.assert_allclose(
            truth.anterior_cortex_lps, reference.anterior_cortex_lps, atol=1e-9
        )
        for name in LEVEL_NAMES:
            np.testing.assert_allclose(
                truth.level_centers_lps[name],
                reference.level_centers_lps[name],
                atol=1e-9,
                err_msg=orientation,
            )


@pytest.mark.parametrize("name", ["sacrum", "canal", "lesion"])
def test_label_centroids_and_volumes_agree_across_orientations(phantoms, name):
    reference = getattr(phantoms["LPS"].truth, name)
    for orientation, phantom in phantoms.items():
        mask = getattr(phantom.truth, name)
        # Voxel-centre sampling of one shape: centroids within a fraction of a voxel.
        assert np.linalg.norm(_centroid_lps(mask) - _centroid_lps(reference)) < 0.5, orientation
        assert _volume_mm3(mask) == pytest.approx(_volume_mm3(reference), rel=0.03), orientation


def test_level_centroids_agree_across_orientations(phantoms):
    reference = phantoms["LPS"].truth.levels
    for orientation, phantom in phantoms.items():
        levels = phantom.truth.levels
        for name, label in LEVEL_LABELS.items():
            here = _centroid_lps(levels.with_array(levels.array == label))
            there = _centroid_lps(reference.with_array(reference.array == label))
            assert np.linalg.norm(here - there) < 1.0, (orientation, name)


def test_axis_aligned_orientations_share_voxel_centres(phantoms):
    reference = phantoms["LPS"]
    for orientation in ("RAS", "flipped", "permuted", "permuted_flipped"):
        ref_values, values, off_grid = _values_at_reference(
            reference.volume, phantoms[orientation].volume
        )
        assert off_grid < 1e-6
        np.testing.assert_array_equal(values, ref_values)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_nifti_round_trip_keeps_lps_anatomy(phantoms, orientation, tmp_path):
    phantom = phantoms[orientation]
    path = write_nifti(phantom.volume, tmp_path / "ct.nii.gz")
    write_nifti(phantom.truth.sacrum, tmp_path / "sacrum.nii.gz")
    loaded = volume_from_sitk(sitk.ReadImage(str(path)))
    sacrum = volume_from_sitk(sitk.ReadImage(str(tmp_path / "sacrum.nii.gz")), "SEG")
    original, values, off_grid = _values_at_reference(phantom.volume, loaded)
    assert off_grid < 1e-3
    np.testing.assert_array_equal(values, original)
    assert (
        np.linalg.norm(
            _centroid_lps(sacrum.with_array(sacrum.array > 0)) - _centroid_lps(phantom.truth.sacrum)
        )
        < 1e-3
    )


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_dicom_series_round_trip_keeps_lps_anatomy(phantoms, orientation, tmp_path):
    phantom = phantoms[orientation]
    files = write_dicom_series(phantom.volume, tmp_path, uid_seed=f"test-{orientation}")
    assert len(files) == phantom.volume.shape_ijk[2]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    loaded = volume_from_sitk(reader.Execute())
    original, values, off_grid = _values_at_reference(phantom.volume, loaded)
    assert off_grid < 1e-3  # decimal strings keep 6 digits
    np.testing.assert_array_equal(values, original)


def test_dicom_files_carry_fake_identity_and_fresh_uids(tmp_path):
    import pydicom

    volume = make_phantom(PARAMS, 4.0).volume
    first = write_dicom_series(volume, tmp_path / "a")
    second = write_dicom_series(volume, tmp_path / "b")
    ds_a = pydicom.dcmread(first[0])
    ds_b = pydicom.dcmread(second[0])
    assert ds_a.PatientID == FAKE_PATIENT_ID and ds_a.Modality == "CT"
    assert ds_a.SeriesInstanceUID != ds_b.SeriesInstanceUID
    assert len({pydicom.dcmread(f).SOPInstanceUID for f in first}) == len(first)
    assert all("." not in f.name for f in first)


def test_label_volumes_agree_across_spacings():
    params = PARAMS.with_(lesion=False)
    volumes = {
        spacing: make_phantom(params, spacing).truth for spacing in (1.5, 2.0, (1.25, 1.25, 2.5))
    }
    reference = volumes[1.5]
    for spacing, truth in volumes.items():
        for name in ("sacrum", "canal"):
            assert _volume_mm3(getattr(truth, name)) == pytest.approx(
                _volume_mm3(getattr(reference, name)), rel=0.04
            ), (spacing, name)


def test_foramina_lateral_of_midline_outside_bone_and_shrinking(phantoms):
    truth = phantoms["oblique"].truth
    foramina = truth.foramina
    bone = truth.sacrum.array | (truth.ilia.array > 0)
    assert not np.any(bone & (foramina.array > 0))
    plane = truth.midsagittal
    sizes = {}
    for (level, side), label in FORAMEN_LABELS.items():
        mask = foramina.array == label
        assert mask.any(), (level, side)
        sizes[(level, side)] = mask.sum()
        distance = plane.signed_distance(foramina.index_to_lps(np.argwhere(mask)[:, ::-1]))
        # Normal points to patient left: left foramina on the positive side, all of them lateral.
        sign = 1.0 if side == "L" else -1.0
        assert np.all(sign * distance > 3.0), (level, side)
        centre_distance = plane.signed_distance(truth.foramen_centers_lps[(level, side)])
        assert sign * centre_distance > 10.0
    for side in ("L", "R"):
        counts = [sizes[(level, side)] for level in ("S1", "S2", "S3", "S4")]
        assert counts == sorted(counts, reverse=True)


def test_canal_posterior_to_bodies_and_hiatus_apex_at_s4(phantoms):
    truth = phantoms["permuted"].truth
    tangent = truth.anterior_tangent_s3_lps  # cranial, along the anterior edge at S3
    posterior = np.cross(tangent, truth.midsagittal.normal_lps)
    if posterior @ (truth.hiatus_apex_lps - truth.level_centers_lps["S4"]) < 0:
        posterior = -posterior
    canal_points = truth.canal.index_to_lps(np.argwhere(truth.canal.array)[:, ::-1])
    for name in ("S1", "S2", "S3"):
        centre = truth.level_centers_lps[name]
        near = canal_points[np.abs((canal_points - centre) @ tangent) < 4.0]
        assert len(near) > 0
        assert np.all((near - centre) @ posterior > 5.0), name
    curve = truth.anterior_cortex_lps
    nearest = np.argmin(np.linalg.norm(curve - truth.hiatus_apex_lps, axis=1))
    bounds = [
        np.argmin(np.linalg.norm(curve - truth.level_boundaries_lps[b], axis=1))
        for b in ("S3/S4", "S4/S5")
    ]
    assert bounds[0] < nearest < bounds[1]


def test_bone_only_is_exactly_zero_outside_bone():
    phantom = make_phantom(PARAMS.with_(bone_only=True, noise_hu=15.0), 3.0)
    truth = phantom.truth
    bone = truth.sacrum.array | (truth.ilia.array > 0)
    assert np.all(phantom.volume.array[~bone] == 0)
    assert np.any(phantom.volume.array[bone] != 0)
    assert not truth.l5.array.any() and not truth.coccyx.array.any()
    assert truth.skin_over_hiatus_lps is None


def test_soft_tissue_phantom_has_skin_fat_air_and_a_skin_point():
    params = PhantomParams.random(4, noise_hu=0.0, fov="sacral_region")
    phantom = make_phantom(params, 2.0)
    values = phantom.volume.array
    assert values.min() <= -990  # air outside the body
    assert np.any((values > -130) & (values < -70))  # fat
    truth = phantom.truth
    model = truth.model
    for skin in (truth.skin_over_hiatus_lps, truth.skin_on_s3_tangent_lps):
        assert skin is not None
        # On the skin surface, and the image there is skin or fat, not air or bone.
        assert abs(model.body_outline(model.frame.world_to_pelvis(skin[None]))[0]) < 1e-3
        inside = skin - 5.0 * (skin - truth.level_centers_lps["S3"]) / np.linalg.norm(
            skin - truth.level_centers_lps["S3"]
        )
        assert -150 < phantom.volume.sample(inside[None], order=0)[0] < 100
    # Behind the hiatus by at least the thinnest soft tissue (over the coccyx: 40 %).
    depth = np.linalg.norm(truth.skin_over_hiatus_lps - truth.hiatus_apex_lps)
    assert 0.4 * params.posterior_soft_tissue_mm < depth < params.posterior_soft_tissue_mm + 30


def test_seeds_are_deterministic():
    assert PhantomParams.random(5) == PhantomParams.random(5)
    assert PhantomParams.random(5) != PhantomParams.random(6)
    first = make_phantom(PhantomParams.random(5, fov="sacrum"), 4.0)
    second = make_phantom(PhantomParams.random(5, fov="sacrum"), 4.0)
    np.testing.assert_array_equal(first.volume.array, second.volume.array)


def test_random_parameters_stay_in_their_ranges():
    for seed in range(40):
        params = PhantomParams.random(seed)
        for name, (low, high) in RANGES.items():
            values = np.atleast_1d(getattr(params, name))
            assert np.all((values >= low) & (values <= high)), (seed, name)
        kyphotic = PhantomParams.random(seed, kyphotic=True)
        assert KYPHOTIC_RANGE_DEG[0] <= kyphotic.kyphosis_deg <= KYPHOTIC_RANGE_DEG[1]
        assert 0.85 <= kyphotic.kyphosis_caudal_share <= 0.95
    names = {f.name for f in fields(PhantomParams)}
    assert set(RANGES) <= names


def test_pose_tilts_the_midsagittal_plane():
    truth = make_phantom(PhantomParams.random(2, fov="sacrum"), 4.0).truth
    normal = truth.midsagittal.normal_lps
    assert np.degrees(np.arccos(abs(normal[0]))) > 1.0


def test_lesion_is_inside_s3_with_its_volume():
    phantom = make_phantom(PARAMS, 1.0)
    truth = phantom.truth
    lesion = truth.lesion.array
    assert np.all(truth.levels.array[lesion] == LEVEL_LABELS["S3"])
    assert _volume_mm3(truth.lesion) == pytest.approx(truth.lesion_volume_mm3, rel=0.05)
    assert np.median(phantom.volume.array[lesion]) < 80  # lytic: soft-tissue density


def test_mr_contrasts():
    params = PARAMS.with_(lesion=False)
    t1 = make_phantom(params, 2.0, contrast="T1")
    t2 = make_phantom(params, 2.0, contrast="T2")
    truth = t1.truth
    marrow = truth.sacrum.array
    csf = truth.dural_sac.array
    assert csf.any()
    assert np.median(t1.volume.array[marrow]) > 2 * np.median(t1.volume.array[csf])
    assert np.median(t2.volume.array[csf]) > 1.5 * np.median(t2.volume.array[marrow])
    assert t1.volume.modality == "MR"


def test_stir_contrast_suppresses_fat_and_shows_fluid_and_lesion():
    """STIR (fat suppressed): marrow and fat dark, CSF and the lesion's oedema bright; same
    anatomy (truth) as T1, and every MR contrast of the one list is drawn."""
    assert set(MR_CONTRASTS) == {"T1", "T2", "STIR"} and CONTRASTS == ("CT", *MR_CONTRASTS)
    params = PARAMS.with_(blur_mm=0.0)  # tissue values unblurred: medians are exact
    stir = make_phantom(params, SPACING_MM, contrast="STIR")
    t1 = make_phantom(params, SPACING_MM, contrast="T1")
    assert stir.volume.modality == "MR" and stir.contrast == "STIR"
    assert "STIR" in stir.volume.info.series_description
    assert np.array_equal(stir.truth.sacrum.array, t1.truth.sacrum.array)
    truth = stir.truth
    marrow = truth.sacrum.array & ~truth.lesion.array
    image, t1_image = stir.volume.array, t1.volume.array
    fat = t1_image > 850  # subcutaneous fat: the brightest tissue on T1
    soft = (t1_image > 300) & (t1_image < 400)  # muscle on T1
    assert fat.any() and soft.any()
    assert np.median(image[fat]) < 0.5 * np.median(image[soft])  # fat suppressed
    assert np.median(image[marrow]) < 0.5 * np.median(image[soft])  # fatty marrow too
    assert np.median(image[truth.dural_sac.array]) > 2 * np.median(image[soft])  # CSF
    assert np.median(image[truth.lesion.array]) > 3 * np.median(image[marrow])  # oedema
    with pytest.raises(PlannerError, match="STIR"):
        make_phantom(params, SPACING_MM, contrast="PD")


def test_field_of_view_above_the_sacrum_holds_no_sacrum():
    phantom = make_phantom(PhantomParams.random(3, fov="above_sacrum"), 4.0)
    assert not phantom.truth.sacrum.array.any()
    assert phantom.truth.l5.array.any()
    assert (phantom.volume.array > 300).any()


def test_to_anatomy_is_exact():
    phantom = make_phantom(PARAMS, 2.0, "oblique")
    anatomy = phantom.truth.to_anatomy()
    assert isinstance(anatomy, SacralAnatomy)
    assert all(f.found for f in anatomy.foramen_list) and len(anatomy.foramen_list) == 8
    levels = anatomy.levels
    for name, centre in anatomy.level_centers_lps.items():
        value = levels.sample(centre[None], order=0)[0]
        assert value == LEVEL_LABELS[name]
    assert np.allclose(anatomy.hiatus.apex_lps, phantom.truth.hiatus_apex_lps)


def test_kyphotic_sacrum_leaves_little_room_below_s3():
    """The anterior-edge line from the S3 centre meets the canal deep in S4 in a typical sacrum,
    and just below the S3/S4 junction in a strongly kyphotic one (little room, but a path)."""
    for seed in (1, 2):
        typical = make_phantom(PhantomParams.random(seed, fov="sacrum"), 4.0).truth
        kyphotic = make_phantom(PhantomParams.random(seed, kyphotic=True, fov="sacrum"), 4.0).truth
        corridor = typical.tangent_corridor()
        assert corridor.canal_entry_level in ("S4", "S5")
        assert corridor.entry_below_s3_s4_mm > 8.0
        assert kyphotic.tangent_corridor().entry_below_s3_s4_mm < 4.0


@pytest.mark.parametrize("seed", [0, 5])
def test_hooked_sacrum_built_infeasible_is_infeasible_by_the_truth(seed):
    """Every line through the S3 centre within 20 deg of the anterior edge meets the canal
    cranial to S3/S4 in a hooked sacrum; typical and strongly kyphotic sacra leave a path."""
    hooked = make_phantom(PhantomParams.random(seed, infeasible=True, fov="sacrum"), 4.0).truth
    assert hooked.built_infeasible
    feasibility = hooked.interpedicular_feasibility(step_deg=2.0)
    assert not feasibility.feasible and feasibility.best_tilts_deg is None
    assert feasibility.broken["canal_cranial"] == 1.0
    corridor = hooked.tangent_corridor()
    assert corridor.canal_entry_level == "S3" and corridor.entry_below_s3_s4_mm < 0.0
    for kyphotic in (False, True):
        other = make_phantom(PhantomParams.random(seed, kyphotic=kyphotic, fov="sacrum"), 4.0)
        assert not other.truth.built_infeasible
        assert other.truth.interpedicular_feasibility(step_deg=2.0).feasible


def test_hook_adds_its_angle_to_the_sacral_curve():
    params = PhantomParams.random(7, infeasible=True, fov="sacrum")
    assert INFEASIBLE_HOOK_DEG[0] <= params.hook_deg <= INFEASIBLE_HOOK_DEG[1]
    frame = make_phantom(params, 6.0).truth.model.frame
    turn = np.degrees(frame.angle(0.0) - frame.angle(params.sacral_height_mm))
    assert turn == pytest.approx(params.kyphosis_deg + params.hook_deg, abs=1e-6)
    with pytest.raises(PlannerError):
        PhantomParams.random(7, kyphotic=True, infeasible=True)
