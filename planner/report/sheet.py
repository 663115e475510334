"""One-page plan sheet: verdict first, then the pictures, then the numbers.

Laid out for A4 portrait so it prints as it is. It reads only the plan-file dictionary
(``Plan.to_dict()``) and already-rendered RGB pictures, so it can be regenerated from a saved
``plan.json`` and ``images/`` folder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

A4_PORTRAIT_IN = (8.27, 11.69)
VERDICT_COLORS = {"safe": "#1b7f3a", "caution": "#c77c00", "unsafe": "#b3121f"}
DISCLAIMER = (
    "For research use only. Not a medical device. The plan must be checked by a qualified "
    "physician against the images before any procedure."
)
#: Picture slots on the sheet: image key, caption, and (left, bottom, width, height) in page
#: fractions. The two fluoroscopy views get the most room: they are what is seen in the room.
SHEET_PICTURES = (
    ("lateral", "Lateral fluoroscopy (simulated)", (0.03, 0.425, 0.47, 0.375)),
    ("ap", "AP fluoroscopy, beam perpendicular to the needle", (0.50, 0.425, 0.47, 0.375)),
    ("ct_sagittal", "CT in the plane of the needle", (0.03, 0.105, 0.40, 0.295)),
)


def _fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"
    return str(value)


def sheet_rows(plan: dict) -> list[tuple[str, str]]:
    """(name, value) rows of the numbers table, in the order a physician reads them."""
    metrics = plan.get("metrics", {})
    needle = plan.get("needle", {})
    cone = plan.get("safety_cone") or {}
    rows = [
        ("Target", plan.get("target_description", "centre of S3 body")),
        ("Skin to target depth", _fmt(metrics.get("skin_to_target_mm"), "mm")),
        (
            "Needle",
            f"{needle.get('gauge', '?')} G, "
            f"{_fmt(needle.get('outer_diameter_mm'), 'mm', 2)} outer diameter",
        ),
        (
            "Needle length needed / pick",
            f"{_fmt(needle.get('required_length_mm'), 'mm')} / "
            f"{_fmt(needle.get('standard_length_mm'), 'mm', 0)}",
        ),
        ("Intraosseous length", _fmt(metrics.get("intraosseous_length_mm"), "mm")),
        ("Canal crossing level", _fmt(metrics.get("canal_crossing_level"))),
        ("Min. clearance to foramina", _fmt(metrics.get("foramen_clearance_mm"), "mm")),
        ("Clearance to canal above crossing", _fmt(metrics.get("canal_clearance_mm"), "mm")),
        ("Clearance to anterior cortex", _fmt(metrics.get("anterior_cortex_clearance_mm"), "mm")),
        ("Angle to anterior sacral edge", _fmt(metrics.get("angle_to_anterior_edge_deg"), "deg")),
        ("Offset from mid-sagittal plane", _fmt(metrics.get("midline_offset_mm"), "mm")),
    ]
    if cone:
        rows.append(("Safety cone: P(contact)", _fmt(100.0 * cone.get("p_any", 0.0), "%")))
    for name, view in (plan.get("fluoroscopy") or {}).items():
        if isinstance(view, dict) and "label" in view:
            rows.append((f"C-arm, {name}", view["label"]))
    return rows


def _verdict_banner(figure, plan: dict) -> None:
    verdict = str(plan.get("verdict", "unsafe"))
    color = VERDICT_COLORS.get(verdict, "#444444")
    figure.patches.append(
        matplotlib.patches.Rectangle(
            (0.04, 0.895), 0.92, 0.075, transform=figure.transFigure, color=color, zorder=0
        )
    )
    title = f"Verdict: {verdict.upper()}"
    if plan.get("feasible") is False:
        title += "  (no feasible path: best infeasible path shown)"
    figure.text(0.06, 0.945, title, color="white", fontsize=18, weight="bold", va="center")
    case = plan.get("case_id") or ""
    figure.text(
        0.94,
        0.945,
        f"case {case}" if case else "",
        color="white",
        fontsize=9,
        ha="right",
        va="center",
    )
    figure.text(
        0.06,
        0.910,
        "Interpedicular sacroplasty plan (hiatus -> S4 canal -> S3 body)",
        color="white",
        fontsize=9,
        va="center",
    )


def _wrapped(items: list[str], limit: int, width: int) -> str:
    lines = []
    for item in items[:limit]:
        lines.extend(textwrap.wrap(item, width, initial_indent="- ", subsequent_indent="  "))
    if len(items) > limit:
        lines.append(f"- ... {len(items) - limit} more in plan.json")
    return "\n".join(lines)


def _reasons(figure, plan: dict) -> None:
    reasons = list(plan.get("reasons") or []) or ["all thresholds met"]
    figure.text(0.05, 0.885, "Why:", fontsize=10, weight="bold", va="top")
    figure.text(0.12, 0.885, _wrapped(reasons, 5, 105), fontsize=8, va="top")


def _pictures(figure, images: dict[str, np.ndarray]) -> None:
    for key, caption, box in SHEET_PICTURES:
        axes = figure.add_axes(box)
        axes.set_axis_off()
        image = images.get(key)
        if image is None:
            axes.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=9)
        else:
            axes.imshow(image)
        axes.set_title(caption, fontsize=8)


def _numbers(figure, plan: dict) -> None:
    rows = sheet_rows(plan)
    axes = figure.add_axes((0.45, 0.10, 0.52, 0.30))
    axes.set_axis_off()
    table = axes.table(
        cellText=[[name, value] for name, value in rows],
        colWidths=[0.45, 0.55],
        loc="upper center",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1.0, 1.12)


def _warnings(figure, plan: dict) -> None:
    warnings = list(plan.get("warnings") or [])
    if not warnings:
        return
    figure.text(0.04, 0.088, "Warnings and confidence:", fontsize=8, weight="bold", va="top")
    figure.text(0.04, 0.074, _wrapped(warnings, 4, 150), fontsize=7, va="top")


def render_plan_sheet(plan: dict, images: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write the one-page PDF plan sheet.

    Parameters
    ----------
    plan : dict
        The plan-file dictionary (``Plan.to_dict()`` plus ``case_id`` if known).
    images : dict
        ``"lateral"``, ``"ap"``, ``"ct_sagittal"`` -> (H, W, 3) RGB arrays; missing ones are
        marked "not available".
    path : str or Path
        Destination ``.pdf``.
    """
    path = Path(path)
    figure = plt.figure(figsize=A4_PORTRAIT_IN)
    try:
        _verdict_banner(figure, plan)
        _reasons(figure, plan)
        _pictures(figure, images)
        _numbers(figure, plan)
        _warnings(figure, plan)
        figure.text(0.5, 0.018, DISCLAIMER, ha="center", fontsize=7.5, style="italic", wrap=True)
        with PdfPages(path, metadata={"Title": "Sacroplasty plan", "Creator": "sacroplan"}) as pdf:
            pdf.savefig(figure)
    finally:
        plt.close(figure)
    return path
