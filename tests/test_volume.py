"""Volume geometry against SimpleITK's own index<->physical mapping."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from planner.errors import GeometryError, ImageContentError
from planner.sitk_bridge import (
    reorient_to_lps,
    resample_like,
    resample_to_lps_grid,
    resample_to_spacing,
    volume_from_sitk,
    volume_to_sitk,
)
from planner.volume import Volume, orientation_code


def rotation(axis, angle_deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


DIRECTIONS = {
    "identity": np.eye(3),
    "ras": np.diag([-1.0, -1.0, 1.0]),
    "permuted": np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float),
    "permuted_flipped": np.array([[0, -1, 0], [0, 0, 1], [-1, 0, 0]], float),
    "oblique": rotation([1, 2, 3], 23.0),
    "oblique_flip": rotation([0.3, -1, 0.2], 71.0) @ np.diag([1.0, -1.0, 1.0]),
}


def make_image(direction, shape_ijk=(7, 5, 4), spacing=(0.7, 1.3, 2.9), origin=(-12.5, 40.0, 3.25)):
    rng = np.random.default_rng(0)
    array = rng.normal(size=shape_ijk[::-1]).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(tuple(np.asarray(direction, float).reshape(-1)))
    return image


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_index_to_lps_matches_simpleitk(name):
    image = make_image(DIRECTIONS[name])
    volume = volume_from_sitk(image)
    rng = np.random.default_rng(1)
    ijk = rng.uniform(-1, 8, size=(50, 3))
    expected = np.array([image.TransformContinuousIndexToPhysicalPoint(p) for p in ijk.tolist()])
    np.testing.assert_allclose(volume.index_to_lps(ijk), expected, atol=1e-9)
    np.testing.assert_allclose(volume.lps_to_index(expected), ijk, atol=1e-9)
    integer_ijk = rng.integers(0, 4, size=(10, 3))
    rounded = volume.lps_to_index(volume.index_to_lps(integer_ijk + 0.3), round_output=True)
    np.testing.assert_array_equal(rounded, integer_ijk)
    homogeneous = np.c_[ijk, np.ones(len(ijk))]
    np.testing.assert_allclose(
        (volume.world_from_index @ homogeneous.T).T[:, :3], expected, atol=1e-9
    )
    np.testing.assert_allclose(
        volume.index_from_world @ volume.world_from_index, np.eye(4), atol=1e-12
    )


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_sitk_round_trip_keeps_geometry_and_values(name):
    image = make_image(DIRECTIONS[name])
    volume = volume_from_sitk(image)
    back = volume_to_sitk(volume)
    assert back.GetSize() == image.GetSize()
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin())
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing())
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_array_value_sits_at_its_index():
    image = make_image(DIRECTIONS["oblique"])
    volume = volume_from_sitk(image)
    i, j, k = 3, 2, 1
    point = volume.index_to_lps([i, j, k])
    assert volume.array[k, j, i] == pytest.approx(image.GetPixel(i, j, k))
    assert volume.sample(point[np.newaxis], order=0)[0] == pytest.approx(image.GetPixel(i, j, k))


@pytest.mark.parametrize("name", ["identity", "permuted_flipped", "oblique"])
def test_crop_keeps_world_positions(name):
    volume = volume_from_sitk(make_image(DIRECTIONS[name]))
    cropped = volume.crop([2, 1, 1], [6, 4, 3])
    assert cropped.shape_ijk == (4, 3, 2)
    np.testing.assert_allclose(cropped.index_to_lps([0, 0, 0]), volume.index_to_lps([2, 1, 1]))
    assert cropped.array[1, 2, 3] == volume.array[2, 3, 5]
    mask = np.zeros(volume.array.shape, bool)
    mask[1:3, 2, 4] = True
    boxed = volume.crop_to_mask(mask)
    assert boxed.shape_ijk == (1, 1, 2)
    np.testing.assert_allclose(boxed.origin_lps, volume.index_to_lps([4, 2, 1]))


def test_sample_is_trilinear():
    array = np.arange(4 * 5 * 6, dtype=float).reshape(4, 5, 6)  # value = 30k + 6j + i
    volume = Volume(array, origin_lps=[1, 2, 3], spacing_xyz=[2.0, 0.5, 1.0])
    ijk = np.array([[1.25, 2.5, 1.75], [4.0, 0.0, 3.0]])
    expected = 30 * ijk[:, 2] + 6 * ijk[:, 1] + ijk[:, 0]
    np.testing.assert_allclose(volume.sample(volume.index_to_lps(ijk)), expected)


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_resample_to_lps_grid_preserves_world_positions(name):
    """A bright blob lands at the same LPS position, whatever the stored orientation."""
    shape = (30, 26, 22)
    spacing = (1.0, 1.2, 1.5)
    direction = DIRECTIONS[name]
    base = Volume(np.zeros(shape[::-1], np.float32), [0, 0, 0], spacing, direction)
    center_lps = base.index_to_lps(np.array([14.0, 11.0, 9.0]))
    grid_lps = base.index_to_lps(np.argwhere(np.ones(shape[::-1]))[:, ::-1].astype(float))
    blob = np.exp(-np.sum((grid_lps - center_lps) ** 2, axis=1) / (2 * 3.0**2))
    volume = base.with_array(blob.reshape(shape[::-1]).astype(np.float32))
    canonical = resample_to_lps_grid(volume, 1.0)
    assert orientation_code(canonical.direction) == "LPS"
    peak = np.unravel_index(np.argmax(canonical.array), canonical.array.shape)
    peak_lps = canonical.index_to_lps(np.array(peak[::-1], float))
    assert np.linalg.norm(peak_lps - center_lps) <= 0.87  # within half a 1 mm voxel diagonal


def test_resample_to_spacing_and_like():
    volume = volume_from_sitk(make_image(DIRECTIONS["oblique"], shape_ijk=(20, 16, 12)))
    finer = resample_to_spacing(volume, 0.5)
    np.testing.assert_allclose(finer.spacing_xyz, 0.5)
    extent = np.asarray(volume.shape_ijk) * volume.spacing_xyz
    np.testing.assert_allclose(np.asarray(finer.shape_ijk) * 0.5, extent, atol=0.5)
    back = resample_like(finer, volume, "nearest")
    assert back.same_grid(volume)
    assert volume.resample([1.0, 1.0, 1.0]).spacing_xyz.tolist() == [1.0, 1.0, 1.0]


def test_reorient_to_lps_is_lossless():
    volume = volume_from_sitk(make_image(DIRECTIONS["permuted_flipped"]))
    canonical = reorient_to_lps(volume)
    np.testing.assert_allclose(canonical.direction, np.eye(3), atol=1e-12)
    assert sorted(canonical.array.ravel()) == sorted(volume.array.ravel())
    point = volume.index_to_lps([2, 3, 1])
    value = volume.array[1, 3, 2]
    ijk = canonical.lps_to_index(point, round_output=True)
    assert canonical.array[ijk[2], ijk[1], ijk[0]] == value


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"spacing_xyz": [1, 0, 1]}, "positive"),
        ({"spacing_xyz": [1, -2, 1]}, "positive"),
        ({"direction": [[1, 0.2, 0], [0, 1, 0], [0, 0, 1]]}, "orthonormal"),
        ({"array": np.zeros((4, 4))}, "3D"),
        ({"origin_lps": [0, np.nan, 0]}, "finite"),
    ],
)
def test_invalid_geometry_is_refused(kwargs, message):
    arguments = {"array": np.zeros((2, 3, 4)), "origin_lps": [0, 0, 0], "spacing_xyz": [1, 1, 1]}
    arguments.update(kwargs)
    with pytest.raises(GeometryError, match=message):
        Volume(**arguments)


def test_check_values():
    with pytest.raises(ImageContentError, match="constant"):
        Volume(np.full((3, 3, 3), 7.0), [0, 0, 0], [1, 1, 1]).check_values()
    array = np.zeros((3, 3, 3))
    array[1, 1, 1] = np.inf
    with pytest.raises(ImageContentError, match="NaN or infinite"):
        Volume(array, [0, 0, 0], [1, 1, 1]).check_values()


def test_orientation_code():
    assert orientation_code(np.eye(3)) == "LPS"
    assert orientation_code(np.diag([-1, -1, 1])) == "RAS"
    assert orientation_code(DIRECTIONS["oblique"]).endswith("*")
