"""A fused MR-on-CT picture: one sagittal plane through a point, both images resampled onto it.

Colours: CT (bone window) in magenta, MR in green; where both are bright the pixel is white, so
a bone edge that does not line up shows as a magenta/green fringe.
"""

from __future__ import annotations

import numpy as np

from planner.mri.transform import RigidTransform
from planner.volume import Volume

#: Half-size (mm) of the square picture and its pixel size (mm).
HALF_SIZE_MM = 80.0
PIXEL_MM = 0.8
#: Resolution of the PNG (dots per inch of a 100-pixels-per-inch figure: 2 = twice the size).
PNG_DPI = 200
#: CT window (HU) of the picture.
CT_WINDOW_HU = (-200.0, 1200.0)
#: MR window: percentiles of the MR values on the plane.
MR_PERCENTILES = (1.0, 99.0)
#: In-plane axes of the sagittal picture: columns run anterior -> posterior, rows superior ->
#: inferior (the usual sagittal display, anterior on the left, head up).
COLUMN_LPS = np.array([0.0, 1.0, 0.0])
ROW_LPS = np.array([0.0, 0.0, -1.0])


def plane_points(centre_lps, half_size_mm: float = HALF_SIZE_MM,
                 pixel_mm: float = PIXEL_MM) -> np.ndarray:
    """(H, W, 3) LPS points of the sagittal picture centred on ``centre_lps``."""
    offsets = np.arange(-half_size_mm, half_size_mm + 1e-9, pixel_mm)
    rows, columns = np.meshgrid(offsets, offsets, indexing="ij")
    return (np.asarray(centre_lps, float) + rows[..., None] * ROW_LPS
            + columns[..., None] * COLUMN_LPS)


def _window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)


def fused_picture(ct: Volume, mr: Volume, mr_from_ct: RigidTransform, centre_lps,
                  half_size_mm: float = HALF_SIZE_MM, pixel_mm: float = PIXEL_MM) -> np.ndarray:
    """Sagittal RGB picture of the MR (green) over the CT (magenta) through ``centre_lps``.

    Parameters
    ----------
    ct, mr : Volume
    mr_from_ct : RigidTransform
        CT LPS -> MR LPS.
    centre_lps : (3,) float
        CT LPS point at the picture's centre (e.g. the target).

    Returns
    -------
    (H, W, 3) uint8 ndarray
        Rows run superior -> inferior, columns anterior -> posterior.
    """
    points = plane_points(centre_lps, half_size_mm, pixel_mm)
    ct_values = ct.sample(points, order=1, fill_value=CT_WINDOW_HU[0])
    mr_values = mr.sample(mr_from_ct.apply(points), order=1, fill_value=np.nan)
    covered = np.isfinite(mr_values)
    if covered.any():
        low, high = np.percentile(mr_values[covered], MR_PERCENTILES)
        mr_grey = _window(np.nan_to_num(mr_values, nan=low), low, high)
    else:
        mr_grey = np.zeros(points.shape[:2])
    ct_grey = _window(ct_values, *CT_WINDOW_HU)
    rgb = np.stack([ct_grey, mr_grey, ct_grey], axis=-1)
    return np.round(255 * rgb).astype(np.uint8)


def picture_pixels(points_lps, centre_lps, half_size_mm: float = HALF_SIZE_MM,
                   pixel_mm: float = PIXEL_MM) -> np.ndarray:
    """(N, 2) ``(column, row)`` pixels of CT LPS points projected onto the sagittal picture."""
    offsets = np.atleast_2d(np.asarray(points_lps, float)) - np.asarray(centre_lps, float)
    columns = (offsets @ COLUMN_LPS + half_size_mm) / pixel_mm
    rows = (offsets @ ROW_LPS + half_size_mm) / pixel_mm
    return np.stack([columns, rows], axis=-1)


def save_fused_picture(rgb: np.ndarray, path, pixel_mm: float = PIXEL_MM,
                       centre_lps=None, needle_lps=None) -> None:
    """Write the fused picture as PNG with orientation letters and a 10 mm scale bar.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
        From :func:`fused_picture`.
    path : path
    pixel_mm : float
        Pixel size of ``rgb``, mm.
    centre_lps : (3,) float, optional
        CT LPS point at the picture's centre; with ``needle_lps`` the planned needle is drawn.
    needle_lps : (2, 3) float, optional
        Needle start (skin or first entry) and target, CT LPS mm; drawn projected onto the
        sagittal plane, with the target as a ring.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = rgb.shape[:2]
    # Two output pixels per picture pixel, so the letters and the scale stay legible.
    figure = plt.figure(figsize=(width / 100, height / 100), dpi=PNG_DPI)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(rgb, interpolation="nearest")
    axes.set_axis_off()
    style = dict(color="yellow", fontsize=6, fontweight="bold", ha="center", va="center")
    # H/F (head/feet), as on every other picture of the plan.
    axes.text(width / 2, 8, "H", **style)
    axes.text(width / 2, height - 8, "F", **style)
    axes.text(8, height / 2, "A", **style)
    axes.text(width - 8, height / 2, "P", **style)
    bar = 10.0 / pixel_mm
    axes.plot([width - 8 - bar, width - 8], [height - 24, height - 24], color="yellow", lw=1.5)
    axes.text(width - 8 - bar / 2, height - 28, "10 mm", color="yellow", fontsize=4,
              ha="center", va="bottom")
    legend = "CT magenta, MRI green"
    if centre_lps is not None and needle_lps is not None:
        half_size_mm = (width - 1) * pixel_mm / 2.0
        (start, target) = picture_pixels(needle_lps, centre_lps, half_size_mm, pixel_mm)
        axes.plot([start[0], target[0]], [start[1], target[1]], color="cyan", lw=0.8)
        axes.plot(*target, marker="o", markersize=4, markerfacecolor="none",
                  markeredgecolor="cyan", markeredgewidth=0.8)
        legend += ", needle cyan (projected)"
    axes.set_xlim(-0.5, width - 0.5)
    axes.set_ylim(height - 0.5, -0.5)
    axes.text(4, height - 4, legend, color="white", fontsize=4, va="bottom")
    figure.savefig(str(path))
    plt.close(figure)
