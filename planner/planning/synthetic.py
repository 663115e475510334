"""Hand-built synthetic sacra for testing the planner where the answer is known.

Not a phantom of the whole pelvis (that is :mod:`planner.phantom`): a sacrum described
analytically in the mid-sagittal plane, voxelised on any grid, with its exact
:class:`SacralAnatomy`. The anterior surface is a circular arc (radius ``radius_mm``, centre
anterior: concave forwards); the bodies lie behind it, the canal behind the bodies, the laminae
behind the canal down to the hiatus; the foramina are cylinders lateral to the bodies at the
junctions between levels. Soft tissue fills the half-space in front of a flat posterior skin.

Variants (keyword ``extra``) add what the hard-constraint tests need: a bone plate between the
sacrum and the skin (``"plate"``), a midline foramen in front of the target (``"midline_foramen"``),
S3 relabelled down to the tip (``"s3_to_tip"``), and no soft tissue (``"bone_only"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.anatomy.model import (
    FORAMEN_LABELS,
    LEVEL_LABELS,
    LEVEL_NAMES,
    Confidence,
    Foramen,
    Hiatus,
    Plane,
    SacralAnatomy,
)
from planner.volume import Volume

BONE_HU = 400.0
SOFT_TISSUE_HU = 40.0
AIR_HU = -1000.0
FLUID_HU = 10.0


@dataclass(frozen=True)
class SyntheticSacrum:
    """Shape parameters (mm, degrees). The arc's centre sits at (y, z) = (-radius, 0).

    Polar angles are measured in the sagittal plane from posterior (+y) towards superior (+z),
    relative to ``tilt_deg``, the absolute polar angle of the middle of the arc (pelvic tilt:
    with 0 the middle of the sacrum would be vertical).
    """

    tilt_deg: float = 35.0
    radius_mm: float = 70.0  # anterior surface radius (smaller = more kyphotic)
    arc_half_deg: float = 38.0  # the sacrum spans +/- this polar angle
    body_depth_top_mm: float = 26.0  # AP depth of S1 ... tapering linearly to the tip
    body_depth_tip_mm: float = 12.0
    body_width_top_mm: float = 44.0
    body_width_tip_mm: float = 18.0
    canal_depth_mm: float = 7.0
    canal_width_mm: float = 16.0
    lamina_mm: float = 5.0
    hiatus_deg: float = -16.0  # laminae stop below this polar angle (the hiatus apex)
    foramen_radius_top_mm: float = 4.5
    foramen_radius_tip_mm: float = 2.5
    total_width_mm: float = 90.0  # alae
    skin_gap_mm: float = 20.0  # soft tissue behind the hiatus apex (flat skin, normal +y)

    def polar(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rho, theta_deg) of points in the sagittal polar frame of the arc."""
        y = points_lps[..., 1] + self.radius_mm
        z = points_lps[..., 2]
        return np.hypot(y, z), np.degrees(np.arctan2(z, y)) - self.tilt_deg

    def point(self, rho: float, theta_deg: float, x: float = 0.0) -> np.ndarray:
        t = np.radians(theta_deg + self.tilt_deg)
        return np.array([x, rho * np.cos(t) - self.radius_mm, rho * np.sin(t)])

    def fraction(self, theta_deg):
        """0 at the top (S1 end), 1 at the tip."""
        return (self.arc_half_deg - theta_deg) / (2 * self.arc_half_deg)

    def depth(self, theta_deg):
        f = self.fraction(theta_deg)
        return self.body_depth_top_mm + f * (self.body_depth_tip_mm - self.body_depth_top_mm)

    def width(self, theta_deg):
        f = self.fraction(theta_deg)
        return self.body_width_top_mm + f * (self.body_width_tip_mm - self.body_width_top_mm)

    def level_bounds(self) -> list[tuple[float, float]]:
        """(top, bottom) polar angle of S1..S5."""
        edges = np.linspace(self.arc_half_deg, -self.arc_half_deg, len(LEVEL_NAMES) + 1)
        return list(zip(edges[:-1], edges[1:], strict=True))

    def level_center(self, name: str) -> np.ndarray:
        top, bottom = self.level_bounds()[LEVEL_NAMES.index(name)]
        theta = 0.5 * (top + bottom)
        return self.point(self.radius_mm + 0.5 * self.depth(theta), theta)


