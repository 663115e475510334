"""Fluoroscopy views of a plan: true lateral, AP perpendicular to the needle, bull's-eye,
and lateral checkpoints, each with the C-arm angles that reproduce it.

Every overlay is projected with the same camera matrix as the DRR (:mod:`planner.fluoro.carm`).
Beam choices (all with the isocentre at the target):

* **lateral**: beam along the normal of the fitted mid-sagittal plane (patient x when no plane is
  given), detector on the patient's left: a true lateral of the sacrum;
* **AP**: beam perpendicular to both the needle and the mid-sagittal normal, detector over the
  patient's back; the needle is seen at its full length, undistorted by foreshortening;
* **bull's-eye**: beam along the needle, detector over the back (the hub end); the needle is a dot.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import contourpy
import numpy as np
from matplotlib.collections import LineCollection
from scipy import ndimage

from planner.errors import GeometryError
from planner.fluoro.carm import Camera, CArm, CArmPose, camera_from_beam
from planner.fluoro.drr import BACKGROUND_SIGMA_PX, radiograph, render_drr, suggested_min_hu
from planner.fluoro.needle import Milestone, NeedlePath
from planner.render.annotate import (
    draw_legend,
    draw_orientation,
    draw_scale_bar,
    figure_to_rgb,
    image_figure,
    legend_band_px,
    save_png,
)
from planner.render.structures import Structures, surface_points
from planner.volume import Volume

#: Patient left and posterior in LPS.
_LEFT_LPS = np.array([1.0, 0.0, 0.0])
_POSTERIOR_LPS = np.array([0.0, 1.0, 0.0])
#: The AP beam is undefined when the needle is within this angle of the mid-sagittal normal.
MIN_NEEDLE_TO_NORMAL_DEG = 10.0

#: The radiograph display window is set on the line integrals inside this structure's outline.
WINDOW_STRUCTURE = "sacrum"
#: On a scan without skin, the approach line is drawn this far back from the first known point
#: (mm): about the soft tissue over the hiatus, so the physician sees where the needle comes from.
UNKNOWN_SKIN_APPROACH_MM = 50.0
#: Caption lines are wrapped at this many characters to fit a 512-pixel-wide picture.
TITLE_WRAP_CHARS = 62

COLORS = {
    "needle": "#00e5ff",
    "needle_ahead": "#00e5ff",
    "entry": "#69f0ae",
    "target": "#ff5252",
    "canal": "#ffd740",
    "foramina": "#ea80fc",
    "anterior_cortex": "#ff6e40",
    "outline": "#82b1ff",
    "lesion": "#ff1744",
    "body_entry": "#ffffff",
}
#: A view tilted more than this (deg, cranial or caudal) may be out of a C-arm's reach around a
#: prone patient on the table (the detector meets the table or the legs); its caption says so.
STEEP_TILT_DEG = 45.0
STEEP_TILT_NOTE = "steep tilt: check that the C-arm can reach it around the patient"


def is_steep_tilt(secondary_deg: float) -> bool:
    """Whether a cranio-caudal tilt (deg) is steeper than :data:`STEEP_TILT_DEG`."""
    return abs(float(secondary_deg)) > STEEP_TILT_DEG


#: Names of the outlined structures in a view's key.
OUTLINE_NAMES = {"canal": "sacral canal", "sacrum": "sacrum", "lesion": "lesion"}


@dataclass(frozen=True, eq=False)
class FluoroView:
    """One simulated fluoroscopy image with its C-arm setting and the plan drawn on.

    Attributes
    ----------
    name : str
        ``"lateral"``, ``"ap"``, ``"bullseye"`` or ``"checkpoint N"``.
    camera : Camera
        Geometry of the image; ``camera.pose`` holds the C-arm angles.
    line_integral : (rows, cols) float32 ndarray
        DRR line integrals (see :func:`planner.fluoro.drr.render_drr`).
    needle : NeedlePath
    structures : Structures
    milestone : Milestone, optional
        For a checkpoint: the needle is drawn from the entry up to this point.
    soft_tissue : bool
        The DRR holds the body's soft tissue (a full CT, not a bone-only scan): its display
        flattens the slowly varying body thickness, as a C-arm's image processing does.
    """

    name: str
    camera: Camera
    line_integral: np.ndarray
    needle: NeedlePath
    structures: Structures = field(default_factory=Structures)
    milestone: Milestone | None = None
    soft_tissue: bool = False

    @property
    def pose(self) -> CArmPose:
        return self.camera.pose

    def summary(self) -> dict:
        """Plain-JSON description: angles, prone set-up words and what the view is for."""
        result = {"view": self.name, **self.pose.as_dict()}
        if self.milestone is not None:
            result["milestone"] = self.milestone.name
            result["remaining_mm"] = round(self.milestone.remaining_mm, 1)
        return result

    def figure(self):
        """A matplotlib Figure of the view with every overlay, letters and scale bar."""
        return draw_view(self)

    def rgb(self) -> np.ndarray:
        """The rendered figure as an ``(H, W, 3)`` uint8 array."""
        return figure_to_rgb(self.figure())

    def save(self, path: str | Path) -> Path:
        """Write the figure as a PNG."""
        return save_png(self.figure(), path)


# ------------------------------------------------------------------ beams
def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, float).reshape(3)
    return vector / np.linalg.norm(vector)


def lateral_beam(midsagittal_normal_lps: np.ndarray | None = None) -> np.ndarray:
    """Beam along the mid-sagittal normal, detector on the patient's left."""
    normal = _LEFT_LPS if midsagittal_normal_lps is None else _unit(midsagittal_normal_lps)
    return normal if normal @ _LEFT_LPS >= 0 else -normal


