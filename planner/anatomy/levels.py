"""Levels S1-S5: junctions between the fused bodies along the arc length of the anterior cortex.

Cues, in order of trust: (1) the anterior foramina pairs, which sit at the junctions; (2) the
fused disc remnants on the mid-sagittal profile: a line of different density across the body
and a transverse ridge on the anterior contour; (3) typical proportions of the five bodies,
used only where both cues are missing and always reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.anatomy.cortex import MidlineProfile
from planner.anatomy.model import LEVEL_NAMES, Confidence
from planner.anatomy.straight import StraightSacrum

#: Typical S1/S2 .. S4/S5 positions as fractions of the sacral height (proportional fallback).
TYPICAL_JUNCTION_FRACTIONS = (0.28, 0.51, 0.70, 0.86)
#: Half-width of the midline band read for the disc remnant profile (mm).
DISC_BAND_HALF_MM = 4.0
#: Body margin excluded from the density profile (cortex) (mm).
DISC_CORTEX_MARGIN_MM = 2.0
#: Smoothing that separates a thin remnant line from the body's slow density change (mm).
DISC_BACKGROUND_SIGMA_MM = 5.0
#: Search window around an expected junction for a disc remnant (mm).
DISC_SEARCH_MM = 7.0
#: Standard scores a disc cue must exceed to be trusted.
DISC_MIN_SCORE = 1.5
#: S1 taller than this many times the median S2-S4 height suggests a transitional segment (an S1
#: holding a fused L6/S1 pair); typical adult S1 is about 1.5 times S2-S4.
TRANSITIONAL_S1_RATIO = 2.0
#: Where the sacrococcygeal junction is looked for, in S4 heights below S4/S5: adult S5 is
#: 0.6-1.25 S4 heights (typical 0.875: 0.14 / 0.16 of the sacral height). Past that, on a 3 mm
#: scan, the disc cue picked the first intercoccygeal joint (S5 up to 1.5 S4 heights, 13 mm
#: long on fatty phantoms).
S5_WINDOW_RATIOS = (0.6, 1.25)
#: Longest S5, in S4 heights, before the column is taken to run on into the coccyx: the end of
#: the plausible window (it was 1.8: a 3 mm fatty phantom kept 17 mm of coccyx as S5).
S5_MAX_RATIO = S5_WINDOW_RATIOS[1]
#: S5 height, in S4 heights, when no cue marks the sacrococcygeal junction.
TYPICAL_S5_RATIO = 0.875
#: Shortest run-on past S5 that is cut off as coccyx (mm); less is a rounded tip.
MIN_COCCYX_MM = 6.0
#: Body half-width used when no foramen bounds it (mm), a typical mid-sacral value.
DEFAULT_BODY_HALF_WIDTH_MM = 18.0
#: Bone left between a foramen and the body it bounds (mm).
FORAMEN_BODY_GAP_MM = 1.0


@dataclass(frozen=True)
class LevelsResult:
    boundaries_s: np.ndarray  # (6,) s of S1 top, S1/S2 .. S4/S5, S5 tip (mm)
    centers_xsd: dict[str, tuple[float, float, float]]
    body_half_width: np.ndarray  # per straightened s station (mm)
    sources: tuple[str, ...]  # per junction: "foramina", "disc remnant", "proportional"
    confidence: Confidence


def _filled(values: np.ndarray, s: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros_like(values)
    return np.interp(s, s[finite], values[finite])


def disc_cue(straight: StraightSacrum, profile: MidlineProfile) -> np.ndarray:
    """Standard score per s of a fused-disc cue: density line plus anterior ridge."""
    s = profile.s_mm
    anterior = _filled(profile.anterior_d, s)
    back = _filled(profile.body_back_d, s)
    band = np.abs(straight.x_mm) <= DISC_BAND_HALF_MM
    d = straight.d_mm
    inside = (d[None, :] >= anterior[:, None] + DISC_CORTEX_MARGIN_MM) & (
        d[None, :] <= back[:, None] - DISC_CORTEX_MARGIN_MM
    )
    values = straight.ct[:, :, band].mean(axis=2)
    counts = inside.sum(axis=1)
    density = np.where(counts > 0, (values * inside).sum(axis=1) / np.maximum(counts, 1), np.nan)
    density = _filled(density, s)
    sigma = DISC_BACKGROUND_SIGMA_MM / straight.step_mm
    line = np.abs(density - ndimage.gaussian_filter1d(density, sigma, mode="nearest"))
    ridge = ndimage.gaussian_filter1d(anterior, sigma, mode="nearest") - anterior
    score = np.zeros_like(s)
    for cue in (line, ridge):
        spread = np.std(cue)
        if spread > 0:
            score += (cue - np.mean(cue)) / spread
    return score


def find_levels(
    straight: StraightSacrum,
    profile: MidlineProfile,
    foramen_junction_s: dict[int, float],
    foramen_half_widths: dict[int, float],
    tip_s: float,
) -> LevelsResult:
    """Split the sacrum into S1..S5 along the arc length.

    Parameters
    ----------
    foramen_junction_s : dict
        Junction index (0 = S1/S2 .. 3 = S4/S5) -> s (mm) of the foramina found there.
    foramen_half_widths : dict
        Junction index -> distance (mm) from the midline to the medial edge of its foramina.
    tip_s : float
        Arc length of the sacral tip (mm).
    """
    s = profile.s_mm
    top_s = 0.0
    height = tip_s - top_s
    cue = disc_cue(straight, profile)
    known = dict(foramen_junction_s)
    sources = []
    junctions = []
    for j in range(4):
        if j in known:
            junctions.append(known[j])
            sources.append("foramina")
            continue
        expected = _expected_junction(j, known, top_s, height)
        window = np.abs(s - expected) <= DISC_SEARCH_MM
        if window.any() and cue[window].max() >= DISC_MIN_SCORE:
            junctions.append(float(s[window][np.argmax(cue[window])]))
            sources.append("disc remnant")
        else:
            junctions.append(float(expected))
            sources.append("proportional")
    junctions = np.maximum.accumulate(np.asarray(junctions))
    reasons = []
    gap = ~np.isfinite(profile.anterior_d)
    tip_s, tip_reason = _sacrococcygeal_tip(s, cue, gap, junctions, tip_s)
    if tip_reason:
        reasons.append(tip_reason)
    boundaries = np.concatenate([[top_s], junctions, [tip_s]])
    names = [f"{LEVEL_NAMES[j]}/{LEVEL_NAMES[j + 1]}" for j in range(4)]
    for name, source in zip(names, sources, strict=True):
        if source == "disc remnant":
            reasons.append(f"{name} junction from the disc remnant (its foramina were not found)")
        elif source == "proportional":
            reasons.append(f"{name} junction from proportional fallback (no foramina, no disc cue)")
    heights = np.diff(boundaries)
    if heights[0] > TRANSITIONAL_S1_RATIO * np.median(heights[1:4]) or heights[0] < 0.6 * np.median(
        heights[1:4]
    ):
        reasons.append(
            f"S1 is {heights[0]:.0f} mm tall against {np.median(heights[1:4]):.0f} mm for S2-S4: "
            "possible transitional S1"
        )
    score = 1.0 - 0.15 * sources.count("disc remnant") - 0.25 * sources.count("proportional")
    score -= 0.1 * (len(reasons) - len([r for r in reasons if "junction" in r]))
    anterior = _filled(profile.anterior_d, s)
    back = _filled(profile.body_back_d, s)
    centers = {}
    for index, name in enumerate(LEVEL_NAMES):
        s_c = 0.5 * (boundaries[index] + boundaries[index + 1])
        d_c = 0.5 * (np.interp(s_c, s, anterior) + np.interp(s_c, s, back))
        centers[name] = (0.0, float(s_c), float(d_c))
    half_width = _body_half_width(s, boundaries, foramen_half_widths)
    return LevelsResult(
        boundaries,
        centers,
        half_width,
        tuple(sources),
        Confidence(float(np.clip(score, 0.0, 1.0)), tuple(reasons)),
    )


def _sacrococcygeal_tip(
    s: np.ndarray, cue: np.ndarray, gap: np.ndarray, junctions: np.ndarray, tip_s: float
) -> tuple[float, str]:
    """End S5 at the sacrococcygeal junction when the mask's column runs on into the coccyx.

    S5 is normally shorter than S4; a column running on for more than ``S5_MAX_RATIO`` S4
    heights holds the coccyx (fused, or kept by the segmentation). The junction is the first gap
    in the midline bone (an unfused joint) in the plausible window (:data:`S5_WINDOW_RATIOS`),
    else the strongest disc cue there, else a typical S5 height below S4/S5.
    """
    s4_height = junctions[3] - junctions[2]
    if s4_height <= 0 or tip_s - junctions[3] <= S5_MAX_RATIO * s4_height:
        return tip_s, ""
    low, high = (junctions[3] + ratio * s4_height for ratio in S5_WINDOW_RATIOS)
    window = (s >= low) & (s <= high)
    if np.any(window & gap):
        end = float(s[np.flatnonzero(window & gap)[0]])
        how = "at the gap of the sacrococcygeal joint"
    elif window.any() and cue[window].max() >= DISC_MIN_SCORE:
        end = float(s[window][np.argmax(cue[window])])
        how = "at the sacrococcygeal disc remnant"
    else:
        end = float(junctions[3] + TYPICAL_S5_RATIO * s4_height)
        how = f"{TYPICAL_S5_RATIO:g} S4 heights below S4/S5 (no disc cue)"
    if tip_s - end < MIN_COCCYX_MM:
        return tip_s, ""
    reason = (
        f"the sacrum mask runs {tip_s - end:.0f} mm past S5 (coccyx in the mask?): S5 ends {how}"
    )
    return end, reason


def _expected_junction(j: int, known: dict[int, float], top_s: float, height: float) -> float:
    """Expected s of junction j from the typical proportions, rescaled between known ones.

    Between two anchors (the S1 top, known junctions, the tip) the typical fractions are
    rescaled to them. Caudal of the last known junction, the last known level's height is
    carried on by the typical height ratios instead of reaching for the tip: the mask's tip may
    lie in the coccyx (a 3 mm fatty scan put S4/S5 14 mm low from a tip 31 mm past S5).
    """
    fractions = np.concatenate([[0.0], TYPICAL_JUNCTION_FRACTIONS, [1.0]])
    anchors_index = [0] + [k + 1 for k in sorted(known)]
    anchors_s = [top_s] + [known[k] for k in sorted(known)]
    if known and j > max(known):
        (f_prev, f_last), (s_prev, s_last) = fractions[anchors_index[-2:]], anchors_s[-2:]
        return float(s_last + (fractions[j + 1] - f_last) / (f_last - f_prev) * (s_last - s_prev))
    anchors_f = fractions[anchors_index + [5]]
    return float(np.interp(fractions[j + 1], anchors_f, anchors_s + [top_s + height]))


def _body_half_width(s, boundaries, foramen_half_widths: dict[int, float]) -> np.ndarray:
    if not foramen_half_widths:
        return np.full(len(s), DEFAULT_BODY_HALF_WIDTH_MM)
    keys = sorted(foramen_half_widths)
    knots = [boundaries[k + 1] for k in keys]
    widths = [foramen_half_widths[k] - FORAMEN_BODY_GAP_MM for k in keys]
    return np.interp(s, knots, widths)
