"""The mid-sagittal profile of the straightened sacrum: anterior cortex, body back, canal roof.

Along each arc length ``s`` the mid-sagittal slab is read from anterior to posterior: the first
bone run is the vertebral body (its anterior edge is the anterior cortex, its posterior edge the
canal's floor); the next bone after the gap is the posterior wall (laminae, median crest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.anatomy.curve_fit import local_polynomial
from planner.anatomy.frame import SacralFrame
from planner.anatomy.model import Confidence
from planner.anatomy.straight import StraightSacrum

#: Half thickness of the mid-sagittal slab read for the profile (mm).
MIDLINE_HALF_MM = 1.0
#: Gaps shorter than this inside the body are bridged (disc clefts, fracture lines) (mm).
BODY_GAP_MM = 2.5
#: Shortest canal gap between the body and a posterior wall (mm).
MIN_CANAL_GAP_MM = 1.0
#: The frame's curve is the fitted anterior cortex (d = 0): a first bone run starting deeper than
#: this is not the body but the posterior elements seen past the end of the body (mm).
MAX_BODY_EDGE_MM = 8.0
#: Longest search for the posterior wall behind the body (mm).
WALL_SEARCH_MM = 30.0
#: The mask's edge is a voxel staircase (+-half a voxel): the anterior surface is refined on the
#: CT, where the edge crosses half-way between the tissue in front and the cortex peak behind it.
#: Search window around the mask edge (mm), where the tissue level in front is read (mm before
#: the mask edge), and where the cortex peak is looked for (mm behind the mask edge).
EDGE_SEARCH_MM = 2.5
FRONT_LEVEL_MM = (6.0, 3.0)
PEAK_SEARCH_MM = 3.0
#: Length (mm of arc) of the grey closing that removes the fused-disc ridges (see _smoothed):
#: longer than a ridge (~5-8 mm), shorter than a body. Phantom-tuned (10, 12, 14 mm tried).
RIDGE_CLOSING_MM = 12.0
#: Sigma (mm of arc) of the local-linear fit of the edge (see :func:`_smoothed`): averages the
#: terraces of a voxel staircase, short against the sacral curvature. Phantom-tuned (4, 6, 8).
EDGE_SMOOTHING_MM = 4.0
#: Stations this close to a junction are left out of the edge fit (mm): the fused-disc ridge.
RIDGE_EXCLUDE_MM = 4.0
#: Degree and Gaussian sigma (mm of arc) of the local polynomial of the edge fit (the frame
#: already follows the curvature, so a local line suffices).
EDGE_DEGREE = 1
EDGE_FIT_SIGMA_MM = 9.0
EDGE_FIT_SIGMA_BENT_MM = 5.0
#: Robust refits of the edge (Tukey biweight on the residuals, scale from their median absolute
#: deviation): a stretch of stations read a whole voxel off (profiles grazing a terrace of the
#: staircase) pulls a least-squares line by a degree or more. Biweight constant 4.685 (95%
#: efficiency on Gaussian residuals).
ROBUST_ROUNDS = 2
ROBUST_MAD_TO_SD = 1.4826
ROBUST_TUNING = 4.685
#: Curvatures (rad/mm) below which the edge fit uses the straight sigma, above which the bent
#: one (about 1.1 and 2.3 degrees per mm), looked for within this reach (mm) of each station.
STRAIGHT_CURVATURE = 0.02
BENT_CURVATURE = 0.04
CURVATURE_REACH_MM = 10.0
#: The surface is fitted across the body on the columns within this distance of the midline
#: (mm; see :func:`_surface_across`), on columns whose mask edge lies within the tolerance of
#: the midline's (mm), and needs at least this many columns. Wide, so that the columns cut the
#: voxel grid at many phases. Planner's tangent at the found S3 centre on 2 mm phantoms, max /
#: mean over 40 seeds (own sacrum mask) and 20 seeds (true mask): 10 / 4 mm 2.85 / 0.87 and
#: 2.85 / 1.09 deg; 13 / 6 mm 2.29 / 0.96 and 2.75 / 0.86 deg; 16 / 8 mm 1.83 / 0.98 and
#: 2.91 / 1.06 deg. Wider fits bias the curve's position (the rounded front is not a parabola
#: across 30 mm); a tolerance under 6 mm drops outer columns where the front recedes, and the
#: set of columns then jumps from station to station.
SURFACE_HALF_WIDTH_MM = 13.0
SURFACE_COLUMN_TOLERANCE_MM = 6.0
MIN_SURFACE_COLUMNS = 7
#: The body's back (canal floor) along the sacrum: half-width (mm of arc) of the running median
#: that drops single stations grazing a voxel terrace, and sigma (mm of arc) of the local line
#: that averages the staircase (shorter than a body, so the centre keeps its own depth).
BACK_MEDIAN_MM = 2.0
BACK_SMOOTHING_MM = 3.0
#: Least contrast (HU) between the cortex peak and the tissue in front for a CT edge; below it
#: (an MR, a washed-out scan) the mask's edge is kept.
MIN_EDGE_CONTRAST_HU = 150.0


@dataclass(frozen=True)
class MidlineProfile:
    """Per-station depths (mm, NaN where absent) along the straightened grid's ``s`` axis."""

    s_mm: np.ndarray
    anterior_d: np.ndarray  # anterior cortex (sub-voxel)
    body_back_d: np.ndarray  # posterior surface of the body = anterior edge of the canal
    wall_front_d: np.ndarray  # anterior surface of the posterior wall = posterior canal edge
    body_s_range: tuple[float, float]  # s of the first and last station with a body
    #: Anterior surface refined on the CT (sub-voxel, :func:`_ct_edge`); ``anterior_d`` keeps
    #: the mask's edge, which the level cues were tuned on.
    surface_d: np.ndarray | None = None


