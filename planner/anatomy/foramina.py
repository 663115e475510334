"""Anterior sacral foramina on the straightened grid.

A foramen is a channel through the lateral mass, open in front (and behind, towards the canal):
its non-bone cells have bone above and below (along ``s``) and medially and laterally (along
``x``) within reach, and lie in front of the canal. Channels are grouped into junctions by their
arc length, left and right of the mid-sagittal plane; the groups are matched to S1/S2 ... S4/S5
in cranio-caudal order.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import ndimage

from planner.anatomy.cortex import MidlineProfile
from planner.anatomy.foramen_channels import grow_channels
from planner.anatomy.model import FORAMEN_LEVELS, SIDES, Confidence
from planner.anatomy.straight import StraightSacrum, enclosed

#: Reach of the enclosure rays: cranio-caudal (to the lateral mass of the next body), sideways.
S_REACH_MM = 12.0
X_REACH_MM = 20.0
#: Smallest channel kept (mm^3): a 1.5 mm radius over 2 mm.
MIN_FORAMEN_MM3 = 15.0
#: A junction group with less channel volume than this is noise, not a foramen (mm^3).
MIN_GROUP_MM3 = 60.0
#: A dropped fifth group counts as an extra pair from this fraction of the weakest kept one.
EXTRA_PAIR_FRACTION = 0.3
#: Channels closer than this along s belong to one junction (mm).
JUNCTION_GAP_MM = 7.0
#: Nearest a foramen's centre comes to the midline (mm): the bodies are in between.
MIN_LATERAL_MM = 5.0
#: Depth of the anterior part of the channel used for its centre and radius (mm).
ANTERIOR_PART_MM = 6.0
#: Distance beyond the channel's radius where its cranial and caudal walls are read (mm).
WALL_OFFSET_MM = 1.5
#: Expected junction positions as fractions of the sacral height (typical adult proportions);
#: used only to decide which junction a lone group of foramina belongs to.
EXPECTED_JUNCTION_FRACTIONS = (0.28, 0.51, 0.70, 0.86)


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
    d_front = d.min()
    anterior = d <= d_front + ANTERIOR_PART_MM
    # Radius from the cross-section area of the anterior part (cells per depth slice).
    _, per_slice = np.unique(d[anterior], return_counts=True)
    radius = float(np.sqrt(np.median(per_slice) * step**2 / np.pi))
    near = d <= d_front + radius  # the straight front part, before it turns to the canal
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


def _group_by_s(items: list[dict]) -> list[list[dict]]:
    items = sorted(items, key=lambda item: item["s"])
    groups: list[list[dict]] = []
    for item in items:
        if groups and item["s"] - groups[-1][-1]["s"] <= JUNCTION_GAP_MM:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _assign_junctions(group_s: list[float], height_mm: float) -> list[int]:
    """Junction index (0..3) of each group, keeping the order, nearest to typical positions."""
    expected = np.asarray(EXPECTED_JUNCTION_FRACTIONS) * height_mm
    best, best_cost = None, np.inf
    for chosen in combinations(range(4), len(group_s)):
        cost = float(np.sum((np.asarray(group_s) - expected[list(chosen)]) ** 2))
        if cost < best_cost:
            best, best_cost = list(chosen), cost
    return best or []


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
    groups = [g for g in _group_by_s(summaries) if _group_weight(g) >= MIN_GROUP_MM3]
    extra_pairs = 0
    if len(groups) > 4:
        # Keep the four groups with the most channel volume on both sides; a dropped group is a
        # possible extra pair (transitional anatomy) only if it is a real left-right pair.
        order = sorted(range(len(groups)), key=lambda g: -_group_weight(groups[g]))
        kept, dropped = sorted(order[:4]), order[4:]
        weakest = min(_group_weight(groups[g]) for g in kept)
        extra_pairs = sum(
            _is_pair(groups[g]) and _group_weight(groups[g]) >= EXTRA_PAIR_FRACTION * weakest
            for g in dropped
        )
        groups = [groups[g] for g in kept]
    junctions = _assign_junctions(
        [float(np.mean([item["s"] for item in group])) for group in groups],
        straight.frame.height_mm,
    )
    found: list[ForamenFound] = []
    junction_s: dict[int, float] = {}
    for group, junction in zip(groups, junctions, strict=True):
        level = FORAMEN_LEVELS[junction]
        picked_s = []
        for side in SIDES:
            sign = 1.0 if side == "L" else -1.0
            on_side = [item for item in group if sign * item["x"] > 0]
            if not on_side:
                continue
            item = max(on_side, key=lambda it: it["volume"])
            found.append(
                ForamenFound(
                    level, side, (item["x"], item["s"], item["d"]), item["radius"], item["index"]
                )
            )
            picked_s.append(item["s"])
        junction_s[junction] = float(np.mean(picked_s))
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
            "foramina); the four largest pairs were taken as S1-S4"
        )
    score = len(found) / 8.0 * (0.8 if extra_pairs else 1.0)
    return ForaminaResult(labels, found, junction_s, extra_pairs, Confidence(score, tuple(reasons)))


def _largest_per_side(group: list[dict]) -> dict[str, float]:
    volumes: dict[str, float] = {}
    for item in group:
        side = "L" if item["x"] > 0 else "R"
        volumes[side] = max(volumes.get(side, 0.0), item["volume"])
    return volumes


def _group_weight(group: list[dict]) -> float:
    """Channel volume of a junction group: the largest channel on each side (mm^3)."""
    return float(sum(_largest_per_side(group).values()))


def _is_pair(group: list[dict]) -> bool:
    volumes = _largest_per_side(group)
    return len(volumes) == 2 and min(volumes.values()) >= 0.3 * max(volumes.values())