def ap_beam(needle: NeedlePath, midsagittal_normal_lps: np.ndarray | None = None) -> np.ndarray:
    """Beam perpendicular to the needle and to the mid-sagittal normal, detector posterior.

    Raises
    ------
    GeometryError
        If the needle runs within :data:`MIN_NEEDLE_TO_NORMAL_DEG` of the mid-sagittal normal.
    """
    normal = lateral_beam(midsagittal_normal_lps)
    beam = np.cross(normal, needle.direction_lps)
    sine = np.linalg.norm(beam)
    if sine < np.sin(np.radians(MIN_NEEDLE_TO_NORMAL_DEG)):
        raise GeometryError(
            "the needle runs almost left-right (along the mid-sagittal normal); no AP view "
            "perpendicular to it exists"
        )
    beam /= sine
    return beam if beam @ _POSTERIOR_LPS >= 0 else -beam


def bullseye_beam(needle: NeedlePath) -> np.ndarray:
    """Beam along the needle axis, detector on the posterior (hub) side."""
    beam = needle.direction_lps.copy()
    return beam if beam @ _POSTERIOR_LPS >= 0 else -beam


# ------------------------------------------------------------------ views
def render_view(
    name: str,
    volume: Volume,
    needle: NeedlePath,
    beam_lps: np.ndarray,
    structures: Structures | None = None,
    carm: CArm | None = None,
    min_hu: float | str | None = "auto",
) -> FluoroView:
    """DRR for a beam direction with the isocentre at the target, packaged as a view.

    ``min_hu="auto"`` drops the 0-HU filler of bone-only scans (:func:`suggested_min_hu`);
    pass None to render every voxel, or a number to keep only voxels at or above it.
    """
    camera = camera_from_beam(needle.target_lps, beam_lps, carm)
    if min_hu == "auto":
        min_hu = suggested_min_hu(volume)
    image = render_drr(volume, camera, min_hu=min_hu)
    return FluoroView(
        name, camera, image, needle, structures or Structures(), soft_tissue=min_hu is None
    )


def lateral_view(volume, needle, structures=None, carm=None, min_hu="auto") -> FluoroView:
    """True lateral of the sacrum (beam along the mid-sagittal normal)."""
    structures = structures or Structures()
    beam = lateral_beam(structures.midsagittal_normal_lps)
    return render_view("lateral", volume, needle, beam, structures, carm, min_hu)


def ap_view(volume, needle, structures=None, carm=None, min_hu="auto") -> FluoroView:
    """AP view tilted cranio-caudally so that the beam is perpendicular to the needle."""
    structures = structures or Structures()
    beam = ap_beam(needle, structures.midsagittal_normal_lps)
    return render_view("ap", volume, needle, beam, structures, carm, min_hu)


def bullseye_view(volume, needle, structures=None, carm=None, min_hu="auto") -> FluoroView:
    """Down-the-needle view: the needle projects to a dot."""
    return render_view("bullseye", volume, needle, bullseye_beam(needle), structures, carm, min_hu)


def plan_views(volume, needle, structures=None, carm=None, min_hu="auto") -> dict[str, FluoroView]:
    """The three views the physician sets up: ``{"lateral", "ap", "bullseye"}``."""
    return {
        "lateral": lateral_view(volume, needle, structures, carm, min_hu),
        "ap": ap_view(volume, needle, structures, carm, min_hu),
        "bullseye": bullseye_view(volume, needle, structures, carm, min_hu),
    }


