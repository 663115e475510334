"""Iliac marrow for the low-density sacrum route: the ilium's interior between its two cortices.

Why: the watershed of :mod:`planner.anatomy.sacrum_lowdensity` splits the sacrum from the ilia
on intensity, but on a 3 mm CT with fatty marrow the sacral and iliac marrow meet at the same
low level (the SI joint is no ridge there), so a marrow basin shared by both goes to the nearer
marker. A hip marker at a fixed distance from the midline covers only the lateral cortex of an
ilium that lies close to the midline (totalseg-example, left: the joint about 39 mm from the
midline, the marker from 60 mm), and the sacral front took the ilium's medial half (820 voxels).

The ilium is a plate with a cortex on each side. Along each left-right row of the working grid,
walking medially from the hip marker's dense bone (the lateral cortex, at least
:data:`planner.anatomy.sacrum_lowdensity.HIP_MARKER_OFFSET_MM` from the midline), the marrow runs
until the next bright voxel (the medial cortex, the joint's iliac side); if that comes within
:data:`ILIAC_PLATE_MM` and no nearer the midline than :data:`MEDIAL_CORTEX_MIN_MM`, the voxels
from the lateral cortex up to it are the ilium's. Where the medial cortex is missing (too thin to
read bright, or no ilium on that row), nothing is marked and the watershed decides as before.
"""

from __future__ import annotations

import numpy as np

#: Bright voxel (HU) of a cortex: the partial-volume cortex of a 3 mm scan reads a median of
#: about 180 HU, its lower quartile about 100 HU; fatty marrow a median of about 80 HU.
CORTEX_HU_MIN = 150.0
#: Widest iliac marrow (mm) between the lateral and the medial cortex along a left-right row:
#: the iliac plate near the SI joint is about 5-15 mm thick; a wider run is the sacral ala or
#: the pelvic cavity, not an ilium.
ILIAC_PLATE_MM = 15.0
#: The medial cortex found lies at least this far (mm) from the midline: lateral to the sacral
#: bodies and the foramina (the SI joint is about 35-55 mm from the midline).
MEDIAL_CORTEX_MIN_MM = 25.0


def iliac_marrow(
    ct: np.ndarray,
    domain: np.ndarray,
    offset_x_mm: np.ndarray,
    lateral_cortex_mm: float,
    spacing_mm: float,
) -> np.ndarray:
    """Voxels of each ilium from its lateral cortex to its medial cortex, row by row.

    Parameters
    ----------
    ct : (nk, nj, ni) float
        HU on the axis-aligned LPS working grid (i to patient left).
    domain : (nk, nj, ni) bool
        Closed-cortex bone domain; the result lies inside it.
    offset_x_mm : (ni,) float
        Left-right distance (mm) of each column ``i`` from the midline (positive: left).
    lateral_cortex_mm : float
        A row's walk starts at its most lateral bright voxel at least this far (mm) from the
        midline.
    spacing_mm : float
        Isotropic spacing of the grid (mm).

    Returns
    -------
    (nk, nj, ni) bool
        Iliac voxels of both sides (the side is the sign of ``offset_x_mm``).
    """
    bright = ct >= CORTEX_HU_MIN
    ilium = np.zeros(ct.shape, bool)
    for sign in (1.0, -1.0):
        # Columns of this side, the most lateral first.
        columns = np.argsort(-sign * offset_x_mm, kind="stable")
        columns = columns[sign * offset_x_mm[columns] > 0]
        if columns.size == 0:
            continue
        walked = _walk(bright[:, :, columns], sign * offset_x_mm[columns],
                       lateral_cortex_mm, spacing_mm)  # fmt: skip
        ilium[:, :, columns] |= walked
    return ilium & domain


def _walk(bright: np.ndarray, distance_mm: np.ndarray, lateral_cortex_mm: float,
          spacing_mm: float) -> np.ndarray:
    """On rows ordered lateral to medial: lateral cortex, marrow, up to the medial cortex."""
    position = np.arange(distance_mm.size)[None, None, :]
    lateral = bright & (distance_mm >= lateral_cortex_mm)[None, None, :]
    start = _first(lateral, position, after=None)
    marrow_start = _first(~bright, position, after=start)
    medial = _first(bright, position, after=marrow_start)
    found = (start >= 0) & (marrow_start >= 0) & (medial >= 0)
    width_mm = (medial - marrow_start) * spacing_mm
    medial_mm = distance_mm[np.clip(medial, 0, distance_mm.size - 1)]
    found &= (width_mm <= ILIAC_PLATE_MM) & (medial_mm >= MEDIAL_CORTEX_MIN_MM)
    return (
        found[:, :, None]
        & (position >= start[:, :, None])
        & (position < medial[:, :, None])
    )


def _first(mask: np.ndarray, position: np.ndarray, after: np.ndarray | None) -> np.ndarray:
    """Index of the first True along the last axis (after ``after`` if given); -1 if none."""
    if after is not None:
        mask = mask & (position > after[:, :, None]) & (after >= 0)[:, :, None]
    index = np.argmax(mask, axis=2)
    return np.where(mask.any(axis=2), index, -1)
