"""One-page plan sheet: verdict first, then the pictures, then the numbers.

Laid out for A4 portrait so it prints as it is. It reads only the plan-file dictionary
(``Plan.to_dict()``) and already-rendered RGB pictures, so it can be regenerated from a saved
``plan.json`` and ``images/`` folder.
"""

from __future__ import annotations

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
#: Picture slots on the sheet: (image key, caption), left to right.
SHEET_PICTURES = (
    ("lateral", "Lateral fluoroscopy (simulated)"),
    ("ap", "AP fluoroscopy, beam perpendicular to the needle"),
    ("ct_sagittal", "CT along the needle (oblique sagittal)"),
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


def _reasons(figure, plan: dict) -> None:
    reasons = list(plan.get("reasons") or []) or ["all thresholds met"]
    text = "\n".join(f"- {reason}" for reason in reasons[:8])
    if len(reasons) > 8:
        text += f"\n- ... {len(reasons) - 8} more in plan.json"
    figure.text(0.05, 0.885, "Why:", fontsize=10, weight="bold", va="top")
    figure.text(0.12, 0.885, text, fontsize=8.5, va="top", wrap=True)


def _pictures(figure, images: dict[str, np.ndarray]) -> None:
    width = 0.92 / len(SHEET_PICTURES)
    for index, (key, caption) in enumerate(SHEET_PICTURES):
        axes = figure.add_axes((0.04 + index * width, 0.50, width - 0.01, 0.27))
        axes.set_axis_off()
        image = images.get(key)
        if image is None:
            axes.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=9)
        else:
            axes.imshow(image)
        axes.set_title(caption, fontsize=7.5)


def _numbers(figure, plan: dict) -> None:
    rows = sheet_rows(plan)
    axes = figure.add_axes((0.05, 0.17, 0.90, 0.31))
    axes.set_axis_off()
    table = axes.table(
        cellText=[[name, value] for name, value in rows],
        colWidths=[0.45, 0.55],
        loc="upper center",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.15)


def _warnings(figure, plan: dict) -> None:
    warnings = list(plan.get("warnings") or [])
    if not warnings:
        return
    text = "\n".join(f"- {w}" for w in warnings[:6])
    if len(warnings) > 6:
        text += f"\n- ... {len(warnings) - 6} more in plan.json"
    figure.text(0.05, 0.155, "Warnings and confidence:", fontsize=9, weight="bold", va="top")
    figure.text(0.05, 0.135, text, fontsize=7.5, va="top", wrap=True)


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
        figure.text(0.5, 0.025, DISCLAIMER, ha="center", fontsize=7.5, style="italic", wrap=True)
        with PdfPages(path, metadata={"Title": "Sacroplasty plan", "Creator": "sacroplan"}) as pdf:
            pdf.savefig(figure)
    finally:
        plt.close(figure)
    return path
