"""Search the directions through the target in a cone around the anterior-edge tangent.

Directions are parametrised by a sagittal tilt (in the mid-sagittal plane) and an out-of-plane
tilt from the tangent (see :class:`Frame`). A coarse grid covers the whole cone, then a fine grid
refines around the best candidate. Candidates are ranked by (number of hard constraints broken,
then the soft score), so the best infeasible path is still returned when nothing is feasible.
Everything is deterministic: fixed grids, stable sorts.

Tilt tolerance: the interpedicular needle is meant to run parallel to the anterior sacral edge.
Within ``TILT_TOLERANCE_DEG`` of the tangent a degree costs ``ANGLE_WEIGHT_PER_DEG``; each
degree beyond it costs ``ANGLE_BEYOND_TOLERANCE_WEIGHT_PER_DEG`` more, so a fraction of a mm of
clearance that leaves the verdict class unchanged no longer buys a larger tilt. A tilt that
turns an unsafe path into a non-unsafe one is still taken whatever its size, since paths with
clearances below their unsafe limit are ranked after all others (``Candidates.order``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.anatomy.model import SacralAnatomy
from planner.planning.geometry import Fields, Frame
from planner.planning.lines import LineSet, evaluate_lines
from planner.planning.model import CanalLimit, Needle
from planner.planning.thresholds import PlanningConfig, Thresholds
from planner.planning.verdict import (
    HARD_CONSTRAINTS,
    bone_margin_safe_mm,
    violations,
    wall_pierce_mm,
)
from planner.volume import Volume

#: Soft score: points lost per degree from the tangent, per mm of clearance below the comfort
#: margin (safe threshold + COMFORT_EXTRA_MM), and per mm of midline offset beyond the safe band.
ANGLE_WEIGHT_PER_DEG = 1.0
#: Tilt from the tangent (deg) within which only ANGLE_WEIGHT_PER_DEG applies; beyond it each
#: degree also costs ANGLE_BEYOND_TOLERANCE_WEIGHT_PER_DEG (worth 2 mm of clearance shortfall).
TILT_TOLERANCE_DEG = 1.5
ANGLE_BEYOND_TOLERANCE_WEIGHT_PER_DEG = 4.0
CLEARANCE_WEIGHT_PER_MM = 2.0
COMFORT_EXTRA_MM = 1.0
#: Points lost per mm that the bone margin falls short of its safe value (a needle radius by
#: default, ``bone_margin_safe_radii``): the full radius of bone around the needle is worth
#: several degrees of tilt per mm. No comfort band above it: where the margin is limited by
#: the cranial canal or a foramen, their own clearances already ask for more.
BONE_MARGIN_WEIGHT_PER_MM = 6.0
MIDLINE_WEIGHT_PER_MM = 1.0
#: Points lost per mm that a clearance falls below its unsafe limit (``*_min_*``), on top of
#: the clearance weight. The search first avoids such paths altogether (``Candidates.order``);
#: where every path has one, this prefers the least unsafe.
UNSAFE_WEIGHT_PER_MM = 10.0
#: Points lost per mm that the posterior canal wall is pierced beyond the hiatus limit
#: (``hiatus_entry_safe_mm``): a path from over the hiatus is worth a degree of tilt per mm.
HIATUS_WEIGHT_PER_MM = 1.0
#: Points lost by a path whose skin entry cannot be measured (e.g. outside the scan), so that
#: of two otherwise equal paths the one with a known depth wins.
UNKNOWN_SKIN_PENALTY = 2.0
#: Points lost by a path that leaves the bone without crossing the canal (not the
#: interpedicular route): worth a few degrees of tilt.
NO_CROSSING_PENALTY = 5.0
#: Extra axis length (mm) sampled beyond the longest needle, to find the skin behind it.
LOOK_BEYOND_MM = 30.0
#: Sample at least this far (mm) before adding LOOK_BEYOND_MM, whatever needles are available.
MIN_LOOK_MM = 150.0


@dataclass
class PlanContext:
    """Everything one planning run shares: inputs, fields, frame and settings."""

    anatomy: SacralAnatomy
    ct: Volume
    fields: Fields
    frame: Frame
    target_lps: np.ndarray
    target_level: int  # 1..5 (S1..S5)
    needle: Needle
    thresholds: Thresholds
    settings: PlanningConfig
    canal_limit: CanalLimit | None = None


def canal_limit_offsets_mm(context: PlanContext, directions_lps: np.ndarray,
                           lines: LineSet) -> np.ndarray | None:
    """Per needle, how far (mm) caudal to ``context.canal_limit`` its canal crossing lies.

    The lesser of the posterior-wall and anterior-wall points, measured along the limit's
    caudal direction; NaN where the needle does not cross the canal; None without a limit.
    """
    limit = context.canal_limit
    if limit is None:
        return None
    offsets = np.full(len(directions_lps), np.nan)
    rows = np.flatnonzero(np.isfinite(lines.s_canal_entry) & np.isfinite(lines.s_canal_exit))
    for s_along in (lines.s_canal_entry, lines.s_canal_exit):
        points = context.target_lps - s_along[rows, None] * directions_lps[rows]
        below = (points - limit.end_lps) @ limit.caudal_lps
        offsets[rows] = np.fmin(offsets[rows], below)
    return offsets


def broken_constraints(context: PlanContext, directions_lps: np.ndarray, lines: LineSet,
                       settings: PlanningConfig) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Hard constraints each needle breaks, and its offset below the canal limit (if any)."""
    below = canal_limit_offsets_mm(context, directions_lps, lines)
    margin = context.canal_limit.margin_mm if context.canal_limit is not None else 0.0
    broken = violations(lines, context.target_level, context.thresholds, settings, below, margin)
    return broken, below


