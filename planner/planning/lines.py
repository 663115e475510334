"""Measure many straight needles at once along their sampled axes (vectorised over needles).

A needle is given by its tip (the target) and its unit direction ``d`` (skin -> target); its
axis is sampled at ``tip - s * d`` for ``s = 0, step, 2 step, ...`` (mm back from the tip).
The same code scores the search candidates, the safety-cone samples and the final plan, so the
numbers a plan reports are exactly what the search optimised.

Walking back from the tip: the needle is in the sacral bodies; it leaves them into the canal
(the anterior canal wall: the crossing), leaves the canal through the posterior wall, leaves the
bone envelope (the bone entry, seen from the skin), crosses soft tissue and leaves the body
outline (the skin entry).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.planning.geometry import FAR_MM, Fields
from planner.volume import Volume

#: CT value (HU) above which a voxel outside the sacrum is other bone (coccyx, ilia, L5).
OTHER_BONE_HU = 200.0
#: Only bone farther than this (mm) from the sacrum's envelope counts as other bone, so the
#: partial-volume rim of the sacrum itself is not mistaken for it.
OTHER_BONE_MARGIN_MM = 1.5
#: CT value (HU) below which a sample is outside the body (air); the body outline is above.
BODY_OUTLINE_HU = -300.0
#: Outside the bone, a line whose samples are within this of 0 HU crosses a zero-filled
#: (bone-only) volume, not soft tissue.
ZERO_FILL_HU = 1.0
#: Share of such samples (the rest are the partial-volume rims of bones on the way).
ZERO_FILL_SHARE = 0.9
#: Length (mm) of air the axis must cross to count as outside the body (skips small gas pockets).
AIR_RUN_MM = 3.0
#: Points around the axis, at the needle radius, checked for contact with other bone.
RING_POINTS = 6


class GridLines:
    """Continuous indices of the samples of n straight lines on one grid.

    The samples ``tip - s * d`` are linear in ``s``, so their (i, j, k) indices are computed
    from each line's tip and direction in index units, not point by point.
    """

    def __init__(self, grid: Volume, tips_lps: np.ndarray, dirs_lps: np.ndarray,
                 s_mm: np.ndarray) -> None:
        self.grid = grid
        self.dirs_ijk = (dirs_lps @ grid.direction) / grid.spacing_xyz  # index change per mm
        tip_ijk = grid.lps_to_index(tips_lps)
        self.ijk = tip_ijk[:, None, :] - s_mm[None, :, None] * self.dirs_ijk[:, None, :]
        self.shape = self.ijk.shape[:2]

    def sample(self, array: np.ndarray, order: int = 1, fill_value: float = 0.0) -> np.ndarray:
        """(n, K) values of a ``[k, j, i]`` array at every sample (trilinear by default)."""
        return sample_ijk(array, self.ijk, order, fill_value)

    def inside(self) -> np.ndarray:
        """(n, K) True where a sample lies inside the grid."""
        return self.grid.contains_index(self.ijk)


def sample_ijk(array: np.ndarray, ijk: np.ndarray, order: int = 1,
               fill_value: float = 0.0) -> np.ndarray:
    """Values of a ``[k, j, i]`` array at (..., 3) continuous (i, j, k) indices."""
    coords_kji = np.ascontiguousarray(ijk.reshape(-1, 3)[:, ::-1].T)
    values = ndimage.map_coordinates(array, coords_kji, output=np.float32, order=order,
                                     mode="constant", cval=fill_value, prefilter=False)
    return values.reshape(ijk.shape[:-1])


@dataclass
class LineSet:
    """Per-needle results (arrays over the n needles; NaN or 0 where not applicable)."""

    s_mm: np.ndarray  # (K,) distance back from the tip of each sample
    crossing: np.ndarray  # bool: the axis crosses the canal before leaving the bone envelope
    crossing_level: np.ndarray  # int 1..5 of the anterior canal wall (0 without crossing)
    s_canal_exit: np.ndarray  # anterior canal wall (the needle leaves the canal into the body)
    s_canal_entry: np.ndarray  # posterior canal wall (the needle enters the canal)
    s_bone_entry: np.ndarray  # outer surface of the sacrum where the needle first meets bone
    s_skin: np.ndarray  # skin entry (NaN where unknown)
    s_skin_min: np.ndarray  # lower bound of the skin depth (= s_skin where known)
    skin_reason: list  # why s_skin is NaN, per needle ("" when known)
    foramen_clearance: np.ndarray
    canal_clearance: np.ndarray
    bone_margin: np.ndarray  # bone around the needle surface, canal wall to tip (bone_margins)
    bone_margin_s: np.ndarray  # where that minimum lies (mm back from the tip; NaN if none)
    cortex_clearance: np.ndarray
    midline_offset: np.ndarray
    intraosseous_length: np.ndarray
    other_bone: np.ndarray  # bool
    tip_in_bone: np.ndarray  # bool


def _first(condition: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Index of the first True per row (at or after ``start``); the row length if none."""
    n, length = condition.shape
    if start is not None:
        condition = condition & (np.arange(length)[None, :] >= start[:, None])
    found = condition.any(axis=1)
    return np.where(found, condition.argmax(axis=1), length)


