"""The fused MR-on-CT picture: its pixel geometry and the planned needle drawn on it."""

from __future__ import annotations

import numpy as np
from matplotlib import image as mpimg

from planner.mri.fusion import HALF_SIZE_MM, PIXEL_MM, picture_pixels, save_fused_picture

CENTRE_LPS = np.array([3.0, 40.0, -60.0])


def test_points_land_on_their_pixels():
    middle = HALF_SIZE_MM / PIXEL_MM
    pixels = picture_pixels(
        [CENTRE_LPS, CENTRE_LPS + [0, 0, 8.0], CENTRE_LPS + [0, 8.0, 0], CENTRE_LPS + [5.0, 0, 0]],
        CENTRE_LPS,
    )
    np.testing.assert_allclose(pixels[0], [middle, middle])
    np.testing.assert_allclose(pixels[1], [middle, middle - 10.0])  # head up
    np.testing.assert_allclose(pixels[2], [middle + 10.0, middle])  # posterior right
    np.testing.assert_allclose(pixels[3], [middle, middle])  # left-right projects away


def test_the_needle_is_drawn_on_the_fusion(tmp_path):
    size = int(round(2 * HALF_SIZE_MM / PIXEL_MM)) + 1
    rgb = np.zeros((size, size, 3), np.uint8)
    needle = np.array([CENTRE_LPS + [0, 40.0, -40.0], CENTRE_LPS])
    save_fused_picture(rgb, tmp_path / "bare.png")
    save_fused_picture(rgb, tmp_path / "plan.png", centre_lps=CENTRE_LPS, needle_lps=needle)
    bare = mpimg.imread(tmp_path / "bare.png")[..., :3]
    planned = mpimg.imread(tmp_path / "plan.png")[..., :3]
    assert bare.shape == planned.shape
    cyan = (planned[..., 0] < 0.3) & (planned[..., 1] > 0.7) & (planned[..., 2] > 0.7)
    assert not ((bare[..., 0] < 0.3) & (bare[..., 1] > 0.7) & (bare[..., 2] > 0.7)).any()
    rows, columns = np.nonzero(cyan)
    # The needle runs from the target (centre) down and to the right (posterior, caudal).
    scale = planned.shape[0] / size
    assert columns.max() > (size / 2 + 30) * scale and rows.max() > (size / 2 + 30) * scale
    assert columns.min() > (size / 2 - 10) * scale
