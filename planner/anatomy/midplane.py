"""Mid-sagittal plane of the sacrum, fitted by maximising mirror overlap of the sacrum mask.

The plane is never assumed to be the volume's x axis: the fit starts from several normals around
patient left (LPS +x) and keeps the one whose mirror image of the mask overlaps the mask best.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, optimize

from planner.anatomy.model import Confidence, Plane
from planner.volume import Volume

#: Gaussian blur of the mask before the mirror test (mm): makes the overlap smooth in the angles.
MIRROR_BLUR_MM = 2.0
#: Grid of the fit (mm): coarse enough to be fast, fine against a 100 mm sacrum.
FIT_SPACING_MM = 2.0
#: At most this many mask voxels enter the overlap score (fixed stride, so deterministic).
MAX_FIT_POINTS = 6000
#: Start angles (degrees) of the normal around LPS +x: (yaw about S, tilt about P).
START_ANGLES_DEG = ((0.0, 0.0), (20.0, 0.0), (-20.0, 0.0), (0.0, 20.0), (0.0, -20.0))
#: Number of start normals refined by Nelder-Mead.
REFINED_STARTS = 2
#: Mirror overlap (relative to the mask's overlap with itself) below which the plane is doubtful.
LOW_SYMMETRY = 0.9


def _normal_from_params(p: float, q: float) -> np.ndarray:
    normal = np.array([1.0, p, q])
    return normal / np.linalg.norm(normal)


def _mask_points_and_field(mask: Volume) -> tuple[np.ndarray, Volume]:
    """Sacrum points (N, 3) in LPS mm and the blurred mask, both on an LPS-aligned grid.

    Resampling onto an axis-aligned LPS grid first makes the fit independent of how the volume
    is stored (axis order, flips): the same physical box gives the same points.
    """
    from planner.sitk_bridge import resample_to_lps_grid

    cropped = mask.crop_to_mask(mask.array, margin_mm=4 * MIRROR_BLUR_MM)
    occupancy = cropped.with_array(cropped.array.astype(np.float32))
    spacing = max(FIT_SPACING_MM, float(cropped.spacing_xyz.min()))
    grid = resample_to_lps_grid(occupancy, spacing, "linear", default_value=0.0)
    inside = grid.array >= 0.5
    inside_kji = np.argwhere(inside)
    stride = max(1, int(np.ceil(len(inside_kji) / MAX_FIT_POINTS)))
    points_lps = grid.index_to_lps(inside_kji[::stride, ::-1].astype(float))
    sigma = MIRROR_BLUR_MM / spacing
    blurred = ndimage.gaussian_filter(inside.astype(np.float32), sigma)
    return points_lps, grid.with_array(blurred)


def mirror_overlap(plane: Plane, points_lps: np.ndarray, field: Volume) -> float:
    """Mean blurred-mask value at the mirror images of ``points_lps`` across ``plane`` (0..1)."""
    distance = plane.signed_distance(points_lps)
    mirrored = points_lps - 2.0 * distance[:, None] * plane.normal_lps
    return float(field.sample(mirrored, order=1).mean())


def fit_midsagittal_plane(mask: Volume) -> tuple[Plane, Confidence]:
    """Fit the sacrum's plane of mirror symmetry.

    Parameters
    ----------
    mask : Volume (bool)
        Sacrum mask on any grid (any direction cosines).

    Returns
    -------
    plane : Plane
        Through the mask centroid's projection; unit normal pointing to patient left (+x LPS).
    confidence : Confidence
        Score = mirror overlap; low for asymmetric (fractured, cut) sacra.
    """
    points_lps, field = _mask_points_and_field(mask)
    centroid_lps = points_lps.mean(axis=0)

    def cost(params: np.ndarray) -> float:
        normal = _normal_from_params(params[0], params[1])
        plane = Plane(centroid_lps + params[2] * normal, normal)
        return -mirror_overlap(plane, points_lps, field)

    starts = [
        np.array([np.tan(np.radians(yaw_deg)), np.tan(np.radians(tilt_deg)), 0.0])
        for yaw_deg, tilt_deg in START_ANGLES_DEG
    ]
    # Refine only the two most promising starts: the overlap is smooth near the optimum.
    starts = sorted(starts, key=cost)[:REFINED_STARTS]
    best = None
    for start in starts:
        simplex = np.array([start, start + [0.08, 0, 0], start + [0, 0.08, 0], start + [0, 0, 3.0]])
        result = optimize.minimize(
            cost,
            start,
            method="Nelder-Mead",
            options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-5, "maxiter": 300},
        )
        if best is None or result.fun < best.fun:
            best = result
    normal = _normal_from_params(best.x[0], best.x[1])
    plane = Plane(centroid_lps + best.x[2] * normal, normal)
    # The blurred mask is below 1 near the surface even for a perfect mirror: normalise by the
    # mask's overlap with itself so the score reads as a fraction of perfect symmetry.
    self_overlap = float(field.sample(points_lps, order=1).mean())
    overlap = -float(best.fun) / max(self_overlap, 1e-6)
    reasons: tuple[str, ...] = ()
    if overlap < LOW_SYMMETRY:
        reasons = (
            f"sacrum is not mirror-symmetric (overlap {overlap:.2f}); the mid-sagittal plane "
            "may be off (fracture, deformity or a sacrum cut by the field of view)",
        )
    return plane, Confidence(score=float(np.clip(overlap, 0.0, 1.0)), reasons=reasons)
