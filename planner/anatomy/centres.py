"""Level centres placed along the fitted anterior-cortex curve instead of the sacral frame.

The sacral frame (:mod:`.frame`) is a cubic fitted to the mask's anterior edge: on a strongly
kyphotic sacrum it cannot follow the bend, and its normals there lean by several degrees from the
true ones. The junctions are found at depth (the foramina open about a centimetre behind the
anterior cortex), so carried along those leaning normals their arc length, and the body centres
between them, shift by about a millimetre along the sacrum, where the anterior edge turns by
2-3 degrees per millimetre. The anterior-cortex curve (:mod:`.cortex`) follows the real edge:
each junction point is carried onto it along the normals of a local quadratic through it (the
curve's own normal wobbles with its residual voxel staircase), the centre of each body is placed
half-way in arc length between its two junctions and half-way in depth between the anterior
cortex and the body's back, along the curve's own normal there (a smoothed normal would round
off a kyphotic bend, which often starts within S3).
"""

from __future__ import annotations

import numpy as np

from planner.anatomy.curve_fit import local_polynomial, resample_polyline

#: Step (mm) of the dense resampling of the cortex curve used for the projections.
DENSE_STEP_MM = 0.1
#: Gaussian sigma (mm of arc) of the local quadratic whose normals carry the junctions onto
#: the curve (:func:`_smooth_tangents`), and the arc step (mm) it is evaluated at. Of 3, 6, 8,
#: 10, 12, 15, 20 mm on 40 phantoms (2 mm voxels), 6-10 mm gave the smallest S3 centre
#: errors (max 0.84 mm; 0.97 mm with the curve's own normals); 10 mm is the smoothest of them.
FOOT_SIGMA_MM = 10.0
FOOT_STEP_MM = 1.0


def _dense_curve(curve_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve resampled every DENSE_STEP_MM of arc: points (M, 3) and their arc length (M,)."""
    return resample_polyline(curve_lps, DENSE_STEP_MM)


def _smooth_tangents(curve_lps: np.ndarray, dense_arc: np.ndarray) -> np.ndarray:
    """Unit caudal tangents (M, 3) at ``dense_arc`` of a local quadratic through the curve.

    The fitted edge keeps a residual voxel staircase of a few tenths of a mm (and, where the
    ridges were left out, an interpolation): its own normal wobbles by a degree or more, and a
    junction found 10-15 mm deep at the foramina, carried along it, moves by a few tenths of a
    mm along the sacrum (on 40 phantoms, by up to 2 mm). A local quadratic over
    ``FOOT_SIGMA_MM`` of arc (Gaussian sigma) follows the sacral curvature without bias.
    """
    segment = np.linalg.norm(np.diff(curve_lps, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(segment)])
    at = np.arange(0.0, arc[-1] + FOOT_STEP_MM, FOOT_STEP_MM)
    slopes = np.stack(
        [
            local_polynomial(arc, curve_lps[:, c], FOOT_SIGMA_MM, degree=2, at_mm=at)[1]
            for c in range(curve_lps.shape[1])
        ],
        axis=-1,
    )
    tangent = np.stack([np.interp(dense_arc, at, slopes[:, c]) for c in range(3)], axis=-1)
    return tangent / np.linalg.norm(tangent, axis=1, keepdims=True)


def _foot_along_normals(
    points_lps: np.ndarray, dense: np.ndarray, caudal: np.ndarray, dense_arc: np.ndarray
) -> np.ndarray:
    """Arc length (mm) of the foot of each (n, 3) point along the smoothed normals.

    The foot is where ``(point - curve(a)) . tangent(a)`` changes sign, interpolated between
    the dense samples; of several, the one nearest the point's closest curve point. Where
    there is none (a point beyond an end) the closest curve point.
    """
    out = np.empty(len(points_lps))
    for n, point in enumerate(np.asarray(points_lps, float)):
        along = np.sum((point - dense) * caudal, axis=1)
        nearest = int(np.argmin(np.linalg.norm(point - dense, axis=1)))
        crossings = np.flatnonzero((along[:-1] > 0) & (along[1:] <= 0))
        if crossings.size == 0:
            out[n] = dense_arc[nearest]
            continue
        k = int(crossings[np.argmin(np.abs(crossings - nearest))])
        fraction = along[k] / (along[k] - along[k + 1])
        out[n] = dense_arc[k] + fraction * (dense_arc[k + 1] - dense_arc[k])
    return out


def centres_on_cortex(
    curve_lps: np.ndarray,
    junction_lps: np.ndarray,
    top_lps: np.ndarray,
    tip_lps: np.ndarray,
    half_depths_mm: np.ndarray,
    left_lps: np.ndarray,
) -> np.ndarray | None:
    """Body centres (5, 3) in LPS mm from the junctions projected on the anterior cortex.

    Parameters
    ----------
    curve_lps : (N, 3) ndarray
        Anterior cortex on the mid-sagittal plane, promontory to tip.
    junction_lps : (4, 3) ndarray
        A point of each junction S1/S2 .. S4/S5 on the mid-sagittal plane (at the depth where
        it was found).
    top_lps, tip_lps : (3,) ndarray
        The cranial end of S1 and the caudal end of S5 (on or near the curve).
    half_depths_mm : (5,) ndarray
        Half the body's depth (anterior cortex to body back) at each centre, mm.
    left_lps : (3,) ndarray
        Unit normal of the mid-sagittal plane (patient left).

    Returns
    -------
    (5, 3) ndarray or None
        None when the curve is too short to place them (fewer than 2 points).
    """
    curve = np.asarray(curve_lps, float)
    if curve.shape[0] < 2:
        return None
    dense, dense_arc = _dense_curve(curve)
    ends = np.vstack([top_lps, np.asarray(junction_lps, float), tip_lps])
    smooth_caudal = _smooth_tangents(curve, dense_arc)
    bounds = np.maximum.accumulate(_foot_along_normals(ends, dense, smooth_caudal, dense_arc))
    centre_arc = 0.5 * (bounds[:-1] + bounds[1:])
    tangent = np.gradient(dense, axis=0)
    index = np.clip(np.rint(centre_arc / DENSE_STEP_MM).astype(int), 0, len(dense) - 1)
    caudal = tangent[index] / np.linalg.norm(tangent[index], axis=1, keepdims=True)
    # In the mid-sagittal plane, the normal that points posteriorly (into the bone): with the
    # tangent pointing caudally and the normal to the left, left x caudal points posteriorly.
    posterior = np.cross(np.asarray(left_lps, float), caudal)
    posterior /= np.linalg.norm(posterior, axis=1, keepdims=True)
    return dense[index] + np.asarray(half_depths_mm, float)[:, None] * posterior