def checkpoint_views(
    volume: Volume | None,
    needle: NeedlePath,
    structures: Structures | None = None,
    carm: CArm | None = None,
    lateral: FluoroView | None = None,
    min_hu: float | str | None = "auto",
) -> list[FluoroView]:
    """Lateral views with the needle advanced to each milestone (one DRR, reused).

    Pass an existing lateral view to reuse its DRR (``volume`` may then be None).
    """
    if lateral is None:
        if volume is None:
            raise GeometryError("checkpoint_views needs a volume or an existing lateral view")
        lateral = lateral_view(volume, needle, structures, carm, min_hu)
    return [
        FluoroView(
            f"checkpoint {number}",
            lateral.camera,
            lateral.line_integral,
            lateral.needle,
            lateral.structures,
            milestone,
            lateral.soft_tissue,
        )
        for number, milestone in enumerate(needle.milestones(), start=1)
    ]


# ------------------------------------------------------------------ drawing
def projected_silhouette(mask: Volume, camera: Camera, label: int | None = None) -> np.ndarray:
    """Detector-sized boolean image of where a mask projects (filled silhouette).

    Parameters
    ----------
    mask : Volume
        Boolean mask, or label map with ``label``.
    """
    selected = mask.array == label if label is not None else mask.array > 0
    points = surface_points(selected, mask)
    return silhouette_from_points(points, float(mask.spacing_xyz.max()), camera)


def silhouette_from_points(points_lps: np.ndarray, voxel_mm: float, camera: Camera) -> np.ndarray:
    """Filled silhouette of a structure given the centres of its surface voxels.

    The points are projected with the camera matrix; the gaps between neighbours are closed by
    a dilation of about one projected voxel, and the enclosed area filled.
    """
    rows, cols = camera.shape
    silhouette = np.zeros((rows, cols), bool)
    if len(points_lps) == 0:
        return silhouette
    pixels = np.rint(camera.project(points_lps)).astype(int)
    keep = (pixels[:, 0] >= 0) & (pixels[:, 0] < cols) & (pixels[:, 1] >= 0) & (pixels[:, 1] < rows)
    silhouette[pixels[keep, 1], pixels[keep, 0]] = True
    magnification = float(camera.magnification_at(points_lps.mean(axis=0))[0])
    voxel_px = voxel_mm * magnification / min(camera.carm.pixel_spacing_mm)
    radius = max(1, int(np.ceil(voxel_px / 2)))
    silhouette = ndimage.binary_dilation(silhouette, iterations=radius)
    return ndimage.binary_fill_holes(silhouette)


def _needle_width_points(view: FluoroView) -> float:
    """Line width (points) of the needle's outer diameter as projected at the target."""
    magnification = float(view.camera.magnification_at(view.needle.target_lps)[0])
    pitch_mm = min(view.camera.carm.pixel_spacing_mm)
    width_px = view.needle.outer_diameter_mm * magnification / pitch_mm
    return max(1.0, width_px * 72.0 / 100.0)


def draw_view(view: FluoroView):
    """Figure of a view: radiograph, outlines, needle, points, letters, scale, caption."""
    camera = view.camera
    picture = radiograph(
        view.line_integral,
        region=_window_region(view),
        background_sigma_px=BACKGROUND_SIGMA_PX if view.soft_tissue else None,
    )
    description = textwrap.fill(view.pose.prone_description(), TITLE_WRAP_CHARS)
    title = f"{view.name.upper()}   {view.pose.label()} (DICOM)\n{description}"
    if is_steep_tilt(view.pose.secondary_deg):
        title += f"\n{STEEP_TILT_NOTE}"
    legend = legend_entries(view)
    band_px = legend_band_px(legend, camera.shape[1])
    figure, ax = image_figure(picture, 0.0, 1.0, title, footer_px=band_px)
    _draw_structures(ax, view)
    _draw_needle(ax, view)
    draw_orientation(ax, camera.right_lps, camera.down_lps, camera.shape)
    draw_legend(figure, legend)
    pixels_per_mm = camera.pixels_per_mm_at_isocenter[1]
    draw_scale_bar(ax, camera.shape, pixels_per_mm, note="at isocentre (target)")
    if view.milestone is not None:
        ax.text(
            0.97 * camera.shape[1],
            0.05 * camera.shape[0],
            f"{view.milestone.name}\n{view.milestone.remaining_mm:.1f} mm to target",
            color="white",
            ha="right",
            va="top",
            fontsize=10,
            bbox=dict(facecolor="black", alpha=0.6, edgecolor="none"),
        )
    return figure


