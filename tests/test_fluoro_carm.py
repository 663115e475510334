"""C-arm geometry against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from planner.errors import GeometryError
from planner.fluoro.carm import (
    CArm,
    angles_from_beam,
    beam_from_angles,
    camera_from_angles,
    camera_from_beam,
    pixel_rays,
    project,
    source_from_matrix,
)

ISO_LPS = np.array([12.0, -30.0, 85.0])
POSES = [(0, 0), (90, 0), (-90, 0), (180, 0), (180, 25), (30, -40), (-135, 60)]


@pytest.mark.parametrize(
    ("primary", "secondary", "beam"),
    [
        (0, 0, (0, -1, 0)),  # PA: source behind the back, detector in front of the chest
        (90, 0, (1, 0, 0)),  # LAO 90: detector on the patient's left
        (-90, 0, (-1, 0, 0)),  # RAO 90: detector on the patient's right
        (180, 0, (0, 1, 0)),  # prone AP: source under the table, detector over the back
        (0, 90, (0, 0, 1)),  # CRAN 90: detector at the head
        (0, -90, (0, 0, -1)),
    ],
)
def test_beam_direction_follows_dicom_signs(primary, secondary, beam):
    np.testing.assert_allclose(beam_from_angles(primary, secondary), beam, atol=1e-12)


@pytest.mark.parametrize(("primary", "secondary"), POSES)
def test_angles_round_trip(primary, secondary):
    pose = angles_from_beam(beam_from_angles(primary, secondary))
    np.testing.assert_allclose(
        beam_from_angles(pose.primary_deg, pose.secondary_deg),
        beam_from_angles(primary, secondary),
        atol=1e-12,
    )
    assert -180 < pose.primary_deg <= 180


@pytest.mark.parametrize(("primary", "secondary"), POSES)
def test_isocenter_projects_to_detector_center(primary, secondary):
    carm = CArm(detector_shape=(300, 400))
    camera = camera_from_angles(ISO_LPS, primary, secondary, carm)
    np.testing.assert_allclose(camera.project(ISO_LPS)[0], [199.5, 149.5], atol=1e-9)
    np.testing.assert_allclose(source_from_matrix(camera.matrix), camera.source_lps, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(camera.source_lps - ISO_LPS), carm.sad_mm)


@pytest.mark.parametrize(("primary", "secondary"), POSES)
def test_magnification_is_sdd_over_source_to_object_distance(primary, secondary):
    carm = CArm(
        sdd_mm=1000.0, sad_mm=700.0, detector_shape=(500, 500), detector_size_mm=(250.0, 250.0)
    )
    camera = camera_from_angles(ISO_LPS, primary, secondary, carm)
    for depth_mm in (550.0, 700.0, 820.0):
        # Two points 10 mm apart across the beam, at depth_mm from the source.
        centre = camera.source_lps + depth_mm * camera.beam_lps
        pair = np.array([centre, centre + 10.0 * camera.right_lps])
        pixels = camera.project(pair)
        expected_px = 10.0 * (1000.0 / depth_mm) / 0.5  # magnification / pixel pitch
        assert np.linalg.norm(pixels[1] - pixels[0]) == pytest.approx(expected_px, rel=1e-9)
        assert camera.magnification_at(centre)[0] == pytest.approx(1000.0 / depth_mm)


@pytest.mark.parametrize(("primary", "secondary"), POSES)
def test_line_through_source_projects_to_one_point(primary, secondary):
    camera = camera_from_angles(ISO_LPS, primary, secondary)
    towards = ISO_LPS + np.array([7.0, -3.0, 11.0]) - camera.source_lps
    line = camera.source_lps + np.outer([200.0, 450.0, 600.0, 900.0], towards / 600.0)
    pixels = project(camera.matrix, line)
    np.testing.assert_allclose(pixels, np.repeat(pixels[:1], len(line), axis=0), atol=1e-9)


def test_pixel_rays_hit_their_pixels():
    camera = camera_from_angles(ISO_LPS, 30, -40)
    pixels = np.array([[0.0, 0.0], [511.0, 17.5], [255.5, 255.5]])
    rays = pixel_rays(camera.matrix, pixels)
    np.testing.assert_allclose(rays @ camera.beam_lps, 1.0)
    np.testing.assert_allclose(camera.project(camera.source_lps + 650.0 * rays), pixels, atol=1e-9)


def test_image_orientation_for_prone_ap_and_left_lateral():
    # Prone AP, seen from the detector over the back: patient's left on the image left, head up.
    ap = camera_from_angles(ISO_LPS, 180, 0)
    left, head = ap.project([ISO_LPS + [20, 0, 0], ISO_LPS + [0, 0, 20]])
    assert left[0] < 255.5 and head[1] < 255.5
    # Left lateral (detector on the left, seen from the left): head up, posterior on the right.
    lateral = camera_from_angles(ISO_LPS, 90, 0)
    posterior, head = lateral.project([ISO_LPS + [0, 20, 0], ISO_LPS + [0, 0, 20]])
    assert posterior[0] > 255.5 and head[1] < 255.5


@pytest.mark.parametrize("primary", [0, 180, 30])
def test_image_up_turns_continuously_with_a_steep_tilt(primary):
    """A bull's-eye beam 14 vs 16 deg from the head-foot axis flipped the picture upside down."""
    ups = []
    for secondary in np.arange(60.0, 89.6, 0.5):
        camera = camera_from_angles(ISO_LPS, primary, secondary)
        above, below = camera.project([ISO_LPS + 20 * _tilt_direction(primary, secondary),
                                       ISO_LPS])
        ups.append(below - above)
        # The point the tilt moves towards is up on the image (smaller row).
        assert above[1] < below[1]
    ups = np.array(ups) / np.linalg.norm(ups, axis=1, keepdims=True)
    assert np.min(np.sum(ups[1:] * ups[:-1], axis=1)) > np.cos(np.radians(2.0))


def _tilt_direction(primary: float, secondary: float) -> np.ndarray:
    """Unit direction in which a larger secondary (CRAN) angle moves the beam, LPS."""
    step = 1e-4
    after = beam_from_angles(primary, secondary + step)
    return (after - beam_from_angles(primary, secondary)) / step


def test_bad_geometry_is_rejected():
    with pytest.raises(GeometryError, match="sad_mm"):
        CArm(sdd_mm=500.0, sad_mm=600.0)
    with pytest.raises(GeometryError, match="beam_lps"):
        camera_from_beam(ISO_LPS, [0, 0, 0])
    with pytest.raises(GeometryError, match="parallel"):
        camera_from_beam(ISO_LPS, [0, 0, 1], up_lps=[0, 0, 1])
