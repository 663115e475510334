"""CT reformats: plane geometry, exact resampling, storage independence, the standard set."""

from __future__ import annotations

import numpy as np
import pytest

from planner.fluoro.needle import NeedlePath
from planner.render.annotate import edge_letters
from planner.render.ct_views import (
    needle_plane_views,
    plan_ct_views,
    plane_grid,
    reformat,
    target_slices,
)
from planner.render.structures import Structures
from planner.volume import Volume

NEEDLE = NeedlePath(
    entry_lps=[2.0, 25.0, -25.0],
    target_lps=[0.0, 0.0, 8.0],
    canal_entry_lps=[1.6, 20.0, -18.4],
    canal_exit_lps=[1.4, 17.5, -15.1],
)


def _linear_volume(direction, spacing=(1.0, 1.5, 2.0), shape_ijk=(50, 40, 36)) -> Volume:
    """HU = 2x + 3y - z (LPS mm), on a grid centred on the origin."""
    direction = np.asarray(direction, float)
    spacing = np.asarray(spacing, float)
    origin = -direction @ (spacing * (np.asarray(shape_ijk) - 1) / 2.0)
    volume = Volume(np.zeros(shape_ijk[::-1], np.float32), origin, spacing, direction)
    k, j, i = np.indices(volume.array.shape)
    lps = volume.index_to_lps(np.stack([i, j, k], -1))
    return volume.with_array((lps @ [2.0, 3.0, -1.0]).astype(np.float32))


def test_axial_coronal_sagittal_follow_radiological_display():
    slices = target_slices(_linear_volume(np.eye(3)), NEEDLE)
    letters = [edge_letters(v.grid.right_lps, v.grid.down_lps) for v in slices]
    assert [v.name.split()[0] for v in slices] == ["axial", "coronal", "sagittal"]
    assert letters[0] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert letters[1] == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    assert letters[2] == {"left": "A", "right": "P", "top": "H", "bottom": "F"}
    for view in slices:
        centre = np.array(view.grid.shape)[::-1] / 2.0 - 0.5
        np.testing.assert_allclose(view.grid.to_pixels(NEEDLE.target_lps)[0], centre, atol=1e-9)


@pytest.mark.parametrize(
    "direction",
    [np.eye(3), np.diag([-1.0, -1.0, 1.0]), [[0, 0, 1], [1, 0, 0], [0, 1, 0]]],
    ids=["identity", "ras", "permuted"],
)
def test_oblique_reformat_is_exact_for_a_linear_field(direction):
    volume = _linear_volume(direction)
    grid = plane_grid([1.0, -2.0, 3.0], [0.3, 0.5, 0.8], [0, 0, -1], [1, 0, 0], (20.0, 24.0), 0.7)
    expected = grid.points_lps() @ [2.0, 3.0, -1.0]
    np.testing.assert_allclose(reformat(volume, grid), expected, atol=1e-3)
    np.testing.assert_allclose(grid.distance_mm(grid.points_lps().reshape(-1, 3)), 0, atol=1e-9)


def test_needle_planes_contain_the_needle_and_the_lateral_axis():
    normal = np.array([1.0, 0.1, 0.0])
    views = needle_plane_views(
        _linear_volume(np.eye(3)), NEEDLE, Structures(midsagittal_normal_lps=normal)
    )
    assert len(views) == 2
    for view in views:
        distances = view.grid.distance_mm(np.array([NEEDLE.entry_lps, NEEDLE.target_lps]))
        np.testing.assert_allclose(distances, 0.0, atol=1e-9)
    # The coronal oblique also contains the mid-sagittal normal.
    assert abs(views[1].grid.normal_lps @ normal) < 1e-9


def test_plan_ct_views_render_with_outlines():
    volume = _linear_volume(np.eye(3))
    mask = volume.with_array(volume.array > 0)
    views = plan_ct_views(volume, NEEDLE, Structures(outlines={"sacrum": mask}), pixel_mm=1.0)
    assert len(views) == 7  # 3 slices, 2 needle planes, 2 cross-sections
    assert [v.name for v in views[-2:]] == [
        "cross-section at canal crossing",
        "cross-section at target",
    ]
    cross = views[-1]
    np.testing.assert_allclose(np.abs(cross.grid.normal_lps @ NEEDLE.direction_lps), 1.0)
    picture = views[0].rgb()
    assert picture.shape[2] == 3 and picture.std() > 0
    assert views[0].structure_images["sacrum"].any()


@pytest.mark.parametrize("direction", [np.eye(3), [[0, 0, 1], [1, 0, 0], [0, 1, 0]]])
def test_nearest_reformat_of_a_mask_matches_volume_sampling(direction):
    volume = _linear_volume(direction)
    mask = volume.with_array(volume.array > 10.0)
    # Centre off the voxel grid, so no sample sits exactly halfway between two voxels.
    centre = [0.537, -1.013, 2.071]
    grid = plane_grid(centre, [0.2, 0.9, 0.3], [0, 0, -1], [1, 0, 0], (30.0, 30.0), 0.9)
    expected = mask.sample(grid.points_lps(), order=0)
    np.testing.assert_array_equal(reformat(mask, grid, order=0, fill_value=0), expected)


def test_ct_views_carry_a_key_to_what_they_show():
    """The needle-plane view names what is drawn on it; a cross-section away from the canal
    crossing does not list the canal-wall markers it does not show."""
    from planner.render.ct_views import legend_entries

    volume = _linear_volume(np.eye(3))
    mask = volume.with_array(volume.array > 0)
    views = plan_ct_views(volume, NEEDLE, Structures(outlines={"sacrum": mask}), pixel_mm=1.0)
    by_name = {view.name: view for view in views}
    plane = [label for label, _ in legend_entries(by_name["needle plane (sagittal oblique)"])]
    assert plane == ["needle", "skin entry", "canal walls crossed", "target", "sacrum"]
    at_target = [label for label, _ in legend_entries(by_name["cross-section at target"])]
    assert "canal walls crossed" not in at_target and "target" in at_target
    figure = by_name["needle plane (sagittal oblique)"].figure()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    assert [t.get_text() for t in figure.legends[0].get_texts()] == plane
    image_bottom = figure.axes[0].get_window_extent(renderer).y0
    key = figure.legends[0].get_window_extent(renderer)
    assert key.y1 <= image_bottom + 0.5
    assert 0 <= key.x0 and key.x1 <= figure.bbox.width  # the coronal oblique's key was cut off


def test_a_pseudo_ct_from_an_mri_is_not_called_ct():
    """A plan on an MRI alone is drawn on a pseudo-CT; its pictures said 'CT axial ...'."""
    from dataclasses import replace

    from planner.render.ct_views import picture_source
    from planner.volume import VolumeInfo

    volume = _linear_volume(np.eye(3))
    pseudo = replace(volume, info=VolumeInfo(series_description="pseudo-CT from T1-weighted MRI"))
    assert picture_source(volume) == "CT" and picture_source(pseudo) == "Pseudo-CT"
    view = target_slices(pseudo, NEEDLE)[0]
    titles = " ".join(t.get_text() for t in view.figure().texts)
    assert titles.startswith("Pseudo-CT axial")