def _marker(color: str, marker: str) -> dict:
    return dict(color=color, marker=marker, linestyle="none", markersize=5,
                markeredgecolor="black", markeredgewidth=0.5)


def legend_entries(view: FluoroView) -> list[tuple[str, dict]]:
    """(label, line style) of every kind of overlay drawn on this view, for its key."""
    needle = view.needle
    entries = [("needle (outer diameter)", dict(color=COLORS["needle"], linewidth=2.5))]
    if view.milestone is not None:
        entries.append(("needle still to advance",
                        dict(color=COLORS["needle_ahead"], linewidth=1.0, linestyle=":")))
    if needle.canal_entry_lps is not None or needle.canal_exit_lps is not None:
        entries.append(("canal walls crossed", _marker(COLORS["canal"], "s")))
    if needle.body_entry_lps is not None:
        entries.append((f"{needle.target_level} body entry", _marker(COLORS["body_entry"], "D")))
    entries.append(("target", _marker(COLORS["target"], "X")))
    for name in view.structures.outlines:
        entries.append((OUTLINE_NAMES.get(name, name),
                        dict(color=COLORS.get(name, COLORS["outline"]), linewidth=1.0)))
    if any(surface.kind == "foramina" for surface in view.structures.surfaces):
        entries.append(("anterior foramina", dict(color=COLORS["foramina"], linewidth=1.0)))
    cortex = view.structures.anterior_cortex_lps
    if cortex is not None and len(cortex) > 1:
        entries.append(("anterior cortex", dict(color=COLORS["anterior_cortex"], linewidth=1.5,
                                                linestyle="--")))
    return entries


def _window_region(view: FluoroView) -> np.ndarray | None:
    """The projected sacrum (if outlined): the display window is tuned for it."""
    for surface in view.structures.surfaces:
        if surface.name == WINDOW_STRUCTURE:
            return _cached_silhouette(view.structures, surface, view.camera)
    return None


def _draw_structures(ax, view: FluoroView) -> None:
    structures = view.structures
    for surface in structures.surfaces:
        lines = _cached_outline(structures, surface, view.camera)
        if not lines:
            continue
        if surface.kind == "foramina":
            color, width = COLORS["foramina"], 1.0
        else:
            color, width = COLORS.get(surface.name, COLORS["outline"]), 0.8
        ax.add_collection(LineCollection(lines, colors=[color], linewidths=width))
    if structures.anterior_cortex_lps is not None and len(structures.anterior_cortex_lps) > 1:
        line = view.camera.project(structures.anterior_cortex_lps)
        ax.plot(
            line[:, 0], line[:, 1], color=COLORS["anterior_cortex"], linewidth=1.5, linestyle="--"
        )


def _cached_outline(structures: Structures, surface, camera: Camera) -> list[np.ndarray]:
    """Outline polylines (pixel ``(u, v)``) of a structure's silhouette, computed once."""
    cache = structures.silhouette_cache
    key = (id(camera), surface.name, "outline")
    cached = cache.get(key)
    if cached is not None and cached[0] is camera:
        return cached[1]
    lines = outline_polylines(_cached_silhouette(structures, surface, camera))
    cache[key] = (camera, lines)
    return lines


def outline_polylines(mask: np.ndarray) -> list[np.ndarray]:
    """Boundary of a 2D boolean mask as (N, 2) polylines in pixel ``(column, row)`` coordinates.

    Traced at the 0.5 level of the mask with contourpy, on the mask's bounding box only.
    """
    box = ndimage.find_objects(mask.astype(np.uint8))
    if not box or box[0] is None:
        return []
    rows = slice(max(0, box[0][0].start - 1), box[0][0].stop + 1)
    cols = slice(max(0, box[0][1].start - 1), box[0][1].stop + 1)
    crop = mask[rows, cols].astype(np.float64)
    lines = contourpy.contour_generator(z=crop).lines(0.5)
    return [line + [cols.start, rows.start] for line in lines if len(line) > 1]


def _cached_silhouette(structures: Structures, surface, camera: Camera) -> np.ndarray:
    """Silhouette of one surface for one camera, computed once (the checkpoints share a camera).

    The cache lives on the Structures object and keys on the camera's identity (the camera is
    kept with the entry so a reused ``id`` cannot alias).
    """
    cache = structures.silhouette_cache
    key = (id(camera), surface.name)
    cached = cache.get(key)
    if cached is not None and cached[0] is camera:
        return cached[1]
    silhouette = silhouette_from_points(surface.points_lps, surface.voxel_mm, camera)
    cache[key] = (camera, silhouette)
    return silhouette