def _crossing(values: np.ndarray, index: int, d_mm: np.ndarray, step: float) -> float:
    """Sub-voxel d where the slab occupancy crosses 0.5 between ``index - 1`` and ``index``."""
    if index <= 0:
        return float(d_mm[0])
    low, high = values[index - 1], values[index]
    fraction = np.clip((0.5 - low) / (high - low if high != low else 1e-6), 0.0, 1.0)
    return float(d_mm[index - 1] + fraction * step)


def _ct_edge(ct_profile: np.ndarray, d_mm: np.ndarray, mask_edge_d: float) -> float:
    """Sub-voxel anterior surface (d, mm) on one CT depth profile near the mask's edge.

    The half-way level between the tissue in front of the bone and the cortex peak behind the
    mask edge; the first crossing of that level going posteriorly from the front of the search
    window, interpolated linearly. Falls back to ``mask_edge_d`` when the contrast is too low
    or no crossing lies in the window.
    """
    front = (d_mm >= mask_edge_d - FRONT_LEVEL_MM[0]) & (d_mm <= mask_edge_d - FRONT_LEVEL_MM[1])
    behind = (d_mm >= mask_edge_d - 1.0) & (d_mm <= mask_edge_d + PEAK_SEARCH_MM)
    if not front.any() or not behind.any():
        return mask_edge_d
    front_hu = float(np.median(ct_profile[front]))
    peak_hu = float(ct_profile[behind].max())
    if peak_hu - front_hu < MIN_EDGE_CONTRAST_HU:
        return mask_edge_d
    level = 0.5 * (front_hu + peak_hu)
    window = np.flatnonzero(
        (d_mm >= mask_edge_d - EDGE_SEARCH_MM) & (d_mm <= mask_edge_d + EDGE_SEARCH_MM)
    )
    above = window[ct_profile[window] >= level]
    if above.size == 0 or above[0] == window[0]:
        return mask_edge_d
    j = above[0]
    low, high = ct_profile[j - 1], ct_profile[j]
    fraction = (level - low) / (high - low) if high > low else 0.0
    return float(d_mm[j - 1] + fraction * (d_mm[j] - d_mm[j - 1]))


def _surface_across(straight: StraightSacrum, index: int, midline_edge_d: float) -> float:
    """Anterior surface on the midline (d, mm) from a fit across the body at one station.

    On a voxel grid the edge read on one line sits on a staircase: where the surface runs
    nearly parallel to a grid plane it stays on one terrace for a centimetre or more, up to
    half a voxel off, and a tangent over that stretch is off by several degrees. Lines beside
    the midline cut the grid at other phases (the body's front is rounded across, and the
    pelvis is rarely square to the scanner): the CT edge is read on every column within
    ``SURFACE_HALF_WIDTH_MM`` and ``d = c0 + c1 x + c2 x^2`` fitted; ``c0`` is the midline
    edge. NaN when too few columns have an edge near the midline's.
    """
    step = straight.step_mm
    d_mm = straight.d_mm
    columns = np.flatnonzero(np.abs(straight.x_mm) <= SURFACE_HALF_WIDTH_MM + 1e-6)
    bone = straight.bone[index][:, columns]  # [d, column]
    has_bone = bone.any(axis=0)
    mask_edge = d_mm[np.argmax(bone, axis=0)] - 0.5 * step
    keep = has_bone & (np.abs(mask_edge - midline_edge_d) <= SURFACE_COLUMN_TOLERANCE_MM)
    if keep.sum() < MIN_SURFACE_COLUMNS:
        return float("nan")
    profiles = straight.ct[index][:, columns[keep]].T  # [column, d]
    edges = _ct_edges(profiles, d_mm, mask_edge[keep])
    x = straight.x_mm[columns[keep]]
    design = np.stack([np.ones_like(x), x, x**2], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, edges, rcond=None)
    return float(coefficients[0])


