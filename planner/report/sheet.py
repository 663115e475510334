"""One-page plan sheet: verdict first, then the pictures, then the numbers.

Laid out for A4 portrait so it prints as it is. It reads only the plan-file dictionary
(``Plan.to_dict()``) and already-rendered RGB pictures, so it can be regenerated from a saved
``plan.json`` and ``images/`` folder.

The page is laid out from the top down: every reason of the verdict is printed in full (the
pictures shrink to make room, they never cover a reason), the numbers table's font fits its rows,
and the warnings sit between the pictures and the footer. A number that limits the verdict is
shaded in the verdict's colour (amber: caution limit, red: unsafe limit).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from planner.report.rows import Row, sheet_table  # noqa: E402

A4_PORTRAIT_IN = (8.27, 11.69)
VERDICT_COLORS = {"safe": "#1b7f3a", "caution": "#c77c00", "unsafe": "#b3121f"}
DISCLAIMER = (
    "For research use only. Not a medical device. The plan must be checked by a qualified "
    "physician against the images before any procedure."
)
#: Page fractions: the banner's bottom, the footer's top, gaps between blocks.
BANNER_BOTTOM = 0.895
FOOTER_TOP = 0.035
BLOCK_GAP = 0.012
#: Font sizes (pt), wrap widths (characters at that size across the text's width), and the line
#: height as a multiple of the font size.
REASON_FONT_PT = 8.0
REASON_WRAP_CHARS = 112
WARNING_FONT_PT = 7.0
WARNING_WRAP_CHARS = 150
LINE_SPACING = 1.3
#: At most this many warnings are printed (the rest are counted; all are in plan.json). The
#: reasons are never cut.
WARNINGS_SHOWN_MAX = 6
#: Share of the picture height given to the two fluoroscopy views (what is seen in the room).
FLUORO_SHARE = 0.56
#: Space for a picture's caption above it, page fraction.
CAPTION_HEIGHT = 0.018
#: Table font (pt): the largest used, the smallest allowed, and row height per font point.
TABLE_FONT_MAX_PT = 7.5
TABLE_FONT_MIN_PT = 4.0
TABLE_FONT_STEP_PT = 0.25
#: Share of a cell's width kept free right of its text as measured with Agg: PDF viewers draw
#: glyphs a little wider (poppler at 80 dpi ran a label 2 % past its cell).
TABLE_TEXT_SLACK = 0.05
TABLE_ROW_PT_PER_FONT_PT = 1.75
#: Cell shades for a number beyond a caution / an unsafe limit.
ROW_SHADES = {"caution": "#ffe0a3", "unsafe": "#ffb3b8"}
#: Picture slots: image key, caption, and left edge and width as page fractions.
FLUORO_SLOTS = (
    ("lateral", "Lateral fluoroscopy (simulated)", 0.03, 0.47),
    ("ap", "AP fluoroscopy (simulated), beam at 90 deg to the needle", 0.50, 0.47),
)
CT_SLOT = ("ct_sagittal", "CT in the plane of the needle", 0.03, 0.40)
TABLE_LEFT, TABLE_WIDTH = 0.45, 0.52
#: Label column's share of the table width.
TABLE_LABEL_SHARE = 0.43


def _line_height(font_pt: float) -> float:
    """Height of one text line as a page fraction."""
    return font_pt * LINE_SPACING / 72.0 / A4_PORTRAIT_IN[1]


def _wrap_items(items: list[str], width: int) -> list[str]:
    lines: list[str] = []
    for item in items:
        lines.extend(textwrap.wrap(item, width, initial_indent="- ", subsequent_indent="  "))
    return lines


_ANATOMY_WARNING = re.compile(r"^anatomy (?P<subject>[\w ]+?): (?P<body>.+)$")


def sheet_warnings(plan: dict) -> list[str]:
    """The warnings worth printing: the same anatomy note for several structures is merged
    (``"anatomy canal, foramina: voxels up to 3.0 mm: ..."``) and a note that a reason already
    states in full is left out."""
    reasons = " | ".join(plan.get("reasons") or [])
    merged: dict[str, list[str]] = {}
    for warning in plan.get("warnings") or []:
        match = _ANATOMY_WARNING.match(warning)
        subject, body = (match["subject"], match["body"]) if match else ("", warning)
        if not match and ": " in warning:
            subject, body = warning.split(": ", 1)
        merged.setdefault(body, [])
        if subject not in merged[body]:
            merged[body].append(subject)
    result = []
    for body, subjects in merged.items():
        if len(subjects) == 1 and body in reasons:
            continue
        named = ", ".join(s for s in subjects if s)
        anatomy = all(_ANATOMY_WARNING.match(f"anatomy {s}: x") for s in subjects if s)
        prefix = ("anatomy " if anatomy and named and len(subjects) > 1 else "") + named
        result.append(f"{prefix}: {body}" if prefix else body)
    return result


@dataclass(frozen=True)
class SheetLayout:
    """Where each block goes (page fractions, y upwards from the page bottom)."""

    reason_lines: list[str]
    reasons_top: float
    fluoro_bottom: float
    fluoro_height: float
    lower_bottom: float
    lower_height: float
    warning_lines: list[str]
    warnings_top: float


def sheet_layout(plan: dict) -> SheetLayout:
    """Lay the page out top-down for this plan's reasons and warnings."""
    reasons = list(plan.get("reasons") or []) or ["all thresholds met"]
    reason_lines = _wrap_items(reasons, REASON_WRAP_CHARS)
    reasons_top = BANNER_BOTTOM - 0.010
    reasons_bottom = reasons_top - len(reason_lines) * _line_height(REASON_FONT_PT)
    warnings = sheet_warnings(plan)
    shown = warnings[:WARNINGS_SHOWN_MAX]
    warning_lines = _wrap_items(shown, WARNING_WRAP_CHARS)
    if len(warnings) > len(shown):
        warning_lines.append(f"- ... {len(warnings) - len(shown)} more in plan.json")
    warnings_height = 0.0
    if warning_lines:
        warnings_height = (len(warning_lines) + 1) * _line_height(WARNING_FONT_PT) + 2 * BLOCK_GAP
    warnings_top = FOOTER_TOP + warnings_height
    pictures_top = reasons_bottom - BLOCK_GAP
    available = pictures_top - warnings_top - 2 * CAPTION_HEIGHT - BLOCK_GAP
    fluoro_height = FLUORO_SHARE * available
    fluoro_bottom = pictures_top - CAPTION_HEIGHT - fluoro_height
    lower_height = available - fluoro_height
    lower_bottom = fluoro_bottom - BLOCK_GAP - CAPTION_HEIGHT - lower_height
    return SheetLayout(
        reason_lines, reasons_top, fluoro_bottom, fluoro_height, lower_bottom, lower_height,
        warning_lines, warnings_top,
    )


