"""The sacral hiatus: where the posterior wall of the canal stops on the midline.

The apex is the caudal end of the lowest run of posterior wall on the mid-sagittal profile, on
the posterior edge of the canal; the opening is the centre of the gap below it, at the posterior
edge of the canal, in the middle of S5 (or halfway from the apex to the tip if the apex is lower):
the base of the opening is not a sharp bony landmark, so this is an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.anatomy.cortex import MidlineProfile
from planner.anatomy.model import Confidence, Hiatus
from planner.anatomy.straight import StraightSacrum

#: Shortest run of posterior wall that counts as laminae (not a spur) (mm).
MIN_WALL_RUN_MM = 4.0
#: Length of the end of the wall over which the apex depth is read (mm).
APEX_DEPTH_WINDOW_MM = 4.0
#: Gaps in the posterior wall shorter than this are bridged (mm).
WALL_GAP_MM = 2.0


@dataclass(frozen=True)
class HiatusResult:
    hiatus: Hiatus
    apex_s: float
    opening_s: float
    canal_back_d: np.ndarray  # per s station: posterior canal edge (measured or extrapolated)
    confidence: Confidence


def _runs(flags: np.ndarray, gap: int) -> list[tuple[int, int]]:
    index = np.flatnonzero(flags)
    if index.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(index) > gap + 1)
    starts = np.concatenate([[index[0]], index[breaks + 1]])
    ends = np.concatenate([index[breaks], [index[-1]]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def find_hiatus(
    straight: StraightSacrum, profile: MidlineProfile, tip_s: float, s5_top_s: float
) -> HiatusResult:
    """Locate the hiatus apex and opening on the mid-sagittal profile.

    Parameters
    ----------
    tip_s : float
        Arc length of the sacral tip (mm), the caudal end of the S5 body.
    s5_top_s : float
        Arc length of the S4/S5 junction (mm).
    """
    step = straight.step_mm
    s = profile.s_mm
    wall = np.isfinite(profile.wall_front_d) & (s >= 0.0) & (s <= tip_s)
    runs = [
        (a, b)
        for a, b in _runs(wall, int(round(WALL_GAP_MM / step)))
        if (b - a + 1) * step >= MIN_WALL_RUN_MM
    ]
    reasons: list[str] = []
    score = 1.0
    canal_back = profile.wall_front_d.copy()
    if runs:
        first, last = runs[-1]
        apex_s = float(s[last])
        # The last stations of a wall are cut obliquely by the opening (partial volume): read the
        # canal's posterior edge as the median over the end of the wall.
        tail = slice(max(first, last - int(round(APEX_DEPTH_WINDOW_MM / step))), last + 1)
        apex_d = float(np.nanmedian(profile.wall_front_d[tail]))
    else:
        # No posterior wall on the midline at all: put the apex at the top of the canal.
        apex_s = 0.0
        body = np.isfinite(profile.body_back_d)
        apex_d = float(np.nanmedian(profile.body_back_d[body])) + 4.0 if body.any() else 0.0
        reasons.append("no posterior wall found on the midline; hiatus apex is a guess")
        score = 0.2
    if apex_s > tip_s - 2.0:
        reasons.append("posterior wall reaches the tip: no hiatus opening seen")
        score = min(score, 0.4)
    # Canal depth at the apex, carried caudally: the canal's posterior edge where no wall is.
    depth_at_apex = apex_d - float(np.interp(apex_s, s, _filled(profile.body_back_d, s)))
    caudal = s > apex_s
    canal_back[caudal] = _filled(profile.body_back_d, s)[caudal] + depth_at_apex
    canal_back = _filled(canal_back, s)
    opening_s = 0.5 * (max(apex_s, s5_top_s) + tip_s) if apex_s < tip_s else apex_s
    opening_d = float(np.interp(opening_s, s, canal_back))
    frame = straight.frame
    hiatus = Hiatus(
        apex_lps=frame.to_lps(0.0, apex_s, apex_d),
        opening_lps=frame.to_lps(0.0, opening_s, opening_d),
    )
    return HiatusResult(hiatus, apex_s, opening_s, canal_back, Confidence(score, tuple(reasons)))


def _filled(values: np.ndarray, s: np.ndarray) -> np.ndarray:
    """NaN gaps filled by linear interpolation (constant beyond the ends)."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros_like(values)
    return np.interp(s, s[finite], values[finite])
