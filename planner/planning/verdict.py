"""Hard constraints (feasibility) and the safe / caution / unsafe verdict with its reasons."""

from __future__ import annotations

import numpy as np

from planner.numbers import format_beyond_limit, format_number
from planner.planning.lines import LineSet
from planner.planning.model import Metrics, SafetyCone, Verdict
from planner.planning.thresholds import PlanningConfig, Thresholds

#: How every reason about the bone margin starts.
BONE_MARGIN_REASON = "bone around the needle between the anterior canal wall and the target"
#: Names of the hard constraints, in the order reasons are given.
HARD_CONSTRAINTS: tuple[str, ...] = (
    "foramen_contact",
    "cortex_breach",
    "bone_margin",
    "canal_cranial",
    "other_bone",
    "needle_length",
    "canal_limit",
)


def wall_pierce_mm(thresholds: Thresholds, radius_mm: float) -> float:
    """Length (mm) past the anterior canal wall before the canal just left counts in the bone
    margin: where a needle crossing the wall at ``wall_pierce_angle_deg`` is first
    ``(1 + bone_margin_safe_radii)`` radii deep (7.0 mm for 13 G with the defaults)."""
    depth_mm = (1.0 + thresholds.bone_margin_safe_radii) * radius_mm
    return depth_mm / np.sin(np.radians(thresholds.wall_pierce_angle_deg))


def bone_margin_safe_mm(thresholds: Thresholds, radius_mm: float) -> float:
    """The bone margin (mm) at or above which it does not limit the verdict."""
    return thresholds.bone_margin_safe_radii * radius_mm


def violations(lines: LineSet, target_level: int, thresholds: Thresholds,
               settings: PlanningConfig, below_limit_mm: np.ndarray | None = None,
               limit_margin_mm: float = 0.0) -> dict[str, np.ndarray]:
    """Per needle, which hard constraints it breaks (bool arrays keyed by HARD_CONSTRAINTS).

    ``bone_margin``: the needle's surface leaves the sacral bone between the anterior canal
    wall and the target (beyond the wall pierce, see
    :func:`planner.planning.lines.bone_margins`). ``canal_cranial``: the canal is crossed at
    or cranial to the target's level, or the needle comes into the canal cranial to its
    crossing. ``canal_limit``: the crossing lies less than
    ``limit_margin_mm`` caudal to a given canal limit (``below_limit_mm``, e.g. the end of the
    dural sac from MRI). ``needle_length``: the depth plus the working
    margin exceeds the longest standard needle; where the skin is unknown, the depth's lower
    bound is used (the field-of-view edge, or the bone entry on bone-only volumes), so an
    unknown skin never hides a needle that is surely too short.
    """
    crossed_too_high = lines.crossing & (lines.crossing_level <= target_level)
    shortest_needed = lines.s_skin_min + settings.working_margin_mm
    return {
        "foramen_contact": lines.foramen_clearance < min(0.0, thresholds.foramen_min_mm),
        "cortex_breach": lines.cortex_clearance < thresholds.cortex_min_mm,
        "bone_margin": lines.bone_margin < thresholds.bone_margin_min_mm,
        "canal_cranial": crossed_too_high | (lines.canal_clearance < thresholds.canal_min_mm),
        "other_bone": lines.other_bone,
        "needle_length": shortest_needed > max(settings.standard_lengths_mm),
        # NaN (no crossing, or no limit given) compares False: not broken.
        "canal_limit": (np.zeros(len(lines.crossing), bool) if below_limit_mm is None
                        else np.asarray(below_limit_mm) < limit_margin_mm),
    }