def _ct_edges(profiles: np.ndarray, d_mm: np.ndarray, mask_edges_d: np.ndarray) -> np.ndarray:
    """:func:`_ct_edge` on many profiles at once: (n, n_d) HU, (n,) mask edges -> (n,) mm."""
    d = d_mm[None, :]
    edges = mask_edges_d[:, None]
    front = (d >= edges - FRONT_LEVEL_MM[0]) & (d <= edges - FRONT_LEVEL_MM[1])
    behind = (d >= edges - 1.0) & (d <= edges + PEAK_SEARCH_MM)
    out = np.asarray(mask_edges_d, float).copy()
    usable = front.any(axis=1) & behind.any(axis=1)
    front_hu = np.full(len(out), np.nan)
    front_hu[usable] = np.nanmedian(np.where(front[usable], profiles[usable], np.nan), axis=1)
    peak_hu = np.max(np.where(behind, profiles, -np.inf), axis=1)
    usable &= peak_hu - np.nan_to_num(front_hu, nan=np.inf) >= MIN_EDGE_CONTRAST_HU
    level = 0.5 * (front_hu + peak_hu)
    window = (d >= edges - EDGE_SEARCH_MM) & (d <= edges + EDGE_SEARCH_MM)
    above = window & (profiles >= np.where(usable, level, np.inf)[:, None])
    first = np.argmax(above, axis=1)
    usable &= above.any(axis=1) & (first != np.argmax(window, axis=1))
    rows = np.flatnonzero(usable)
    j = first[rows]
    low, high = profiles[rows, j - 1], profiles[rows, j]
    safe = np.where(high > low, high - low, 1.0)
    fraction = np.where(high > low, (level[rows] - low) / safe, 0.0)
    out[rows] = d_mm[j - 1] + fraction * (d_mm[j] - d_mm[j - 1])
    return out


def midline_profile(straight: StraightSacrum) -> MidlineProfile:
    """Read the body, canal and posterior wall along the mid-sagittal slab."""
    step = straight.step_mm
    columns = np.abs(straight.x_mm) <= MIDLINE_HALF_MM + 1e-6
    occupancy = straight.bone[:, :, columns].mean(axis=2)  # [s, d]
    ct_slab = straight.ct[:, :, columns].mean(axis=2)  # [s, d], HU
    d_mm = straight.d_mm
    n_s = occupancy.shape[0]
    anterior = np.full(n_s, np.nan)
    surface = np.full(n_s, np.nan)
    body_back = np.full(n_s, np.nan)
    wall_front = np.full(n_s, np.nan)
    gap_steps = int(round(BODY_GAP_MM / step))
    min_canal = max(1, int(round(MIN_CANAL_GAP_MM / step)))
    wall_steps = int(round(WALL_SEARCH_MM / step))
    for i in range(n_s):
        inside = np.flatnonzero(occupancy[i] >= 0.5)
        if inside.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(inside) > gap_steps + 1)
        first = inside[0]
        last = inside[breaks[0]] if breaks.size else inside[-1]
        edge = _crossing(occupancy[i], first, d_mm, step)
        if abs(edge) > MAX_BODY_EDGE_MM:
            continue
        anterior[i] = edge
        surface[i] = _surface_across(straight, i, edge)
        if not np.isfinite(surface[i]):
            surface[i] = _ct_edge(ct_slab[i], d_mm, edge)
        body_back[i] = d_mm[last] + 0.5 * step
        later = inside[(inside > last + min_canal) & (inside <= last + wall_steps)]
        if later.size:
            wall_front[i] = _crossing(occupancy[i], later[0], d_mm, step)
    body_back = _smoothed_back(straight.s_mm, body_back)
    has_body = np.isfinite(anterior)
    s_body = straight.s_mm[has_body]
    body_range = (float(s_body.min()), float(s_body.max())) if s_body.size else (0.0, 0.0)
    return MidlineProfile(straight.s_mm, anterior, body_back, wall_front, body_range, surface)


