"""Sacral sub-structures against the exact truth of phantoms (issue 3 bars, a few cases).

The sacrum mask given to ``find_anatomy`` is the phantom's true one, so these tests measure the
sub-structure stage alone (the segmentation has its own tests).
"""

from __future__ import annotations

import numpy as np
import pytest
from mask_metrics import dice

from planner.anatomy.find import find_anatomy
from planner.anatomy.frame import build_frame
from planner.anatomy.midplane import fit_midsagittal_plane
from planner.anatomy.model import FORAMEN_LABELS, LEVEL_LABELS, LEVEL_NAMES
from planner.errors import AnatomyNotFoundError
from planner.phantom import PhantomParams, make_phantom

SPACING_MM = 2.0
CASES = [(0, "LPS"), (3, "oblique"), (5, "permuted_flipped")]


@pytest.fixture(scope="module", params=CASES, ids=[f"seed{s}-{o}" for s, o in CASES])
def found(request):
    seed, orientation = request.param
    phantom = make_phantom(
        PhantomParams.random(seed=seed, fov="sacrum"),
        spacing_mm=SPACING_MM,
        orientation=orientation,
    )
    return phantom, find_anatomy(phantom.volume, phantom.truth.sacrum)


def test_masks_are_on_the_input_grid(found):
    phantom, anatomy = found
    for mask in (anatomy.sacrum, anatomy.canal, anatomy.foramina, anatomy.levels):
        assert mask.same_grid(phantom.volume)
    assert set(np.unique(anatomy.levels.array)) <= {0, *LEVEL_LABELS.values()}
    assert set(np.unique(anatomy.foramina.array)) <= {0, *FORAMEN_LABELS.values()}


def test_midsagittal_plane_matches_truth(found):
    phantom, anatomy = found
    truth = phantom.truth.midsagittal
    cosine = float(anatomy.midsagittal.normal_lps @ truth.normal_lps)
    assert cosine > np.cos(np.radians(2.0))  # within 2 degrees, and pointing left
    assert abs(truth.signed_distance(anatomy.midsagittal.point_lps)) < 1.0


def test_canal_dice(found):
    phantom, anatomy = found
    assert dice(anatomy.canal.array, phantom.truth.canal.array) >= 0.90


def test_every_foramen_found_within_2mm(found):
    phantom, anatomy = found
    for foramen in anatomy.foramen_list:
        assert foramen.found, f"{foramen.level} {foramen.side} not found"
        truth = phantom.truth.foramen_centers_lps[(foramen.level, foramen.side)]
        assert np.linalg.norm(foramen.center_lps - truth) <= 2.0, (foramen.level, foramen.side)
        # The labelled region of each foramen is on its own side of the plane.
        region = np.argwhere(anatomy.foramina.array == foramen.label)[:, ::-1]
        side = np.sign(anatomy.midsagittal.signed_distance(phantom.volume.index_to_lps(region)))
        assert np.all(side == (1 if foramen.side == "L" else -1))


def test_level_centres_within_3mm_and_inside_their_body(found):
    phantom, anatomy = found
    for name in LEVEL_NAMES:
        centre = anatomy.level_centers_lps[name]
        assert np.linalg.norm(centre - phantom.truth.level_centers_lps[name]) <= 3.0, name
        ijk = phantom.volume.lps_to_index(centre, round_output=True)
        assert phantom.truth.levels.array[ijk[2], ijk[1], ijk[0]] == LEVEL_LABELS[name]


def test_hiatus_apex_within_3mm(found):
    phantom, anatomy = found
    assert np.linalg.norm(anatomy.hiatus.apex_lps - phantom.truth.hiatus_apex_lps) <= 3.0


def test_anterior_cortex_curve_follows_truth_from_promontory_to_tip(found):
    phantom, anatomy = found
    curve = anatomy.anterior_cortex_lps
    truth = phantom.truth.anterior_cortex_lps
    assert np.linalg.norm(curve[0] - phantom.truth.promontory_lps) <= 3.0
    assert np.linalg.norm(curve[-1] - truth[-1]) <= 4.0
    distance = np.min(np.linalg.norm(curve[:, None] - truth[None], axis=-1), axis=1)
    assert np.median(distance) <= 1.0
    assert np.all(np.abs(anatomy.midsagittal.signed_distance(curve)) < 1e-6)


def test_filled_bone_only_mask_is_reopened():
    """A sacrum mask that covers canal and foramina (bone-only CT) still yields them."""
    phantom = make_phantom(
        PhantomParams.random(seed=2, fov="sacrum", bone_only=True), spacing_mm=SPACING_MM
    )
    truth = phantom.truth
    filled = truth.sacrum.with_array(
        truth.sacrum.array | truth.canal.array | (truth.foramina.array > 0)
    )
    anatomy = find_anatomy(phantom.volume, filled)
    assert not anatomy.has_soft_tissue
    assert dice(anatomy.canal.array, truth.canal.array) >= 0.85
    assert sum(f.found for f in anatomy.foramen_list) == 8
    assert not np.any(anatomy.sacrum.array & anatomy.canal.array)