@dataclass
class Candidates:
    """Evaluated directions: angles (deg), unit directions, line results and ranking keys."""

    sagittal_deg: np.ndarray
    out_of_plane_deg: np.ndarray
    directions_lps: np.ndarray
    lines: LineSet
    broken: dict[str, np.ndarray]
    n_broken: np.ndarray
    score: np.ndarray
    angle_deg: np.ndarray
    #: Clearances below their unsafe limit (see :func:`unsafe_clearances`); None: not counted.
    n_unsafe: np.ndarray | None = None

    def order(self) -> np.ndarray:
        """Indices best first: fewest hard constraints broken; then, among feasible needles,
        fewest clearances the verdict calls unsafe and the highest score; among infeasible
        ones, the smallest angle to the anterior-edge tangent.

        An infeasible "least bad" path is shown to explain why the approach fails, so it stays
        the interpedicular line itself rather than drifting towards softer preferences.
        """
        feasible = self.n_broken == 0
        key = np.where(feasible, -self.score, self.angle_deg)
        unsafe = np.zeros(len(key), int) if self.n_unsafe is None else self.n_unsafe
        return np.lexsort((key, np.where(feasible, unsafe, 0), self.n_broken))


def unsafe_clearances(lines: LineSet, thresholds: Thresholds) -> np.ndarray:
    """(n,) how many of the foramen, cortex and canal clearances of each needle lie below the
    limit under which the verdict calls a plan unsafe (``*_min_*``)."""
    return ((lines.foramen_clearance < thresholds.foramen_min_mm).astype(int)
            + (lines.cortex_clearance < thresholds.cortex_min_mm)
            + (lines.canal_clearance < thresholds.canal_min_mm))


def evaluation_length_mm(settings: PlanningConfig) -> float:
    """How far back from the target needles are sampled: beyond the longest needle, so that
    a skin too far away is still measured (mm)."""
    return max(max(settings.standard_lengths_mm), MIN_LOOK_MM) + LOOK_BEYOND_MM


def required_length(s_skin: np.ndarray, settings: PlanningConfig) -> np.ndarray:
    """Needle length needed: skin-to-target depth plus the working margin (NaN if unknown)."""
    return np.asarray(s_skin, float) + settings.working_margin_mm