@dataclass(frozen=True)
class SyntheticCase:
    ct: Volume
    anatomy: SacralAnatomy
    shape: SyntheticSacrum


def _grid(spacing_mm: float, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Volume:
    """An empty grid with the given direction covering the LPS box [lo, hi].

    The box is snapped to multiples of the spacing, so that grids with permuted or flipped
    axes share the same voxel centres.
    """
    lo = np.floor(np.asarray(lo) / spacing_mm) * spacing_mm
    hi = np.ceil(np.asarray(hi) / spacing_mm) * spacing_mm
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                        for c in (lo[2], hi[2])])
    index_mm = corners @ direction  # coordinates along the index axes
    start = index_mm.min(axis=0)
    shape_ijk = np.rint((index_mm.max(axis=0) - start) / spacing_mm).astype(int) + 1
    origin = direction @ start
    array = np.zeros(shape_ijk[::-1], np.float32)
    return Volume(array, origin, [spacing_mm] * 3, direction)


def synthetic_case(
    shape: SyntheticSacrum | None = None,
    spacing_mm: float = 1.5,
    direction=None,
    extra: tuple[str, ...] = (),
) -> SyntheticCase:
    """Voxelise the synthetic sacrum on a grid with ``direction`` and build its anatomy."""
    shape = shape or SyntheticSacrum()
    direction = np.eye(3) if direction is None else np.asarray(direction, float)
    back = shape.radius_mm + shape.body_depth_top_mm + shape.canal_depth_mm + shape.lamina_mm
    outline = np.array([shape.point(rho, theta) for rho in (shape.radius_mm, back)
                        for theta in np.linspace(-shape.arc_half_deg - 18, shape.arc_half_deg, 60)])
    apex = shape.point(back, shape.hiatus_deg)
    y_skin = apex[1] + shape.skin_gap_mm
    lo = np.array([-0.5 * shape.total_width_mm - 5, outline[:, 1].min() - 15,
                   outline[:, 2].min() - 70])
    hi = np.array([0.5 * shape.total_width_mm + 5, max(y_skin, outline[:, 1].max()) + 15,
                   outline[:, 2].max() + 10])
    grid = _grid(spacing_mm, direction, lo, hi)
    k, j, i = np.indices(grid.array.shape)
    points = grid.index_to_lps(np.stack([i, j, k], axis=-1).astype(float))
    labels = _label(shape, points, extra, y_skin)

    sacrum = labels["sacrum"]
    bone = sacrum | labels["coccyx"] | labels["plate"]
    ct_array = np.full(sacrum.shape, AIR_HU, np.float32)
    if "bone_only" in extra:
        ct_array[:] = 0.0
    else:
        ct_array[points[..., 1] <= y_skin] = SOFT_TISSUE_HU
        ct_array[labels["canal"] | (labels["foramina"] > 0)] = FLUID_HU
    ct_array[bone] = BONE_HU
    ct = grid.with_array(ct_array, modality="CT")
    anatomy = _anatomy(shape, grid, labels, "bone_only" not in extra)
    return SyntheticCase(ct, anatomy, shape)


