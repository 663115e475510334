"""Bone cores and the markers they give: which core is the sacrum, the hip bones, the spine.

Cores are bone deeper than a few mm under its surface or a joint line, so each bone's core is
separate; see :mod:`planner.anatomy.sacrum` for the whole pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from planner.anatomy.bone import label_components
from planner.anatomy.sacrum_flood import depth_relief, elevation_relief, flood
from planner.anatomy.sacrum_labels import (
    BACKGROUND,
    HIP_LEFT,
    HIP_RIGHT,
    OTHER_BONE,
    SACRUM,
    SPINE,
    no_sacrum_message,
)
from planner.errors import AnatomyNotFoundError
from planner.volume import Volume

#: Depth under the bone surface (mm) that makes a voxel part of a bone's core.
CORE_DEPTH_MM = 4.0
#: A core smaller than this (mm^3) is too small to be the sacral body or a hip bone.
MIN_MAIN_CORE_MM3 = 8000.0
#: A core wider than this (mm, left-right) holds more than one bone and is split.
MAX_CORE_WIDTH_MM = 120.0
#: Deeper and deeper depth thresholds (mm) tried to split such a core.
SPLIT_DEPTHS_MM = (6.0, 8.0, 10.0, 12.0, 14.0)
#: Smallest core (mm^3) taken for a vertebral body when it lies apart from the sacral core.
MIN_VERTEBRA_CORE_MM3 = 2000.0
#: Largest gap (mm) between the sacral core and the core of L5's body (disc and two endplates).
L5_REACH_MM = 30.0
#: Sacral-core voxels at most this far (mm, along the lumbosacral axis) below the lowest voxel of
#: L5's core are still given to L5's level (its arch starts about level with its body's core).
L5_CUT_MARGIN_MM = 3.0
#: Bone within this distance (mm) of the lumbosacral axis counts as at L5's level: the body's
#: half-width plus its transverse processes.
L5_LEVEL_RADIUS_MM = 60.0
#: Half-width (mm) of the band around the midline that a sacral core must cross.
MIDLINE_BAND_MM = 8.0
#: A hip core's centroid lies at least this far (mm) from the midline.
HIP_MIN_OFFSET_MM = 35.0
#: Largest gap (mm) between the sacral core and each hip core: both cores sit a few mm under
#: their joint surfaces, plus the joint space. L5 to the iliac crest is much further.
HIP_REACH_MM = 22.0
#: A core that is not the main one still belongs to the sacrum when its centroid lies within the
#: main core's mirrored lateral extent plus this margin (mm), and within its height and depth.
SACRAL_REGION_MARGIN_MM = 5.0
#: Extra room below the main sacral core (mm) for the thin lower segments.
SACRAL_REGION_CAUDAL_MM = 40.0


@dataclass(frozen=True)
class Core:
    label: int
    volume_mm3: float
    centroid_lps: np.ndarray
    low_lps: np.ndarray
    high_lps: np.ndarray
    slices: tuple


def core_markers(working: Volume, filled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the bone cores (sacrum, hips, spine, other); also return the watershed relief.

    Raises AnatomyNotFoundError if no sacrum is found.
    """
    spacing = working.spacing_xyz
    if not filled.any():
        raise AnatomyNotFoundError(no_sacrum_message("no bone at all"))
    # Joint spaces blurred into the threshold are cut out first, so the cores of two bones that
    # meet across a narrow joint stay apart.
    elevation, depth = elevation_relief(working.array, filled, spacing)
    core_labels, count = label_components(depth >= CORE_DEPTH_MM)
    core_labels, count = _split_wide_cores(core_labels, count, depth, spacing)
    cores = _describe_cores(working, core_labels, count)
    midline_x = float(np.median(np.nonzero(filled)[2])) * spacing[0] + working.origin_lps[0]

    sacral = _choose_sacral_core(cores, core_labels, midline_x, spacing)
    half_width = max(sacral.high_lps[0] - midline_x, midline_x - sacral.low_lps[0])
    half_width += SACRAL_REGION_MARGIN_MM
    largest_hip = {
        side: max(
            (
                c
                for c in cores
                if c.label != sacral.label
                and side * (c.centroid_lps[0] - midline_x) >= HIP_MIN_OFFSET_MM
            ),
            key=lambda c: c.volume_mm3,
        ).label
        for side in (1, -1)
    }
    # Which piece of connected bone each core lies in: bones apart from the sacrum's piece
    # (L5 across its disc, a fragment across a fracture gap) are judged by position, not flood.
    pieces, _ = label_components(filled)
    piece_of = {core.label: _piece_of(core, core_labels, pieces) for core in cores}
    markers = np.zeros(filled.shape, np.uint8)
    undecided = []
    for core in cores:
        if core.label in largest_hip.values():
            value = HIP_LEFT if core.centroid_lps[0] > midline_x else HIP_RIGHT
        else:
            apart = piece_of[core.label] != piece_of[sacral.label] or _gap_between(
                core, sacral, core_labels, filled, working
            )
            value = _classify_core(core, sacral, midline_x, half_width, apart)
        if value is None:
            undecided.append(core)
            continue
        markers[core.slices][core_labels[core.slices] == core.label] = value
    _mark_l5_level(markers, filled, core_labels, sacral, working)
    if undecided:
        # Cores near the sacrum that could be sacrum (lower segments, fracture fragments) or hip
        # (iliac pieces cut off by the joint lines): let a first flood from the sure cores decide,
        # since the flood crosses joint lines last. A core in a piece of bone with no sure core
        # could only be reached through soft tissue: it is sacrum when it lies in the sacral
        # region (a fracture fragment), other bone otherwise.
        first = flood(filled, markers, elevation)
        sure_pieces = set(np.unique(pieces[markers > 0]).tolist())
        for core in undecided:
            inside = core_labels[core.slices] == core.label
            if piece_of[core.label] in sure_pieces:
                votes = np.bincount(first[core.slices][inside], minlength=OTHER_BONE + 1)
                votes[BACKGROUND] = 0
                value = int(np.argmax(votes)) if votes.any() else OTHER_BONE
            else:
                value = SACRUM if _in_sacral_region(core, sacral) else OTHER_BONE
            markers[core.slices][inside] = value
    return markers, elevation