def evaluate_candidates(
    context: PlanContext, sagittal_deg: np.ndarray, out_of_plane_deg: np.ndarray, step_mm: float
) -> Candidates:
    """Evaluate needles through the target for the given tilt pairs (1-D arrays, deg)."""
    frame: Frame = context.frame
    directions = frame.direction(sagittal_deg, out_of_plane_deg)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    tips = np.repeat(context.target_lps[None, :], len(directions), axis=0)
    lines = evaluate_lines(
        context.fields, context.ct, tips, directions, context.needle.radius_mm, step_mm,
        evaluation_length_mm(context.settings), context.anatomy.midsagittal,
        context.anatomy.has_soft_tissue, context.target_level,
        wall_pierce_mm(context.thresholds, context.needle.radius_mm),
    )
    broken, _ = broken_constraints(context, directions, lines, context.settings)
    n_broken = np.sum([broken[name] for name in HARD_CONSTRAINTS], axis=0)
    angle = frame.angles(directions)[0]
    hiatus = hiatus_offsets_mm(context, directions, lines)
    return Candidates(np.asarray(sagittal_deg, float), np.asarray(out_of_plane_deg, float),
                      directions, lines, broken, n_broken,
                      soft_score(lines, angle, context.thresholds, hiatus,
                                 bone_margin_safe_mm(context.thresholds, context.needle.radius_mm)),
                      angle, unsafe_clearances(lines, context.thresholds))


def hiatus_offsets_mm(context: PlanContext, directions_lps: np.ndarray,
                      lines: LineSet) -> np.ndarray:
    """(n,) where each needle pierces the posterior canal wall relative to the hiatus (mm,
    see :func:`planner.planning.metrics.hiatus_offset_mm`); NaN without a crossing."""
    from planner.planning.metrics import caudal_direction_at, hiatus_offset_mm

    anatomy = context.anatomy
    result = np.full(len(directions_lps), np.nan)
    if anatomy.hiatus is None or len(anatomy.anterior_cortex_lps) < 2:
        return result
    caudal = caudal_direction_at(anatomy.anterior_cortex_lps, anatomy.hiatus.apex_lps)
    for row in np.flatnonzero(np.isfinite(lines.s_canal_entry)):
        wall_lps = context.target_lps - lines.s_canal_entry[row] * directions_lps[row]
        result[row] = hiatus_offset_mm(wall_lps, anatomy.hiatus.apex_lps,
                                       anatomy.hiatus.opening_lps, caudal)
    return result


def soft_score(lines: LineSet, angle_deg: np.ndarray, thresholds: Thresholds,
               hiatus_offset_mm: np.ndarray | None = None,
               bone_safe_mm: float = 0.0) -> np.ndarray:
    """Higher is better: near the tangent, comfortable clearances (and none below its unsafe
    limit), bone around the needle, close to the midline, the posterior canal wall pierced at
    the hiatus.

    ``bone_safe_mm`` is the safe bone margin for this needle (mm, see ``bone_margin_safe_mm``).
    """
    beyond_hiatus = 0.0
    if hiatus_offset_mm is not None:
        beyond_hiatus = np.nan_to_num(
            np.maximum(0.0, np.abs(hiatus_offset_mm) - thresholds.hiatus_entry_safe_mm))
    def shortfall(value, safe):
        return np.maximum(0.0, safe + COMFORT_EXTRA_MM - np.minimum(value, 1e3))

    def below(value, minimum):
        return np.maximum(0.0, minimum - np.minimum(value, 1e3))

    return (
        -ANGLE_WEIGHT_PER_DEG * angle_deg
        - ANGLE_BEYOND_TOLERANCE_WEIGHT_PER_DEG * np.maximum(0.0, angle_deg - TILT_TOLERANCE_DEG)
        - CLEARANCE_WEIGHT_PER_MM * (
            shortfall(lines.foramen_clearance, thresholds.foramen_safe_mm)
            + shortfall(lines.cortex_clearance, thresholds.cortex_safe_mm)
            + shortfall(lines.canal_clearance, thresholds.canal_safe_mm)
        )
        - BONE_MARGIN_WEIGHT_PER_MM * np.maximum(0.0, bone_safe_mm - np.minimum(lines.bone_margin,
                                                                                 1e3))
        - UNSAFE_WEIGHT_PER_MM * (
            below(lines.foramen_clearance, thresholds.foramen_min_mm)
            + below(lines.cortex_clearance, thresholds.cortex_min_mm)
            + below(lines.canal_clearance, thresholds.canal_min_mm)
        )
        - MIDLINE_WEIGHT_PER_MM * np.maximum(0.0, lines.midline_offset - thresholds.midline_safe_mm)
        - UNKNOWN_SKIN_PENALTY * ~np.isfinite(lines.s_skin)
        - NO_CROSSING_PENALTY * ~lines.crossing
        - HIATUS_WEIGHT_PER_MM * beyond_hiatus
    )


