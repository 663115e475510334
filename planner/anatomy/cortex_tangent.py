"""The anterior-edge tangent at a point of the anterior-cortex curve, read under the ridges.

The needle runs parallel to the anterior edge near its target, so the tangent there sets the
plan's direction. Two things pull a tangent read off the curve:

* the transverse ridges (fused discs) bulge anteriorly from the edge at the junctions between
  the bodies, a few mm long and up to 2 mm high: their flanks are steep, and a target within a
  few mm of a junction sits on one;
* the bend: a strongly kyphotic sacrum turns by 2-3 degrees per mm caudal of S3 and by a tenth
  of that above it, so a line fitted over a long stretch leans towards the bend (a +-8 mm line
  is 0.9 degrees off at the S3 centre of such phantoms, median, 2.1 max).

The sacrum is concave anteriorly: in the mid-sagittal plane, seen from in front, the edge lies
on the posterior side of its chords, and the ridges stick out anteriorly. The edge without the
ridges is therefore the *lower envelope* of the curve: the convex hull of its points taken
from behind, which bridges every ridge by a chord of its base and follows the edge elsewhere.
The tangent is the slope of that envelope over a short symmetric stretch around the foot of
the point (short, so the bend does not tilt it). Where the curve is not concave around the foot
(a straight or reversed stretch, where the envelope would be the chord of its ends) the
reading falls back to a line through the stretch with the anterior outliers trimmed.

Measured (``benchmarks/bench_planning.py --seeds 50 --find 40``, S3 tangent vs truth, median /
max deg): on exact anatomy it reads kyphotic sacra 0.18 / 0.33 (the +-8 mm line of
``planning.geometry.anterior_edge_frame``: 0.88 / 1.47) and the others 0.04 / 0.13 (0.17 / 0.52).
On the curves ``find_anatomy`` draws from 2 mm phantoms it reads worse than that line
(kyphotic 1.57 / 2.91 vs 1.06 / 2.29, others 1.01 / 2.40 vs 0.90 / 2.15): there the two
readings scatter alike (sd 1.3 deg over 64 seeds on the true mask, the voxel staircase left in
the fitted edge), but the fitted edge is itself tilted at S3 (about +0.6 deg on the straighter
sacra, -0.5 deg on the kyphotic ones), and the line's lean into the bend offsets part of that.
It is not the planner's reference yet for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.anatomy.curve_fit import resample_polyline

#: Half-length (mm of arc) of the stretch whose lower envelope is taken: long enough to reach
#: past a ridge next to the point (ridges are about 5 mm long) and to the edge on both sides.
#: Exact phantom curves, 30 kyphotic and 30 other seeds, tangent at the S3 centre and 3 and
#: 6 mm either side: 8 mm left 6 mm targets on a ridge flank (kyphotic S3 - 6 mm max 3.6 deg),
#: 12 and 16 mm gave the same tangents there (max 1.1 deg).
ENVELOPE_HALF_MM = 12.0
#: Half-length (mm of arc) of the chord of the envelope that gives the tangent: the bend tilts
#: a chord by about a quarter of the change in curvature times its length. Exact phantom
#: curves, 30 kyphotic seeds, tangent error at the S3 centre (median / max deg): 1 mm 0.18 /
#: 0.33, 1.5 mm 0.32 / 0.63, 2 mm 0.64 / 0.98, 3 mm 1.23 / 1.79; 3 mm either side of it 1 mm
#: was best too. The planner's own curves (2 mm phantoms, 32 kyphotic + 32 other seeds) read
#: the same with 1-2 mm chords (medians within 0.1 deg): their error is the curve's own.
CHORD_HALF_MM = 1.0
#: The envelope is trusted where at least MIN_ON_ENVELOPE of the stretch's points lie within
#: ON_ENVELOPE_MM of it (ridges cover a fifth of the stretch at most); elsewhere the curve is
#: not concave around the point and the trimmed line is used. ON_ENVELOPE_MM is also the ridge
#: trimming tolerance of that line (points this far anterior of it are dropped).
ON_ENVELOPE_MM = 0.3
MIN_ON_ENVELOPE = 0.5
#: Half-length (mm of arc) of the fallback line and its rounds of ridge trimming.
LINE_HALF_MM = 8.0
TRIM_ROUNDS = 3
#: Arc step (mm) of the resampled curve, and the half-stretch (mm) whose chord gives the
#: reference axes (any direction near the tangent does: the envelope is taken in them).
CURVE_STEP_MM = 0.5
REFERENCE_HALF_MM = 4.0


@dataclass(frozen=True)
class EdgeTangent:
    """The anterior edge's direction near a point (LPS).

    ``tangent_lps``: unit vector in the mid-sagittal plane, from the tip towards the promontory;
    ``foot_lps``: the curve point nearest the query point; ``on_envelope``: False where the
    fallback line was used.
    """

    tangent_lps: np.ndarray
    foot_lps: np.ndarray
    on_envelope: bool


def edge_tangent(curve_lps: np.ndarray, at_lps: np.ndarray, left_lps: np.ndarray) -> EdgeTangent:
    """Tangent of the anterior edge (under the ridges) at the curve point nearest ``at_lps``.

    Parameters
    ----------
    curve_lps : (N, 3) ndarray
        The anterior-cortex curve on the mid-sagittal plane, promontory to tip (N >= 2).
    at_lps : (3,) ndarray
        The point (e.g. the target).
    left_lps : (3,) ndarray
        Normal of the mid-sagittal plane (any length); the tangent is kept in that plane.

    Returns
    -------
    EdgeTangent
    """
    left = np.asarray(left_lps, float)
    left = left / np.linalg.norm(left)
    points, arc = resample_polyline(np.asarray(curve_lps, float), CURVE_STEP_MM)
    foot = int(np.argmin(np.linalg.norm(points - np.asarray(at_lps, float), axis=1)))
    toward_promontory = _in_plane(points[0] - points[-1], left)
    if points.shape[0] < 3:
        return EdgeTangent(toward_promontory, points[foot], False)
    offset = arc - arc[foot]
    reach = min(REFERENCE_HALF_MM, max(arc[foot] - arc[0], arc[-1] - arc[foot]))
    stretch = points[np.abs(offset) <= max(reach, CURVE_STEP_MM)]
    along = _in_plane(stretch[0] - stretch[-1], left)
    anterior = np.cross(left, along)  # the tangent points cranially: left x cranial = anterior
    relative = points - points[foot]
    u, v = relative @ along, relative @ anterior  # mm along the edge, mm anterior of it
    near = np.abs(offset) <= ENVELOPE_HALF_MM
    slope = _envelope_slope(u[near], v[near])
    on_envelope = slope is not None
    if slope is None:
        line = np.abs(offset) <= LINE_HALF_MM
        slope = _trimmed_line_slope(u[line], v[line])
    tangent = along + slope * anterior
    return EdgeTangent(tangent / np.linalg.norm(tangent), points[foot], on_envelope)


def _envelope_slope(u: np.ndarray, v: np.ndarray) -> float | None:
    """Slope dv/du at ``u = 0`` of the lower envelope of the points, or None where untrusted.

    The chord of the envelope from ``-CHORD_HALF_MM`` to ``+CHORD_HALF_MM`` (shortened at the
    ends of the curve). None where fewer than MIN_ON_ENVELOPE of the points lie within
    ON_ENVELOPE_MM of the envelope: the curve is not concave there (the envelope of a straight
    or reversed stretch is the chord of its ends).
    """
    order = np.argsort(u)
    u, v = u[order], v[order]
    hull_u, hull_v = _lower_hull(u, v)
    low, high = max(-CHORD_HALF_MM, hull_u[0]), min(CHORD_HALF_MM, hull_u[-1])
    if high - low < CURVE_STEP_MM:
        return None
    departure = v - np.interp(u, hull_u, hull_v)
    if np.mean(departure <= ON_ENVELOPE_MM) < MIN_ON_ENVELOPE:
        return None
    envelope = np.interp([low, high], hull_u, hull_v)
    return float((envelope[1] - envelope[0]) / (high - low))


def _lower_hull(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the lower convex hull of points sorted by ``u`` (monotone chain)."""
    hull: list[tuple[float, float]] = []
    for point in zip(u.tolist(), v.tolist(), strict=True):
        while len(hull) >= 2:
            (u1, v1), (u2, v2) = hull[-2], hull[-1]
            if (u2 - u1) * (point[1] - v1) - (v2 - v1) * (point[0] - u1) > 0:
                break
            hull.pop()  # the middle vertex lies on or above the chord: not on the envelope
        hull.append(point)
    vertices = np.asarray(hull)
    return vertices[:, 0], vertices[:, 1]


def _trimmed_line_slope(u: np.ndarray, v: np.ndarray) -> float:
    """Slope of a line through the points, refitted without those anterior of it (ridges)."""
    keep = np.ones(len(u), bool)
    slope, intercept = np.polyfit(u, v, 1)
    for _ in range(TRIM_ROUNDS):
        residual = v - (slope * u + intercept)
        trimmed = residual <= np.median(residual[keep]) + ON_ENVELOPE_MM
        if trimmed.sum() < 3 or np.array_equal(trimmed, keep):
            break
        keep = trimmed
        slope, intercept = np.polyfit(u[keep], v[keep], 1)
    return float(slope)


def _in_plane(vector: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Unit vector of ``vector`` without its component along the unit ``left``."""
    flat = vector - (vector @ left) * left
    return flat / np.linalg.norm(flat)