def _subtitle(plan: dict) -> str:
    """The route in words, from the plan (not a fixed S4/S3 text)."""
    crossing = (plan.get("metrics") or {}).get("canal_crossing_level")
    target = plan.get("target") or {}
    level = target.get("level")
    target_text = f"{level} body" if level else "target"
    if target.get("source") == "lesion":
        target_text = f"lesion ({level})" if level else "lesion"
    canal = f"{crossing} canal" if crossing else "canal NOT crossed"
    route = f"hiatus -> {canal} -> {target_text}"
    if plan.get("feasible") is False:
        return f"NO FEASIBLE PATH, the least bad one is shown ({route})"
    return f"Interpedicular sacroplasty plan ({route})"


def _verdict_banner(figure, plan: dict) -> None:
    verdict = str(plan.get("verdict", "unsafe"))
    color = VERDICT_COLORS.get(verdict, "#444444")
    figure.patches.append(
        matplotlib.patches.Rectangle(
            (0.04, BANNER_BOTTOM), 0.92, 0.075, transform=figure.transFigure, color=color,
            zorder=0,
        )
    )
    figure.text(0.06, 0.945, f"Verdict: {verdict.upper()}", color="white", fontsize=18,
                weight="bold", va="center")
    case = plan.get("case_id") or ""
    figure.text(0.94, 0.945, f"case {case}" if case else "", color="white", fontsize=9,
                ha="right", va="center")
    figure.text(0.06, 0.910, _subtitle(plan), color="white", fontsize=9, va="center",
                weight="bold" if plan.get("feasible") is False else "normal")


def _reasons(figure, layout: SheetLayout):
    figure.text(0.05, layout.reasons_top, "Why:", fontsize=10, weight="bold", va="top")
    return figure.text(0.12, layout.reasons_top, "\n".join(layout.reason_lines),
                       fontsize=REASON_FONT_PT, va="top", linespacing=LINE_SPACING)


def _fit_box(image: np.ndarray, left: float, bottom: float, width: float, height: float):
    """The largest box of the image's aspect inside the slot (page fractions), centred."""
    rows, cols = image.shape[:2]
    aspect = (rows / cols) * A4_PORTRAIT_IN[0] / A4_PORTRAIT_IN[1]  # height/width in fractions
    fitted_width = min(width, height / aspect)
    fitted_height = fitted_width * aspect
    return (left + (width - fitted_width) / 2, bottom + (height - fitted_height) / 2,
            fitted_width, fitted_height)


def _picture(figure, image, caption: str, box: tuple) -> None:
    left, bottom, width, height = box
    if image is not None:
        box = _fit_box(image, left, bottom, width, height)
    axes = figure.add_axes(box, label=caption)
    axes.set_axis_off()
    if image is None:
        axes.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=9)
    else:
        axes.imshow(image)
    figure.text(left + width / 2, box[1] + box[3] + 0.004, caption, ha="center", va="bottom",
                fontsize=8)