def _grid(center_a: float, center_b: float, half_a: float, half_b: float, step: float,
          limit_a: float, limit_b: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(-half_a, half_a + 1e-9, step) + center_a
    b = np.arange(-half_b, half_b + 1e-9, step) + center_b
    a = a[np.abs(a) <= limit_a + 1e-9]
    b = b[np.abs(b) <= limit_b + 1e-9]
    aa, bb = np.meshgrid(a, b, indexing="ij")
    return aa.ravel(), bb.ravel()


@dataclass
class SearchResult:
    best: tuple[float, float]  # (sagittal, out-of-plane) deg
    alternatives: list[tuple[float, float]]
    coarse: Candidates
    fine: Candidates
    summary: dict


def search_directions(context: PlanContext) -> SearchResult:
    """Coarse grid over the cone, fine grid around the best, and distinct alternatives."""
    settings: PlanningConfig = context.settings
    limit_a = context.thresholds.angle_max_deg
    limit_b = min(settings.out_of_plane_max_deg, limit_a)
    a, b = _grid(0.0, 0.0, limit_a, limit_b, settings.coarse_step_deg, limit_a, limit_b)
    coarse = evaluate_candidates(context, a, b, settings.search_step_mm)
    order = coarse.order()
    best = order[0]
    a, b = _grid(coarse.sagittal_deg[best], coarse.out_of_plane_deg[best],
                 settings.coarse_step_deg, settings.coarse_step_deg, settings.fine_step_deg,
                 limit_a, limit_b)
    fine = evaluate_candidates(context, a, b, settings.search_step_mm)
    fine_best = fine.order()[0]
    chosen = (float(fine.sagittal_deg[fine_best]), float(fine.out_of_plane_deg[fine_best]))
    alternatives = _distinct(coarse, order, fine.directions_lps[fine_best], settings)
    feasible = coarse.n_broken == 0
    summary = {
        "candidates": int(len(coarse.score) + len(fine.score)),
        "feasible_coarse": int(feasible.sum()),
        "coarse_step_deg": settings.coarse_step_deg,
        "fine_step_deg": settings.fine_step_deg,
        "sagittal_range_deg": [-limit_a, limit_a],
        "out_of_plane_range_deg": [-limit_b, limit_b],
        "broken_share": {
            name: round(float(coarse.broken[name].mean()), 3) for name in HARD_CONSTRAINTS
        },
    }
    return SearchResult(chosen, alternatives, coarse, fine, summary)


def _distinct(coarse: Candidates, order: np.ndarray, best_direction: np.ndarray,
              settings: PlanningConfig) -> list[tuple[float, float]]:
    """Feasible directions, each far enough from all chosen ones (twice as many as will be
    reported, so that any found infeasible when measured densely can be replaced)."""
    chosen_dirs = [best_direction]
    result = []
    cos_sep = np.cos(np.radians(settings.alternative_separation_deg))
    for index in order:
        if len(result) >= 2 * settings.max_alternatives or coarse.n_broken[index] > 0:
            break
        direction = coarse.directions_lps[index]
        if all(direction @ other < cos_sep for other in chosen_dirs):
            chosen_dirs.append(direction)
            result.append((float(coarse.sagittal_deg[index]),
                           float(coarse.out_of_plane_deg[index])))
    return result
