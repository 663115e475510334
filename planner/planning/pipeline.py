"""`plan()`: from a CT volume (and its anatomy) to a scored interpedicular needle plan."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from planner.anatomy.model import LEVEL_LABELS, SacralAnatomy
from planner.planning.geometry import anterior_edge_frame, build_fields, crop_sacrum
from planner.planning.metrics import build_plan
from planner.planning.model import CanalLimit, Needle, Plan, Verdict
from planner.planning.search import PlanContext, search_directions
from planner.planning.target import resolve_target
from planner.planning.thresholds import Thresholds, resolve_settings
from planner.planning.verdict import HARD_CONSTRAINTS
from planner.volume import Volume

#: Longest stretch of bone (mm) a needle may cross behind the target; the distance fields
#: cover it (the bone part of an interpedicular path is 25-60 mm), plus the field margin.
BONE_REACH_MM = 80.0
#: Plain names of the hard constraints for the "no feasible path" message.
CONSTRAINT_TEXT = {
    "foramen_contact": "touches a foramen",
    "cortex_breach": "breaches the cortex",
    "bone_margin": "leaves the bone between the canal wall and the target",
    "canal_cranial": "meets the canal at or above the target's level",
    "other_bone": "runs through other bone",
    "needle_length": "needs a needle longer than available",
    "canal_limit": "crosses the canal too close below the end of the dural sac",
}


def plan(
    volume: Volume,
    anatomy: SacralAnatomy | None = None,
    target=None,
    needle="13G",
    thresholds: Thresholds | dict | None = None,
    config=None,
    canal_limit: CanalLimit | None = None,
) -> Plan:
    """Plan a straight interpedicular sacroplasty needle.

    Parameters
    ----------
    volume : Volume
        The CT (HU); used for the skin surface and for other bone on the path.
    anatomy : SacralAnatomy, optional
        Found with :func:`planner.anatomy.find_anatomy` when not given.
    target : None, str, (3,) array-like or Volume
        None (centre of the S3 body), a level name (``"S2"``), a point in LPS mm, or a lesion
        mask (its centre inside bone; lesion and cement volumes are reported).
    needle : str, int or Needle
        Gauge: ``"13G"`` (default, 2.41 mm), ``"11G"`` (3.05 mm), ``"10G"`` (3.40 mm).
    thresholds : Thresholds or dict, optional
        Verdict limits; override the config's.
    config : dict or path of a TOML file, optional
        ``[thresholds]`` and ``[planning]`` tables (see :mod:`planner.planning.thresholds`).
    canal_limit : CanalLimit, optional
        A point in the canal (e.g. the end of the dural sac from MRI) that every crossing must
        stay caudal of by its margin: a hard constraint of the search.

    Returns
    -------
    Plan
        The best path (ranked first) with up to ``max_alternatives`` distinct alternatives.
        When no path meets every hard constraint, the least bad one, marked unsafe and
        ``feasible=False``, with the reason.
    """
    thresholds, settings = resolve_settings(thresholds, config)
    needle = Needle.parse(needle)
    if anatomy is None:
        from planner.anatomy.find import find_anatomy

        anatomy = find_anatomy(volume)
    crop = crop_sacrum(anatomy)
    target_info = resolve_target(target, anatomy, crop)
    frame = anterior_edge_frame(anatomy, target_info.target_lps)
    fields = build_fields(crop, _reach(frame, target_info.target_lps, thresholds, settings),
                          anatomy)
    context = PlanContext(
        anatomy=anatomy, ct=volume, fields=fields, frame=frame,
        target_lps=np.asarray(target_info.target_lps, float),
        target_level=LEVEL_LABELS.get(target_info.level or "", 0),
        needle=needle, thresholds=thresholds, settings=settings, canal_limit=canal_limit,
    )
    result = search_directions(context)
    warnings = _warnings(anatomy, target_info)
    best = build_plan(context, target_info, frame.direction(*result.best), 1, warnings)
    if not best.feasible:
        best = replace(best, reasons=(_no_path_reason(result.summary, target_info),
                                      *best.reasons))
    alternatives = _alternatives(context, target_info, result.alternatives, settings) \
        if best.feasible else ()
    return replace(best, alternatives=alternatives, search=result.summary)


def _reach(frame, target_lps, thresholds, settings) -> np.ndarray:
    """Target and the far ends of the bone parts of the most tilted candidate needles."""
    sagittal = thresholds.angle_max_deg
    out_of_plane = min(settings.out_of_plane_max_deg, sagittal)
    angles = [(a, b) for a in (-sagittal, 0.0, sagittal) for b in (-out_of_plane, 0.0,
                                                                     out_of_plane)]
    directions = np.array([frame.direction(a, b) for a, b in angles])
    return np.vstack([target_lps, target_lps - BONE_REACH_MM * directions])


def _alternatives(context, target_info, candidates, settings) -> tuple[Plan, ...]:
    """Plans of the candidate directions, best first, keeping only those still feasible when
    measured densely (the search samples more coarsely)."""
    kept: list[Plan] = []
    for angles in candidates:
        if len(kept) >= settings.max_alternatives:
            break
        alternative = build_plan(context, target_info, context.frame.direction(*angles),
                                 len(kept) + 2, [])
        if alternative.feasible:
            kept.append(alternative)
    return tuple(kept)


def _warnings(anatomy: SacralAnatomy, target_info) -> list[str]:
    warnings = [f"anatomy {reason}" for reason in anatomy.low_confidence_reasons()]
    if target_info.level is None:
        warnings.append("the target is not inside a labelled sacral body")
    return warnings


def _no_path_reason(summary: dict, target_info) -> str:
    shares = summary["broken_share"]
    causes = ", ".join(
        f"{100 * shares[name]:.0f}% {CONSTRAINT_TEXT[name]}"
        for name in HARD_CONSTRAINTS if shares[name] > 0
    )
    return (
        f"no feasible path: no straight needle to the {target_info.description} within "
        f"{summary['sagittal_range_deg'][1]:g} deg of the anterior sacral edge meets every hard "
        f"constraint (of the directions searched: {causes}); the least bad path is shown"
    )


__all__ = ["Verdict", "plan"]
