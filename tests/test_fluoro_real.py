"""DRRs of the real scans: the manual sacrum mask lands where the camera says it should."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from planner.fluoro.carm import CArm, camera_from_angles
from planner.fluoro.drr import render_drr
from planner.fluoro.needle import NeedlePath
from planner.fluoro.views import Structures, lateral_view
from planner.sitk_bridge import volume_from_sitk

#: Large enough that the whole sacrum projects inside the detector (246 mm field at the target).
CARM = CArm(detector_shape=(256, 256), detector_size_mm=(420.0, 420.0))
SACRUM_LABEL = 1
#: A mask rendered as a DRR: inside 0 HU (water), outside air.
WATER_HU, AIR_HU = 0.0, -1000.0


@functools.lru_cache(maxsize=2)
def _load_cached(folder: Path):
    return _crop_to_sacrum(folder)


def _load(shared_data: Path, case: str):
    """(CT, sacrum mask), both cropped to the sacrum plus 10 mm."""
    return _load_cached(shared_data / case)


def _crop_to_sacrum(folder: Path):
    ct = volume_from_sitk(sitk.ReadImage(str(folder / "ct_boneonly.nii.gz")))
    labels = volume_from_sitk(sitk.ReadImage(str(folder / "labels.nii.gz")), modality="SEG")
    sacrum = labels.with_array(labels.array == SACRUM_LABEL)
    crop = sacrum.crop_to_mask(sacrum.array, margin_mm=10.0)
    start = np.rint(ct.lps_to_index(crop.origin_lps)).astype(int)
    return ct.crop(start, start + np.asarray(crop.shape_ijk)), crop


@pytest.mark.parametrize("case", ["pengwin-001", "pengwin-003"])
@pytest.mark.parametrize(("primary", "secondary"), [(90, 0), (180, 30)])
def test_sacrum_mask_projects_to_its_drr_centroid(shared_data, case, primary, secondary):
    _, sacrum = _load(shared_data, case)
    kji = np.argwhere(sacrum.array)
    centroid_lps = sacrum.index_to_lps(kji[:, ::-1].mean(axis=0))
    camera = camera_from_angles(centroid_lps + [5.0, -3.0, 4.0], primary, secondary, CARM)
    mask_ct = sacrum.with_array(np.where(sacrum.array, WATER_HU, AIR_HU).astype(np.float32))
    image = render_drr(mask_ct, camera)
    assert not (image[0].any() or image[-1].any() or image[:, 0].any() or image[:, -1].any())
    rows, cols = np.indices(image.shape)
    drr_centroid = np.array([(image * cols).sum(), (image * rows).sum()]) / image.sum()
    # A voxel at depth D from the source is crossed by rays with a density proportional to
    # 1/D^2, so the image centroid is the 1/D^2-weighted mean of the projected voxel centres.
    voxels_lps = sacrum.index_to_lps(kji[:, ::-1].astype(float))
    weights = camera.depth_mm(voxels_lps) ** -2.0
    expected = (camera.project(voxels_lps) * weights[:, np.newaxis]).sum(0) / weights.sum()
    assert np.linalg.norm(drr_centroid - expected) < 0.25


def test_lateral_of_pengwin_001_shows_anterior_on_the_left(shared_data):
    ct, sacrum = _load(shared_data, "pengwin-001")
    lps = sacrum.index_to_lps(np.argwhere(sacrum.array)[:, ::-1].astype(float))
    anterior_point = lps[np.argmin(lps[:, 1])]
    posterior_point = lps[np.argmax(lps[:, 1])]
    needle = NeedlePath(entry_lps=[27.0, 122.1, -108.4], target_lps=[27.0, 76.0, -70.0])
    view = lateral_view(ct, needle, Structures(outlines={"sacrum": sacrum}), carm=CARM)
    anterior_px, posterior_px = view.camera.project([anterior_point, posterior_point])
    assert anterior_px[0] < posterior_px[0]
    # The bone dominates the picture inside the projected sacrum.
    from planner.fluoro.views import projected_silhouette

    inside = projected_silhouette(sacrum, view.camera)
    assert view.line_integral[inside].mean() > 2 * view.line_integral[~inside].mean()