def _mark_l5_level(
    markers: np.ndarray,
    filled: np.ndarray,
    core_labels: np.ndarray,
    sacral: Core,
    working: Volume,
) -> None:
    """Mark the bone at L5's level as spine (in place), so L5's arch cannot flood into S1.

    L5's arch can touch the S1 facets with no joint space visible, and its thin lamina forms no
    core of its own: the first front to reach it takes it, often the sacrum's through the
    facets. L5's body, though, is a core apart across the disc (already marked spine). The
    lumbosacral axis runs from the nearest voxel of the sacral core to that body's centroid;
    bone that lies at least as high along that axis as the L5 core's lowest voxel (less
    :data:`L5_CUT_MARGIN_MM`) and within :data:`L5_LEVEL_RADIUS_MM` of the axis is at L5's
    level, not S1's, whose body lies a disc and two endplates lower. Hip markers are kept.
    """
    spine_pieces, count = label_components(markers == SPINE)
    if count == 0:
        return
    spacing, origin = working.spacing_xyz, working.origin_lps
    sacral_lps = origin + np.argwhere(core_labels == sacral.label)[:, ::-1] * spacing
    tree = cKDTree(sacral_lps)
    best = None
    for piece in range(1, count + 1):
        piece_lps = origin + np.argwhere(spine_pieces == piece)[:, ::-1] * spacing
        if len(piece_lps) * float(np.prod(spacing)) < MIN_VERTEBRA_CORE_MM3:
            continue
        gap = float(tree.query(piece_lps)[0].min())
        if gap <= L5_REACH_MM and (best is None or gap < best[0]):
            best = (gap, piece_lps)
    if best is None:
        return
    piece_lps = best[1]
    centroid = piece_lps.mean(axis=0)
    top_s1 = sacral_lps[tree.query(centroid)[1]]
    axis = centroid - top_s1
    if np.linalg.norm(axis) == 0 or axis[2] <= 0:
        return
    axis /= np.linalg.norm(axis)
    l5_floor = float(((piece_lps - top_s1) @ axis).min()) - L5_CUT_MARGIN_MM
    candidates = np.argwhere(filled & ((markers == BACKGROUND) | (markers == SACRUM)))
    relative = origin + candidates[:, ::-1] * spacing - top_s1
    height = relative @ axis
    radial = np.linalg.norm(relative - np.outer(height, axis), axis=1)
    level = candidates[(height >= l5_floor) & (radial <= L5_LEVEL_RADIUS_MM)]
    markers[level[:, 0], level[:, 1], level[:, 2]] = SPINE