def _label(shape: SyntheticSacrum, points: np.ndarray, extra, y_skin: float
           ) -> dict[str, np.ndarray]:
    rho, theta = shape.polar(points)
    x = points[..., 0]
    in_arc = np.abs(theta) <= shape.arc_half_deg
    depth = shape.depth(theta)
    front = rho >= shape.radius_mm
    body_back = shape.radius_mm + depth
    canal_back = body_back + shape.canal_depth_mm
    lamina_back = canal_back + shape.lamina_mm
    half_width = 0.5 * shape.width(theta)
    half_total = 0.5 * (shape.total_width_mm * (1 - shape.fraction(theta))
                        + shape.body_width_tip_mm * shape.fraction(theta))
    body = in_arc & front & (rho <= body_back) & (np.abs(x) <= half_width)
    canal = in_arc & (rho > body_back) & (rho <= canal_back) & (
        np.abs(x) <= 0.5 * shape.canal_width_mm)
    behind = in_arc & (rho > body_back) & (rho <= lamina_back) & (np.abs(x) <= half_total)
    behind &= (theta >= shape.hiatus_deg) | (np.abs(x) > 0.5 * shape.canal_width_mm)
    lateral = in_arc & front & (rho <= body_back) & (np.abs(x) <= half_total)
    bone = body | (behind & ~canal) | lateral

    foramina = np.zeros(rho.shape, np.uint8)
    bounds = shape.level_bounds()
    for index, level in enumerate(LEVEL_NAMES[:4]):
        junction = bounds[index][1]
        f = shape.fraction(junction)
        radius = shape.foramen_radius_top_mm + f * (
            shape.foramen_radius_tip_mm - shape.foramen_radius_top_mm)
        offset = 0.5 * shape.width(junction) + radius
        arc_offset = np.radians(theta - junction) * rho
        for side, sign in (("L", 1.0), ("R", -1.0)):
            inside = (np.hypot(x - sign * offset, arc_offset) <= radius) & (
                rho >= shape.radius_mm - 1.0) & (rho <= canal_back)
            foramina[inside & (foramina == 0)] = FORAMEN_LABELS[(level, side)]
    if "midline_foramen" in extra:
        tilt = np.radians(shape.tilt_deg)
        tangent = np.array([0.0, -np.sin(tilt), np.cos(tilt)])  # the edge at the S3 centre
        center = shape.level_center("S3") - 12.0 * tangent
        blob = np.linalg.norm(points - center, axis=-1) <= 8.0
        foramina[blob] = FORAMEN_LABELS[("S3", "L")]
    canal &= foramina == 0
    sacrum = bone & ~canal & (foramina == 0)

    levels = np.zeros(rho.shape, np.uint8)
    for name, (top, bottom) in zip(LEVEL_NAMES, bounds, strict=True):
        if "s3_to_tip" in extra and name in ("S4", "S5"):
            name = "S3"
        levels[body & (theta <= top) & (theta > bottom) & (foramina == 0)] = LEVEL_LABELS[name]

    coccyx = (theta < -shape.arc_half_deg - 3) & (theta > -shape.arc_half_deg - 18) & (
        rho >= shape.radius_mm) & (rho <= shape.radius_mm + 10) & (np.abs(x) <= 8)
    plate = np.zeros_like(coccyx)
    if "plate" in extra:
        # A bone plate across the soft tissue behind the hiatus, below the target.
        middle = y_skin - 0.5 * shape.skin_gap_mm
        plate = (np.abs(points[..., 1] - middle) <= 2.0) & (
            points[..., 2] < shape.level_center("S3")[2])
    return {"sacrum": sacrum, "canal": canal, "foramina": foramina, "levels": levels,
            "coccyx": coccyx, "plate": plate}


def _anatomy(shape: SyntheticSacrum, grid: Volume, labels: dict, has_soft_tissue: bool
             ) -> SacralAnatomy:
    seg = grid.with_array(np.zeros(grid.array.shape, np.uint8), modality="SEG")
    thetas = np.linspace(shape.arc_half_deg, -shape.arc_half_deg, 97)
    curve = np.array([shape.point(shape.radius_mm, t) for t in thetas])
    centers = {name: shape.level_center(name) for name in LEVEL_NAMES}
    foramen_list = []
    bounds = shape.level_bounds()
    for index, level in enumerate(LEVEL_NAMES[:4]):
        junction = bounds[index][1]
        for side, sign in (("L", 1.0), ("R", -1.0)):
            offset = 0.5 * shape.width(junction) + 3.5
            center = shape.point(shape.radius_mm, junction, sign * offset)
            foramen_list.append(Foramen(level, side, True, center, FORAMEN_LABELS[(level, side)]))
    back = shape.radius_mm + shape.depth(shape.hiatus_deg) + shape.canal_depth_mm
    hiatus = Hiatus(shape.point(back + shape.lamina_mm, shape.hiatus_deg),
                    shape.point(back, -shape.arc_half_deg + 3))
    return SacralAnatomy(
        sacrum=seg.with_array(labels["sacrum"]),
        canal=seg.with_array(labels["canal"]),
        foramina=seg.with_array(labels["foramina"]),
        levels=seg.with_array(labels["levels"]),
        level_centers_lps=centers,
        midsagittal=Plane(np.zeros(3), np.array([1.0, 0.0, 0.0])),
        anterior_cortex_lps=curve,
        hiatus=hiatus,
        foramen_list=foramen_list,
        confidence={"sacrum": Confidence(1.0)},
        has_soft_tissue=has_soft_tissue,
    )