def describe_violation(name: str, metrics: Metrics, target_level: str | None,
                       required_length_mm: float | None, shortest_needed_mm: float,
                       settings: PlanningConfig, canal_limit=None,
                       below_limit_mm: float | None = None,
                       thresholds: Thresholds | None = None) -> str:
    """One plain sentence for a broken hard constraint."""
    if name == "canal_limit":
        where = canal_limit.description if canal_limit is not None else "the canal limit"
        margin = canal_limit.margin_mm if canal_limit is not None else 0.0
        below = "unknown" if below_limit_mm is None else f"{format_number(below_limit_mm)} mm"
        return (f"canal crossed only {below} caudal to {where} (< {margin:.0f} mm): risk of a "
                "dural puncture and CSF leak")
    if name == "foramen_contact":
        return (f"needle touches an anterior sacral foramen (clearance "
                f"{format_number(metrics.foramen_clearance_mm)} mm): nerve-root injury risk")
    if name == "cortex_breach":
        return (f"needle breaches the anterior/lateral sacral cortex (clearance "
                f"{format_number(metrics.anterior_cortex_clearance_mm)} mm): presacral vessels "
                "and rectum at risk")
    if name == "bone_margin":
        limit = 0.0 if thresholds is None else thresholds.bone_margin_min_mm
        return (f"{BONE_MARGIN_REASON} {format_number(metrics.bone_margin_mm)} mm"
                f"{_where_text(metrics.bone_margin_from_target_mm)}"
                f" (< {limit:g} mm; below 0 the needle leaves the sacral bone for the canal, a "
                "foramen or the outside)")
    if name == "canal_cranial":
        crossing = metrics.canal_crossing_level
        if crossing is not None and target_level is not None and crossing <= target_level:
            return (f"canal crossed at {crossing}, not caudal to the target's level "
                    f"{target_level}: the dural sac and roots above are at risk")
        return (f"needle comes into the sacral canal cranial to its crossing (clearance "
                f"{format_number(metrics.canal_clearance_mm)} mm)")
    if name == "other_bone":
        return "the skin-to-sacrum path runs through other bone (coccyx, ilium or L5)"
    if name == "needle_length":
        longest = max(settings.standard_lengths_mm)
        if required_length_mm is None:
            return (f"needle length needed is at least {shortest_needed_mm:.0f} mm (the skin is "
                    f"not seen), more than the longest standard needle ({longest:.0f} mm)")
        return (f"needle length needed {required_length_mm:.0f} mm exceeds the longest standard "
                f"needle ({longest:.0f} mm)")
    raise ValueError(f"unknown constraint {name}")


def _where_text(from_target_mm: float | None) -> str:
    return "" if from_target_mm is None else f" at {from_target_mm:.0f} mm from the target"


