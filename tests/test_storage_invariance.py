"""The same real scan stored in another axis order gives the same plan, end to end.

Same input, same plan: the permuted and flipped storage holds exactly the same voxels (same LPS
centres and values, no resampling), so segmentation, anatomy and plan must agree to well under a
voxel. The bench ``benchmarks/bench_storage_invariance.py`` prints the comparison stage by stage.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from planner.planning import plan
from planner.sitk_bridge import reorient_to_lps, volume_from_sitk, volume_to_sitk

#: Margin kept around the manual sacrum when cropping pengwin-003 (mm): the sacrum, the iliac
#: wings beside it and L5 above it, in a volume small enough for a quick test.
CROP_MARGIN_MM = 15.0
#: Tolerances of the standard (same plan, whatever the storage).
POSITION_TOLERANCE_MM = 0.1
ANGLE_TOLERANCE_DEG = 0.1
METRICS = (
    "canal_wall_angle_deg",
    "intraosseous_length_mm",
    "anterior_cortex_clearance_mm",
    "foramen_clearance_mm",
    "canal_clearance_mm",
    "bone_margin_mm",
)


#: Other storages of the same voxels (axis permutation, flips), each of which changed the plan:
#: the first through the straightened grid's extent (taken from a storage-ordered subsample of
#: the mask), the second through ties of the planning distance transforms (nearest voxel
#: chosen by array order).
STORAGES = {
    "permuted_flipped": ([2, 0, 1], [True, False, True]),
    "left_right_and_ap_flipped": ([0, 1, 2], [True, True, False]),
}


def _stored(volume, permutation, flips):
    """The same voxels stored with permuted and flipped axes (no resampling)."""
    image = sitk.Flip(sitk.PermuteAxes(volume_to_sitk(volume), permutation), flips)
    return volume_from_sitk(image, volume.modality)


@pytest.fixture(scope="module")
def cropped_ct(shared_data):
    folder = shared_data / "pengwin-003"
    ct = volume_from_sitk(sitk.ReadImage(str(folder / "ct_boneonly.nii.gz")), "CT")
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
    return ct.crop_to_mask(labels == 1, CROP_MARGIN_MM)


@pytest.fixture(scope="module")
def base_plan(cropped_ct):
    return plan(cropped_ct)


@pytest.fixture(scope="module", params=sorted(STORAGES))
def two_storages(request, cropped_ct, base_plan):
    other = _stored(cropped_ct, *STORAGES[request.param])
    # Guard: really another storage of the very same voxels.
    assert not np.allclose(other.direction, cropped_ct.direction)
    back, again = reorient_to_lps(other), reorient_to_lps(cropped_ct)
    assert np.array_equal(back.array, again.array)
    assert np.allclose(back.origin_lps, again.origin_lps, atol=1e-6)
    return base_plan, plan(other)


def _angle_deg(u, v) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v), -1.0, 1.0))))


def test_same_target_and_direction_whatever_the_storage(two_storages):
    first, second = two_storages
    assert np.linalg.norm(first.target_lps - second.target_lps) <= POSITION_TOLERANCE_MM
    assert _angle_deg(first.direction_lps, second.direction_lps) <= ANGLE_TOLERANCE_DEG
    for name in first.levels_lps:
        assert np.linalg.norm(first.levels_lps[name] - second.levels_lps[name]) \
            <= POSITION_TOLERANCE_MM, name
    assert first.verdict is second.verdict


def test_same_metrics_whatever_the_storage(two_storages):
    first, second = two_storages
    for name in METRICS:
        a, b = getattr(first.metrics, name), getattr(second.metrics, name)
        assert (a is None) == (b is None), name
        if a is not None:
            # Lengths in mm, angles in degrees: the same 0.1 bound for both.
            assert a == pytest.approx(b, abs=POSITION_TOLERANCE_MM), name
