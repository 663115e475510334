"""Which channels are the S1-S4 anterior foramina: left-right pairs in a plausible sequence.

:func:`planner.anatomy.foramina.find_foramina` finds every channel through the lateral masses.
On a dense sacrum at 2 mm or finer, the four largest channel groups are the four pairs of
foramina. On a coarse (3 mm) scan of a fatty, osteoporotic sacrum they are not: the marrow reads
like soft tissue, so the ala and the bodies hold channel-like holes as large as an S4 foramen,
and one junction's left and right channels can lie a voxel or two apart along ``s``. Keeping the
largest groups then takes a hole in the ala as S1 and shifts every level by one.

Here the foramina are chosen as a whole sequence. Candidates are left-right pairs (channels of
similar arc length and similar distance from the midline) and lone channels. Every ordered choice
of up to four candidates, assigned to junctions S1/S2 .. S4/S5, is scored: evidence (a pair
counts twice a lone channel) less how badly it fits

* the typical positions of the junctions along the sacrum (a least-squares fit of an offset and
  a height to the typical fractions, with priors on both), and
* the lateral course of the foramina, which converge caudally (no pair more lateral than the
  pair above it, none more than a plausible step medial of it).

All scales are in mm or in fractions of the sacral height, never in voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from planner.anatomy.levels import TYPICAL_JUNCTION_FRACTIONS

#: Typical S1/S2 .. S4/S5 positions as fractions of the sacral height (adult proportions; the
#: levels' proportional fallback uses the same).
EXPECTED_JUNCTION_FRACTIONS = TYPICAL_JUNCTION_FRACTIONS
#: Left and right channels of one junction: arc lengths within the sum of their radii plus this
#: (mm). A channel's centre is uncertain by about its radius (blocky channels of a 3 mm scan:
#: one real pair of 10 and 5 mm radii measured 7.4 mm apart), a small pair's much less.
PAIR_S_SLACK_MM = 2.0
#: ... and distances from the midline within this (mm).
PAIR_X_MM = 8.0
#: A lone channel with less volume than this is noise, not a foramen (mm^3).
MIN_SINGLE_MM3 = 30.0
#: A left-right pair is evidence in itself: it may hold less channel volume (mm^3), as the S4
#: pair of a 3 mm scan does (about 2 mm radius, diluted by the voxel: 14 + 29 mm^3 measured).
MIN_PAIR_MM3 = 25.0
#: Candidates kept for the sequence search, strongest first (the search is exhaustive on them).
MAX_CANDIDATES = 14
#: Nearest two junctions come along the sacrum (mm): S4/S5 lies about 15 mm below S3/S4 in a
#: small sacrum.
MIN_JUNCTION_GAP_MM = 10.0
#: Evidence of a left-right pair and of a lone channel (a missing pair costs two).
PAIR_EVIDENCE = 2.0
SINGLE_EVIDENCE = 1.0
#: Spread of a junction's position about the fitted proportions, as a fraction of the height.
POSITION_SD_FRACTION = 0.05
#: Prior on the fitted sacral height: the frame's height, give or take this fraction (the mask
#: may hold the coccyx, or the sacrum may be cut).
HEIGHT_SD_FRACTION = 0.2
#: Prior on where the fitted S1 top lies about the frame's start (mm).
OFFSET_SD_MM = 6.0
#: Lateral course: a pair may lie this much more lateral than the pair above it (mm), and at
#: most this much more medial per junction step (mm); beyond, a penalty with this scale (mm).
LATERAL_WIDENING_TOL_MM = 3.0
LATERAL_NARROWING_MAX_MM = 10.0
LATERAL_SD_MM = 3.0
#: A dropped pair counts as an extra pair (transitional anatomy) from this fraction of the
#: weakest chosen pair's channel volume, when it lies just above S1 or below S4 on their course.
EXTRA_PAIR_FRACTION = 0.3
#: An extra pair lies within this many median junction spacings of the nearest chosen pair.
EXTRA_PAIR_SPACINGS = 1.5
#: ... and its smaller side holds at least this fraction of its larger side's volume.
EXTRA_PAIR_BALANCE = 0.3
#: ... and it opens at about the depth of its neighbour (mm): anterior foramina open on the
#: anterior surface (one junction apart, 3-6 mm deeper or shallower on the phantoms), holes deep
#: in the S1 base near the L5/S1 facets do not (21 mm behind the S1 pair on the 3 mm real scan).
EXTRA_PAIR_DEPTH_MM = 8.0


@dataclass(frozen=True)
class Candidate:
    """A left-right pair of channels or a lone channel, a candidate for one junction."""

    items: tuple[dict, ...]  # channel summaries (keys x, s, volume, ...), one per side
    s_mm: float  # mean arc length of the channels
    lateral_mm: float  # mean distance of the channels from the midline
    depth_mm: float  # mean depth of the channels' anterior centres
    volume_mm3: float  # channel volume, summed over the sides

    @property
    def is_pair(self) -> bool:
        return len(self.items) == 2

    @property
    def evidence(self) -> float:
        return PAIR_EVIDENCE if self.is_pair else SINGLE_EVIDENCE

    def shares_channel(self, other: Candidate) -> bool:
        mine = {item["index"] for item in self.items}
        return any(item["index"] in mine for item in other.items)


@dataclass(frozen=True)
class Selection:
    """The chosen sequence: junction index (0 = S1/S2 .. 3 = S4/S5) -> candidate."""

    junctions: dict[int, Candidate]
    extra_pairs: int  # pairs left out just above S1 or below S4 (transitional anatomy?)
    score: float


def _candidate(items: list[dict]) -> Candidate:
    return Candidate(
        items=tuple(sorted(items, key=lambda item: -item["x"])),  # left (x > 0) first
        s_mm=float(np.mean([item["s"] for item in items])),
        lateral_mm=float(np.mean([abs(item["x"]) for item in items])),
        depth_mm=float(np.mean([item["d"] for item in items])),
        volume_mm3=float(sum(item["volume"] for item in items)),
    )


def candidates_from_channels(channels: list[dict]) -> list[Candidate]:
    """Pairs and lone channels, strongest first, each channel in at most one kept pair.

    Parameters
    ----------
    channels : list of dict
        Channel summaries with keys ``index`` (component label), ``x``, ``s``, ``d``,
        ``radius`` (mm) and ``volume`` (mm^3).
    """
    left = [c for c in channels if c["x"] > 0]
    right = [c for c in channels if c["x"] < 0]
    pairs = [
        _candidate([a, b])
        for a in left
        for b in right
        if abs(a["s"] - b["s"]) <= PAIR_S_SLACK_MM + a["radius"] + b["radius"]
        and abs(a["x"] + b["x"]) <= PAIR_X_MM
    ]
    pairs.sort(key=lambda c: -c.volume_mm3)
    kept: list[Candidate] = []
    for pair in pairs:  # greedy: a channel belongs to its strongest pair
        if pair.volume_mm3 >= MIN_PAIR_MM3 and not any(pair.shares_channel(k) for k in kept):
            kept.append(pair)
    singles = sorted(
        (_candidate([c]) for c in channels if c["volume"] >= MIN_SINGLE_MM3),
        key=lambda c: -c.volume_mm3,
    )
    ranked = sorted(kept, key=lambda c: -c.volume_mm3) + singles
    return ranked[:MAX_CANDIDATES]


def _position_cost(s_mm: np.ndarray, fractions: np.ndarray, height_mm: float) -> float:
    """Least-squares misfit of ``s = offset + height * fraction`` with priors on both.

    Residuals in units of :data:`POSITION_SD_FRACTION` of the frame height; the priors pull the
    offset to 0 (sd :data:`OFFSET_SD_MM`) and the height to the frame's
    (sd :data:`HEIGHT_SD_FRACTION`). Returns the minimum of the summed squares.
    """
    sd = POSITION_SD_FRACTION * height_mm
    rows = [np.column_stack([np.ones_like(fractions), fractions]) / sd]
    rhs = [s_mm / sd]
    rows.append(
        np.array([[1.0 / OFFSET_SD_MM, 0.0], [0.0, 1.0 / (HEIGHT_SD_FRACTION * height_mm)]])
    )
    rhs.append(np.array([0.0, height_mm / (HEIGHT_SD_FRACTION * height_mm)]))
    design, target = np.vstack(rows), np.concatenate(rhs)
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(np.sum((design @ solution - target) ** 2))


def _lateral_cost(chosen: tuple[Candidate, ...], junctions: tuple[int, ...]) -> float:
    """Penalty for a course that widens caudally or narrows implausibly fast."""
    cost = 0.0
    for (upper, j_upper), (lower, j_lower) in zip(
        zip(chosen, junctions, strict=True),
        zip(chosen[1:], junctions[1:], strict=True),
        strict=False,
    ):
        widening = lower.lateral_mm - upper.lateral_mm - LATERAL_WIDENING_TOL_MM
        narrowing = (
            upper.lateral_mm - lower.lateral_mm - (j_lower - j_upper) * LATERAL_NARROWING_MAX_MM
        )
        cost += (max(widening, 0.0) / LATERAL_SD_MM) ** 2
        cost += (max(narrowing, 0.0) / LATERAL_SD_MM) ** 2
    return cost


def select_junctions(candidates: list[Candidate], height_mm: float) -> Selection:
    """The best-scoring sequence of up to four candidates, assigned to junctions in order.

    Parameters
    ----------
    candidates : list of Candidate
        From :func:`candidates_from_channels`.
    height_mm : float
        Arc length of the sacrum in the frame (mm): scales the typical junction positions.
    """
    expected = np.asarray(EXPECTED_JUNCTION_FRACTIONS)
    by_s = sorted(candidates, key=lambda c: c.s_mm)
    best = Selection({}, 0, 0.0)
    for count in range(1, min(4, len(by_s)) + 1):
        for chosen in combinations(by_s, count):
            if not _compatible(chosen):
                continue
            s_mm = np.array([c.s_mm for c in chosen])
            evidence = sum(c.evidence for c in chosen)
            if evidence <= best.score:
                continue  # costs only lower it
            for junctions in combinations(range(4), count):
                score = evidence - _position_cost(s_mm, expected[list(junctions)], height_mm)
                score -= _lateral_cost(chosen, junctions)
                if score > best.score:
                    best = Selection(dict(zip(junctions, chosen, strict=True)), 0, score)
    return Selection(best.junctions, _extra_pairs(candidates, best.junctions), best.score)


def _compatible(chosen: tuple[Candidate, ...]) -> bool:
    """Ordered along s with room for a body between, and no channel used twice."""
    for upper, lower in zip(chosen, chosen[1:], strict=False):
        if lower.s_mm - upper.s_mm < MIN_JUNCTION_GAP_MM:
            return False
    return not any(a.shares_channel(b) for a, b in combinations(chosen, 2))


def _extra_pairs(candidates: list[Candidate], chosen: dict[int, Candidate]) -> int:
    """Pairs left out that continue the chosen course one junction above S1 or below S4."""
    pairs = [c for c in chosen.values() if c.is_pair]
    if len(pairs) < 2:
        return 0
    ordered = sorted(chosen.values(), key=lambda c: c.s_mm)
    spacing = float(np.median(np.diff([c.s_mm for c in ordered])))
    weakest = min(c.volume_mm3 for c in pairs)
    first, last = ordered[0], ordered[-1]
    count = 0
    for candidate in candidates:
        if not candidate.is_pair or candidate.volume_mm3 < EXTRA_PAIR_FRACTION * weakest:
            continue
        volumes = [item["volume"] for item in candidate.items]
        if min(volumes) < EXTRA_PAIR_BALANCE * max(volumes):
            continue
        if any(candidate.shares_channel(c) for c in ordered):
            continue
        # Above S1 only when the S1 pair is known, below S4 only when the S4 pair is: a pair
        # next to a missing junction is more likely that junction's, badly placed.
        sides = []
        if 0 in chosen:
            sides.append((first.s_mm - candidate.s_mm, first))
        if 3 in chosen:
            sides.append((candidate.s_mm - last.s_mm, last))
        for gap, neighbour in sides:
            on_course = (
                abs(candidate.lateral_mm - neighbour.lateral_mm) <= LATERAL_NARROWING_MAX_MM
                and abs(candidate.depth_mm - neighbour.depth_mm) <= EXTRA_PAIR_DEPTH_MM
            )
            if MIN_JUNCTION_GAP_MM <= gap <= EXTRA_PAIR_SPACINGS * spacing and on_course:
                count += 1
    return count
