"""Check a plan dict against the ``plan.json`` contract (DESIGN.md, "The plan file")."""

from __future__ import annotations

import json
import math

from planner.errors import PlannerError
from planner.planning.model import PLAN_FORMAT, PLAN_VERSION

VERDICTS = ("safe", "caution", "unsafe")
LEVELS = ("S1", "S2", "S3", "S4", "S5")
#: Metric keys every plan carries (None where unknown) and whether they may be None.
METRIC_KEYS: dict[str, bool] = {
    "foramen_clearance_mm": False,
    "canal_clearance_mm": False,
    "anterior_cortex_clearance_mm": False,
    "bone_margin_mm": False,
    "bone_margin_from_target_mm": True,
    "canal_wall_angle_deg": True,
    "angle_to_anterior_edge_deg": False,
    "midline_offset_mm": False,
    "skin_to_target_mm": True,
    "intraosseous_length_mm": False,
    "needle_length_required_mm": True,
}
UNIT_TOLERANCE = 1e-3


class PlanSchemaError(PlannerError):
    """A plan dict does not follow the plan-file contract."""


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_point(problems: list, where: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not (isinstance(value, list) and len(value) == 3 and all(map(_is_number, value))):
        problems.append(f"{where} must be a list of 3 finite numbers, got {value!r}")


def _check_body(problems: list, d: dict, where: str) -> None:
    _check_point(problems, f"{where}target_lps", d.get("target_lps"))
    _check_point(problems, f"{where}skin_entry_lps", d.get("skin_entry_lps"), optional=True)
    _check_point(problems, f"{where}bone_entry_lps", d.get("bone_entry_lps"), optional=True)
    direction = d.get("direction_lps")
    _check_point(problems, f"{where}direction_lps", direction)
    if isinstance(direction, list) and all(map(_is_number, direction)) and len(direction) == 3:
        norm = math.sqrt(sum(v * v for v in direction))
        if abs(norm - 1.0) > UNIT_TOLERANCE:
            problems.append(f"{where}direction_lps must be a unit vector (norm {norm:.4f})")
    needle = d.get("needle")
    if not isinstance(needle, dict):
        problems.append(f"{where}needle must be an object")
    else:
        if not isinstance(needle.get("gauge"), int):
            problems.append(f"{where}needle.gauge must be an integer")
        if not _is_number(needle.get("outer_diameter_mm")):
            problems.append(f"{where}needle.outer_diameter_mm must be a number")
        for key in ("required_length_mm", "standard_length_mm"):
            if key not in needle or not (needle[key] is None or _is_number(needle[key])):
                problems.append(f"{where}needle.{key} must be a number or null")
    levels = d.get("levels")
    if not isinstance(levels, dict) or not set(levels) <= set(LEVELS):
        problems.append(f"{where}levels must be an object keyed by S1..S5")
    else:
        for name, level in levels.items():
            _check_point(problems, f"{where}levels.{name}.center_lps",
                         level.get("center_lps") if isinstance(level, dict) else None)
    metrics = d.get("metrics")
    if not isinstance(metrics, dict):
        problems.append(f"{where}metrics must be an object")
    else:
        for key, nullable in METRIC_KEYS.items():
            value = metrics.get(key, "missing")
            if not (_is_number(value) or (nullable and value is None)):
                problems.append(f"{where}metrics.{key} must be a number"
                                f"{' or null' if nullable else ''}, got {value!r}")
        level = metrics.get("canal_crossing_level", "missing")
        if level is not None and level not in LEVELS:
            problems.append(f"{where}metrics.canal_crossing_level must be S1..S5 or null")
    if d.get("verdict") not in VERDICTS:
        problems.append(f"{where}verdict must be one of {VERDICTS}, got {d.get('verdict')!r}")
    for key in ("reasons", "warnings"):
        if not (isinstance(d.get(key), list) and all(isinstance(r, str) for r in d[key])):
            problems.append(f"{where}{key} must be a list of strings")
    if not isinstance(d.get("feasible"), bool):
        problems.append(f"{where}feasible must be true or false")
    crossing = d.get("canal_crossing", "missing")
    if crossing is not None:
        if not isinstance(crossing, dict):
            problems.append(f"{where}canal_crossing must be an object or null")
        else:
            _check_point(problems, f"{where}canal_crossing.entry_lps", crossing.get("entry_lps"))
            _check_point(problems, f"{where}canal_crossing.exit_lps", crossing.get("exit_lps"))
    if not isinstance(d.get("fluoroscopy"), dict):
        problems.append(f"{where}fluoroscopy must be an object")


def validate_plan_dict(d: dict) -> None:
    """Raise :class:`PlanSchemaError` listing every way ``d`` breaks the plan-file contract.

    Checks the header keys, the types and shapes of every DESIGN.md key (points are 3 finite
    numbers, the direction a unit vector, unknowns null), the alternatives, and that the dict
    is strict JSON (no NaN or infinity).
    """
    problems: list[str] = []
    if not isinstance(d, dict):
        raise PlanSchemaError(f"a plan must be a JSON object, got {type(d).__name__}")
    expected = {"format": PLAN_FORMAT, "version": PLAN_VERSION,
                "coordinate_system": "LPS", "units": "mm"}
    for key, value in expected.items():
        if d.get(key) != value:
            problems.append(f"{key} must be {value!r}, got {d.get(key)!r}")
    _check_body(problems, d, "")
    alternatives = d.get("alternatives")
    if not isinstance(alternatives, list):
        problems.append("alternatives must be a list")
    else:
        for index, alternative in enumerate(alternatives):
            if isinstance(alternative, dict):
                _check_body(problems, alternative, f"alternatives[{index}].")
            else:
                problems.append(f"alternatives[{index}] must be an object")
    try:
        json.dumps(d, allow_nan=False)
    except (TypeError, ValueError) as error:
        problems.append(f"not strict JSON: {error}")
    if problems:
        raise PlanSchemaError("plan does not follow the plan-file contract: "
                              + "; ".join(problems))
