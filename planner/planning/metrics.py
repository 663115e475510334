"""Measure one chosen needle densely and assemble its :class:`Plan`."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
from scipy.spatial import cKDTree

from planner.anatomy.curve_fit import resample_polyline
from planner.anatomy.model import FORAMEN_LABELS
from planner.planning.cone import safety_cone
from planner.planning.geometry import CURVE_STEP_MM, FAR_MM, level_name
from planner.planning.lines import LineSet, evaluate_lines
from planner.planning.model import CanalCrossing, Metrics, Plan, TargetInfo, Verdict
from planner.planning.search import (
    PlanContext,
    broken_constraints,
    evaluation_length_mm,
    required_length,
)
from planner.planning.verdict import (
    BONE_MARGIN_REASON,
    HARD_CONSTRAINTS,
    describe_violation,
    soft_verdict,
    wall_pierce_mm,
)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def foramen_clearances(context: PlanContext, points_lps: np.ndarray) -> dict[str, float]:
    """Clearance (mm) of the needle surface from each foramen present, e.g. ``"S3 L"``.

    Exact point-set distance from the axis samples to the foramen's voxel centres, less half a
    voxel (the surface lies between voxel centres), or to the centres of its mouth voxels in
    the canal (see :func:`~planner.planning.geometry.foramen_mouths`); less the needle radius.
    """
    crop = context.fields.crop
    half_voxel_mm = 0.5 * float(crop.grid.spacing_xyz.min())
    result = {}
    for (level, side), label in FORAMEN_LABELS.items():
        voxels_lps = crop.foramen_voxels_lps(label)
        if voxels_lps.shape[0] == 0:
            continue
        distance = cKDTree(voxels_lps).query(points_lps)[0].min() - half_voxel_mm
        mouth_lps = crop.foramen_voxels_lps(label, mouths=True)
        if mouth_lps.shape[0]:
            distance = min(distance, cKDTree(mouth_lps).query(points_lps)[0].min())
        result[f"{level} {side}"] = float(distance - context.needle.radius_mm)
    return result


def build_plan(context: PlanContext, target: TargetInfo, direction_lps: np.ndarray,
               rank: int, warnings: list[str], with_cone: bool = True) -> Plan:
    """Measure the needle along ``direction_lps`` through the target and grade it."""
    settings = context.settings
    direction = np.asarray(direction_lps, float) / np.linalg.norm(direction_lps)
    lines = evaluate_lines(
        context.fields, context.ct, context.target_lps[None], direction[None],
        context.needle.radius_mm, settings.metric_step_mm, evaluation_length_mm(settings),
        context.anatomy.midsagittal, context.anatomy.has_soft_tissue, context.target_level,
        wall_pierce_mm(context.thresholds, context.needle.radius_mm),
    )
    required = required_length(lines.s_skin, settings)
    broken, below_limit = broken_constraints(context, direction[None], lines, settings)
    shortest_needed = float(lines.s_skin_min[0] + settings.working_margin_mm)
    metrics = _metrics(context, lines, direction)
    skin_s = _finite(lines.s_skin[0])
    required_mm = _finite(required[0])
    standard = None
    if required_mm is not None:
        fitting = [length for length in settings.standard_lengths_mm if length >= required_mm]
        standard = min(fitting) if fitting else None

    feasible = not any(bool(broken[name][0]) for name in HARD_CONSTRAINTS)
    skin_reason = lines.skin_reason[0] or None
    cone = None
    if with_cone:
        pivot_s = _finite(lines.s_bone_entry[0])
        if pivot_s is not None:
            cone = safety_cone(context, direction, pivot_s, "bone entry")
    verdict, reasons = soft_verdict(metrics, cone, context.thresholds,
                                    context.anatomy.confidence, skin_reason,
                                    context.needle.radius_mm)
    below_mm = None if below_limit is None else _finite(below_limit[0])
    hard = [describe_violation(name, metrics, target.level, required_mm, shortest_needed,
                               settings, context.canal_limit, below_mm, context.thresholds)
            for name in HARD_CONSTRAINTS if broken[name][0]]
    if hard:
        verdict = Verdict.UNSAFE
        if broken["bone_margin"][0]:  # the hard sentence already gives the bone margin
            reasons = [r for r in reasons if not r.startswith(BONE_MARGIN_REASON)]
        reasons = hard + reasons
    plan_warnings = list(warnings)
    if skin_reason:
        plan_warnings.append(f"skin entry unknown: {skin_reason}")
    return Plan(
        target=target,
        direction_lps=direction,
        skin_entry_lps=None if skin_s is None else context.target_lps - skin_s * direction,
        bone_entry_lps=_point(context, direction, lines.s_bone_entry[0]),
        canal_crossing=_crossing(context, direction, lines),
        needle=context.needle,
        required_length_mm=required_mm,
        standard_length_mm=standard,
        levels_lps={name: np.asarray(c, float)
                    for name, c in sorted(context.anatomy.level_centers_lps.items())},
        metrics=metrics,
        verdict=verdict,
        reasons=tuple(reasons),
        feasible=feasible,
        safety_cone=cone,
        warnings=tuple(plan_warnings),
        rank=rank,
        thresholds=asdict(context.thresholds),
    )


def _point(context: PlanContext, direction: np.ndarray, s_mm: float) -> np.ndarray | None:
    return None if not np.isfinite(s_mm) else context.target_lps - s_mm * direction


def _crossing(context: PlanContext, direction: np.ndarray, lines: LineSet):
    if not lines.crossing[0]:
        return None
    return CanalCrossing(
        level=level_name(int(lines.crossing_level[0])),
        entry_lps=_point(context, direction, lines.s_canal_entry[0]),
        exit_lps=_point(context, direction, lines.s_canal_exit[0]),
    )


#: Radius (mm) around the point where the needle pierces the anterior canal wall within which
#: the wall is fitted by a plane to measure the crossing angle.
WALL_FIT_RADIUS_MM = 5.0
#: Fewest boundary faces for a plane fit.
WALL_FIT_MIN_FACES = 6


def canal_wall_angle_deg(fields, direction: np.ndarray,
                         exit_lps: np.ndarray | None) -> float | None:
    """Angle (deg) at which the needle crosses the anterior canal wall, or None.

    The wall is the boundary of the sacral bone within WALL_FIT_RADIUS_MM of the exit point:
    the centres of the voxel faces between bone and not-bone there, fitted by a plane (least
    squares, so the voxel staircase averages out). The angle is between the needle and that
    plane: against a flat wall crossed at angle a, the needle is t sin(a) deep t mm past it.
    """
    if exit_lps is None:
        return None
    grid = fields.grid
    bone = fields.sacrum > 0.5
    centre_ijk = grid.lps_to_index(np.asarray(exit_lps, float))
    half = np.ceil(WALL_FIT_RADIUS_MM / grid.spacing_xyz).astype(int) + 1
    lo = np.maximum(np.floor(centre_ijk).astype(int) - half, 0)
    hi = np.minimum(np.floor(centre_ijk).astype(int) + half + 1, grid.shape_ijk)
    box = bone[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    faces = []
    for axis in range(3):  # array axes k, j, i
        first = np.swapaxes(box, 0, axis)
        change = np.argwhere(first[:-1] != first[1:]).astype(float)
        change[:, 0] += 0.5  # the face between the two voxels
        faces.append(change[:, _order(axis)])
    kji = np.vstack(faces) + lo[::-1]
    points = grid.index_to_lps(kji[:, ::-1])
    points = points[np.linalg.norm(points - exit_lps, axis=1) <= WALL_FIT_RADIUS_MM]
    if points.shape[0] < WALL_FIT_MIN_FACES:
        return None
    normal = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)[2][-1]
    return float(np.degrees(np.arcsin(min(abs(float(normal @ direction)), 1.0))))


def _order(axis: int) -> list[int]:
    """Column order that undoes ``np.swapaxes(array, 0, axis)`` on (k, j, i) positions."""
    order = [0, 1, 2]
    order[0], order[axis] = order[axis], order[0]
    return order


def _metrics(context: PlanContext, lines: LineSet, direction: np.ndarray) -> Metrics:
    angle, sagittal, out_of_plane = context.frame.angles(direction[None])
    s_end = lines.s_skin[0] if np.isfinite(lines.s_skin[0]) else lines.s_bone_entry[0]
    s_mm = lines.s_mm[lines.s_mm <= (s_end if np.isfinite(s_end) else lines.s_mm[-1])]
    axis_lps = context.target_lps - s_mm[:, None] * direction
    return Metrics(
        foramen_clearance_mm=float(lines.foramen_clearance[0]),
        foramen_clearances_mm=foramen_clearances(context, axis_lps),
        canal_clearance_mm=float(lines.canal_clearance[0]),
        # No bone stretch at all (the target on the wall) reads as far, like the fields.
        bone_margin_mm=float(min(lines.bone_margin[0], FAR_MM)),
        bone_margin_from_target_mm=_finite(lines.bone_margin_s[0]),
        canal_wall_angle_deg=canal_wall_angle_deg(
            context.fields, direction, _point(context, direction, lines.s_canal_exit[0])),
        anterior_cortex_clearance_mm=float(lines.cortex_clearance[0]),
        angle_to_anterior_edge_deg=float(angle[0]),
        sagittal_tilt_deg=float(sagittal[0]),
        out_of_plane_tilt_deg=float(out_of_plane[0]),
        midline_offset_mm=float(lines.midline_offset[0]),
        skin_to_target_mm=_finite(lines.s_skin[0]),
        bone_entry_to_target_mm=_finite(lines.s_bone_entry[0]),
        intraosseous_length_mm=float(lines.intraosseous_length[0]),
        canal_crossing_level=level_name(int(lines.crossing_level[0])),
        other_bone_contact=bool(lines.other_bone[0]),
        posterior_wall_from_hiatus_mm=_hiatus_offset(
            context, _point(context, direction, lines.s_canal_entry[0])),
    )


#: Half-length (mm of arc) of the anterior-cortex stretch whose chord gives the canal's
#: direction at the hiatus.
HIATUS_DIRECTION_HALF_WINDOW_MM = 8.0


def hiatus_offset_mm(posterior_wall_lps: np.ndarray, apex_lps: np.ndarray,
                     opening_lps: np.ndarray, caudal_lps: np.ndarray) -> float:
    """Where a point of the posterior canal wall lies along the canal relative to the hiatus.

    Parameters
    ----------
    posterior_wall_lps, apex_lps, opening_lps : (3,) float
        The point, the hiatus apex (where the laminae stop) and the base of the opening, mm.
    caudal_lps : (3,) float
        Unit direction down the canal at the hiatus. Positions are measured along it only:
        apex and opening may be given at different depths (on the canal's edge or on the
        laminae's surface), which must not count as distance along the canal.

    Returns
    -------
    float
        mm cranial to the apex (> 0), caudal to the opening (< 0), or 0 between them.
    """
    caudal = np.asarray(caudal_lps, float) / np.linalg.norm(caudal_lps)
    apex = np.asarray(apex_lps, float)
    along = float((np.asarray(posterior_wall_lps, float) - apex) @ caudal)
    opening_along = max(float((np.asarray(opening_lps, float) - apex) @ caudal), 0.0)
    if along < 0.0:
        return -along
    return -(along - opening_along) if along > opening_along else 0.0


def caudal_direction_at(curve_lps: np.ndarray, point_lps: np.ndarray) -> np.ndarray:
    """Unit caudal direction of the anterior-cortex curve (promontory -> tip) near a point.

    The chord of the stretch of +/- HIATUS_DIRECTION_HALF_WINDOW_MM of arc around the curve
    point nearest to ``point_lps``.
    """
    points, arc = resample_polyline(np.asarray(curve_lps, float), CURVE_STEP_MM)
    nearest = int(np.argmin(np.linalg.norm(points - point_lps, axis=1)))
    local = points[np.abs(arc - arc[nearest]) <= HIATUS_DIRECTION_HALF_WINDOW_MM]
    chord = local[-1] - local[0] if local.shape[0] >= 2 else points[-1] - points[0]
    return chord / np.linalg.norm(chord)


def _hiatus_offset(context: PlanContext, posterior_wall_lps: np.ndarray | None) -> float | None:
    anatomy = context.anatomy
    hiatus = anatomy.hiatus
    if posterior_wall_lps is None or hiatus is None or len(anatomy.anterior_cortex_lps) < 2:
        return None
    caudal = caudal_direction_at(anatomy.anterior_cortex_lps, hiatus.apex_lps)
    return hiatus_offset_mm(posterior_wall_lps, hiatus.apex_lps, hiatus.opening_lps, caudal)
