"""The numbers table of the plan sheet, read from the plan-file dictionary.

Each row says what a physician checks, with its unit and the rounding of the reasons (0.1 mm,
0.1 deg, whole percent), and whether the number is beyond a caution or an unsafe limit of the
plan's own ``thresholds`` (so the table shades exactly the numbers the reasons name).
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.fluoro.views import is_steep_tilt
from planner.numbers import format_beyond_limit, format_number

#: Names of the fluoroscopy views in the table.
VIEW_NAMES = {"lateral": "lateral", "ap": "AP", "bullseye": "bull's-eye"}


@dataclass(frozen=True)
class Row:
    """One table row: label, value text, and ``"caution"``/``"unsafe"`` if beyond a limit."""

    name: str
    value: str
    status: str | None = None


def fmt(value, unit: str = "", digits: int = 1, missing: str = "unknown") -> str:
    """A number with its unit, or ``missing`` for None."""
    if value is None:
        return missing
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = format_number(value, digits)
        return f"{text}{(' ' + unit) if unit else ''}"
    return str(value)


def _status(value, safe, limit, higher_is_better: bool) -> str | None:
    """``"unsafe"`` beyond ``limit``, ``"caution"`` beyond ``safe``, else None."""
    if value is None:
        return None
    sign = 1.0 if higher_is_better else -1.0
    if limit is not None and sign * value < sign * limit:
        return "unsafe"
    if safe is not None and sign * value < sign * safe:
        return "caution"
    return None


def limited_row(name: str, value, unit: str, safe, limit, higher_is_better: bool,
                suffix: str = "", missing: str = "unknown") -> Row:
    """A row for a number with verdict limits: shaded when beyond one, and printed with more
    decimals when one would hide the breach (1.99 mm against 2 mm is "1.99 mm", not "2.0 mm";
    :func:`planner.numbers.format_beyond_limit`)."""
    status = _status(value, safe, limit, higher_is_better)
    if status is None:
        return Row(name, fmt(value, unit, missing=missing) + suffix, None)
    # The same rule as the verdict's reasons, against the limit the value breaks.
    breached = limit if status == "unsafe" else safe
    text = format_beyond_limit(value, breached)
    return Row(name, f"{text}{(' ' + unit) if unit else ''}{suffix}", status)


def _clearance_rows(plan: dict) -> list[Row]:
    metrics = plan.get("metrics") or {}
    limits = plan.get("thresholds") or {}
    radius_mm = float((plan.get("needle") or {}).get("outer_diameter_mm") or 0.0) / 2.0
    per_foramen = metrics.get("foramen_clearances_mm") or {}
    nearest = min(per_foramen, key=per_foramen.get) if per_foramen else None
    foramen = metrics.get("foramen_clearance_mm")
    radii = limits.get("bone_margin_safe_radii")
    margin_safe = None if radii is None else radii * radius_mm
    specs = (
        ("Clearance to foramina (nearest)", foramen, "foramen", True,
         f" ({nearest})" if nearest and foramen is not None else ""),
        ("Canal clearance above crossing", metrics.get("canal_clearance_mm"), "canal", True, ""),
        ("Clearance to anterior cortex", metrics.get("anterior_cortex_clearance_mm"), "cortex",
         True, ""),
    )
    rows = [
        limited_row(name, value, "mm", limits.get(f"{key}_safe_mm"),
                    limits.get(f"{key}_min_mm"), better, suffix)
        for name, value, key, better, suffix in specs
    ]
    rows.append(limited_row("Bone around the needle", metrics.get("bone_margin_mm"), "mm",
                            margin_safe, limits.get("bone_margin_min_mm"), True))
    return rows


def _level_number(level: str) -> int:
    """``"S3"`` -> 3 (cranial levels have smaller numbers)."""
    return int(level.lstrip("Ss"))


def _route_rows(plan: dict) -> list[Row]:
    metrics = plan.get("metrics") or {}
    limits = plan.get("thresholds") or {}
    crossing = metrics.get("canal_crossing_level")
    target_level = (plan.get("target") or {}).get("level")
    crossing_status = "caution" if not crossing else None
    if crossing and target_level and _level_number(crossing) <= _level_number(target_level):
        crossing_status = "unsafe"  # crossed at or cranial to the target's level
    wall = metrics.get("posterior_wall_from_hiatus_mm")
    angle = metrics.get("angle_to_anterior_edge_deg")
    midline = metrics.get("midline_offset_mm")
    return [
        Row("Canal crossing level", crossing or "not crossed", crossing_status),
        limited_row("Canal entry above hiatus apex", wall, "mm",
                    limits.get("hiatus_entry_safe_mm"), None, False, missing="not crossed"),
        limited_row("Angle to anterior sacral edge", angle, "deg", limits.get("angle_safe_deg"),
                    limits.get("angle_max_deg"), False),
        limited_row("Offset from mid-sagittal plane", midline, "mm",
                    limits.get("midline_safe_mm"), None, False),
    ]


def _depth_rows(plan: dict) -> list[Row]:
    metrics = plan.get("metrics") or {}
    needle = plan.get("needle") or {}
    skin_known = plan.get("skin_entry_lps") is not None
    unknown = "not in the scan: measure"
    depth = metrics.get("skin_to_target_mm")
    length = (
        f"{fmt(needle.get('required_length_mm'), 'mm')} / "
        f"{fmt(needle.get('standard_length_mm'), 'mm', 0)}"
        if skin_known else unknown
    )
    return [
        Row("Skin to target depth", fmt(depth, "mm") if skin_known else unknown,
            None if skin_known else "caution"),
        Row("Needle", f"{needle.get('gauge', '?')} G, "
            f"{fmt(needle.get('outer_diameter_mm'), 'mm', 2)} outer diameter"),
        Row("Needle length: needed / standard", length),
        Row("Intraosseous length", fmt(metrics.get("intraosseous_length_mm"), "mm")),
    ]


def _target_rows(plan: dict) -> list[Row]:
    target = plan.get("target") or {}
    rows = [Row("Target", plan.get("target_description", "centre of the S3 body"))]
    if target.get("lesion_volume_ml") is not None:
        rows.append(Row("Lesion volume / cement estimate",
                        f"{fmt(target.get('lesion_volume_ml'), 'mL', 2)} / "
                        f"{fmt(target.get('cement_volume_ml'), 'mL')}"))
    return rows


def _mri_rows(plan: dict) -> list[Row]:
    mri = plan.get("mri")
    if not isinstance(mri, dict):
        return []
    rows = []
    registration = mri.get("registration") or {}
    if registration:
        good = registration.get("quality_ok")
        text = "checks passed" if good else "CHECK FAILED (see reasons)"
        rows.append(Row("MR-CT registration", text, None if good else "caution"))
    sac = mri.get("dural_sac_end") or {}
    if sac.get("level"):
        rows.append(Row("Dural sac ends (MR)", f"at {sac['level']}"))
    return rows


def _cone_row(plan: dict) -> list[Row]:
    cone = plan.get("safety_cone") or {}
    if "p_any" not in cone:
        return []
    limits = plan.get("thresholds") or {}
    p_any = cone["p_any"]
    return [Row(
        "Safety cone: P(contact)",
        f"{100.0 * p_any:.0f} % ({cone.get('entry_error_mm', '?')} mm / "
        f"{cone.get('angle_error_deg', '?')} deg errors)",
        _status(p_any, limits.get("cone_risk_caution"), limits.get("cone_risk_max"), False),
    )]


def _carm_rows(plan: dict) -> list[Row]:
    rows = []
    for key, name in VIEW_NAMES.items():
        view = (plan.get("fluoroscopy") or {}).get(key)
        if not isinstance(view, dict) or "label" not in view:
            continue
        text = view["label"]
        tilt = view.get("secondary_deg")
        if tilt is not None and is_steep_tilt(tilt):
            text += " (steep: check reach)"
        rows.append(Row(f"C-arm, {name}", text))
    return rows


def sheet_table(plan: dict) -> list[Row]:
    """Every row of the numbers table, in the order a physician reads them."""
    return [
        *_target_rows(plan),
        *_depth_rows(plan),
        *_route_rows(plan),
        *_clearance_rows(plan),
        *_cone_row(plan),
        *_mri_rows(plan),
        *_carm_rows(plan),
    ]
