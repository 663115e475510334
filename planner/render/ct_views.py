"""CT pictures along the plan: slices through the target, oblique reformats in the needle's
planes, and cross-sections perpendicular to the needle, each with outlines, letters and a scale.

A :class:`PlaneGrid` is a 2D pixel grid in LPS: pixel ``(u, v) = (column, row)`` sits at
``center_lps + (u - (cols-1)/2) * pixel_mm * right_lps + (v - (rows-1)/2) * pixel_mm * down_lps``
(``(0, 0)`` is the centre of the top-left pixel). Display conventions follow radiology:

* axial: seen from the feet, patient's right on the image left, anterior up;
* coronal: seen from the front, patient's right on the image left, head up;
* sagittal: anterior on the image left, head up;
* needle planes and cross-sections: the in-plane direction nearest to those conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planner.errors import GeometryError
from planner.fluoro.needle import NeedlePath
from planner.render.annotate import (
    draw_legend,
    draw_orientation,
    draw_scale_bar,
    figure_to_rgb,
    image_figure,
    legend_band_px,
    save_png,
)
from planner.render.structures import Structures
from planner.volume import Volume

#: Bone window (HU): width 2000, level 500.
BONE_WINDOW_HU = (2000.0, 500.0)
#: Default pixel size of reformatted pictures, mm.
DEFAULT_PIXEL_MM = 0.4
#: Field of view of slices through the target and of needle cross-sections, mm.
SLICE_FIELD_MM = 130.0
CROSS_SECTION_FIELD_MM = 60.0
#: Smallest picture side, pixels (finer pixels are used for small fields of view).
MIN_PICTURE_PX = 320
#: Margin around the needle in the needle-plane reformats, mm.
NEEDLE_PLANE_MARGIN_MM = 30.0
#: A needle segment or landmark this close to a plane (mm, beyond the needle radius) is drawn
#: as lying in it; farther parts are drawn dashed (projected).
IN_PLANE_SLAB_MM = 1.5
#: The needle is drawn as its cross-section (a circle) where it crosses a plane at more than
#: about 45 degrees (cosine of the angle between the needle and the plane normal).
STEEP_CROSSING_COS = 0.7
#: Value outside the volume (HU of air).
OUTSIDE_HU = -1000.0

_LEFT = np.array([1.0, 0.0, 0.0])
_POSTERIOR = np.array([0.0, 1.0, 0.0])
_INFERIOR = np.array([0.0, 0.0, -1.0])

COLORS = {
    "needle": "#00e5ff",
    "entry": "#69f0ae",
    "target": "#ff5252",
    "canal_point": "#ffd740",
    "foramina": "#ea80fc",
    "anterior_cortex": "#ff6e40",
    "sacrum": "#82b1ff",
    "canal": "#ffd740",
    "lesion": "#ff1744",
    "outline": "#b9f6ca",
}


@dataclass(frozen=True, eq=False)
class PlaneGrid:
    """A planar pixel grid in LPS mm (see the module docstring for the pixel convention)."""

    center_lps: np.ndarray
    right_lps: np.ndarray
    down_lps: np.ndarray
    pixel_mm: float
    shape: tuple[int, int]

    @property
    def normal_lps(self) -> np.ndarray:
        return np.cross(self.right_lps, self.down_lps)

    def points_lps(self) -> np.ndarray:
        """(rows, cols, 3) LPS positions of the pixel centres."""
        rows, cols = self.shape
        u = (np.arange(cols) - (cols - 1) / 2.0) * self.pixel_mm
        v = (np.arange(rows) - (rows - 1) / 2.0) * self.pixel_mm
        return (
            self.center_lps
            + u[np.newaxis, :, np.newaxis] * self.right_lps
            + v[:, np.newaxis, np.newaxis] * self.down_lps
        )

    def to_pixels(self, points_lps: np.ndarray) -> np.ndarray:
        """(N, 2) pixel ``(u, v)`` of the orthogonal projection of (N, 3) points on the plane."""
        offset = np.atleast_2d(np.asarray(points_lps, float)) - self.center_lps
        rows, cols = self.shape
        return np.stack(
            [
                offset @ self.right_lps / self.pixel_mm + (cols - 1) / 2.0,
                offset @ self.down_lps / self.pixel_mm + (rows - 1) / 2.0,
            ],
            axis=1,
        )

    def distance_mm(self, points_lps: np.ndarray) -> np.ndarray:
        """(N,) signed distance of points from the plane, mm."""
        return (np.atleast_2d(np.asarray(points_lps, float)) - self.center_lps) @ self.normal_lps


def plane_grid(
    center_lps,
    normal_lps,
    preferred_down_lps,
    preferred_right_lps,
    field_mm: tuple[float, float],
    pixel_mm: float = DEFAULT_PIXEL_MM,
) -> PlaneGrid:
    """Grid on the plane through ``center_lps`` with the given normal.

    "Down" is the in-plane direction closest to ``preferred_down_lps``; "right" is perpendicular
    to it in the plane, on the side of ``preferred_right_lps``.

    Parameters
    ----------
    field_mm : (height, width)
        Field of view in mm.
    """
    normal = _unit(normal_lps, "normal_lps")
    down = np.asarray(preferred_down_lps, float)
    down = down - (down @ normal) * normal
    if np.linalg.norm(down) < 1e-6:
        raise GeometryError("preferred_down_lps is parallel to the plane normal")
    down /= np.linalg.norm(down)
    right = np.cross(down, normal)
    if right @ np.asarray(preferred_right_lps, float) < 0:
        right = -right
    rows = max(2, int(round(field_mm[0] / pixel_mm)))
    cols = max(2, int(round(field_mm[1] / pixel_mm)))
    return PlaneGrid(np.asarray(center_lps, float).reshape(3), right, down, pixel_mm, (rows, cols))


def _unit(vector, name: str) -> np.ndarray:
    vector = np.asarray(vector, float).reshape(3)
    norm = np.linalg.norm(vector)
    if norm < 1e-12:
        raise GeometryError(f"{name} must be a non-zero vector")
    return vector / norm


def reformat(volume: Volume, grid: PlaneGrid, order: int = 1, fill_value: float = OUTSIDE_HU):
    """Resample a volume on a plane grid: (rows, cols) array (trilinear by default).

    ``order=0`` (masks, label maps) looks the nearest voxel up directly, in the volume's own
    dtype, without converting the whole volume to float.
    """
    if order == 0:
        return _nearest(volume, grid.points_lps(), fill_value)
    return volume.sample(grid.points_lps(), order=order, fill_value=fill_value)


def _nearest(volume: Volume, points_lps: np.ndarray, fill_value) -> np.ndarray:
    """Value of the voxel containing each (..., 3) point; ``fill_value`` outside the grid."""
    ijk = np.rint(volume.lps_to_index(points_lps.reshape(-1, 3))).astype(np.intp)
    inside = np.all((ijk >= 0) & (ijk < np.asarray(volume.shape_ijk)), axis=1)
    values = np.full(
        len(ijk), fill_value, dtype=np.result_type(volume.array.dtype, type(fill_value))
    )
    values[inside] = volume.array[ijk[inside, 2], ijk[inside, 1], ijk[inside, 0]]
    return values.reshape(points_lps.shape[:-1])


@dataclass(frozen=True, eq=False)
class CTView:
    """One reformatted CT picture with the plan drawn on it."""

    name: str
    grid: PlaneGrid
    image_hu: np.ndarray
    needle: NeedlePath
    structures: Structures = field(default_factory=Structures)
    window_hu: tuple[float, float] = BONE_WINDOW_HU
    structure_images: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "CT"  # what the picture shows: "CT", or "Pseudo-CT" made from an MRI

    def figure(self):
        return draw_ct_view(self)

    def rgb(self) -> np.ndarray:
        return figure_to_rgb(self.figure())

    def save(self, path: str | Path) -> Path:
        return save_png(self.figure(), path)


def ct_view(
    name: str,
    volume: Volume,
    grid: PlaneGrid,
    needle: NeedlePath,
    structures: Structures | None = None,
    window_hu: tuple[float, float] = BONE_WINDOW_HU,
) -> CTView:
    """Reformat the CT and every outlined structure on one grid."""
    structures = structures or Structures()
    sampled = {
        key: reformat(mask, grid, order=0, fill_value=0)
        for key, mask in structures.outlines.items()
    }
    if structures.foramina is not None:
        sampled["foramina"] = reformat(structures.foramina, grid, order=0, fill_value=0)
    return CTView(name, grid, reformat(volume, grid), needle, structures, window_hu, sampled,
                  picture_source(volume))


#: How a pseudo-CT made from an MRI is described (``planner.mri.anatomy.pseudo_ct_from_t1``).
PSEUDO_CT_DESCRIPTION = "pseudo-ct"


def picture_source(volume: Volume) -> str:
    """``"Pseudo-CT"`` for a pseudo-CT made from an MRI (a plan on an MRI alone), else ``"CT"``:
    the picture's title must not call an MRI a CT."""
    description = (volume.info.series_description or "").lower()
    return "Pseudo-CT" if description.startswith(PSEUDO_CT_DESCRIPTION) else "CT"


