"""Safety cone: how often random placement errors around the plan would cause harm.

The needle pivots at its bone entry: under fluoroscopy it is steered through soft tissue until
it docks on bone at the planned entry, and from there its direction is set. Pivoting at the bone
entry also makes the cone the same whether or not the skin is visible. Each sample shifts that
pivot across the needle by a 2-D normal error (standard deviation
``entry_error_mm`` per axis) and tilts the direction by a 2-D normal angular error (standard
deviation ``angle_error_deg`` per axis), keeping the planned insertion depth. A sample counts as
harmful if it touches a foramen, comes into the canal cranial to its crossing (or crosses the
canal at or above the target's level), or breaches the cortex. Fixed seed: same plan, same cone.
"""

from __future__ import annotations

import numpy as np

from planner.planning.lines import evaluate_lines
from planner.planning.model import SafetyCone

#: Axis length (mm) evaluated behind the pivot, so that a perturbed needle's canal crossing and
#: its exit from the bone are always inside the sampled part.
PIVOT_MARGIN_MM = 25.0


def _across(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``direction`` and to each other (deterministic)."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(direction, u)


def safety_cone(context, direction_lps: np.ndarray, pivot_depth_mm: float,
                pivot_name: str) -> SafetyCone:
    """Probabilities of harm over ``cone_samples`` perturbed needles (vectorised)."""
    settings = context.settings
    rng = np.random.default_rng(settings.cone_seed)
    n = settings.cone_samples
    entry_error = rng.normal(0.0, settings.entry_error_mm, (n, 2))
    tilt = np.tan(np.radians(rng.normal(0.0, settings.angle_error_deg, (n, 2))))
    u, v = _across(direction_lps)
    pivot = context.target_lps - pivot_depth_mm * direction_lps
    pivots = pivot + entry_error[:, :1] * u + entry_error[:, 1:] * v
    directions = direction_lps + tilt[:, :1] * u + tilt[:, 1:] * v
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    tips = pivots + pivot_depth_mm * directions
    lines = evaluate_lines(
        context.fields, context.ct, tips, directions, context.needle.radius_mm,
        settings.search_step_mm, pivot_depth_mm + PIVOT_MARGIN_MM,
        context.anatomy.midsagittal, has_soft_tissue=False,
        guarded_level=context.target_level,
    )
    thresholds = context.thresholds
    foramen = lines.foramen_clearance < min(0.0, thresholds.foramen_min_mm)
    canal = (lines.canal_clearance < thresholds.canal_min_mm) | (
        lines.crossing & (lines.crossing_level <= context.target_level)
    )
    cortex = lines.cortex_clearance < thresholds.cortex_min_mm
    return SafetyCone(
        p_any=float(np.mean(foramen | canal | cortex)),
        p_foramen=float(np.mean(foramen)),
        p_canal=float(np.mean(canal)),
        p_cortex=float(np.mean(cortex)),
        samples=n,
        entry_error_mm=settings.entry_error_mm,
        angle_error_deg=settings.angle_error_deg,
        seed=settings.cone_seed,
        pivot=pivot_name,
    )