def soft_verdict(metrics: Metrics, cone: SafetyCone | None, thresholds: Thresholds,
                 anatomy_confidence: dict, skin_reason: str | None,
                 needle_radius_mm: float) -> tuple[Verdict, list[str]]:
    """Verdict from the soft limits alone (feasible paths), with every reason."""
    reasons: list[tuple[Verdict, str]] = []

    def grade(value, safe, minimum, text):
        if value < minimum:
            shown = format_beyond_limit(value, minimum)
            reasons.append((Verdict.UNSAFE, f"{text} {shown} mm < {minimum:.3g} mm"))
        elif value < safe:
            shown = format_beyond_limit(value, safe)
            reasons.append((Verdict.CAUTION, f"{text} {shown} mm < {safe:.3g} mm"))

    grade(metrics.foramen_clearance_mm, thresholds.foramen_safe_mm, thresholds.foramen_min_mm,
          "foramen clearance")
    grade(metrics.anterior_cortex_clearance_mm, thresholds.cortex_safe_mm,
          thresholds.cortex_min_mm, "anterior cortex clearance")
    grade(metrics.canal_clearance_mm, thresholds.canal_safe_mm, thresholds.canal_min_mm,
          "clearance to the canal above the crossing")
    wall_angle = metrics.canal_wall_angle_deg
    shallow = ("" if wall_angle is None or wall_angle >= thresholds.wall_pierce_angle_deg
               else f" (the needle crosses the anterior canal wall at {wall_angle:.0f} deg, "
               f"shallower than {thresholds.wall_pierce_angle_deg:g} deg)")
    grade(metrics.bone_margin_mm, bone_margin_safe_mm(thresholds, needle_radius_mm),
          thresholds.bone_margin_min_mm,
          f"{BONE_MARGIN_REASON}{_where_text(metrics.bone_margin_from_target_mm)}{shallow}:")
    angle = metrics.angle_to_anterior_edge_deg
    if angle > thresholds.angle_max_deg:
        reasons.append((Verdict.UNSAFE, f"angle to the anterior sacral edge "
                        f"{format_beyond_limit(angle, thresholds.angle_max_deg)} deg > "
                        f"{thresholds.angle_max_deg:g} deg: not an interpedicular path"))
    elif angle > thresholds.angle_safe_deg:
        reasons.append((Verdict.CAUTION, f"angle to the anterior sacral edge "
                        f"{format_beyond_limit(angle, thresholds.angle_safe_deg)} deg > "
                        f"{thresholds.angle_safe_deg:g} deg"))
    if metrics.midline_offset_mm > thresholds.midline_safe_mm:
        offset = format_beyond_limit(metrics.midline_offset_mm, thresholds.midline_safe_mm)
        reasons.append((Verdict.CAUTION, f"needle runs {offset} mm from the mid-sagittal plane "
                        f"(> {thresholds.midline_safe_mm:g} mm)"))
    hiatus_text = _hiatus_text(metrics.posterior_wall_from_hiatus_mm,
                               thresholds.hiatus_entry_safe_mm)
    if hiatus_text:
        reasons.append((Verdict.CAUTION, hiatus_text))
    if metrics.canal_crossing_level is None:
        # The interpedicular route is defined by its canal crossing; a path without one is
        # another procedure, which the plan's clearances were not designed to judge.
        reasons.append((Verdict.UNSAFE, "the needle does not cross the sacral canal: not the "
                        "interpedicular route"))
    if cone is not None:
        if cone.p_any > thresholds.cone_risk_max:
            reasons.append((Verdict.UNSAFE, _cone_text(cone, thresholds.cone_risk_max)))
        elif cone.p_any > thresholds.cone_risk_caution:
            reasons.append((Verdict.CAUTION, _cone_text(cone, thresholds.cone_risk_caution)))
    for name, conf in anatomy_confidence.items():
        if conf.score < thresholds.confidence_min:
            why = "; ".join(conf.reasons) or "no reason given"
            reasons.append((Verdict.CAUTION, f"low anatomy confidence in {name} "
                            f"({conf.score:.2f}): {why}"))
    if skin_reason:
        reasons.append((Verdict.CAUTION, f"skin entry and depth unknown: {skin_reason}; "
                        "measure the skin-to-target depth before the procedure"))
    verdict = Verdict.SAFE
    for level, _ in reasons:
        if level is Verdict.UNSAFE or (level is Verdict.CAUTION and verdict is Verdict.SAFE):
            verdict = level
    return verdict, [text for _, text in reasons]


def _hiatus_text(offset_mm: float | None, limit_mm: float) -> str | None:
    """Caution text when the posterior canal wall is pierced away from the hiatus, else None."""
    if offset_mm is None or abs(offset_mm) <= limit_mm:
        return None
    if offset_mm > 0:
        shown = format_beyond_limit(offset_mm, limit_mm)
        return (f"needle enters the canal through the laminae {shown} mm cranial to the "
                f"sacral hiatus apex (> {limit_mm:g} mm): the skin entry is not over the hiatus")
    shown = format_beyond_limit(-offset_mm, limit_mm)
    return (f"needle pierces the posterior canal wall {shown} mm caudal to the base of "
            f"the sacral hiatus (> {limit_mm:g} mm)")


def _cone_text(cone: SafetyCone, limit: float) -> str:
    return (f"safety cone: {100 * cone.p_any:.0f}% of placements with "
            f"{cone.entry_error_mm:g} mm / {cone.angle_error_deg:g} deg errors touch a foramen, "
            f"the canal above the crossing or breach the cortex (> {100 * limit:.0f}%)")