# ------------------------------------------------------------------ the standard set
def _lateral_normal(structures: Structures | None) -> np.ndarray:
    normal = None if structures is None else structures.midsagittal_normal_lps
    normal = _LEFT if normal is None else _unit(normal, "midsagittal_normal_lps")
    return normal if normal @ _LEFT >= 0 else -normal


def target_slices(volume, needle, structures=None, pixel_mm=DEFAULT_PIXEL_MM) -> list[CTView]:
    """Axial, coronal and sagittal slices through the target (patient axes, any storage)."""
    target = needle.target_lps
    square = (SLICE_FIELD_MM, SLICE_FIELD_MM)
    planes = [
        ("axial", [0, 0, 1], _POSTERIOR, _LEFT),
        ("coronal", [0, 1, 0], _INFERIOR, _LEFT),
        ("sagittal", [1, 0, 0], _INFERIOR, _POSTERIOR),
    ]
    return [
        ct_view(
            f"{name} through target",
            volume,
            plane_grid(target, normal, down, right, square, pixel_mm),
            needle,
            structures,
        )
        for name, normal, down, right in planes
    ]


def needle_plane_views(volume, needle, structures=None, pixel_mm=DEFAULT_PIXEL_MM):
    """Oblique reformats in the two planes that contain the needle.

    * ``needle sagittal``: the plane of the needle perpendicular to the mid-sagittal plane's
      normal (the needle against the anterior cortex and the canal);
    * ``needle coronal``: the plane of the needle and the mid-sagittal normal (the needle
      between the left and right foramina).
    """
    axis = needle.direction_lps
    lateral = _lateral_normal(structures)
    middle = (needle.entry_lps + needle.target_lps) / 2.0
    # Short needles (bone path only) still get the whole sacral context around them.
    length = max(needle.length_mm + 2 * NEEDLE_PLANE_MARGIN_MM, SLICE_FIELD_MM)
    views = []
    sagittal_normal = lateral - (lateral @ axis) * axis
    if np.linalg.norm(sagittal_normal) > 1e-6:
        grid = plane_grid(
            middle, sagittal_normal, _INFERIOR, _POSTERIOR, (length, length), pixel_mm
        )
        views.append(ct_view("needle plane (sagittal oblique)", volume, grid, needle, structures))
    coronal_normal = np.cross(axis, lateral)
    if np.linalg.norm(coronal_normal) > 1e-6:
        grid = plane_grid(
            middle, coronal_normal, _INFERIOR, _LEFT, (length, SLICE_FIELD_MM), pixel_mm
        )
        views.append(ct_view("needle plane (coronal oblique)", volume, grid, needle, structures))
    return views


