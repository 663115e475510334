"""The L5/S1 disc on a coarse CT: a dark band between two bright endplates, oblique in the sagittal
plane.

On the 3 mm working grid of :mod:`planner.anatomy.sacrum_lowdensity` the sacral base is tilted by
30-50 degrees (rising posteriorly), so no axial slice separates L5 from S1: a horizontal cut at
the top of the pelvic ring gives the anterior-inferior corner of L5 to the sacrum and the top of
S1 to the spine. This module finds the disc as a line in the mid-sagittal strip (the plane through
it is taken as perpendicular to the sagittal plane: the pelvis is nearly symmetric):

1. The mid-sagittal image: the CT and the closed-cortex domain averaged over the strip within
   :data:`STRIP_HALF_WIDTH_MM` of the midline (the vertebral bodies, not the pedicles).
2. For each tilt in :data:`TILTS_DEG` and each line position (every :data:`STEP_MM` near the top
   ring slice), the line's first run through the domain from the anterior side, up to
   :data:`BODY_DEPTH_MM` long (the anterior part of the bodies; the posterior elements beyond
   have their own joints): the mean HU on it and on parallel lines above and below.
3. The disc is the line darkest against its brighter side lines (the contrast is the smaller of
   the brightest line above and the brightest line below, minus the line itself): along the
   column's own oblique axis the endplates and the disc line up with the line only at the right
   tilt, so both are found together.

Measured on the 3 mm totalseg-example CT (disc read by eye from (k, j) = (43, 57) to (48, 66),
about 30-35 deg) and fatty-marrow phantoms: found at 40 deg, contrast 121 HU (totalseg), 40-50 deg
and 56-131 HU (phantoms, seeds 0-3), where the next best tilt gives less than half the contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Half-width (mm) of the mid-sagittal strip averaged: within the vertebral bodies (L5 and S1 are
#: 40-50 mm wide), medial to the pedicles.
STRIP_HALF_WIDTH_MM = 12.0
#: Tilts (deg) of the disc from the axial plane, rising posteriorly: the sacral slope of adults is
#: about 20-60 deg, the L5/S1 disc lies between the L5 and S1 endplates.
TILTS_DEG = np.arange(0.0, 61.0, 5.0)
#: Sampling step (mm) along and across the line (linear interpolation of the 3 mm grid).
STEP_MM = 1.0
#: Length (mm) of the line inside the domain from its anterior end: the anterior part of the
#: bodies (35-45 mm deep), clear of the canal and the facet joints.
BODY_DEPTH_MM = 30.0
#: A line crossing less of the domain than this (mm) misses the bodies (skipped).
MIN_BODY_MM = 15.0
#: Fraction of the strip inside the domain for a point to count as bone.
DOMAIN_FRACTION_MIN = 0.5
#: Distances (mm) of the side lines: the endplates are next to the disc (narrow in the elderly,
#: 1-3 voxels), so the brightest of these on each side is taken.
ENDPLATE_OFFSETS_MM = (3.0, 4.5, 6.0, 7.5)
#: The disc's centre lies within this distance (mm, craniocaudal) of the top ring slice: the ring
#: slices start 1-5 slices below the sacral base, the L4/L5 disc is 30-40 mm higher.
SEARCH_MM = 15.0
#: Line positions tried (mm) above and below the top ring slice, where the lines meet the
#: anterior edge of the column.
ANCHOR_RANGE_MM = 36.0
#: Least contrast (HU) for a disc: below it no line is darker than both its sides.
CONTRAST_MIN_HU = 20.0


@dataclass(frozen=True)
class LumbosacralDisc:
    """The L5/S1 disc as a plane perpendicular to the sagittal plane, on the working grid.

    Attributes
    ----------
    centre_kj_mm : (2,) float
        Centre of the disc line (mm from the working grid's first voxel centre, along k and j:
        superior and posterior on the axis-aligned LPS grid).
    tilt_deg : float
        Angle of the disc plane from the axial plane, rising posteriorly.
    contrast_hu : float
        The dimmer side's brightest line minus the disc line (mean HU).
    """

    centre_kj_mm: np.ndarray
    tilt_deg: float
    contrast_hu: float

    def height_mm(self, shape: tuple[int, int, int], spacing_mm: float) -> np.ndarray:
        """Signed distance (mm) of each voxel from the disc plane, positive towards L5.

        Parameters
        ----------
        shape : (3,) int
            ``[k, j, i]`` shape of the working grid.
        spacing_mm : float
            Its isotropic spacing (mm).

        Returns
        -------
        (nk, nj, 1) float
            Broadcasts over ``i`` (the plane is perpendicular to the sagittal plane).
        """
        tilt = np.radians(self.tilt_deg)
        k_mm = np.arange(shape[0])[:, None] * spacing_mm - self.centre_kj_mm[0]
        j_mm = np.arange(shape[1])[None, :] * spacing_mm - self.centre_kj_mm[1]
        # Normal (k, j) = (cos, -sin): superior and anterior, away from the sacrum.
        return (k_mm * np.cos(tilt) - j_mm * np.sin(tilt))[:, :, None]


def find_lumbosacral_disc(
    ct: np.ndarray,
    domain: np.ndarray,
    offset_x_mm: np.ndarray,
    ring_top_k: int,
    spacing_mm: float,
) -> LumbosacralDisc | None:
    """Find the L5/S1 disc near the top of the sacral pelvic-ring slices.

    Parameters
    ----------
    ct : (nk, nj, ni) float
        HU on an axis-aligned LPS working grid (k superior, j posterior, i to patient left).
    domain : (nk, nj, ni) bool
        Closed-cortex bone domain (every bone with its marrow, discs bridged).
    offset_x_mm : (ni,) float
        Left-right distance (mm) of each column ``i`` from the midline.
    ring_top_k : int
        Top slice of the sacral pelvic-ring run (about the sacral base, 1-5 slices below it).
    spacing_mm : float
        Isotropic spacing of the grid (mm).

    Returns
    -------
    LumbosacralDisc or None
        None when no line is darker than both its sides by :data:`CONTRAST_MIN_HU`.
    """
    strip = np.abs(offset_x_mm) <= STRIP_HALF_WIDTH_MM
    if not strip.any():
        return None
    sagittal = ct[:, :, strip].mean(axis=2)
    inside = domain[:, :, strip].mean(axis=2) >= DOMAIN_FRACTION_MIN
    row = np.nonzero(inside[min(max(ring_top_k, 0), inside.shape[0] - 1)])[0]
    if row.size == 0:
        return None
    anchor_j_mm = (row.min() - 1) * spacing_mm  # just anterior of the column at the ring top
    best: LumbosacralDisc | None = None
    for tilt_deg in TILTS_DEG:
        found = _best_line(sagittal, inside, float(tilt_deg), anchor_j_mm, ring_top_k, spacing_mm)
        if found is not None and (best is None or found.contrast_hu > best.contrast_hu):
            best = found
    if best is None or best.contrast_hu < CONTRAST_MIN_HU:
        return None
    return best


def _best_line(sagittal, inside, tilt_deg, anchor_j_mm, ring_top_k, spacing_mm):
    """The most contrasted disc line at one tilt (None if no line crosses the bodies)."""
    tilt = np.radians(tilt_deg)
    along = np.array([np.sin(tilt), np.cos(tilt)])  # (k, j): rising posteriorly
    normal = np.array([np.cos(tilt), -np.sin(tilt)])
    reach_mm = sagittal.shape[1] * spacing_mm + 2.0 * ANCHOR_RANGE_MM
    steps = np.arange(0.0, reach_mm, STEP_MM)
    body_steps = int(BODY_DEPTH_MM / STEP_MM)
    ring_top_mm = ring_top_k * spacing_mm
    best = None
    for anchor_k_mm in np.arange(-ANCHOR_RANGE_MM, ANCHOR_RANGE_MM + STEP_MM, STEP_MM):
        # The line through (ring top + anchor, anchor_j), started at j = 0.
        start = np.array([ring_top_mm + anchor_k_mm - np.tan(tilt) * anchor_j_mm, 0.0])
        points = start[:, None] + along[:, None] * steps[None, :]
        on_bone = _sample(inside.astype(np.float32), points, spacing_mm) >= 0.5
        if not on_bone.any():
            continue
        first = int(np.argmax(on_bone))
        run = on_bone[first:]
        length = min(int(np.argmin(run)) if not run.all() else run.size, body_steps)
        if length < MIN_BODY_MM / STEP_MM:
            continue
        line = points[:, first : first + length]
        if abs(line[0].mean() - ring_top_mm) > SEARCH_MM:
            continue
        on_line = _sample(sagittal, line, spacing_mm).mean()
        above = max(
            _sample(sagittal, line + a * normal[:, None], spacing_mm).mean()
            for a in ENDPLATE_OFFSETS_MM
        )
        below = max(
            _sample(sagittal, line - a * normal[:, None], spacing_mm).mean()
            for a in ENDPLATE_OFFSETS_MM
        )
        contrast = float(min(above, below) - on_line)
        if best is None or contrast > best.contrast_hu:
            best = LumbosacralDisc(line.mean(axis=1), tilt_deg, contrast)
    return best


def _sample(image: np.ndarray, points_kj_mm: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Linear interpolation of a (k, j) image at (2, n) points in mm (0 outside)."""
    return ndimage.map_coordinates(image, points_kj_mm / spacing_mm, order=1, cval=0.0)