def _smoothed_back(s_mm: np.ndarray, back_d: np.ndarray) -> np.ndarray:
    """The body's back (d, mm) with the voxel staircase averaged along the sacrum.

    Read on one line, the back of the body is the last bone sample of a voxel staircase
    (+-half a voxel, and a whole voxel where a line grazes a terrace): a body centre read
    half-way between the cortex and that one station's back moves by up to a millimetre. Each
    station with a back is replaced by the median of its neighbours within
    ``BACK_MEDIAN_MM`` (drops the single grazing stations), then by a Gaussian-weighted local
    line through them (sigma ``BACK_SMOOTHING_MM``). Stations without a back stay NaN.
    """
    known = np.isfinite(back_d)
    if known.sum() < 3:
        return back_d
    step = float(np.median(np.diff(s_mm)))
    half = max(1, int(round(BACK_MEDIAN_MM / step)))
    values = back_d[known]
    median = np.array(
        [np.median(values[max(0, n - half) : n + half + 1]) for n in range(len(values))]
    )
    fitted, _ = local_polynomial(s_mm[known], median, BACK_SMOOTHING_MM, degree=1)
    out = np.full_like(back_d, np.nan)
    out[known] = fitted
    return out


def _smoothed(s_mm: np.ndarray, d_mm: np.ndarray) -> np.ndarray:
    """The anterior edge (d, mm) under the ridges, smoothed along the sacrum, at ``s_mm``.

    Two steps on the straightened frame, where the edge runs near ``d = 0``:

    1. The fused-disc ridges are bumps anterior of the edge (lower ``d``) a few mm long: a grey
       closing of ``d`` over ``RIDGE_CLOSING_MM`` of arc (running maximum, then running
       minimum) removes every bump shorter than that and keeps the edge between them.
    2. A voxel mask (and a CT drawn on voxels) puts the edge on a staircase: where the surface
       runs nearly parallel to a grid plane the per-station edge stays on one plane for many
       mm, then jumps a voxel, and a tangent over a short stretch inherits it (up to ~4
       degrees on 2 mm voxels). Each station is replaced by a line fitted to its neighbours
       with Gaussian weights (sigma ``EDGE_SMOOTHING_MM``).
    """
    if len(s_mm) < 3:
        return d_mm
    step = float(np.median(np.diff(s_mm)))
    uniform_s = np.arange(s_mm[0], s_mm[-1] + 0.5 * step, step)
    uniform_d = np.interp(uniform_s, s_mm, d_mm)
    size = max(1, int(round(RIDGE_CLOSING_MM / step)) | 1)
    if size > 1:
        uniform_d = ndimage.grey_closing(uniform_d, size=size, mode="nearest")
    if EDGE_SMOOTHING_MM > 0:
        offset = uniform_s[None, :] - uniform_s[:, None]  # [station, neighbour]
        w = np.exp(-0.5 * (offset / EDGE_SMOOTHING_MM) ** 2)
        sw = w.sum(axis=1)
        mean_s = (w * offset).sum(axis=1) / sw
        mean_d = (w @ uniform_d) / sw
        centred = offset - mean_s[:, None]
        slope = (w * centred * (uniform_d[None, :] - mean_d[:, None])).sum(axis=1) / np.maximum(
            (w * centred**2).sum(axis=1), 1e-9
        )
        uniform_d = mean_d - slope * mean_s
    return np.interp(s_mm, uniform_s, uniform_d)


def _fit_sigma(frame: SacralFrame, s_mm: np.ndarray) -> np.ndarray:
    """Gaussian sigma (mm) of the edge fit at each station, from the frame's curvature.

    A long window averages the voxel staircase best (its terraces can be a centimetre long);
    a short one follows a sharp bend (a strongly kyphotic sacrum turns by 2-3 degrees per mm
    caudal of S3). The largest curvature within ``CURVATURE_REACH_MM`` picks between
    ``EDGE_FIT_SIGMA_MM`` (straight) and ``EDGE_FIT_SIGMA_BENT_MM`` (bent), linearly between
    ``STRAIGHT_CURVATURE`` and ``BENT_CURVATURE``.
    """
    angle = np.unwrap(np.arctan2(frame.tangent_uw[:, 1], frame.tangent_uw[:, 0]))
    curvature = np.abs(np.gradient(angle, frame.s_mm))
    step = float(np.median(np.diff(frame.s_mm)))
    reach = max(1, int(round(CURVATURE_REACH_MM / step)))
    nearby_max = ndimage.maximum_filter1d(curvature, 2 * reach + 1, mode="nearest")
    at_s = np.interp(s_mm, frame.s_mm, nearby_max)
    bent = np.clip((at_s - STRAIGHT_CURVATURE) / (BENT_CURVATURE - STRAIGHT_CURVATURE), 0, 1)
    return EDGE_FIT_SIGMA_MM + bent * (EDGE_FIT_SIGMA_BENT_MM - EDGE_FIT_SIGMA_MM)