def needle_cross_sections(volume, needle, structures=None, pixel_mm=DEFAULT_PIXEL_MM):
    """Sections perpendicular to the needle at the canal crossing (if known) and at the target."""
    field_mm = (CROSS_SECTION_FIELD_MM, CROSS_SECTION_FIELD_MM)
    # Small fields get finer pixels so the picture is as large as the others.
    pixel_mm = min(pixel_mm, CROSS_SECTION_FIELD_MM / MIN_PICTURE_PX)
    centres = []
    crossing = [p for p in (needle.canal_entry_lps, needle.canal_exit_lps) if p is not None]
    if crossing:
        centres.append(("cross-section at canal crossing", np.mean(crossing, axis=0)))
    centres.append(("cross-section at target", needle.target_lps))
    return [
        ct_view(
            name,
            volume,
            plane_grid(centre, needle.direction_lps, _POSTERIOR, _LEFT, field_mm, pixel_mm),
            needle,
            structures,
        )
        for name, centre in centres
    ]


def plan_ct_views(volume, needle, structures=None, pixel_mm=DEFAULT_PIXEL_MM) -> list[CTView]:
    """Every CT picture of a plan: target slices, needle planes, needle cross-sections."""
    return (
        target_slices(volume, needle, structures, pixel_mm)
        + needle_plane_views(volume, needle, structures, pixel_mm)
        + needle_cross_sections(volume, needle, structures, pixel_mm)
    )


