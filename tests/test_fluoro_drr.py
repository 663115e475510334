"""DRR renderer: bead position, analytic line integrals, independence of storage order."""

from __future__ import annotations

import numpy as np
import pytest

from planner.fluoro.carm import CArm, camera_from_angles, camera_from_beam
from planner.fluoro.drr import MU_WATER_PER_MM, mu_from_hu, radiograph, render_drr
from planner.volume import Volume

#: Small detector for fast tests: 128 x 128 pixels over 120 mm (0.94 mm pitch).
SMALL_CARM = CArm(detector_shape=(128, 128), detector_size_mm=(120.0, 120.0))
BEAD_LPS = np.array([4.0, -6.0, 3.0])
BEAD_SIGMA_MM = 1.5
BEAD_PEAK_HU = 3000.0
AIR_HU = -1000.0


def _rotation(axis, angle_deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(angle_deg)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


#: Storage orientations: columns are the LPS directions of the i, j, k axes.
ORIENTATIONS = {
    "identity": np.eye(3),
    "ras": np.diag([-1.0, -1.0, 1.0]),
    "permuted": np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]),
    "oblique": _rotation([1.0, 2.0, 0.5], 27.0),
}


def _grid(direction, spacing_xyz, half_extent_mm=24.0, center_lps=(0.0, 0.0, 0.0)) -> Volume:
    """An empty volume centred on ``center_lps`` covering +/- half_extent_mm on every axis."""
    spacing = np.asarray(spacing_xyz, float)
    shape_ijk = np.ceil(2 * half_extent_mm / spacing).astype(int) + 1
    origin = np.asarray(center_lps) - direction @ (spacing * (shape_ijk - 1) / 2.0)
    array = np.zeros(shape_ijk[::-1], np.float32)
    return Volume(array, origin_lps=origin, spacing_xyz=spacing, direction=direction)


def _bead_volume(direction, spacing_xyz=(1.0, 1.25, 1.5)) -> Volume:
    """Air with one dense Gaussian bead at BEAD_LPS, sampled on the given grid."""
    grid = _grid(direction, spacing_xyz)
    k, j, i = np.indices(grid.array.shape)
    lps = grid.index_to_lps(np.stack([i, j, k], axis=-1))
    r2 = ((lps - BEAD_LPS) ** 2).sum(axis=-1)
    hu = AIR_HU + (BEAD_PEAK_HU - AIR_HU) * np.exp(-r2 / (2 * BEAD_SIGMA_MM**2))
    return grid.with_array(hu.astype(np.float32))


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    weights = np.clip(image, 0, None)
    return np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
@pytest.mark.parametrize(("primary", "secondary"), [(0, 0), (90, 0), (180, 20), (-50, 35)])
def test_bead_lands_on_its_projected_pixel(orientation, primary, secondary):
    volume = _bead_volume(ORIENTATIONS[orientation])
    camera = camera_from_angles([1.0, 2.0, -1.0], primary, secondary, SMALL_CARM)
    image = render_drr(volume, camera)
    expected = camera.project(BEAD_LPS)[0]
    assert np.linalg.norm(_centroid(image) - expected) < 0.5
    # The bead's total attenuation is seen whole: sum of line integrals x pixel area at the bead
    # plane equals the volume integral of mu (independent of angle and storage).
    pitch = SMALL_CARM.pixel_spacing_mm
    area_mm2 = pitch[0] * pitch[1] / camera.magnification_at(BEAD_LPS)[0] ** 2
    mu_peak = MU_WATER_PER_MM * (BEAD_PEAK_HU - AIR_HU) / 1000.0
    expected_integral = mu_peak * (2 * np.pi) ** 1.5 * BEAD_SIGMA_MM**3
    assert image.sum() * area_mm2 == pytest.approx(expected_integral, rel=0.03)


@pytest.mark.parametrize("tilt_deg", [0.0, 25.0])
def test_uniform_slab_equals_analytic_line_integral(tilt_deg):
    # A water slab 30 mm thick along z (15 slices of 2 mm), wide in x and y, anisotropic voxels.
    thickness_mm = 30.0
    spacing = np.array([1.5, 1.0, 2.0])
    shape_ijk = (161, 241, int(thickness_mm / spacing[2]))
    origin = -spacing * (np.asarray(shape_ijk) - 1) / 2.0
    slab = Volume(np.zeros(shape_ijk[::-1], np.int16), origin_lps=origin, spacing_xyz=spacing)
    # Beam mostly along -z (detector at the feet), tilted in the y-z plane.
    tilt = np.radians(tilt_deg)
    camera = camera_from_beam([0, 0, 0], [0, np.sin(tilt), -np.cos(tilt)], SMALL_CARM)
    image = render_drr(slab, camera)
    rows, cols = np.indices(image.shape)
    centre = (np.abs(rows - 63.5) < 20) & (np.abs(cols - 63.5) < 20)
    # Every ray's path through the slab is thickness / cos(angle to the slab normal).
    rays = _pixel_directions(camera, rows[centre], cols[centre])
    expected = MU_WATER_PER_MM * thickness_mm / np.abs(rays[:, 2])
    np.testing.assert_allclose(image[centre], expected, rtol=1e-4)