def _gap_between(
    core: Core, sacral: Core, core_labels: np.ndarray, filled: np.ndarray, working: Volume
) -> bool:
    """True when the straight line from a core's centroid to the nearest sacral-core voxel
    leaves the bone: the two are separate bones (L5 across its disc) even where a joint
    elsewhere (the facets) connects them."""
    sacral_ijk = np.argwhere(core_labels[sacral.slices] == sacral.label)[:, ::-1]
    sacral_ijk = sacral_ijk + np.array([s.start for s in sacral.slices])[::-1]
    centre_ijk = working.lps_to_index(core.centroid_lps)
    nearest_ijk = sacral_ijk[np.argmin(np.sum((sacral_ijk - centre_ijk) ** 2, axis=1))]
    steps = int(np.ceil(np.linalg.norm(nearest_ijk - centre_ijk) * 2)) + 2
    line_ijk = np.rint(np.linspace(centre_ijk, nearest_ijk, steps)).astype(int)
    line_ijk = np.clip(line_ijk, 0, np.array(working.shape_ijk) - 1)
    return not bool(filled[line_ijk[:, 2], line_ijk[:, 1], line_ijk[:, 0]].all())


def _split_wide_cores(
    core_labels: np.ndarray, count: int, depth: np.ndarray, spacing
) -> tuple[np.ndarray, int]:
    """Split cores wider than any single bone (sacrum merged with an ilium, both ilia merged
    through the symphysis) at their thinnest parts.

    The core is eroded further (deeper depth thresholds) until it falls into several large
    pieces; those pieces then regrow over the whole core by a watershed on the depth, so the
    split runs along the thin bridge between them. A piece still wider than any single bone is
    split again: where blurred joints let the sacrum join both ilia (a scan resampled onto a
    coarser grid), the first split may part one ilium only (pengwin-003 resampled to 1.5 mm:
    the right ilium at 6 mm, the left one from the sacrum at 8 mm).
    """
    pending = [
        (label, slices)
        for label, slices in enumerate(ndimage.find_objects(core_labels), start=1)
        if slices is not None
    ]
    while pending:
        label, slices = pending.pop(0)
        if (slices[2].stop - slices[2].start) * float(spacing[0]) <= MAX_CORE_WIDTH_MM:
            continue
        pieces = _split_core(core_labels, label, slices, count, depth, spacing)
        if len(pieces) < 2:
            continue
        count += len(pieces) - 1
        region = core_labels[slices]
        for piece in pieces:
            box = ndimage.find_objects((region == piece).astype(np.uint8))[0]
            pending.append((piece, _inner_box(slices, box)))
    return core_labels, count


def _inner_box(outer: tuple, inner: tuple) -> tuple:
    """Slices of a box given relative to an outer box, in the outer box's array."""
    return tuple(
        slice(a.start + b.start, a.start + b.stop) for a, b in zip(outer, inner, strict=True)
    )


def _split_core(
    core_labels: np.ndarray, label: int, slices: tuple, count: int, depth: np.ndarray, spacing
) -> list[int]:
    """Split one core (in place) at the shallowest of :data:`SPLIT_DEPTHS_MM` that leaves two
    or more large pieces; returns the labels of the pieces (the first keeps ``label``, the
    others take ``count + 1``, ...), or ``[label]`` when no depth splits it."""
    inside = core_labels[slices] == label
    for split_depth in SPLIT_DEPTHS_MM:
        seeds, _ = label_components(inside & (depth[slices] >= split_depth))
        sizes = np.bincount(seeds.ravel())[1:] * float(np.prod(spacing))
        large = np.nonzero(sizes >= MIN_MAIN_CORE_MM3 / 2)[0] + 1
        if len(large) < 2:
            continue
        seeds = np.where(np.isin(seeds, large), seeds, 0).astype(np.uint16)
        relief = depth_relief(depth[slices], inside)
        grown = sitk.GetArrayFromImage(
            sitk.MorphologicalWatershedFromMarkers(
                sitk.GetImageFromArray(relief),
                sitk.GetImageFromArray(seeds),
                markWatershedLine=False,
                fullyConnected=True,
            )
        )
        region = core_labels[slices]
        labels = [label] + [count + index for index in range(1, len(large))]
        for seed, new_label in zip(large, labels, strict=True):
            region[inside & (grown == seed)] = new_label
        return labels
    return [label]


def _piece_of(core: Core, core_labels: np.ndarray, pieces: np.ndarray) -> int:
    """Label of the connected piece of bone that holds a core (a core lies in one piece)."""
    inside = core_labels[core.slices] == core.label
    return int(pieces[core.slices][inside][0])


def _in_sacral_region(core: Core, sacral: Core) -> bool:
    """True when a core's centroid lies within the sacral core's height and depth."""
    x, y, z = core.centroid_lps
    return bool(
        sacral.low_lps[2] - SACRAL_REGION_CAUDAL_MM <= z <= sacral.high_lps[2]
        and sacral.low_lps[1] - SACRAL_REGION_MARGIN_MM
        <= y
        <= sacral.high_lps[1] + SACRAL_REGION_MARGIN_MM
    )


