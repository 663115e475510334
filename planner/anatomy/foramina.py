"""Anterior sacral foramina on the straightened grid.

A foramen is a channel through the lateral mass, open in front (and behind, towards the canal):
its non-bone cells have bone above and below (along ``s``) and medially and laterally (along
``x``) within reach, and lie in front of the canal. Which channels are the S1-S4 foramina is
decided as a whole sequence of left-right pairs (:mod:`planner.anatomy.foramina_select`): their
positions along the sacrum and their lateral course, not their size alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.anatomy.cortex import MidlineProfile
from planner.anatomy.foramen_channels import grow_channels
from planner.anatomy.foramina_select import candidates_from_channels, select_junctions
from planner.anatomy.model import FORAMEN_LEVELS, SIDES, Confidence
from planner.anatomy.straight import StraightSacrum, enclosed

#: Reach of the enclosure rays: cranio-caudal (to the lateral mass of the next body), sideways.
S_REACH_MM = 12.0
X_REACH_MM = 20.0
#: Smallest channel kept (mm^3): a 1.3 mm radius over 2 mm (an S4 foramen of 2 mm radius on a
#: 3 mm scan keeps about this much; a lone channel must hold more, see
#: :data:`planner.anatomy.foramina_select.MIN_SINGLE_MM3`).
MIN_FORAMEN_MM3 = 10.0
#: Nearest a foramen's centre comes to the midline (mm): the bodies are in between.
MIN_LATERAL_MM = 5.0
#: Depth of the anterior part of the channel used for its centre and radius (mm).
ANTERIOR_PART_MM = 6.0
#: The channel's front is the first depth slice holding this fraction of its typical
#: (median) cross-section: thinner spurs ahead of it are partial volume, not the channel (a
#: spur on a 3 mm scan held 2-10 % of it; the tapering mouth of a real 1 mm channel 44 %).
FRONT_AREA_FRACTION = 0.25
#: Distance beyond the channel's radius where its cranial and caudal walls are read (mm).
WALL_OFFSET_MM = 1.5


@dataclass(frozen=True)
class ForamenFound:
    level: str
    side: str
    center_xsd: tuple[float, float, float]
    radius_mm: float
    component: int  # label in ``labels``


@dataclass(frozen=True)
class ForaminaResult:
    labels: np.ndarray  # int32 [s, d, x]: component labels
    found: list[ForamenFound]
    junction_s: dict[int, float]  # junction index 0..3 (S1/S2..S4/S5) -> s (mm), where found
    extra_groups: int  # channel groups beyond the four junctions (transitional anatomy?)
    confidence: Confidence


def _component_summary(labels, index, box, straight: StraightSacrum) -> dict | None:
    cells = np.argwhere(labels[box] == index) + [b.start for b in box]
    step = straight.step_mm
    volume = len(cells) * step**3
    if volume < MIN_FORAMEN_MM3:
        return None
    s = straight.s_mm[cells[:, 0]]
    d = straight.d_mm[cells[:, 1]]
    x = straight.x_mm[cells[:, 2]]
    d_front = _robust_front(d)
    anterior = (d >= d_front) & (d <= d_front + ANTERIOR_PART_MM)
    # Radius from the cross-section area of the anterior part (cells per depth slice).
    _, per_slice = np.unique(d[anterior], return_counts=True)
    radius = float(np.sqrt(np.median(per_slice) * step**2 / np.pi))
    # The straight front part, before it turns to the canal.
    near = (d >= d_front) & (d <= d_front + radius)
    x_axis, s_axis = float(x[near].mean()), float(s[near].mean())
    d_front = _channel_front(straight, x_axis, s_axis, d_front, radius)
    s_axis = _between_walls(straight, x_axis, s_axis, d_front + radius, radius)
    return {
        "index": index,
        "volume": volume,
        "x": x_axis,
        "s": s_axis,
        "d": float(d_front + radius),
        "radius": radius,
    }


def _robust_front(d_mm: np.ndarray) -> float:
    """Depth (mm) where the channel's cross-section first reaches a fair share of its typical one.

    The first cell from the front is not the channel's front when a thin spur runs ahead of it
    (partial volume of a 3 mm scan along an oblique wall: a 2-3 cell spur 4 mm in front of an
    S1 channel put its centre 5 mm off).
    """
    depths, counts = np.unique(d_mm, return_counts=True)
    typical = np.median(counts)
    return float(depths[np.argmax(counts >= FRONT_AREA_FRACTION * typical)])


def _between_walls(straight: StraightSacrum, x_mm, s_mm, d_mm, radius) -> float:
    """Arc length halfway between the channel's cranial and caudal bone walls at one depth.

    More robust than the mean of the channel's cells, which a groove or a partial-volume spur
    on one side pulls along s. Falls back to ``s_mm`` where a wall is not within reach.
    """
    step = straight.step_mm
    si, di, xi = straight.index_of(s_mm=s_mm, d_mm=d_mm, x_mm=x_mm)
    column = straight.bone[:, di, xi]
    if column[si]:
        return float(s_mm)
    reach = int(np.ceil(2.0 * (radius + WALL_OFFSET_MM) / step))
    cranial = np.flatnonzero(column[max(si - reach, 0) : si])
    caudal = np.flatnonzero(column[si + 1 : si + 1 + reach])
    if cranial.size == 0 or caudal.size == 0:
        return float(s_mm)
    first_open = max(si - reach, 0) + cranial[-1] + 1
    last_open = si + caudal[0]
    return float(0.5 * (straight.s_mm[first_open] + straight.s_mm[last_open]))


def _channel_front(straight: StraightSacrum, x_mm, s_mm, d_front, radius) -> float:
    """Depth of the anterior surface of the lateral mass around the channel's opening.

    Read just cranial and caudal of the channel (its walls), on the channel's axis column and
    half a radius to either side: the first bone from the front there, median of the columns
    (one column can meet a ridge or the edge of the body). The channel's own cells can start
    deeper where its side walls open into an anterolateral groove.
    """
    step = straight.step_mm
    fronts = []
    for offset in (-(radius + WALL_OFFSET_MM), radius + WALL_OFFSET_MM):
        for side in (-0.5 * radius, 0.0, 0.5 * radius):
            si, xi = straight.index_of(s_mm=s_mm + offset, x_mm=x_mm + side)
            column = straight.bone[si, :, xi]
            bone_ahead = np.flatnonzero(column & (straight.d_mm <= d_front + step))
            if bone_ahead.size:
                fronts.append(straight.d_mm[bone_ahead[0]] - 0.5 * step)
    return float(np.median(fronts)) if fronts else float(d_front - 0.5 * step)


def find_foramina(
    straight: StraightSacrum,
    profile: MidlineProfile,
    canal: np.ndarray,
    canal_half_width_mm: np.ndarray | None = None,
) -> ForaminaResult:
    """Find the S1-S4 anterior foramina, left and right.

    ``canal_half_width_mm`` (per station, mm; NaN where unknown) keeps the grown channels out
    of the middle of the canal where the canal mask is narrower than the canal
    (:func:`planner.anatomy.foramen_channels.grow_channels`).
    """
    step = straight.step_mm
    bone = straight.bone
    candidate = enclosed(bone, {0: int(round(S_REACH_MM / step)), 2: int(round(X_REACH_MM / step))})
    candidate &= ~ndimage.binary_dilation(canal, iterations=1)
    body_back = np.interp(
        straight.s_mm,
        profile.s_mm[np.isfinite(profile.body_back_d)],
        profile.body_back_d[np.isfinite(profile.body_back_d)],
    )
    candidate &= straight.d_mm[None, :, None] <= body_back[:, None, None]
    candidate &= np.abs(straight.x_mm)[None, None, :] >= MIN_LATERAL_MM
    # Only along the sacral bodies: above S1 or below the tip, channels are not sacral foramina.
    s_body = (straight.s_mm >= profile.body_s_range[0]) & (straight.s_mm <= profile.body_s_range[1])
    candidate &= s_body[:, None, None]
    labels, count = ndimage.label(candidate)
    boxes = ndimage.find_objects(labels)
    summaries = [
        summary
        for index, box in enumerate(boxes, start=1)
        if box is not None
        and (summary := _component_summary(labels, index, box, straight)) is not None
    ]
    selection = select_junctions(candidates_from_channels(summaries), straight.frame.height_mm)
    extra_pairs = selection.extra_pairs
    found: list[ForamenFound] = []
    junction_s: dict[int, float] = {}
    for junction, candidate in sorted(selection.junctions.items()):
        level = FORAMEN_LEVELS[junction]
        for item in candidate.items:
            side = "L" if item["x"] > 0 else "R"
            found.append(
                ForamenFound(
                    level, side, (item["x"], item["s"], item["d"]), item["radius"], item["index"]
                )
            )
        junction_s[junction] = candidate.s_mm
    labels = grow_channels(
        straight,
        labels,
        [(f.component, f.center_xsd, f.radius_mm) for f in found],
        canal,
        canal_half_width_mm,
    )
    missing = [
        f"{level} {side}"
        for level in FORAMEN_LEVELS
        for side in SIDES
        if not any(f.level == level and f.side == side for f in found)
    ]
    reasons = []
    if missing:
        reasons.append(f"foramina not found: {', '.join(missing)}")
    if extra_pairs:
        reasons.append(
            f"{extra_pairs} extra pair(s) of foramina: possible transitional S1 (or coccygeal "
            "foramina); the pairs that best fit the S1-S4 course were taken"
        )
    score = len(found) / 8.0 * (0.8 if extra_pairs else 1.0)
    return ForaminaResult(labels, found, junction_s, extra_pairs, Confidence(score, tuple(reasons)))