def test_frame_round_trip():
    phantom = make_phantom(PhantomParams.random(seed=1, fov="sacrum"), spacing_mm=SPACING_MM)
    mask = phantom.truth.sacrum.crop_to_mask(phantom.truth.sacrum.array, 8.0)
    plane, _ = fit_midsagittal_plane(mask)
    frame = build_frame(mask, plane)
    x, s, d = np.meshgrid([-20.0, 0.0, 15.0], [5.0, 40.0, 90.0], [-3.0, 10.0, 30.0])
    back = frame.from_lps(frame.to_lps(x, s, d))
    for original, recovered in zip((x, s, d), back, strict=True):
        np.testing.assert_allclose(recovered, original, atol=0.05)


def test_empty_mask_is_a_clear_error():
    phantom = make_phantom(PhantomParams.random(seed=1, fov="sacrum"), spacing_mm=SPACING_MM)
    empty = phantom.truth.sacrum.with_array(np.zeros_like(phantom.truth.sacrum.array))
    with pytest.raises(AnatomyNotFoundError, match="sacrum"):
        find_anatomy(phantom.volume, empty)


def _distances_to_polyline(points_lps: np.ndarray, polyline_lps: np.ndarray) -> np.ndarray:
    start, segment = polyline_lps[:-1], np.diff(polyline_lps, axis=0)
    length2 = np.maximum((segment**2).sum(axis=1), 1e-12)
    out = []
    for point in points_lps:
        t = np.clip(((point - start) * segment).sum(axis=1) / length2, 0.0, 1.0)
        out.append(np.min(np.linalg.norm(point - (start + t[:, None] * segment), axis=1)))
    return np.asarray(out)


def test_anterior_cortex_follows_the_true_edge_and_its_s3_tangent(found):
    """Curve within 1 mm of the true anterior surface on average; the planner's reference
    tangent near S3, taken on the found curve, within 3 deg of the true tangent (issue 4)."""
    from planner.planning.geometry import anterior_edge_frame

    phantom, anatomy = found
    marks = phantom.truth.landmarks
    distance = _distances_to_polyline(anatomy.anterior_cortex_lps, marks.anterior_cortex_lps)
    assert distance.mean() <= 1.0
    tangent = anterior_edge_frame(anatomy, anatomy.level_centers_lps["S3"]).tangent_lps
    angle = np.degrees(np.arccos(np.clip(abs(tangent @ marks.anterior_tangent_s3_lps), 0, 1)))
    assert angle <= 3.0


def _miss_mm(truth_mask: np.ndarray, found_mask: np.ndarray, spacing_xyz) -> np.ndarray:
    """Distance (mm) from each true voxel to the nearest found voxel (0 where covered)."""
    from scipy import ndimage

    if not found_mask.any():
        return np.full(int(truth_mask.sum()), np.inf)
    distance = ndimage.distance_transform_edt(~found_mask, sampling=np.asarray(spacing_xyz)[::-1])
    return distance[truth_mask]


def test_found_foramina_cover_the_true_channels_from_mouth_to_canal(found):
    """Each found foramen covers its true channel, the anterior mouth and the medial limb to
    the canal included (the voxels a needle crossing the canal passes nearest), to within one
    voxel's diagonal; and it opens into the canal (planning measures the entry zone)."""
    from scipy import ndimage

    phantom, anatomy = found
    truth = phantom.truth
    spacing = phantom.volume.spacing_xyz
    one_voxel_mm = float(np.linalg.norm(spacing[:2])) + 1e-6  # a face diagonal
    canal_near = ndimage.binary_dilation(anatomy.canal.array)
    for (level, side), label in FORAMEN_LABELS.items():
        true_channel = truth.foramina.array == label
        found_channel = anatomy.foramina.array == label
        miss = _miss_mm(true_channel, found_channel, spacing)
        assert np.mean(miss <= one_voxel_mm) >= 0.95, (level, side, np.mean(miss <= one_voxel_mm))
        points = phantom.volume.index_to_lps(np.argwhere(true_channel)[:, ::-1].astype(float))
        depth = truth.signed_distance_mm("d", points)
        mouth = depth <= np.min(depth) + spacing.max()  # the anterior-most layer
        medial = np.abs(truth.midsagittal.signed_distance(points))
        limb = medial <= np.min(medial) + spacing.max()  # the medial end, at the canal
        assert np.all(miss[mouth] <= one_voxel_mm), (level, side, "anterior mouth")
        assert np.all(miss[limb] <= one_voxel_mm), (level, side, "medial limb")
        assert np.any(found_channel & canal_near), (level, side, "does not reach the canal")


