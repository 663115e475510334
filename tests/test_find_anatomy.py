"""`find_anatomy` on the real pengwin scans with their manual sacrum masks: anatomical sanity.

No exact truth exists for the sub-structures of a real scan, so these check what must hold on any
sacrum: order of the levels along the curve, the canal behind the bodies and inside the sacral
envelope, the hiatus caudal to S3, foramina on both sides of the plane, and the same landmarks
whatever the order in which the voxels are stored.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import ConvexHull, Delaunay

from planner.anatomy.find import find_anatomy
from planner.anatomy.model import LEVEL_NAMES
from planner.sitk_bridge import volume_from_sitk

#: Margin kept around the manual sacrum mask when cropping the scans (mm): keeps tests fast.
CROP_MARGIN_MM = 15.0


def _load(folder, permute=None, flip=None):
    volumes = []
    for name in ("ct_boneonly.nii.gz", "labels.nii.gz"):
        image = sitk.ReadImage(str(folder / name))
        if permute is not None:
            image = sitk.PermuteAxes(image, permute)
        if flip is not None:
            image = sitk.Flip(image, flip)
        volumes.append(volume_from_sitk(image))
    ct, labels = volumes
    sacrum = labels.array == 1
    ct = ct.crop_to_mask(sacrum, CROP_MARGIN_MM)
    labels = labels.crop_to_mask(sacrum, CROP_MARGIN_MM)
    return ct, labels.with_array(labels.array == 1, "SEG")


@pytest.fixture(scope="module", params=["pengwin-001", "pengwin-003"])
def case(request, shared_data):
    ct, mask = _load(shared_data / request.param)
    return request.param, ct, mask, find_anatomy(ct, mask)


def _curve_position(curve_lps: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
    """Index of the nearest anterior-cortex point (promontory = 0) for each point."""
    distance = np.linalg.norm(points_lps[:, None, :] - curve_lps[None], axis=-1)
    return np.argmin(distance, axis=1)


def test_levels_ordered_along_the_curve(case):
    _, _, _, anatomy = case
    centres = np.array([anatomy.level_centers_lps[name] for name in LEVEL_NAMES])
    position = _curve_position(anatomy.anterior_cortex_lps, centres)
    assert np.all(np.diff(position) > 0)
    # Every level has body voxels, and its centre lies inside the sacrum.
    for label in range(1, 6):
        assert np.any(anatomy.levels.array == label)
    assert anatomy.anterior_cortex_lps[0, 2] > anatomy.anterior_cortex_lps[-1, 2]  # cranial first


def test_canal_behind_the_bodies_inside_the_sacral_envelope(case):
    _, ct, mask, anatomy = case
    canal = anatomy.canal.array
    assert canal.sum() * ct.voxel_volume_mm3 > 3000.0  # a sacral canal is several cm^3
    assert not np.any(canal & anatomy.sacrum.array)
    canal_lps = ct.index_to_lps(np.argwhere(canal)[:, ::-1].astype(float))
    centres = np.array([anatomy.level_centers_lps[name] for name in LEVEL_NAMES])
    curve = anatomy.anterior_cortex_lps

    def depth(points):
        return np.min(np.linalg.norm(points[:, None, :] - curve[None], axis=-1), axis=1)

    # Farther from the anterior cortex than the body centres: posterior to the bodies.
    assert np.median(depth(canal_lps[::20])) > np.median(depth(centres)) + 5.0
    # Inside the sacral envelope: within the convex hull of the sacrum.
    bone_lps = ct.index_to_lps(np.argwhere(mask.array)[:, ::-1].astype(float))
    hull = Delaunay(bone_lps[ConvexHull(bone_lps).vertices])
    assert np.mean(hull.find_simplex(canal_lps[::10]) >= 0) > 0.98


def test_hiatus_caudal_to_s3_and_on_the_midline(case):
    _, _, _, anatomy = case
    curve = anatomy.anterior_cortex_lps
    apex, opening, s3 = (
        anatomy.hiatus.apex_lps,
        anatomy.hiatus.opening_lps,
        anatomy.level_centers_lps["S3"],
    )
    position = _curve_position(curve, np.array([s3, apex, opening]))
    assert position[1] > position[0]
    assert position[2] >= position[1]
    for point in (apex, opening):
        assert abs(anatomy.midsagittal.signed_distance(point)) < 1e-6


def test_foramina_left_and_right_of_the_plane(case):
    name, _, _, anatomy = case
    found = [f for f in anatomy.foramen_list if f.found]
    assert len(found) >= 6, f"{name}: {anatomy.confidence['foramina']}"
    for foramen in found:
        offset = anatomy.midsagittal.signed_distance(foramen.center_lps)
        assert (offset > 5.0) if foramen.side == "L" else (offset < -5.0)
    for level in ("S1", "S2"):  # the large upper foramina are found on both sides
        assert anatomy.foramen(level, "L").found and anatomy.foramen(level, "R").found


def test_plane_normal_points_left_and_bone_only_is_reported(case):
    _, _, _, anatomy = case
    assert anatomy.midsagittal.normal_lps[0] > 0.9
    assert not anatomy.has_soft_tissue
    assert set(anatomy.confidence) >= {
        "sacrum",
        "canal",
        "foramina",
        "levels",
        "hiatus",
        "anterior_cortex",
        "midsagittal",
    }


def test_same_landmarks_whatever_the_storage_order(shared_data):
    ct, mask = _load(shared_data / "pengwin-001")
    ct_other, mask_other = _load(
        shared_data / "pengwin-001", permute=[2, 0, 1], flip=[True, False, True]
    )
    assert not np.allclose(ct.direction, ct_other.direction)
    first, second = find_anatomy(ct, mask), find_anatomy(ct_other, mask_other)

    def landmarks(anatomy):
        points = {name: anatomy.level_centers_lps[name] for name in LEVEL_NAMES}
        points["apex"], points["opening"] = anatomy.hiatus.apex_lps, anatomy.hiatus.opening_lps
        for foramen in anatomy.foramen_list:
            if foramen.found:
                points[foramen.level + foramen.side] = foramen.center_lps
        return points

    a, b = landmarks(first), landmarks(second)
    assert set(a) == set(b)
    for key in a:
        assert np.linalg.norm(a[key] - b[key]) <= 1.0, key
    canal_a = first.canal.array.sum() * ct.voxel_volume_mm3
    canal_b = second.canal.array.sum() * ct_other.voxel_volume_mm3
    assert abs(canal_a - canal_b) <= 0.02 * canal_a
