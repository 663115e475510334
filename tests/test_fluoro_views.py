"""Fluoroscopy views: beam choices, overlays projected with the image's own camera, checkpoints."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from planner.errors import GeometryError, PlannerError, PlanningError
from planner.fluoro.carm import CArm, camera_from_angles
from planner.fluoro.for_plan import carm_from_config, plan_fluoroscopy
from planner.fluoro.needle import NeedlePath, complete_from_masks, needle_from_plan
from planner.fluoro.views import (
    Structures,
    ap_beam,
    bullseye_beam,
    checkpoint_views,
    lateral_beam,
    lateral_view,
    legend_entries,
    plan_views,
    projected_silhouette,
    render_plan_views,
)
from planner.render.annotate import direction_letters, edge_letters, scale_bar_length_mm
from planner.volume import Volume

SMALL_CARM = CArm(detector_shape=(96, 96), detector_size_mm=(150.0, 150.0))
# A needle in the mid-sagittal plane, from posterior-inferior to anterior-superior.
NEEDLE = NeedlePath(entry_lps=[0.0, 30.0, -30.0], target_lps=[0.0, 0.0, 10.0])


def _phantom() -> Volume:
    """Air with a dense block around the target (2 mm voxels, RAS storage)."""
    shape_ijk = (40, 45, 50)
    direction = np.diag([-1.0, -1.0, 1.0])
    origin = np.array([39.0, 44.0, -50.0])
    array = np.full(shape_ijk[::-1], -1000.0, np.float32)
    volume = Volume(array, origin, [2.0, 2.0, 2.0], direction)
    k, j, i = np.indices(array.shape)
    lps = volume.index_to_lps(np.stack([i, j, k], axis=-1))
    block = np.all(np.abs(lps - [0.0, 5.0, 0.0]) < [15.0, 10.0, 20.0], axis=-1)
    return volume.with_array(np.where(block, 700.0, -1000.0).astype(np.float32))


def test_bullseye_shows_the_needle_as_a_dot():
    views = plan_views(_phantom(), NEEDLE, carm=SMALL_CARM)
    bullseye = views["bullseye"].camera
    entry, target = bullseye.project([NEEDLE.entry_lps, NEEDLE.target_lps])
    np.testing.assert_allclose(entry, target, atol=1e-9)
    assert bullseye.beam_lps @ [0, 1, 0] > 0  # detector over the patient's back
    np.testing.assert_allclose(np.abs(bullseye.beam_lps @ NEEDLE.direction_lps), 1.0)


def test_ap_view_shows_the_needle_at_full_length():
    views = plan_views(_phantom(), NEEDLE, carm=SMALL_CARM)
    camera = views["ap"].camera
    assert abs(camera.beam_lps @ NEEDLE.direction_lps) < 1e-12
    entry, target = camera.project([NEEDLE.entry_lps, NEEDLE.target_lps])
    pitch = SMALL_CARM.pixel_spacing_mm[0]
    expected_px = NEEDLE.length_mm * camera.magnification_at(NEEDLE.target_lps)[0] / pitch
    assert np.linalg.norm(target - entry) == pytest.approx(expected_px, rel=1e-9)
    # Prone AP: detector over the back, tilted towards the head for a cranially running needle.
    assert camera.pose.secondary_deg > 0 and abs(abs(camera.pose.primary_deg) - 180) < 1e-6
    assert "over the patient's back" in camera.pose.prone_description()


def test_lateral_follows_the_midsagittal_normal():
    tilt = np.radians(8.0)
    normal = np.array([-np.cos(tilt), -np.sin(tilt), 0.0])  # pointing right: flipped to the left
    beam = lateral_beam(normal)
    np.testing.assert_allclose(beam, -normal)
    camera = camera_from_angles(NEEDLE.target_lps, 90, 0)
    np.testing.assert_allclose(lateral_beam(None), camera.beam_lps, atol=1e-12)
    assert abs(ap_beam(NEEDLE, normal) @ normal) < 1e-12
    np.testing.assert_allclose(bullseye_beam(NEEDLE), -NEEDLE.direction_lps)


def test_ap_view_is_refused_for_a_left_right_needle():
    needle = NeedlePath(entry_lps=[-30.0, 0.0, 0.0], target_lps=[10.0, 1.0, 0.0])
    with pytest.raises(GeometryError, match="left-right"):
        ap_beam(needle)


def test_silhouette_matches_the_projected_block():
    volume = _phantom()
    mask = volume.with_array(volume.array > 0)
    camera = camera_from_angles([0.0, 0.0, 0.0], 180, 20, SMALL_CARM)
    silhouette = projected_silhouette(mask, camera)
    corners = np.array(
        [[x, y, z] for x in (-15, 15) for y in (-5, 15) for z in (-20, 20)], dtype=float
    )
    projected = camera.project(corners)
    rows, cols = np.nonzero(silhouette)
    # Bounds agree within a projected voxel (2 mm at magnification ~1.7, 1.56 mm pixels).
    assert (
        abs(cols.min() - projected[:, 0].min()) < 3 and abs(cols.max() - projected[:, 0].max()) < 3
    )
    assert (
        abs(rows.min() - projected[:, 1].min()) < 3 and abs(rows.max() - projected[:, 1].max()) < 3
    )


def test_checkpoints_reuse_the_lateral_and_count_down_to_the_target():
    canal = NEEDLE.entry_lps + 8.0 * NEEDLE.direction_lps
    needle = NeedlePath(
        entry_lps=NEEDLE.entry_lps,
        target_lps=NEEDLE.target_lps,
        canal_entry_lps=canal,
        canal_exit_lps=canal + 6.0 * NEEDLE.direction_lps,
        body_entry_lps=NEEDLE.target_lps - 12.0 * NEEDLE.direction_lps,
        canal_level="S4",
    )
    volume = _phantom()
    views = checkpoint_views(volume, needle, carm=SMALL_CARM)
    assert [v.milestone.name for v in views] == [
        "posterior canal wall",
        "anterior canal wall (S4)",
        "S3 body entry",
        "target",
    ]
    remaining = [v.milestone.remaining_mm for v in views]
    np.testing.assert_allclose(remaining, [needle.length_mm - 8, needle.length_mm - 14, 12, 0])
    assert all(v.line_integral is views[0].line_integral for v in views)
    picture = views[1].rgb()
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.std() > 0


def test_complete_from_masks_finds_the_canal_and_body_entry():
    volume = _phantom()
    distances = np.array([10.0, 16.0])  # canal between these distances along the needle
    # Canal: a slab perpendicular to the needle; body S3 (label 3) beyond 30 mm.
    k, j, i = np.indices(volume.array.shape)
    along = (volume.index_to_lps(np.stack([i, j, k], -1)) - NEEDLE.entry_lps) @ NEEDLE.direction_lps
    canal = volume.with_array((along >= distances[0]) & (along <= distances[1]))
    levels = volume.with_array(np.where(along >= 30.0, 3, 0).astype(np.uint8))
    done = complete_from_masks(NEEDLE, canal=canal, levels=levels, target_label=3, canal_level="S4")
    found = [
        (p - NEEDLE.entry_lps) @ NEEDLE.direction_lps
        for p in (done.canal_entry_lps, done.canal_exit_lps, done.body_entry_lps)
    ]
    # Within a voxel (2 mm grid, nearest-neighbour sampling) of the truth.
    np.testing.assert_allclose(found, [10.0, 16.0, 30.0], atol=1.5)
    assert done.canal_level == "S4"


def test_needle_from_plan_uses_bone_entry_without_skin():
    plan = SimpleNamespace(
        target_lps=np.array([0.0, 0.0, 10.0]),
        skin_entry_lps=None,
        bone_entry_lps=np.array([0.0, 20.0, -15.0]),
        canal_crossing=SimpleNamespace(
            level="S4", entry_lps=np.array([0.0, 15.0, -9.0]), exit_lps=np.array([0.0, 12.0, -5.0])
        ),
        needle=SimpleNamespace(outer_diameter_mm=3.05),
        target=SimpleNamespace(level="S3"),
    )
    needle = needle_from_plan(plan)
    assert not needle.entry_is_skin and needle.outer_diameter_mm == 3.05
    np.testing.assert_allclose(needle.entry_lps, plan.bone_entry_lps)
    assert needle.canal_level == "S4"
    with pytest.raises(PlanningError):
        needle_from_plan(SimpleNamespace(target_lps=plan.target_lps, skin_entry_lps=None))


@pytest.mark.parametrize(
    ("primary", "secondary", "letters"),
    [
        (180, 0, {"left": "L", "right": "R", "top": "H", "bottom": "F"}),  # prone AP
        (90, 0, {"left": "A", "right": "P", "top": "H", "bottom": "F"}),  # left lateral
        (0, 0, {"left": "R", "right": "L", "top": "H", "bottom": "F"}),  # PA chest convention
    ],
)
def test_orientation_letters_follow_the_camera(primary, secondary, letters):
    camera = camera_from_angles([0, 0, 0], primary, secondary)
    assert edge_letters(camera.right_lps, camera.down_lps) == letters


def test_direction_letters_and_scale_bar():
    assert direction_letters([0.94, 0.0, 0.34]) == "LH"
    assert direction_letters([0.0, -0.2, -0.98]) == "F"
    assert scale_bar_length_mm(512, 2.9) == 25  # 25 mm = 72 px fits in 128 px; 50 mm does not


def test_plan_fluoroscopy_adapter_with_anatomy():
    volume = _phantom()
    k, j, i = np.indices(volume.array.shape)
    lps = volume.index_to_lps(np.stack([i, j, k], -1))
    along = (lps - NEEDLE.entry_lps) @ NEEDLE.direction_lps
    foramina = np.zeros(volume.array.shape, np.uint8)
    foramina[np.all(np.abs(lps - [12.0, 4.0, 0.0]) < 3.0, axis=-1)] = 5  # S3 L
    anatomy = SimpleNamespace(
        sacrum=volume.with_array(volume.array > 0),
        canal=volume.with_array((along > 6.0) & (along < 10.0)),
        levels=volume.with_array(np.where(along > 30.0, 3, 0).astype(np.uint8)),
        foramina=volume.with_array(foramina),
        anterior_cortex_lps=np.array([[0.0, -5.0, 20.0], [0.0, -5.0, -20.0]]),
        midsagittal=SimpleNamespace(normal_lps=np.array([1.0, 0.0, 0.0])),
    )
    plan = SimpleNamespace(
        target_lps=NEEDLE.target_lps,
        skin_entry_lps=NEEDLE.entry_lps,
        bone_entry_lps=None,
        canal_crossing=None,
        needle=SimpleNamespace(outer_diameter_mm=2.41),
        target=SimpleNamespace(level="S3"),
    )
    pictures = plan_fluoroscopy(volume, plan, anatomy, carm=SMALL_CARM)
    summary = pictures.summary()
    assert {"lateral", "ap", "bullseye", "c_arm", "angle_convention"} <= set(summary)
    assert summary["lateral"]["primary_deg"] == pytest.approx(90.0)
    assert "label" in summary["ap"] and "prone_description" in summary["bullseye"]
    names = [c["milestone"] for c in summary["checkpoints"]]
    assert names == ["posterior canal wall", "anterior canal wall", "S3 body entry", "target"]
    assert pictures.views["ap"].rgb().std() > 0
    # The pipeline's entry point: every picture as RGB, and the same summary.
    config = {"detector_shape": [96, 96], "detector_size_mm": [150.0, 150.0]}
    rgb, fluoroscopy = render_plan_views(volume, anatomy, plan, config)
    assert {
        "fluoro_lateral",
        "fluoro_ap",
        "fluoro_bullseye",
        "fluoro_checkpoint_4",
        "ct_needle_plane_sagittal_oblique",
        "ct_cross_section_at_target",
    } <= set(rgb)
    assert all(image.dtype == np.uint8 and image.shape[2] == 3 for image in rgb.values())
    assert fluoroscopy["c_arm"]["detector_shape"] == [96, 96]


def test_carm_config_rejects_unknown_keys():
    assert carm_from_config({"sdd_mm": 1100, "sad_mm": 650}).magnification == pytest.approx(
        1100 / 650
    )
    with pytest.raises(PlannerError, match="sid_mm"):
        carm_from_config({"sid_mm": 1000})


def test_bone_only_needle_shows_the_approach_behind_its_first_point():
    from dataclasses import replace

    from planner.fluoro.views import UNKNOWN_SKIN_APPROACH_MM

    carm = CArm(detector_shape=(128, 128), detector_size_mm=(300.0, 300.0))
    bone_only = replace(NEEDLE, entry_is_skin=False)
    with_skin = plan_views(_phantom(), NEEDLE, carm=carm)["lateral"]
    without_skin = plan_views(_phantom(), bone_only, carm=carm)["lateral"]
    camera = with_skin.camera
    # Halfway along the dashed approach, behind the drawn entry: only the bone-only view has ink.
    behind_lps = NEEDLE.entry_lps - 0.5 * UNKNOWN_SKIN_APPROACH_MM * NEEDLE.direction_lps
    u, v = np.round(camera.project(behind_lps)[0]).astype(int)
    assert 0 <= u < 128 and 0 <= v < 128
    # One figure pixel per detector pixel: find the detector pixel in the figure.
    figure = with_skin.figure()
    x, y = figure.axes[0].transData.transform((u, v))
    row, col = int(round(figure.bbox.height - y)), int(round(x))
    window = (slice(row - 3, row + 4), slice(col - 3, col + 4))
    changed = np.abs(
        without_skin.rgb()[window].astype(int) - with_skin.rgb()[window].astype(int)
    ).sum()
    assert changed > 0


def _dark_pixels_near(rgb: np.ndarray, rows: slice, cols: slice) -> int:
    return int((rgb[rows, cols].max(axis=-1) < 80).sum())


def test_scale_bar_and_letters_read_on_white_air():
    """On a radiograph the air is white: the white bar and yellow letters need a dark outline."""
    from planner.render.annotate import (
        draw_orientation,
        draw_scale_bar,
        figure_to_rgb,
        image_figure,
    )

    shape = (200, 200)
    figure, ax = image_figure(np.ones(shape), 0.0, 1.0)
    draw_orientation(ax, np.array([-1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0]), shape)
    draw_scale_bar(ax, shape, pixels_per_mm=2.0)
    rgb = figure_to_rgb(figure)
    assert rgb.shape[:2] == shape  # no title band: pixel rows are image rows
    bar_row = int(round(0.93 * shape[0]))
    bar_cols = slice(int(0.06 * shape[1]) + 3, int(0.06 * shape[1]) + 40)
    assert _dark_pixels_near(rgb, slice(bar_row - 4, bar_row + 5), bar_cols) > 20
    assert _dark_pixels_near(rgb, slice(shape[0] // 2 - 8, shape[0] // 2 + 8), slice(0, 20)) > 5


def test_views_carry_a_key_to_their_overlays_below_the_image():
    """Colours and markers are explained on the picture, in a band that covers no anatomy."""
    from dataclasses import replace

    volume = _phantom()
    canal = volume.with_array(np.zeros(volume.array.shape, bool), "SEG")
    needle = replace(NEEDLE, canal_entry_lps=np.array([0.0, 20.0, -16.0]))
    structures = Structures(outlines={"canal": canal})
    wide = CArm(detector_shape=(96, 256), detector_size_mm=(150.0, 400.0))
    view = lateral_view(volume, needle, structures, carm=wide)
    labels = [label for label, _ in legend_entries(view)]
    assert labels == ["needle (outer diameter)", "canal walls crossed", "target", "sacral canal"]
    checkpoint = checkpoint_views(None, needle, lateral=view)[0]
    assert "needle still to advance" in [label for label, _ in legend_entries(checkpoint)]
    figure = view.figure()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend = figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == labels
    image_bottom = figure.axes[0].get_window_extent(renderer).y0
    assert legend.get_window_extent(renderer).y1 <= image_bottom + 0.5
    assert 0 <= legend.get_window_extent(renderer).x0
    assert legend.get_window_extent(renderer).x1 <= figure.bbox.width
    assert figure.axes[0].get_window_extent(renderer).height == pytest.approx(96, abs=0.5)
    assert figure.axes[0].get_window_extent(renderer).width == pytest.approx(256, abs=0.5)


def test_point_labels_stay_on_the_image():
    """A skin entry near the detector edge had its label spill into the key band below."""
    view = plan_views(_phantom(), NEEDLE, carm=SMALL_CARM)["lateral"]
    figure = view.figure()
    labels = [t for t in figure.axes[0].texts if t.get_text() in ("skin entry", "target")]
    assert len(labels) == 2 and all(t.get_clip_on() for t in labels)


def test_a_steep_tilt_is_flagged_on_the_picture():
    """A bull's-eye down a mostly head-foot needle needs a 53 deg tilt: say it may be out of
    reach, on that picture only."""
    from planner.fluoro.views import STEEP_TILT_NOTE

    views = plan_views(_phantom(), NEEDLE, carm=SMALL_CARM)
    assert views["bullseye"].pose.secondary_deg == pytest.approx(-53.13, abs=0.01)
    titles = {name: " ".join(" ".join(t.get_text() for t in view.figure().texts).split())
              for name, view in views.items()}  # captions are wrapped to the picture width
    assert STEEP_TILT_NOTE in titles["bullseye"]
    assert STEEP_TILT_NOTE not in titles["lateral"] and STEEP_TILT_NOTE not in titles["ap"]


def test_a_targeted_lesion_is_outlined_on_every_picture():
    """The MR lesion the plan aims at was drawn on no picture: outline it where it projects."""
    from planner.fluoro.for_plan import lesion_outline

    volume = _phantom()
    k, j, i = np.indices(volume.array.shape)
    lps = volume.index_to_lps(np.stack([i, j, k], -1))
    centre = np.array([4.0, 2.0, 10.0])  # a 5 mm-radius ball beside the target
    lesion = volume.with_array(np.linalg.norm(lps - centre, axis=-1) <= 5.0, "SEG")
    assert lesion_outline(None) == {}
    assert lesion_outline(lesion.with_array(np.zeros(lesion.array.shape, bool))) == {}
    plan = SimpleNamespace(
        target_lps=NEEDLE.target_lps, skin_entry_lps=NEEDLE.entry_lps, bone_entry_lps=None,
        canal_crossing=None, needle=SimpleNamespace(outer_diameter_mm=2.41),
        target=SimpleNamespace(level="S3"),
    )
    pictures = plan_fluoroscopy(volume, plan, None, carm=SMALL_CARM, lesion=lesion)
    lateral = pictures.views["lateral"]
    assert "lesion" in [label for label, _ in legend_entries(lateral)]
    silhouette = projected_silhouette(lesion, lateral.camera)
    rows, cols = np.nonzero(silhouette)
    expected_u, expected_v = lateral.camera.project(centre)[0]
    assert abs(cols.mean() - expected_u) < 1.0 and abs(rows.mean() - expected_v) < 1.0
    config = {"detector_shape": [96, 96], "detector_size_mm": [150.0, 150.0]}
    _, _ = render_plan_views(volume, None, plan, config, lesion=lesion)
    from planner.fluoro.for_plan import structures_for
    from planner.render.ct_views import plan_ct_views

    views = plan_ct_views(volume, pictures.needle, structures_for(None, lesion_outline(lesion)))
    axial = views[0]
    assert axial.structure_images["lesion"].any()


def test_a_label_near_the_right_edge_goes_left_of_its_point():
    """pengwin-003's 'skin not in scan' ran off the right edge of the lateral."""
    from planner.fluoro.views import label_anchor

    assert label_anchor(480.0, 512, 6.0, 100.0) == (474.0, "right")
    assert label_anchor(300.0, 512, 6.0, 100.0) == (306.0, "left")


def test_a_view_renders_when_no_foramen_was_found():
    """An empty foramen label map (none found on a coarse scan) outlines nothing, and the key
    does not list foramina; it used to stop the whole plan with an internal error."""
    volume = _phantom()
    no_foramina = volume.with_array(np.zeros(volume.array.shape, np.uint8), "SEG")
    structures = Structures(foramina=no_foramina)
    assert structures.surfaces == []
    view = lateral_view(volume, NEEDLE, structures)
    assert "anterior foramina" not in [label for label, _ in legend_entries(view)]
    assert view.rgb().ndim == 3