def _caption(caption: str, plan: dict) -> str:
    """A slot's caption; a plan made on an MRI alone says its pictures come from a pseudo-CT."""
    if plan.get("source_modality") != "MR":
        return caption
    if caption.startswith("CT "):
        return "Pseudo-CT from the MRI" + caption[2:]
    return caption.replace("(simulated)", "(simulated from MRI)")


def _pictures(figure, images: dict, layout: SheetLayout, plan: dict) -> None:
    for key, caption, left, width in FLUORO_SLOTS:
        box = (left, layout.fluoro_bottom, width, layout.fluoro_height)
        _picture(figure, images.get(key), _caption(caption, plan), box)
    key, caption, left, width = CT_SLOT
    _picture(figure, images.get(key), _caption(caption, plan),
             (left, layout.lower_bottom, width, layout.lower_height))


def _numbers(figure, rows: list[Row], layout: SheetLayout):
    """The numbers table, its font fitted so every row fits the slot."""
    row_height_pt = layout.lower_height * A4_PORTRAIT_IN[1] * 72.0 / max(1, len(rows))
    font_pt = min(TABLE_FONT_MAX_PT, row_height_pt / TABLE_ROW_PT_PER_FONT_PT)
    height = len(rows) * font_pt * TABLE_ROW_PT_PER_FONT_PT / 72.0 / A4_PORTRAIT_IN[1]
    bottom = layout.lower_bottom + layout.lower_height - height
    axes = figure.add_axes((TABLE_LEFT, bottom, TABLE_WIDTH, height), label="numbers")
    axes.set_axis_off()
    table = axes.table(
        cellText=[[row.name, row.value] for row in rows],
        colWidths=[TABLE_LABEL_SHARE, 1.0 - TABLE_LABEL_SHARE],
        cellLoc="left",
        bbox=(0.0, 0.0, 1.0, 1.0),
    )
    table.auto_set_font_size(False)
    _fit_font(figure, table, font_pt)
    for index, row in enumerate(rows):
        if row.status in ROW_SHADES:
            for column in (0, 1):
                table[index, column].set_facecolor(ROW_SHADES[row.status])
    return table


def text_fits(cell, renderer) -> bool:
    """Whether a table cell's text ends :data:`TABLE_TEXT_SLACK` of its width before its edge."""
    box = cell.get_window_extent(renderer)
    return cell.get_text().get_window_extent(renderer).x1 <= box.x1 - TABLE_TEXT_SLACK * box.width


def _fit_font(figure, table, font_pt: float) -> float:
    """Set the table's font, made smaller until the longest text fits its cell; returns it."""
    renderer = figure.canvas.get_renderer()
    while True:
        table.set_fontsize(font_pt)
        table.draw(renderer)  # lays the cells out (as a figure draw would) before measuring
        cells = table.get_celld().values()
        fits = all(text_fits(cell, renderer) for cell in cells)
        if fits or font_pt <= TABLE_FONT_MIN_PT:
            return font_pt
        font_pt -= TABLE_FONT_STEP_PT


def _warnings(figure, layout: SheetLayout):
    if not layout.warning_lines:
        return None
    top = layout.warnings_top - BLOCK_GAP
    figure.text(0.04, top, "Warnings and confidence:", fontsize=8, weight="bold", va="top")
    return figure.text(0.04, top - _line_height(WARNING_FONT_PT) - 0.002,
                       "\n".join(layout.warning_lines), fontsize=WARNING_FONT_PT, va="top",
                       linespacing=LINE_SPACING)


def sheet_figure(plan: dict, images: dict[str, np.ndarray]):
    """The plan sheet as a matplotlib Figure (A4 portrait); see :func:`render_plan_sheet`."""
    layout = sheet_layout(plan)
    figure = plt.figure(figsize=A4_PORTRAIT_IN)
    _verdict_banner(figure, plan)
    _reasons(figure, layout)
    _pictures(figure, images, layout, plan)
    _numbers(figure, sheet_table(plan), layout)
    _warnings(figure, layout)
    figure.text(0.5, 0.018, DISCLAIMER, ha="center", fontsize=7.5, style="italic", wrap=True)
    return figure


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
    figure = sheet_figure(plan, images)
    try:
        with PdfPages(path, metadata={"Title": "Sacroplasty plan", "Creator": "sacroplan"}) as pdf:
            pdf.savefig(figure)
    finally:
        plt.close(figure)
    return path


def sheet_rows(plan: dict) -> list[tuple[str, str]]:
    """(name, value) rows of the numbers table, in the order a physician reads them."""
    return [(row.name, row.value) for row in sheet_table(plan)]