def _describe_cores(working: Volume, core_labels: np.ndarray, count: int) -> list[Core]:
    spacing, origin = working.spacing_xyz, working.origin_lps
    cores = []
    voxel_mm3 = float(np.prod(spacing))
    sizes = np.bincount(core_labels.ravel(), minlength=count + 1)
    centroids = (
        ndimage.center_of_mass(np.ones_like(core_labels, bool), core_labels, range(1, count + 1))
        if count
        else []
    )
    for label, slices in enumerate(ndimage.find_objects(core_labels), start=1):
        if slices is None:
            continue
        low_kji = np.array([s.start for s in slices], float)
        high_kji = np.array([s.stop - 1 for s in slices], float)
        cores.append(
            Core(
                label=label,
                volume_mm3=float(sizes[label]) * voxel_mm3,
                centroid_lps=origin + np.asarray(centroids[label - 1])[::-1] * spacing,
                low_lps=origin + low_kji[::-1] * spacing,
                high_lps=origin + high_kji[::-1] * spacing,
                slices=slices,
            )
        )
    return cores


def _choose_sacral_core(cores, core_labels, midline_x, spacing) -> Core:
    """The largest midline core with a hip core within reach on each side."""
    big = [c for c in cores if c.volume_mm3 >= MIN_MAIN_CORE_MM3]
    midline = [
        c
        for c in big
        if c.low_lps[0] - MIDLINE_BAND_MM <= midline_x <= c.high_lps[0] + MIDLINE_BAND_MM
    ]
    hips = {
        side: [c for c in big if side * (c.centroid_lps[0] - midline_x) >= HIP_MIN_OFFSET_MM]
        for side in (1, -1)
    }
    if not midline:
        raise AnatomyNotFoundError(no_sacrum_message("no large bone crosses the midline"))
    if not hips[1] or not hips[-1]:
        raise AnatomyNotFoundError(no_sacrum_message("no hip bone on both sides"))
    passing = []
    for candidate in midline:
        others = {side: [c for c in hips[side] if c.label != candidate.label] for side in (1, -1)}
        if not others[1] or not others[-1]:
            continue
        gaps = _gaps_to(candidate, core_labels, spacing, others[1] + others[-1])
        left = min(gaps[c.label] for c in others[1])
        right = min(gaps[c.label] for c in others[-1])
        if left <= HIP_REACH_MM and right <= HIP_REACH_MM:
            passing.append(candidate)
    if not passing:
        raise AnatomyNotFoundError(
            "no sacrum found in the field of view: hip bones are present on both sides, but no "
            "midline bone between them could be separated as the sacrum (it may be cut off, or "
            "its bone too faint on this scan, e.g. fatty osteoporotic marrow on thick slices); "
            "if the sacrum is in the scan, segment it with another tool and pass that mask "
            "instead (sacrum_from_labelmap)"
        )
    return max(passing, key=lambda c: c.volume_mm3)


def _gaps_to(candidate: Core, core_labels: np.ndarray, spacing, others) -> dict[int, float]:
    """Smallest distance (mm) from the candidate core to each other core, within reach."""
    reach_vox = np.ceil((HIP_REACH_MM + 1.0) / spacing[::-1]).astype(int)
    box = tuple(
        slice(max(0, s.start - r), min(n, s.stop + r))
        for s, r, n in zip(candidate.slices, reach_vox, core_labels.shape, strict=True)
    )
    local = core_labels[box]
    distance = ndimage.distance_transform_edt(local != candidate.label, sampling=spacing[::-1])
    gaps = {}
    for other in others:
        inside = local == other.label
        gaps[other.label] = float(distance[inside].min()) if inside.any() else np.inf
    return gaps


def _classify_core(
    core: Core, sacral: Core, midline_x: float, half_width: float, apart: bool
) -> int | None:
    """Label of a core from where it lies relative to the sacral core; None when ambiguous.

    ``apart`` says whether soft tissue separates the core from the sacral core (another piece of
    bone, or a gap on the straight line between them). A midline core of some size cranial to
    the sacral core's centre and apart from it is the spine (L5 across its disc); a midline core
    above the sacral core's top is the spine in any case.
    """
    if core.label == sacral.label:
        return SACRUM
    offset_x = core.centroid_lps[0] - midline_x
    z = core.centroid_lps[2]
    half_extent_x = 0.5 * (core.high_lps[0] - core.low_lps[0])
    midline = abs(offset_x) <= MIDLINE_BAND_MM + half_extent_x
    vertebra_like = apart and core.volume_mm3 >= MIN_VERTEBRA_CORE_MM3
    if midline and (z > sacral.high_lps[2] or (vertebra_like and z > sacral.centroid_lps[2])):
        return SPINE
    if abs(offset_x) > half_width:
        return HIP_LEFT if offset_x > 0 else HIP_RIGHT
    return None