def _crossing_s(values: np.ndarray, index: np.ndarray, s_mm: np.ndarray, level: float = 0.5):
    """Sub-sample position where ``values`` passes ``level`` between samples index-1 and index."""
    n, length = values.shape
    rows = np.arange(n)
    hi = np.clip(index, 1, length - 1)
    v1, v0 = values[rows, hi], values[rows, hi - 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.clip((level - v0) / (v1 - v0), 0.0, 1.0)
    fraction = np.where(np.isfinite(fraction), fraction, 1.0)
    s = s_mm[hi - 1] + fraction * (s_mm[hi] - s_mm[hi - 1])
    return np.where(index < length, s, np.nan)


def _masked_min(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, values, np.inf).min(axis=1)


def evaluate_lines(
    fields: Fields,
    ct: Volume,
    tips_lps: np.ndarray,
    directions_lps: np.ndarray,
    radius_mm: float,
    step_mm: float,
    length_mm: float,
    midsagittal,
    has_soft_tissue: bool,
    guarded_level: int,
    wall_pierce_mm: float = 0.0,
) -> LineSet:
    """Sample and measure n needles.

    Parameters
    ----------
    tips_lps, directions_lps : (n, 3) float
        Needle tips (mm) and unit directions skin -> tip.
    radius_mm : float
        Needle outer radius; clearances are axis distance minus it.
    step_mm, length_mm : float
        Axis sampling step and how far back from the tip to look (mm).
    midsagittal : Plane
        For the midline offset.
    has_soft_tissue : bool
        False on bone-only volumes: the skin is then unknown.
    guarded_level : int
        The target's level (1..5). The canal at this level and above is the part the needle
        must keep clear of (the canal cranial to a crossing caudal to the target); its
        clearance is measured from the tip to the posterior canal wall.
    wall_pierce_mm : float
        Length past the anterior canal wall over which the canal just left does not count in
        the bone margin (see :func:`bone_margins`).
    """
    tips = np.asarray(tips_lps, float).reshape(-1, 3)
    dirs = np.asarray(directions_lps, float).reshape(-1, 3)
    s_mm = np.arange(0.0, length_mm + 1e-9, step_mm)
    on_fields = GridLines(fields.grid, tips, dirs, s_mm)
    on_ct = GridLines(ct, tips, dirs, s_mm)

    solid_sdf = on_fields.sample(fields.solid_sdf, fill_value=FAR_MM)
    sacrum = on_fields.sample(fields.sacrum)
    canal = on_fields.sample(fields.canal)
    n, length = sacrum.shape

    k_out = _first(solid_sdf > 0.0)  # leaves the bone envelope
    k_canal_exit = _first(canal >= 0.5)
    crossing = k_canal_exit < k_out
    k_canal_entry = np.where(crossing, _first(canal < 0.5, k_canal_exit), length)
    k_bone_end = np.where(crossing, k_canal_exit, k_out)
    k_last_bone = _last_before(sacrum >= 0.5, k_out)
    s_bone_entry = _crossing_s(sacrum, np.minimum(k_last_bone + 1, length), s_mm)
    s_bone_entry = np.where(k_last_bone >= 0, s_bone_entry, np.nan)

    exit_lps = tips - s_mm[np.minimum(k_canal_exit, length - 1)][:, None] * dirs
    level_at_exit = np.where(crossing, fields.crop.level_at(exit_lps), 0)
    crossing_level = np.where(crossing, level_at_exit, 0)

    index = np.arange(length)[None, :]
    in_bone_path = index < k_bone_end[:, None]
    cortex = on_fields.sample(fields.cortex_sdf, fill_value=-FAR_MM)
    cortex_clearance = _masked_min(cortex, in_bone_path) - radius_mm

    until_canal_end = index < np.where(crossing, k_canal_entry, k_out)[:, None]
    guarded = on_fields.sample(fields.cranial_canal_distance(guarded_level + 1),
                               fill_value=FAR_MM)
    canal_clearance = _masked_min(guarded, until_canal_end)
    canal_clearance -= radius_mm

    foramen_distance = on_fields.sample(fields.foramen_distance, fill_value=FAR_MM)
    s_canal_exit = np.where(crossing, _crossing_s(canal, k_canal_exit, s_mm), np.nan)
    bone_margin, bone_margin_s = bone_margins(
        fields, on_fields, s_mm, np.where(crossing, s_canal_exit, np.nan),
        s_bone_entry, radius_mm, wall_pierce_mm,
        np.minimum(np.minimum(cortex, foramen_distance), guarded))

    s_skin, s_skin_min, skin_reason = _skin(ct, on_ct, s_mm, k_out, has_soft_tissue)
    s_skin_min = np.where(np.isfinite(s_skin_min), s_skin_min, np.nan_to_num(s_bone_entry))
    k_skin = np.where(np.isfinite(s_skin), np.searchsorted(s_mm, s_skin), length)
    before_skin = index < k_skin[:, None]
    foramen_clearance = _masked_min(foramen_distance, before_skin) - radius_mm

    in_envelope = index < k_out[:, None]
    offsets = np.abs(midsagittal.signed_distance(tips)[:, None]
                     - s_mm[None, :] * (dirs @ midsagittal.normal_lps)[:, None])
    midline_offset = np.where(in_envelope, offsets, 0.0).max(axis=1)
    intraosseous = ((sacrum >= 0.5) & in_envelope).sum(axis=1) * step_mm
    soft_path = (index >= k_out[:, None]) & before_skin
    other_bone = _other_bone(fields, on_fields, on_ct, dirs, radius_mm, soft_path)
    return LineSet(
        s_mm=s_mm,
        crossing=crossing,
        crossing_level=crossing_level,
        s_canal_exit=s_canal_exit,
        s_canal_entry=np.where(crossing, _crossing_s(canal, k_canal_entry, s_mm), np.nan),
        s_bone_entry=s_bone_entry,
        s_skin=s_skin,
        s_skin_min=s_skin_min,
        skin_reason=skin_reason,
        foramen_clearance=foramen_clearance,
        canal_clearance=canal_clearance,
        bone_margin=bone_margin,
        bone_margin_s=bone_margin_s,
        cortex_clearance=cortex_clearance,
        midline_offset=midline_offset,
        intraosseous_length=intraosseous,
        other_bone=other_bone,
        tip_in_bone=solid_sdf[:, 0] < 0.0,
    )


def bone_margins(fields: Fields, on_fields: GridLines, s_mm: np.ndarray, s_wall: np.ndarray,
                 s_bone_entry: np.ndarray, radius_mm: float, wall_pierce_mm: float,
                 hazard_distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bone around each needle's outer surface from the anterior canal wall to the tip (mm).

    At every axis sample from the tip to the wall: the distance to the nearest point that is not
    sacral bone (canal, foramina, outside; sub-voxel field), less the radius. At the wall
    itself that is 0 for any straight needle: crossing the wall at angle a, the axis is only
    t sin(a) deep t mm past it, whatever the path's offset. So over the first ``wall_pierce_mm``
    past the wall, the surface it has just pierced (the back of the body, facing the canal
    caudal to the target's level or the hiatus) is left out: there the margin is to the
    anterior, lateral and caudal cortex, the foramina and the canal at and above the target's
    level (``hazard_distance``). Without a canal crossing the needle pierces the outer surface
    at its bone entry instead, and the same holds there.

    Parameters
    ----------
    s_wall : (n,) float
        Distance (mm) of the anterior canal wall from the tip; NaN without a crossing.
    s_bone_entry : (n,) float
        Where the needle first meets the sacrum (mm from the tip), for lines without crossing.
    hazard_distance : (n, K) float
        At each sample, the distance to the nearest of the cortex (``cortex_sdf``), a foramen
        and the canal at and above the target's level (already sampled by the caller).

    Returns
    -------
    margin, where : (n,) float
        The smallest margin (inf where no sample qualifies) and its distance from the tip (mm).
    """
    crossing = np.isfinite(s_wall)
    end = np.where(crossing, s_wall, np.nan_to_num(s_bone_entry))
    columns = max(int(np.searchsorted(s_mm, end.max(initial=0.0))) + 1, 1)
    s_used = s_mm[:columns]
    in_stretch = s_used[None, :] < end[:, None]
    near_pierce = in_stretch & (end[:, None] - s_used[None, :] < wall_pierce_mm)
    depth = sample_ijk(fields.bone_depth, on_fields.ijk[:, :columns], fill_value=0.0)
    depth = np.where(near_pierce, hazard_distance[:, :columns], depth)
    masked = np.where(in_stretch, depth, np.inf)
    at = masked.argmin(axis=1)
    margin = masked[np.arange(len(at)), at] - radius_mm
    return margin, np.where(np.isfinite(margin), s_used[at], np.nan)


def _last_before(condition: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Index of the last True per row strictly before ``stop`` (-1 if none)."""
    length = condition.shape[1]
    masked = condition & (np.arange(length)[None, :] < stop[:, None])
    reversed_first = masked[:, ::-1].argmax(axis=1)
    return np.where(masked.any(axis=1), length - 1 - reversed_first, -1)


def _skin(ct: Volume, on_ct: GridLines, s_mm: np.ndarray, k_out: np.ndarray,
          has_soft_tissue: bool) -> tuple[np.ndarray, np.ndarray, list]:
    """Where each axis leaves the body outline, walking out from the bone.

    Returns the skin depth (NaN if unknown), a lower bound of it (where the body was last
    seen: the field-of-view edge or the end of the sampled axis; NaN on bone-only volumes,
    where the caller uses the bone entry) and the reason it is unknown.
    """
    n, length = on_ct.shape
    if not has_soft_tissue:
        reason = "bone-only volume (no soft tissue): the skin surface is not visible"
        return np.full(n, np.nan), np.full(n, np.nan), [reason] * n
    hu = on_ct.sample(ct.array, order=1, fill_value=-1000.0)
    inside_grid = on_ct.inside()
    step = s_mm[1] - s_mm[0] if length > 1 else 1.0
    run = max(int(np.ceil(AIR_RUN_MM / step)), 1)
    air = hu < BODY_OUTLINE_HU
    count = np.concatenate([np.zeros((n, 1), int), np.cumsum(air, axis=1)], axis=1)
    run_of_air = np.zeros_like(air)
    if length > run:
        run_of_air[:, : length - run] = (count[:, run:length] - count[:, : length - run]) == run
    k_skin = _first(run_of_air, k_out)
    s_skin = _crossing_s(-hu, k_skin, s_mm, level=-BODY_OUTLINE_HU)
    s_skin_min = s_skin.copy()
    k_edge = np.minimum(_first(~inside_grid, k_out), length - 1)
    reasons = [""] * n
    # Strictly between the outer voxel centres: nearer the edge, interpolation with the
    # outside fill would read as air.
    upper = np.asarray(ct.shape_ijk, float) - 1.0
    interior = np.all((on_ct.ijk >= 0.0) & (on_ct.ijk <= upper), axis=-1)
    beyond_bone = (np.arange(length)[None, :] >= k_out[:, None]) & interior
    zero_share = (beyond_bone & (np.abs(hu) < ZERO_FILL_HU)).sum(axis=1) / np.maximum(
        beyond_bone.sum(axis=1), 1)
    any_air = (beyond_bone & air).any(axis=1)
    zero_filled = (zero_share >= ZERO_FILL_SHARE) & ~any_air
    for row in range(n):
        if zero_filled[row] and beyond_bone[row].any():
            s_skin[row] = np.nan
            s_skin_min[row] = np.nan  # the caller falls back to the bone entry
            reasons[row] = ("no soft tissue along the needle line (the volume reads 0 HU "
                            "outside bone): the skin surface is not visible")
        elif k_skin[row] >= length:
            s_skin[row] = np.nan
            s_skin_min[row] = s_mm[-1]
            reasons[row] = (f"the needle line stays inside the body for {s_mm[-1]:.0f} mm "
                            "from the target: the skin is farther than any standard needle")
        elif not inside_grid[row, min(k_skin[row] + run, length - 1)]:
            s_skin[row] = np.nan
            s_skin_min[row] = s_mm[k_edge[row]]
            reasons[row] = ("the body outline reaches the edge of the field of view along the "
                            "needle line: the skin entry is outside the scan")
    return s_skin, s_skin_min, reasons


def _other_bone(fields: Fields, on_fields: GridLines, on_ct: GridLines, dirs: np.ndarray,
                radius_mm: float, soft_path: np.ndarray) -> np.ndarray:
    """True where bone other than the sacrum touches the needle between skin and sacrum.

    Probes the axis and RING_POINTS points on the needle's outer surface at every sample.
    """
    n = dirs.shape[0]
    result = np.zeros(n, bool)
    rows, cols = np.nonzero(soft_path)
    if rows.size == 0:
        return result
    ring_lps = np.concatenate([np.zeros((n, 1, 3)), _ring_offsets(dirs, radius_mm)], axis=1)

    def probe(grid_lines: GridLines, array: np.ndarray, fill: float) -> np.ndarray:
        ring_ijk = (ring_lps @ grid_lines.grid.direction) / grid_lines.grid.spacing_xyz
        probe_ijk = grid_lines.ijk[rows, cols][:, None, :] + ring_ijk[rows]
        return sample_ijk(array, probe_ijk, order=1, fill_value=fill)

    dense = probe(on_ct, on_ct.grid.array, -1000.0) > OTHER_BONE_HU
    outside_sacrum = probe(on_fields, fields.solid_sdf, FAR_MM) > OTHER_BONE_MARGIN_MM
    touching = (dense & outside_sacrum).any(axis=1)
    np.logical_or.at(result, rows, touching)
    return result


def _ring_offsets(dirs: np.ndarray, radius_mm: float) -> np.ndarray:
    """(m, RING_POINTS, 3) offsets at ``radius_mm`` around each unit direction."""
    helper = np.where(np.abs(dirs[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    u = np.cross(dirs, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(dirs, u)
    angles = np.linspace(0.0, 2 * np.pi, RING_POINTS, endpoint=False)
    return radius_mm * (np.cos(angles)[None, :, None] * u[:, None, :]
                        + np.sin(angles)[None, :, None] * v[:, None, :])