def test_no_unlabelled_space_between_canal_and_bodies(found):
    """Cranial to the hiatus, every space voxel touching both the canal and a body is canal or
    foramen: a gap would read as a hole in the bone at the canal floor (planning measures the
    cortex to it). Caudally the canal opens into the hiatus, which is not canal."""
    from scipy import ndimage

    phantom, anatomy = found
    face = ndimage.generate_binary_structure(3, 1)
    labelled = anatomy.sacrum.array | anatomy.canal.array | (anatomy.foramina.array > 0)
    gap = (
        ~labelled
        & ndimage.binary_dilation(anatomy.canal.array, face)
        & ndimage.binary_dilation(anatomy.levels.array > 0, face)
    )
    points = phantom.volume.index_to_lps(np.argwhere(gap)[:, ::-1].astype(float))
    arc = phantom.truth.signed_distance_mm("s", points)
    assert np.all(arc > phantom.truth.model.hiatus_apex_s), arc


@pytest.mark.parametrize("seed", [8, 13])
def test_kyphotic_sacrum_tangent_levels_and_tip(seed):
    """A strongly kyphotic sacrum (100-130 deg, bending mostly caudal of S3): the planner's
    reference tangent near S3 on the found curve is within 3 deg of the true one, every level
    centre within 3 mm, and the curve reaches the tip. (With a single cubic frame: 3.8 deg on
    seed 8, and the frame stopped short of seed 13's tip, its S5 centre 8 mm off.)"""
    from planner.planning.geometry import anterior_edge_frame

    phantom = make_phantom(
        PhantomParams.random(seed, kyphotic=True, fov="sacrum"), spacing_mm=SPACING_MM
    )
    truth = phantom.truth
    anatomy = find_anatomy(phantom.volume, truth.sacrum)
    tangent = anterior_edge_frame(anatomy, anatomy.level_centers_lps["S3"]).tangent_lps
    angle = np.degrees(np.arccos(np.clip(abs(tangent @ truth.anterior_tangent_s3_lps), 0, 1)))
    assert angle <= 3.0
    for name in LEVEL_NAMES:
        error = np.linalg.norm(anatomy.level_centers_lps[name] - truth.level_centers_lps[name])
        assert error <= 3.0, name
    assert np.linalg.norm(anatomy.anterior_cortex_lps[-1] - truth.anterior_cortex_lps[-1]) <= 3.0


def test_level_centres_on_a_circular_cortex_are_exact():
    """Junctions found 10-14 mm deep on the true normals of a circular cortex (radius 40 mm,
    a kyphotic curvature) are carried back onto it exactly, and each body centre lies on the
    normal half-way between its junctions, at its half depth (known answer, < 0.1 mm)."""
    from planner.anatomy.centres import centres_on_cortex

    radius = 40.0
    left = np.array([1.0, 0.0, 0.0])

    def on_circle(arc_mm, depth_mm):
        # Centre of curvature anterior (-P); the curve runs caudally (-S); depth is posterior.
        angle = np.asarray(arc_mm, float) / radius
        r = radius + np.asarray(depth_mm, float)
        return np.stack([np.zeros_like(angle), -radius + r * np.cos(angle),
                         -r * np.sin(angle)], axis=-1)

    curve = on_circle(np.arange(0.0, 100.5, 1.0), 0.0)
    bounds = np.array([0.0, 25.0, 48.0, 68.0, 84.0, 100.0])
    junctions = on_circle(bounds[1:5], np.array([14.0, 12.0, 11.0, 10.0]))
    half_depths = np.array([12.0, 11.0, 10.0, 9.0, 7.0])
    centres = centres_on_cortex(curve, junctions, curve[0], curve[-1], half_depths, left)
    expected = on_circle(0.5 * (bounds[:-1] + bounds[1:]), half_depths)
    # The ends are the curve's own end points; the inner centres are what matters.
    assert np.max(np.linalg.norm(centres[1:4] - expected[1:4], axis=1)) < 0.1


def test_edge_fit_is_not_tilted_by_a_terrace_of_the_staircase():
    """A straight edge read one voxel off over 3 mm (profiles grazing a terrace): the robust
    fit's slope near it stays within 0.1 deg of the true one (a least-squares line: 0.55 deg)."""
    from planner.anatomy.cortex import EDGE_FIT_SIGMA_MM, _fitted_edge

    s = np.arange(0.0, 120.0, 0.8)
    true_d = 0.02 * s
    read_d = true_d + np.where((s >= 60.0) & (s <= 63.0), 1.0, 0.0)
    fitted = _fitted_edge(s, read_d, [20.0, 100.0], np.full(len(s), EDGE_FIT_SIGMA_MM))
    near = (s >= 52.0) & (s <= 72.0)
    slope = np.gradient(fitted, s)[near]
    assert np.degrees(np.max(np.abs(np.arctan(slope) - np.arctan(0.02)))) < 0.1
