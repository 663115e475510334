"""The sacral canal on the straightened grid: the non-bone channel behind the bodies.

Between the foramina each cross-section of the canal is a hole closed by bone (body in front,
pedicles at the sides, laminae behind): there it is read exactly. At the foramina the ring opens
sideways, and below the hiatus apex it opens posteriorly; there the canal is the non-bone region
with bone in front and on both sides (and behind, above the apex) within reach, limited to the
width and depth measured on the closed cross-sections around it. Works the same on bone-only
volumes (canal reads 0 HU) and on full CT (CSF and fat), because it reads the bone mask only.

On coarse scans (3 mm) the bone mask closes a narrow canal over a voxel here and there (partial
volume): the canal found breaks into pieces along the sacrum. Pieces that resume it within
:data:`CANAL_BREAK_MM` are kept as one canal (the 3 mm totalseg-example CT: five pieces, of which
only the largest, 37-73 mm along the sacrum, was kept; the hiatus apex is at 88 mm). Where the
mask holds no bone beside or behind the canal at all (a posterior arch left out of the mask),
no canal is found there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.anatomy.cortex import MidlineProfile
from planner.anatomy.model import Confidence
from planner.anatomy.straight import StraightSacrum, distance_to_bone

#: Reach of the enclosure rays: sideways (to the pedicles or past a foramen), front/back (mm).
LATERAL_REACH_MM = 50.0
DEPTH_REACH_MM = 30.0
#: Window of the running median of the canal half-width (mm), and how much wider a closed
#: section may be before it counts as holding a piece of a foramen (mm).
WIDTH_WINDOW_MM = 15.0
WIDENED_MM = 1.5
#: How far above the promontory line (s = 0) the canal may reach (mm).
CRANIAL_SLACK_MM = 4.0
#: Fraction of canal stations that must be closed rings for full confidence.
GOOD_CLOSED_FRACTION = 0.1
#: Longest break along the sacrum (mm) bridged between pieces of the canal. On coarse scans the
#: bone mask closes a narrow canal over a voxel or so by partial volume (3 mm totalseg CT: four
#: breaks of 0.8-2.4 mm between S1 and the opening); the canal itself never stops and restarts,
#: so pieces this close that continue the same channel are one canal.
CANAL_BREAK_MM = 6.0


@dataclass(frozen=True)
class CanalResult:
    mask: np.ndarray  # bool [s, d, x] on the straightened grid
    confidence: Confidence
    #: Half-width (mm) of the canal per station, measured on its closed sections and
    #: interpolated between them (NaN where none was measured).
    half_width_mm: np.ndarray | None = None


def _closed_section(bone_slice: np.ndarray, seed_dx: tuple[int, int]) -> np.ndarray | None:
    """The 2D hole of one cross-section that contains the seed, or None."""
    holes = ndimage.binary_fill_holes(bone_slice) & ~bone_slice
    if not holes[seed_dx]:
        return None
    labels, _ = ndimage.label(holes)
    return labels == labels[seed_dx]


def _interpolate(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    positions = np.arange(len(values))
    if not known.any():
        return np.full(len(values), np.nan)
    return np.interp(positions, positions[known], values[known])


def find_canal(
    straight: StraightSacrum,
    profile: MidlineProfile,
    apex_s: float,
    opening_s: float,
    canal_back_d: np.ndarray,
) -> CanalResult:
    """Canal mask from the top of S1 (s = 0) down to the hiatus opening.

    Parameters
    ----------
    apex_s, opening_s : float
        Arc lengths (mm) of the hiatus apex and opening.
    canal_back_d : (n_s,) ndarray
        Posterior canal edge per station (measured above the apex, carried on below it).
    """
    bone = straight.bone
    step = straight.step_mm
    n_s = bone.shape[0]
    s_mm, d_mm, x_mm = straight.s_mm, straight.d_mm, straight.x_mm
    x_mid = int(np.argmin(np.abs(x_mm)))
    # A little above the promontory line: the S1 endplate is not exactly normal to the cortex,
    # and cranially the canal is bounded by the end of the bone around it anyway.
    in_range = (s_mm >= -CRANIAL_SLACK_MM) & (s_mm <= opening_s)
    closed = np.zeros_like(bone)
    half_width = np.full(n_s, np.nan)
    front = np.full(n_s, np.nan)
    back = np.full(n_s, np.nan)
    for i in np.flatnonzero(in_range & np.isfinite(profile.body_back_d)):
        d_seed = 0.5 * (profile.body_back_d[i] + canal_back_d[i])
        seed = (straight.index_of(d_mm=d_seed), x_mid)
        section = _closed_section(bone[i], seed) if s_mm[i] <= apex_s else None
        if section is None:
            continue
        closed[i] = section
        d_index, x_index = np.nonzero(section)
        half_width[i] = np.abs(x_mm[x_index]).max()
        front[i], back[i] = d_mm[d_index.min()], d_mm[d_index.max()]
    known = np.isfinite(half_width)
    # A closed section next to a foramen can hold a piece of the foramen's channel: much wider
    # than the canal around it. Such sections are treated as open (oval of the neighbours).
    typical = _running_median(half_width, known, int(round(WIDTH_WINDOW_MM / step)))
    widened = known & (half_width > typical + WIDENED_MM)
    closed[widened] = False
    known &= ~widened
    # Depths relative to the body's back travel better along s than absolute depths.
    floor = _interpolate(profile.body_back_d, np.isfinite(profile.body_back_d))
    half_width = _interpolate(half_width, known)
    front = _interpolate(front - floor, known) + floor
    back = _interpolate(back - floor, known) + floor

    lateral = int(round(LATERAL_REACH_MM / step))
    depth = int(round(DEPTH_REACH_MM / step))
    sideways = (distance_to_bone(bone, 2, False) <= lateral) & (
        distance_to_bone(bone, 2, True) <= lateral
    )
    in_front = distance_to_bone(bone, 1, False) <= depth
    behind = distance_to_bone(bone, 1, True) <= depth
    open_candidate = ~bone & sideways & in_front
    canal = closed.copy()
    for i in np.flatnonzero(in_range & ~known):
        if not np.isfinite(half_width[i]):
            continue
        below_apex = s_mm[i] > apex_s
        # Above the apex the canal is closed behind, except where the laminae fail to meet on
        # the midline (spina bifida occulta, common at S1): there the measured shape bounds it.
        wall_missing = not np.isfinite(profile.wall_front_d[i])
        candidate = open_candidate[i]
        if not below_apex and not wall_missing:
            candidate = candidate & behind[i]
        low = front[i] if not below_apex else profile_front(profile, i, front[i])
        high = back[i] if not below_apex else canal_back_d[i]
        # Where the ring is open the canal continues with the oval section of its closed
        # neighbours (it does not spread into the foramina or the hiatus notch).
        centre, half_depth = 0.5 * (low + high), max(0.5 * (high - low), step)
        shape = (x_mm[None, :] / max(half_width[i], step)) ** 2 + (
            (d_mm[:, None] - centre) / half_depth
        ) ** 2 <= 1.0
        canal[i] = candidate & shape
    canal &= in_range[:, None, None]
    canal = _main_channel(canal, int(round(CANAL_BREAK_MM / step)))
    closed_fraction = float(known[in_range].mean()) if in_range.any() else 0.0
    reasons = []
    score = 1.0
    if not canal.any():
        reasons.append("no sacral canal found behind the bodies")
        score = 0.0
    elif closed_fraction < GOOD_CLOSED_FRACTION:
        reasons.append(
            f"canal walls closed on only {100 * closed_fraction:.0f}% of its length; "
            "its outline elsewhere is interpolated"
        )
        score = 0.5
    return CanalResult(canal, Confidence(score, tuple(reasons)), half_width)


def _running_median(values: np.ndarray, known: np.ndarray, window: int) -> np.ndarray:
    """Median of the known values within +/- window/2 stations (NaN where none)."""
    result = np.full(len(values), np.nan)
    half = max(1, window // 2)
    for i in range(len(values)):
        near = values[max(0, i - half) : i + half + 1][known[max(0, i - half) : i + half + 1]]
        if near.size:
            result[i] = np.median(near)
    return result


def profile_front(profile: MidlineProfile, index: int, default: float) -> float:
    """Canal floor (body back) at one station, or ``default`` where the body is missing."""
    value = profile.body_back_d[index]
    return float(value) if np.isfinite(value) else float(default)


def _main_channel(mask: np.ndarray, max_break: int) -> np.ndarray:
    """The largest component of the ``[s, d, x]`` mask and the pieces that continue it along s.

    Every piece lies in the canal's outline (a closed hole around the midline seed, or the oval
    of the closed sections around it), so a piece that starts within ``max_break`` stations of
    either end of the channel kept so far, and carries it further along s, is the same channel
    resumed after a break of the bone mask (or split beside itself by a bony spur where it
    overlaps); its depth may jump by a few mm across the break (the coarse mask's staircase
    moves the body's back). Pieces beside the channel within its stations are not joined.
    """
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    occupied = np.zeros((count + 1, mask.shape[0]), bool)  # [label, s]: stations of each piece
    s_index, _, _ = np.nonzero(labels)
    occupied[labels[labels > 0], s_index] = True
    kept = {int(np.argmax(sizes))}
    grown = True
    while grown:
        grown = False
        stations = np.flatnonzero(occupied[sorted(kept)].any(axis=0))
        for n in np.argsort(sizes)[::-1]:
            if n == 0 or n in kept or sizes[n] == 0:
                continue
            piece = np.flatnonzero(occupied[n])
            caudal = piece[-1] > stations[-1] and piece[0] - stations[-1] - 1 <= max_break
            cranial = piece[0] < stations[0] and stations[0] - piece[-1] - 1 <= max_break
            if caudal or cranial:
                kept.add(int(n))
                grown = True
                break
    return np.isin(labels, sorted(kept))