# ------------------------------------------------------------------ drawing
def draw_ct_view(view: CTView):
    """Figure of a CT view: bone window, outlines, needle, points, letters and scale."""
    width, level = view.window_hu
    grid = view.grid
    title = f"{view.source} {view.name}   (W {width:g} / L {level:g})"
    legend = legend_entries(view)
    figure, ax = image_figure(view.image_hu, level - width / 2, level + width / 2, title,
                              footer_px=legend_band_px(legend, grid.shape[1]))
    for key, image in view.structure_images.items():
        color = COLORS.get(key, COLORS["outline"])
        if key == "foramina":
            for label in [int(v) for v in np.unique(image) if v > 0]:
                _contour(ax, image == label, color)
        else:
            _contour(ax, image > 0.5, color)
    _draw_cortex(ax, view)
    _draw_needle(ax, view)
    draw_orientation(ax, grid.right_lps, grid.down_lps, grid.shape)
    draw_scale_bar(ax, grid.shape, 1.0 / grid.pixel_mm)
    draw_legend(figure, legend)
    return figure


#: Names of the outlined structures in a CT view's key.
LEGEND_NAMES = {
    "sacrum": "sacrum",
    "canal": "sacral canal",
    "foramina": "anterior foramina",
    "lesion": "lesion",
}


def _in_plane(view: CTView, point_lps) -> bool:
    """Whether a needle point is drawn on this view (within the needle radius + slab)."""
    radius_mm = view.needle.outer_diameter_mm / 2.0
    return point_lps is not None and (
        abs(view.grid.distance_mm(point_lps)[0]) <= radius_mm + IN_PLANE_SLAB_MM
    )


def legend_entries(view: CTView) -> list[tuple[str, dict]]:
    """(label, line style) of every kind of overlay drawn on this CT view, for its key."""
    def marker(color, symbol):
        return dict(color=color, marker=symbol, linestyle="none", markersize=5,
                    markeredgecolor="black", markeredgewidth=0.5)

    needle = view.needle
    entries = [("needle", dict(color=COLORS["needle"], linewidth=2.5))]
    if _in_plane(view, needle.entry_lps):
        label = "skin entry" if needle.entry_is_skin else "first known point"
        entries.append((label, marker(COLORS["entry"], "o")))
    if _in_plane(view, needle.canal_entry_lps) or _in_plane(view, needle.canal_exit_lps):
        entries.append(("canal walls crossed", marker(COLORS["canal_point"], "s")))
    if _in_plane(view, needle.target_lps):
        entries.append(("target", marker(COLORS["target"], "X")))
    for key, image in view.structure_images.items():
        if np.any(image > 0.5) and not np.all(image > 0.5):
            entries.append((LEGEND_NAMES.get(key, key),
                            dict(color=COLORS.get(key, COLORS["outline"]), linewidth=1.0)))
    line = view.structures.anterior_cortex_lps
    if line is not None and len(line) >= 2:
        near = np.abs(view.grid.distance_mm(line)) <= IN_PLANE_SLAB_MM + 1.0
        if near.sum() >= 2:
            entries.append(("anterior cortex", marker(COLORS["anterior_cortex"], ".")))
    return entries


