"""The mid-sagittal profile of the straightened sacrum: anterior cortex, body back, canal roof.

Along each arc length ``s`` the mid-sagittal slab is read from anterior to posterior: the first
bone run is the vertebral body (its anterior edge is the anterior cortex, its posterior edge the
canal's floor); the next bone after the gap is the posterior wall (laminae, median crest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class MidlineProfile:
    """Per-station depths (mm, NaN where absent) along the straightened grid's ``s`` axis."""

    s_mm: np.ndarray
    anterior_d: np.ndarray  # anterior cortex (sub-voxel)
    body_back_d: np.ndarray  # posterior surface of the body = anterior edge of the canal
    wall_front_d: np.ndarray  # anterior surface of the posterior wall = posterior canal edge
    body_s_range: tuple[float, float]  # s of the first and last station with a body


def _crossing(values: np.ndarray, index: int, d_mm: np.ndarray, step: float) -> float:
    """Sub-voxel d where the slab occupancy crosses 0.5 between ``index - 1`` and ``index``."""
    if index <= 0:
        return float(d_mm[0])
    low, high = values[index - 1], values[index]
    fraction = np.clip((0.5 - low) / (high - low if high != low else 1e-6), 0.0, 1.0)
    return float(d_mm[index - 1] + fraction * step)


def midline_profile(straight: StraightSacrum) -> MidlineProfile:
    """Read the body, canal and posterior wall along the mid-sagittal slab."""
    step = straight.step_mm
    columns = np.abs(straight.x_mm) <= MIDLINE_HALF_MM + 1e-6
    occupancy = straight.bone[:, :, columns].mean(axis=2)  # [s, d]
    d_mm = straight.d_mm
    n_s = occupancy.shape[0]
    anterior = np.full(n_s, np.nan)
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
        body_back[i] = d_mm[last] + 0.5 * step
        later = inside[(inside > last + min_canal) & (inside <= last + wall_steps)]
        if later.size:
            wall_front[i] = _crossing(occupancy[i], later[0], d_mm, step)
    has_body = np.isfinite(anterior)
    s_body = straight.s_mm[has_body]
    body_range = (float(s_body.min()), float(s_body.max())) if s_body.size else (0.0, 0.0)
    return MidlineProfile(straight.s_mm, anterior, body_back, wall_front, body_range)


def anterior_cortex_curve(
    straight: StraightSacrum, profile: MidlineProfile, tip_s: float, step_mm: float = 1.0
) -> tuple[np.ndarray, Confidence]:
    """Anterior cortex on the mid-sagittal plane, LPS (N, 3), promontory -> tip (``tip_s``).

    Stations where the midline has no bone (a cleft, a fracture gap) are interpolated from
    their neighbours and reported.
    """
    s_all = profile.s_mm
    valid = np.isfinite(profile.anterior_d) & (s_all >= 0.0) & (s_all <= tip_s)
    if valid.sum() < 2:
        return np.empty((0, 3)), Confidence(0.0, ("no anterior cortex found on the midline",))
    s_out = np.arange(0.0, tip_s + 1e-9, step_mm)
    d_out = np.interp(s_out, s_all[valid], profile.anterior_d[valid])
    curve_lps = straight.frame.to_lps(np.zeros_like(s_out), s_out, d_out)
    # Report gaps: stations in range without a measured edge.
    in_range = (s_all >= 0.0) & (s_all <= tip_s)
    missing = float(np.mean(~valid[in_range])) if in_range.any() else 1.0
    reasons = []
    if missing > 0.05:
        reasons.append(f"{100 * missing:.0f}% of the anterior cortex interpolated over gaps")
    return curve_lps, Confidence(float(np.clip(1.0 - missing, 0.0, 1.0)), tuple(reasons))
