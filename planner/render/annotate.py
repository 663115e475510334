"""Annotations shared by every picture: orientation letters, millimetre scale bars, figures.

Letters are derived from the LPS direction of the image axes, so they are right for any view:
``L``/``R`` patient left/right (+x/-x), ``P``/``A`` posterior/anterior (+y/-y), ``H``/``F``
head/feet (+z/-z). An oblique edge gets two letters, the dominant one first (e.g. ``"HP"``).

Figures are :class:`matplotlib.figure.Figure` objects drawn with the Agg canvas: no pyplot state,
safe in batch runs and threads.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: A world axis contributes a letter to an edge when its share of the edge direction is at least
#: this (cosine; 0.34 is about 70 degrees): a 20-degree oblique edge reads e.g. "HP".
SECOND_LETTER_MIN = 0.34
#: Letters for (negative, positive) LPS components.
AXIS_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))
#: Candidate scale-bar lengths, mm; the longest that fits in SCALE_BAR_MAX_FRACTION is used.
SCALE_BAR_LENGTHS_MM = (1, 2, 5, 10, 20, 25, 50, 100, 200)
SCALE_BAR_MAX_FRACTION = 0.25
#: Display size of one figure, inches at FIGURE_DPI.
FIGURE_DPI = 100
LETTER_COLOR = "#ffd54f"
TEXT_COLOR = "white"
#: Letters and the scale bar get a dark outline of this width (points), so that they read on the
#: white air of a radiograph as well as on dark CT.
OUTLINE_WIDTH_PT = 2.5
OUTLINE_COLOR = "black"


def outlined(width_pt: float = OUTLINE_WIDTH_PT) -> list:
    """Path effects drawing a dark outline under a light text or line."""
    return [patheffects.withStroke(linewidth=width_pt, foreground=OUTLINE_COLOR)]


def direction_letters(direction_lps: np.ndarray) -> str:
    """Orientation letters of one LPS direction, dominant first (e.g. ``"L"``, ``"HP"``)."""
    direction = np.asarray(direction_lps, dtype=float).reshape(3)
    norm = np.linalg.norm(direction)
    if norm < 1e-12:
        return ""
    direction = direction / norm
    order = np.argsort(-np.abs(direction))
    letters = ""
    for axis in order:
        if letters and abs(direction[axis]) < SECOND_LETTER_MIN:
            break
        letters += AXIS_LETTERS[axis][int(direction[axis] > 0)]
        if len(letters) == 2:
            break
    return letters


def edge_letters(right_lps: np.ndarray, down_lps: np.ndarray) -> dict[str, str]:
    """Letters for the four image edges, given the LPS directions of +column and +row.

    Returns
    -------
    dict
        ``{"left": ..., "right": ..., "top": ..., "bottom": ...}``.
    """
    right = np.asarray(right_lps, dtype=float)
    down = np.asarray(down_lps, dtype=float)
    return {
        "left": direction_letters(-right),
        "right": direction_letters(right),
        "top": direction_letters(-down),
        "bottom": direction_letters(down),
    }


def draw_orientation(ax, right_lps: np.ndarray, down_lps: np.ndarray, shape: tuple) -> None:
    """Write the edge letters inside the four edges of an image of ``shape`` (rows, cols)."""
    rows, cols = shape[:2]
    letters = edge_letters(right_lps, down_lps)
    style = dict(color=LETTER_COLOR, fontsize=13, fontweight="bold", path_effects=outlined())
    margin = 0.03
    ax.text(margin * cols, rows / 2, letters["left"], ha="left", va="center", **style)
    ax.text((1 - margin) * cols, rows / 2, letters["right"], ha="right", va="center", **style)
    ax.text(cols / 2, margin * rows, letters["top"], ha="center", va="top", **style)
    ax.text(cols / 2, (1 - margin) * rows, letters["bottom"], ha="center", va="bottom", **style)


#: Legend text size (pt) and the legend box's opacity.
LEGEND_FONT_PT = 7


#: Width of one legend column and height of one legend row, figure pixels.
LEGEND_COLUMN_PX = 150
LEGEND_ROW_PX = 13
LEGEND_PAD_PX = 8


def legend_columns(width_px: int) -> int:
    """How many legend columns fit across a picture ``width_px`` wide."""
    return max(1, int(width_px) // LEGEND_COLUMN_PX)


def legend_band_px(entries: list, width_px: int) -> int:
    """Height (figure pixels) of the band under an image ``width_px`` wide that holds a key of
    ``entries``."""
    if not entries:
        return 0
    rows = -(-len(entries) // legend_columns(width_px))
    return rows * LEGEND_ROW_PX + LEGEND_PAD_PX


def draw_legend(figure: Figure, entries: list[tuple[str, dict]]) -> None:
    """The key to the overlays, in the band under the image (so it covers nothing).

    Parameters
    ----------
    figure : Figure
        Made by :func:`image_figure` with ``footer_px=legend_band_px(entries)``.
    entries : list of (label, style)
        ``style`` holds :class:`matplotlib.lines.Line2D` keywords (``color``, ``marker``,
        ``linestyle``...) matching how the item is drawn.
    """
    from matplotlib.lines import Line2D

    if not entries:
        return
    handles = [Line2D([], [], label=label, **style) for label, style in entries]
    figure.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=legend_columns(figure.bbox.width),
        fontsize=LEGEND_FONT_PT,
        frameon=False,
        labelcolor=TEXT_COLOR,
        handlelength=1.6,
        columnspacing=1.2,
        borderaxespad=0.2,
        borderpad=0.2,
        labelspacing=0.25,
    )


def scale_bar_length_mm(image_width_px: float, pixels_per_mm: float) -> float:
    """Longest round length (mm) whose bar fits in a quarter of the image width."""
    fitting = [
        length
        for length in SCALE_BAR_LENGTHS_MM
        if length * pixels_per_mm <= SCALE_BAR_MAX_FRACTION * image_width_px
    ]
    return float(fitting[-1] if fitting else SCALE_BAR_LENGTHS_MM[0])


def draw_scale_bar(ax, shape: tuple, pixels_per_mm: float, note: str = "") -> float:
    """Draw a millimetre bar in the lower-left corner; returns its length in mm.

    Parameters
    ----------
    shape : (rows, cols)
        Image size in pixels.
    pixels_per_mm : float
        Image pixels per mm in the plane the scale refers to (for a radiograph: the isocentre
        plane, which the ``note`` should say).
    """
    rows, cols = shape[:2]
    length_mm = scale_bar_length_mm(cols, pixels_per_mm)
    length_px = length_mm * pixels_per_mm
    x0 = 0.06 * cols
    y0 = 0.93 * rows
    ax.plot([x0, x0 + length_px], [y0, y0], color=TEXT_COLOR, linewidth=3, solid_capstyle="butt",
            path_effects=outlined(3 + OUTLINE_WIDTH_PT))
    for x in (x0, x0 + length_px):
        ax.plot([x, x], [y0 - 0.012 * rows, y0 + 0.012 * rows], color=TEXT_COLOR, linewidth=1.5,
                path_effects=outlined(1.5 + OUTLINE_WIDTH_PT))
    label = f"{length_mm:g} mm" + (f" {note}" if note else "")
    ax.text(
        x0,
        y0 - 0.03 * rows,
        label,
        color=TEXT_COLOR,
        fontsize=9,
        ha="left",
        va="bottom",
        bbox=dict(facecolor="black", alpha=0.5, edgecolor="none", pad=1.5),
    )
    return length_mm


#: Width of one title character at 9 pt in figure pixels (for wrapping titles).
TITLE_PX_PER_CHAR = 7


def image_figure(
    image: np.ndarray, vmin: float, vmax: float, title: str = "", cmap="gray", footer_px: int = 0
):
    """A figure showing one image at one figure pixel per image pixel (plus a title band above
    it and, with ``footer_px``, a band of that height below it, e.g. for a legend).

    Returns
    -------
    (Figure, Axes)
        The axes use image pixel coordinates: x = column, y = row, (0, 0) the top-left centre.
    """
    rows, cols = image.shape[:2]
    if title:
        # Wrap each title line to the picture's width (about 7 px per character at 9 pt).
        width_chars = max(20, cols // TITLE_PX_PER_CHAR)
        title = "\n".join(textwrap.fill(line, width_chars) for line in title.split("\n"))
    title_px = 18 * (title.count("\n") + 1) + 10 if title else 0
    height_px = rows + title_px + footer_px
    figure = Figure(figsize=(cols / FIGURE_DPI, height_px / FIGURE_DPI), dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    figure.patch.set_facecolor("black")
    ax = figure.add_axes((0.0, footer_px / height_px, 1.0, rows / height_px))
    ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="bilinear")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        figure.text(
            0.5,
            1.0 - 0.5 * title_px / height_px,
            title,
            color=TEXT_COLOR,
            ha="center",
            va="center",
            fontsize=9,
        )
    return figure, ax


def figure_to_rgb(figure: Figure) -> np.ndarray:
    """Render a figure to an ``(H, W, 3)`` uint8 RGB array."""
    canvas = (
        figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    )
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(figure: Figure, path: str | Path) -> Path:
    """Write a figure as PNG (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=FIGURE_DPI, facecolor=figure.get_facecolor())
    return path