def _contour(ax, mask: np.ndarray, color: str) -> None:
    if mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=[color], linewidths=1.0)


def _draw_cortex(ax, view: CTView) -> None:
    line = view.structures.anterior_cortex_lps
    if line is None or len(line) < 2:
        return
    near = np.abs(view.grid.distance_mm(line)) <= IN_PLANE_SLAB_MM + 1.0
    if near.sum() >= 2:
        pixels = view.grid.to_pixels(line[near])
        ax.plot(pixels[:, 0], pixels[:, 1], ".", color=COLORS["anterior_cortex"], markersize=2)


def _draw_needle(ax, view: CTView) -> None:
    needle = view.needle
    grid = view.grid
    radius_mm = needle.outer_diameter_mm / 2.0
    _, axis_points = needle.axis_points()
    distance = grid.distance_mm(axis_points)
    pixels = grid.to_pixels(axis_points)
    width_pt = max(1.0, needle.outer_diameter_mm / grid.pixel_mm * 72.0 / 100.0)
    parallel = abs(needle.direction_lps @ grid.normal_lps) < 0.99
    if parallel:
        ax.plot(
            pixels[:, 0],
            pixels[:, 1],
            color=COLORS["needle"],
            linewidth=0.8,
            linestyle="--",
            alpha=0.8,
        )
        in_plane = np.where(np.abs(distance) <= radius_mm + IN_PLANE_SLAB_MM, pixels[:, 1], np.nan)
        ax.plot(
            pixels[:, 0],
            in_plane,
            color=COLORS["needle"],
            linewidth=width_pt,
            alpha=0.5,
            solid_capstyle="butt",
        )
    hit = _plane_hit(needle, grid)
    if hit is not None and abs(needle.direction_lps @ grid.normal_lps) > STEEP_CROSSING_COS:
        # The needle pierces the plane steeply: its outer diameter as a circle around the axis.
        centre = grid.to_pixels(hit)[0]
        angles = np.linspace(0, 2 * np.pi, 49)
        radius_px = radius_mm / grid.pixel_mm
        ax.plot(
            centre[0] + radius_px * np.cos(angles),
            centre[1] + radius_px * np.sin(angles),
            color=COLORS["needle"],
            linewidth=1.5,
        )
    for point, color, marker in (
        (needle.entry_lps, COLORS["entry"], "o"),
        (needle.canal_entry_lps, COLORS["canal_point"], "s"),
        (needle.canal_exit_lps, COLORS["canal_point"], "s"),
        (needle.target_lps, COLORS["target"], "X"),
    ):
        if point is None or abs(grid.distance_mm(point)[0]) > radius_mm + IN_PLANE_SLAB_MM:
            continue
        u, v = grid.to_pixels(point)[0]
        ax.plot(
            u,
            v,
            marker=marker,
            color=color,
            markersize=6,
            markeredgecolor="black",
            markeredgewidth=0.5,
        )


def _plane_hit(needle: NeedlePath, grid: PlaneGrid):
    """Where the needle segment crosses the plane (LPS), or None if it does not."""
    start, end = grid.distance_mm(np.array([needle.entry_lps, needle.target_lps]))
    if start == end or np.sign(start) == np.sign(end) and min(abs(start), abs(end)) > 1e-6:
        return None
    fraction = start / (start - end)
    return needle.entry_lps + fraction * (needle.target_lps - needle.entry_lps)


__all__ = [
    "BONE_WINDOW_HU",
    "CTView",
    "PlaneGrid",
    "ct_view",
    "needle_cross_sections",
    "needle_plane_views",
    "plan_ct_views",
    "plane_grid",
    "reformat",
    "target_slices",
]