def _pixel_directions(camera, rows, cols):
    from planner.fluoro.carm import pixel_rays

    rays = pixel_rays(camera.matrix, np.stack([cols, rows], axis=1).astype(float))
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def _blobs_volume() -> Volume:
    """An asymmetric phantom (three blobs of different density) on an identity grid."""
    grid = _grid(np.eye(3), (1.0, 1.5, 2.0))
    k, j, i = np.indices(grid.array.shape)
    lps = grid.index_to_lps(np.stack([i, j, k], axis=-1))
    hu = np.full(grid.array.shape, AIR_HU, np.float32)
    blobs = [([5, 0, 0], 8, 1200), ([-10, 8, 6], 5, 400), ([0, -12, -9], 4, 2000)]
    for centre, radius, value in blobs:
        hu[((lps - centre) ** 2).sum(-1) < radius**2] = value
    return grid.with_array(hu)


def _restored_differently(volume: Volume) -> Volume:
    """The same voxels stored with k flipped and i/j swapped (geometry adjusted to match)."""
    array = np.flip(volume.array, axis=0).transpose(0, 2, 1)  # [k', j', i'] = [-k, i, j]
    last_k = volume.shape_ijk[2] - 1
    origin = volume.index_to_lps([0, 0, last_k])
    direction = np.stack(
        [volume.direction[:, 1], volume.direction[:, 0], -volume.direction[:, 2]], axis=1
    )
    spacing = volume.spacing_xyz[[1, 0, 2]]
    return Volume(np.ascontiguousarray(array), origin, spacing, direction)


@pytest.mark.parametrize(("primary", "secondary"), [(90, 0), (180, 15), (40, -30)])
def test_rendering_is_independent_of_storage_order(primary, secondary):
    volume = _blobs_volume()
    other = _restored_differently(volume)
    probe = np.array([[3.0, -4.0, 5.0], [-10.0, 8.0, 6.0]])
    np.testing.assert_allclose(volume.sample(probe), other.sample(probe))
    camera = camera_from_angles([0, 0, 0], primary, secondary, SMALL_CARM)
    first = render_drr(volume, camera)
    second = render_drr(other, camera)
    assert first.max() > 0.5
    np.testing.assert_allclose(first, second, atol=1e-5 * first.max())


def test_threads_do_not_change_the_result():
    volume = _blobs_volume()
    camera = camera_from_angles([0, 0, 0], 30, 10, SMALL_CARM)
    np.testing.assert_allclose(
        render_drr(volume, camera, threads=1), render_drr(volume, camera, threads=2), rtol=1e-5
    )


def test_ray_missing_the_volume_is_zero_and_min_hu_removes_soft_tissue():
    volume = _blobs_volume()
    camera = camera_from_angles([0, 0, 300.0], 0, 0, SMALL_CARM)  # looking far above it
    assert not render_drr(volume, camera).any()
    soft = volume.with_array(np.where(volume.array > 1000, volume.array, 0.0).astype(np.float32))
    camera = camera_from_angles([0, 0, 0], 0, 0, SMALL_CARM)
    bone_only = render_drr(soft, camera, min_hu=500)
    np.testing.assert_allclose(
        bone_only,
        render_drr(
            volume.with_array(
                np.where(volume.array > 1000, volume.array, AIR_HU).astype(np.float32)
            ),
            camera,
        ),
        atol=1e-6,
    )


def test_mu_from_hu_and_radiograph():
    np.testing.assert_allclose(
        mu_from_hu(np.array([-3024.0, -1000.0, 0.0, 1000.0])),
        [0.0, 0.0, MU_WATER_PER_MM, 2 * MU_WATER_PER_MM],
        rtol=1e-6,
    )
    picture = radiograph(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert picture.min() >= 0 and picture.max() <= 1 and picture[1, 1] < picture[0, 1]


def test_whole_body_display_flattens_thickness_and_keeps_the_bone():
    """Through 35 cm of body the thickness ramp took the whole window: bone was a faint shade."""
    from planner.fluoro.drr import BACKGROUND_SIGMA_PX

    rows, cols = 256, 256
    column = np.arange(cols, dtype=float)
    thickness = np.tile(8.0 + 20.0 * column / cols, (rows, 1))  # anterior thick, posterior thin
    bone = np.zeros((rows, cols))
    bone[96:160, 110:150] = 1.0  # a bone 40 px wide adds 1.0 to the line integral
    region = np.zeros((rows, cols), bool)
    region[64:192, 64:192] = True

    def edge_step(picture):
        """Displayed brightness step across the bone's edge (outside minus inside)."""
        return picture[128, 106] - picture[128, 114]

    plain = radiograph(thickness + bone, region=region)
    flat = radiograph(thickness + bone, region=region, background_sigma_px=BACKGROUND_SIGMA_PX)
    # Measured 1.9x with the defaults (35 px, weight 0.65).
    assert edge_step(plain) > 0 and edge_step(flat) > 1.5 * edge_step(plain)
    assert flat[128, 130] < flat[128, 100]  # bone stays darker than its surroundings


def test_only_whole_body_views_are_compressed():
    """A bone-only scan's DRR (min_hu drops its 0-HU filler) has no body thickness to flatten."""
    from planner.fluoro.needle import NeedlePath
    from planner.fluoro.views import render_view

    array = np.full((30, 30, 30), -1000.0, np.float32)
    array[5:25, 5:25, 5:25] = 40.0
    array[12:18, 12:18, 12:18] = 900.0
    volume = Volume(array, (-30.0, -30.0, -30.0), (2.0, 2.0, 2.0), np.eye(3))
    needle = NeedlePath(np.array([0.0, 20.0, -20.0]), np.zeros(3))
    carm = CArm(detector_shape=(64, 64))
    whole = render_view("lateral", volume, needle, [1.0, 0.0, 0.0], carm=carm, min_hu=None)
    bones = render_view("lateral", volume, needle, [1.0, 0.0, 0.0], carm=carm, min_hu=150.0)
    assert whole.soft_tissue and not bones.soft_tissue