def _fitted_edge(
    s_mm: np.ndarray, d_mm: np.ndarray, junctions_s, sigma_mm: np.ndarray
) -> np.ndarray:
    """The anterior edge (d, mm) without the fused-disc ridges, smoothed along the sacrum.

    The ridges sit at the junctions between the bodies: stations within
    ``RIDGE_EXCLUDE_MM`` of a junction are left out, and the edge is a Gaussian-weighted local
    line (sigma per station, :func:`_fit_sigma`) through the others. Unlike a grey closing,
    this averages the voxel staircase symmetrically (a closing keeps its anterior-most
    terraces, which moves the edge by up to a voxel where the staircase comes and goes). The
    fit is repeated ``ROBUST_ROUNDS`` times with Tukey biweights on its residuals, so that a
    few stations read a voxel off do not tilt it.
    """
    weights = np.ones(len(s_mm))
    for junction in junctions_s:
        weights[np.abs(s_mm - junction) <= RIDGE_EXCLUDE_MM] = 0.0
    if weights.sum() < 3:
        return _smoothed(s_mm, d_mm)
    fitted, _ = local_polynomial(s_mm, d_mm, sigma_mm, EDGE_DEGREE, weights)
    for _ in range(ROBUST_ROUNDS):
        residual = d_mm - fitted
        scale = ROBUST_MAD_TO_SD * np.median(np.abs(residual[weights > 0]))
        if scale <= 0:
            break
        ratio = residual / (ROBUST_TUNING * scale)
        robust = np.where(np.abs(ratio) < 1.0, (1.0 - ratio**2) ** 2, 0.0)
        fitted, _ = local_polynomial(s_mm, d_mm, sigma_mm, EDGE_DEGREE, weights * robust)
    return fitted


def anterior_cortex_curve(
    straight: StraightSacrum,
    profile: MidlineProfile,
    tip_s: float,
    step_mm: float = 1.0,
    junctions_s=None,
) -> tuple[np.ndarray, Confidence]:
    """Anterior cortex on the mid-sagittal plane, LPS (N, 3), promontory -> tip (``tip_s``).

    The edge is measured per station on the CT (sub-voxel, :func:`_ct_edge`), the fused-disc
    ridges are removed and the edge is smoothed along the sacrum (:func:`_smoothed`): the curve
    is the anterior edge the needle is to run parallel to, not the ridges' crests.

    Stations where the midline has no bone (a cleft, a fracture gap) are interpolated from
    their neighbours and reported.
    """
    s_all = profile.s_mm
    valid = np.isfinite(profile.anterior_d) & (s_all >= 0.0) & (s_all <= tip_s)
    if valid.sum() < 2:
        return np.empty((0, 3)), Confidence(0.0, ("no anterior cortex found on the midline",))
    s_out = np.arange(0.0, tip_s + 1e-9, step_mm)
    surface_d = profile.anterior_d if profile.surface_d is None else profile.surface_d
    if junctions_s is None:
        edge_d = _smoothed(s_all[valid], surface_d[valid])
    else:
        sigma = _fit_sigma(straight.frame, s_all[valid])
        edge_d = _fitted_edge(s_all[valid], surface_d[valid], junctions_s, sigma)
    d_out = np.interp(s_out, s_all[valid], edge_d)
    curve_lps = straight.frame.to_lps(np.zeros_like(s_out), s_out, d_out)
    # Report gaps: stations in range without a measured edge.
    in_range = (s_all >= 0.0) & (s_all <= tip_s)
    missing = float(np.mean(~valid[in_range])) if in_range.any() else 1.0
    reasons = []
    if missing > 0.05:
        reasons.append(f"{100 * missing:.0f}% of the anterior cortex interpolated over gaps")
    return curve_lps, Confidence(float(np.clip(1.0 - missing, 0.0, 1.0)), tuple(reasons))