def _draw_unknown_skin_approach(ax, view: FluoroView, entry_px: np.ndarray) -> None:
    """Dashed approach line behind the first known point: the skin is not in the scan."""
    needle = view.needle
    behind_lps = needle.entry_lps - UNKNOWN_SKIN_APPROACH_MM * needle.direction_lps
    behind = view.camera.project(behind_lps)[0]
    ax.plot(
        [behind[0], entry_px[0]],
        [behind[1], entry_px[1]],
        color=COLORS["needle"],
        linewidth=1.0,
        linestyle="--",
        alpha=0.8,
    )
    text = "skin not in scan"
    x, align = label_anchor(behind[0], view.camera.shape[1], 6.0, _text_px(text, 7))
    ax.text(x, behind[1] + 12, text, color=COLORS["needle"], fontsize=7,
            ha=align, clip_on=True)


def _text_px(text: str, fontsize_pt: float) -> float:
    """Rough width (image pixels at 100 dpi) of a label: 0.6 em per character."""
    return 0.6 * fontsize_pt * len(text) * 100.0 / 72.0


def label_anchor(u: float, width_px: int, gap_px: float, text_px: float) -> tuple[float, str]:
    """Where a label beside pixel column ``u`` starts, and its alignment: right of the point,
    or left of it when ``text_px`` of text would run off the image's right edge."""
    if u + gap_px + text_px > width_px:
        return u - gap_px, "right"
    return u + gap_px, "left"


def _draw_needle(ax, view: FluoroView) -> None:
    needle = view.needle
    camera = view.camera
    width = _needle_width_points(view)
    entry, target = camera.project(np.array([needle.entry_lps, needle.target_lps]))
    if np.linalg.norm(target - entry) < 1.0:
        # Down the needle: the shaft is a disc of its outer diameter.
        radius_px = width * 100.0 / 72.0 / 2.0
        circle = _circle(target, max(radius_px, 2.0))
        ax.plot(circle[:, 0], circle[:, 1], color=COLORS["needle"], linewidth=2)
        ax.plot(*target, marker="+", color=COLORS["target"], markersize=10)
        return
    tip_lps = needle.target_lps if view.milestone is None else view.milestone.point_lps
    tip = camera.project(tip_lps)[0]
    if view.milestone is not None:
        ax.plot(
            [tip[0], target[0]],
            [tip[1], target[1]],
            color=COLORS["needle_ahead"],
            linewidth=1.0,
            linestyle=":",
            alpha=0.9,
        )
    ax.plot(
        [entry[0], tip[0]],
        [entry[1], tip[1]],
        color=COLORS["needle"],
        linewidth=width,
        alpha=0.55,
        solid_capstyle="butt",
    )
    ax.plot([entry[0], tip[0]], [entry[1], tip[1]], color=COLORS["needle"], linewidth=0.8)
    if not needle.entry_is_skin:
        _draw_unknown_skin_approach(ax, view, entry)
    points = [
        (needle.entry_lps, COLORS["entry"], "o", "skin entry" if needle.entry_is_skin else "entry"),
        (needle.canal_entry_lps, COLORS["canal"], "s", None),
        (needle.canal_exit_lps, COLORS["canal"], "s", None),
        (needle.body_entry_lps, COLORS["body_entry"], "D", None),
        (needle.target_lps, COLORS["target"], "X", "target"),
    ]
    for point, color, marker, label in points:
        if point is None:
            continue
        u, v = camera.project(point)[0]
        ax.plot(
            u,
            v,
            marker=marker,
            color=color,
            markersize=6,
            markeredgecolor="black",
            markeredgewidth=0.5,
        )
        if label:
            x, align = label_anchor(u, camera.shape[1], 8.0, _text_px(label, 8))
            ax.text(x, v - 8, label, color=color, fontsize=8, ha=align, clip_on=True)


def _circle(center: np.ndarray, radius: float) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 49)
    return center + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


__all__ = [
    "FluoroView",
    "Structures",
    "ap_beam",
    "ap_view",
    "bullseye_beam",
    "bullseye_view",
    "checkpoint_views",
    "lateral_beam",
    "lateral_view",
    "plan_views",
    "projected_silhouette",
    "render_plan_views",
    "render_view",
]


def render_plan_views(volume: Volume, anatomy, plan, carm_config: dict | None = None,
                      lesion: Volume | None = None):
    """Pictures and fluoroscopy block of a plan (see :mod:`planner.fluoro.for_plan`)."""
    from planner.fluoro.for_plan import render_plan_views as render

    return render(volume, anatomy, plan, carm_config, lesion)
