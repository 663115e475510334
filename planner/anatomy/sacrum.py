"""The sacrum mask: the bone every later anatomy stage stands on.

Pipeline (classical image analysis; no learned weights):

1. Decide whether the CT has soft tissue or is bone-only (outside bone exactly 0 HU).
2. Resample onto an axis-aligned LPS *working grid* (default 2 mm), so the result does not depend
   on how the scan was stored.
3. Bone (:func:`planner.anatomy.bone.filled_bone`): bone-only volumes, the non-zero voxels; CTs
   with soft tissue, dense bone grown into trabecular bone it touches. Then 3D filling of what
   the cortex encloses (the marrow), completed in axial planes for marrow that is denser than
   canal fat and CSF. The canal and foramina are channels open to the outside, so they stay
   empty, as the manual masks draw them.
4. *Joint lines*: thin dark lines between cortical plates (SI joints, facets, fracture lines).
   *Cores*: bone deeper than a few mm under its surface or a joint line, so each bone's core is
   separate; cores wider than any one bone are split at their thinnest part. The sacral core is
   the large midline core with a hip-bone core close to it on each side; the others are
   labelled hip (by side), spine (L5 across its disc) or other bone, by position, or by a first
   flood where position is ambiguous.
5. A marker-controlled watershed on the depth floods the bone from the cores: fronts meet where
   bone is thin, and joint lines are crossed last, also where a joint is narrow or partly fused.
6. Refinement on the input's own grid, around the sacrum: the working-grid labels, kept away
   from other bones by two working voxels, seed a flood of the full-resolution bone by its depth.

:func:`sacrum_from_labelmap` takes a mask computed elsewhere (e.g. TotalSegmentator) instead.

Known limit (measured on the 3 mm totalseg-example CT, fatty marrow): :func:`segment_sacrum`
raises :class:`AnatomyNotFoundError` there; such scans need :func:`sacrum_from_labelmap`.

* The SI joints do not show at 3 mm. Given the network's own bone labels (sacrum, hip bones,
  L5, femora) as the filled bone, the cores and flood below reach Dice 0.98 against its sacrum;
  the same union closed by one voxel (no joint gap left) gives 0.0. At the network's
  sacrum/ilium interface both sides read about 180-250 HU and the grey-closing depth there
  (median 60 HU) is no larger than inside the fatty marrow (median 47, 90th percentile 130 HU),
  so no intensity threshold marks the joint without cutting the marrow to pieces.
* The marrow (median about 80 HU, a quarter below 45 HU) is not enclosed by the partial-volume
  cortex: on the 2 mm working grid a 4-8 mm shell closing covers 65-84 % of the sacrum; on a
  3 mm grid a 9 mm closing covers 99 % but also bridges the L5/S1 disc.
* Best route tried (3 mm grid, 9 mm closing, deep bright plates as joint lines, this flood):
  Dice 0.63 (L5's body, the left posterior ilium, canal and foramina join the sacrum); fast
  marching from midline and lateral markers with class-specific speeds: 0.50-0.68.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from planner.anatomy.bone import (
    bone_threshold,
    distance_inside_mm,
    distance_outside_mm,
    filled_bone,
    has_soft_tissue,
    joint_lines,
    label_components,
)
from planner.anatomy.model import Confidence
from planner.errors import AnatomyNotFoundError, GeometryError, PlannerError
from planner.sitk_bridge import resample_like, resample_to_lps_grid
from planner.volume import Volume

# ---------------------------------------------------------------------------------- labels
#: Labels of :attr:`SacrumSegmentation.bone_labels` (working grid).
BACKGROUND, SACRUM, HIP_LEFT, HIP_RIGHT, SPINE, OTHER_BONE = 0, 1, 2, 3, 4, 5
BONE_LABEL_NAMES = {
    SACRUM: "sacrum",
    HIP_LEFT: "left hip bone",
    HIP_RIGHT: "right hip bone",
    SPINE: "spine above the sacrum",
    OTHER_BONE: "other bone",
}

# ---------------------------------------------------------------------------------- constants
#: Default isotropic spacing of the working grid (mm): fine enough to see SI joints, coarse enough
#: to label a whole pelvis in well under a second.
WORKING_SPACING_MM = 2.0
#: Padding value outside the input when resampling a CT with soft tissue (air).
AIR_HU = -1024.0
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
#: Depth step (mm) of the 8-bit watershed relief.
RELIEF_STEP_MM = 0.2
#: Relief of joint-line voxels: above any bone, so a flood crosses a joint only after both
#: bones are flooded (otherwise low-density marrow next to a joint could be taken across it).
RELIEF_JOINT = 254
#: Relief of non-bone voxels: above everything, so bone is flooded first.
RELIEF_NON_BONE = 255
#: Working-grid voxels next to another bone label within this many voxels are not trusted as
#: seeds for the refinement (the working grid can misplace a border by a voxel or two).
REFINE_SEED_MARGIN_VOX = 2
#: Margin (mm) around the working-grid sacrum for the refinement crop.
REFINE_MARGIN_MM = 8.0
#: A piece of the sacrum label apart from the largest one is dropped when it is smaller than
#: this (mm^3) or further than FRAGMENT_GAP_MM from it: calcifications, phleboliths, the coccyx
#: beyond its joint, loose posterior elements of L5. Fracture fragments worth keeping are larger
#: and touch the rest across the fracture line (a fragment under 4 mL is lost: a known limit).
MIN_FRAGMENT_MM3 = 4000.0
FRAGMENT_GAP_MM = 6.0
#: Contact (mm^2) between sacrum and a hip bone through continuous bone above which the SI joint
#: counts as partly fused.
FUSED_CONTACT_MIN_MM2 = 150.0
#: HU above which a voxel on the sacrum/hip boundary counts as bone bridging the joint.
BRIDGE_HU_MIN = 250.0


@dataclass(frozen=True)
class SacrumSegmentation:
    """The sacrum mask and what the sub-structure stage can reuse.

    Attributes
    ----------
    mask : Volume (bool)
        Sacrum on the input volume's own grid: cortex and trabecular interior, canal and foramina
        excluded.
    confidence : Confidence
        Score in [0, 1] and every reason it is lower than 1.
    has_soft_tissue : bool
        False for a bone-only volume (outside bone exactly 0 HU): no skin can be found.
    working : Volume or None
        The CT resampled (linear, float32 HU) onto the axis-aligned LPS working grid.
    bone_labels : Volume or None
        Working-grid label map of the filled bones: :data:`SACRUM`, :data:`HIP_LEFT`,
        :data:`HIP_RIGHT`, :data:`SPINE`, :data:`OTHER_BONE` (0 = not bone).
    source : str
        ``"computed"`` or ``"labelmap"`` (an external segmentation).
    """

    mask: Volume
    confidence: Confidence
    has_soft_tissue: bool
    working: Volume | None = None
    bone_labels: Volume | None = None
    source: str = "computed"

    @property
    def sacrum_working(self) -> Volume | None:
        """Sacrum mask on the working grid (bool), or None for an external segmentation."""
        if self.bone_labels is None:
            return None
        return self.bone_labels.with_array(self.bone_labels.array == SACRUM, "SEG")

    def bone_mask_working(self, label: int) -> Volume | None:
        """Working-grid mask (bool) of one :data:`BONE_LABEL_NAMES` label, e.g. ``HIP_LEFT``."""
        if self.bone_labels is None:
            return None
        return self.bone_labels.with_array(self.bone_labels.array == label, "SEG")


# ---------------------------------------------------------------------------------- public API
def segment_sacrum(
    volume: Volume, working_spacing_mm: float = WORKING_SPACING_MM
) -> SacrumSegmentation:
    """Segment the sacrum of a CT.

    Parameters
    ----------
    volume : Volume
        CT in HU, any storage orientation and spacing; full CT or bone-only.
    working_spacing_mm : float
        Isotropic spacing of the working grid used to find and separate the bones.

    Returns
    -------
    SacrumSegmentation

    Raises
    ------
    AnatomyNotFoundError
        If no sacrum is in the field of view.
    ImageContentError
        If the volume is constant or holds NaN/infinite values.
    """
    volume.check_values()
    soft_tissue = has_soft_tissue(volume)
    pad_value = AIR_HU if soft_tissue else 0.0
    working = resample_to_lps_grid(volume, working_spacing_mm, "linear", default_value=pad_value)
    working = working.with_array(working.array.astype(np.float32, copy=False))
    spacing = working.spacing_xyz

    bone = bone_threshold(working.array, soft_tissue, working.spacing_xyz)
    if not bone.any():
        raise AnatomyNotFoundError(_no_sacrum_message("no bone at all"))
    # Work only where there is bone: every later step costs time per voxel.
    working = working.crop_to_mask(bone, margin_mm=2.0 * working_spacing_mm)
    filled = filled_bone(working, soft_tissue)
    markers, elevation = _core_markers(working, filled)
    labels = _flood(filled, markers, elevation)
    labels = _unseeded_pieces_to_other(labels, filled, markers)
    labels = _drop_stray_sacrum_pieces(labels, spacing)
    bone_labels = working.with_array(labels.astype(np.uint8), "SEG")
    if not (labels == SACRUM).any():
        raise AnatomyNotFoundError(_no_sacrum_message("the sacral candidate did not hold"))

    mask, reasons = _refine_on_input_grid(volume, bone_labels, soft_tissue)
    if not mask.array.any():
        raise AnatomyNotFoundError(_no_sacrum_message("the sacrum vanished on the input grid"))
    reasons += border_reasons(mask)
    return SacrumSegmentation(
        mask=mask,
        confidence=_confidence(reasons),
        has_soft_tissue=soft_tissue,
        working=working,
        bone_labels=bone_labels,
    )


def sacrum_from_labelmap(labelmap: Volume, label: int, volume: Volume) -> SacrumSegmentation:
    """Use a sacrum segmented elsewhere (e.g. TotalSegmentator: label 92) instead of computing it.

    Parameters
    ----------
    labelmap : Volume
        Integer label map (or binary mask) in any grid that overlaps the CT.
    label : int
        Label value of the sacrum in ``labelmap``.
    volume : Volume
        The CT the mask belongs to; the mask is resampled onto its grid if the grids differ.

    Raises
    ------
    PlannerError
        If the label is absent from the label map, or the mask does not overlap the CT.
    """
    present = labelmap.array == label
    if not present.any():
        found = np.unique(labelmap.array)[:20].tolist()
        raise PlannerError(
            f"the sacrum label map holds no voxel with label {label} (labels present: {found}); "
            "pass the label number of the sacrum class (TotalSegmentator: 92)"
        )
    mask = labelmap.with_array(present, "SEG")
    if not mask.same_grid(volume):
        mask = resample_like(mask, volume, "nearest", default_value=0)
    if not mask.array.any():
        raise PlannerError(
            "the sacrum label map does not overlap the CT volume (after resampling onto the CT "
            "grid, no sacrum voxel is left); check that the label map belongs to this CT"
        )
    mask = mask.with_array(mask.array.astype(bool), "SEG")
    reasons = ["sacrum from an external segmentation (not checked by the planner)"]
    reasons += border_reasons(mask)
    return SacrumSegmentation(
        mask=mask,
        confidence=_confidence(reasons, base=0.9),
        has_soft_tissue=has_soft_tissue(volume),
        source="labelmap",
    )


def border_reasons(mask: Volume) -> list[str]:
    """One reason per volume face that the mask touches, named by its patient direction."""
    array = mask.array
    reasons = []
    faces = {  # (array axis, end) -> index axis name
        (0, 0): ("k", -1), (0, -1): ("k", 1),
        (1, 0): ("j", -1), (1, -1): ("j", 1),
        (2, 0): ("i", -1), (2, -1): ("i", 1),
    }  # fmt: skip
    names = {
        (0, 1): "left", (0, -1): "right",
        (1, 1): "posterior", (1, -1): "anterior",
        (2, 1): "cranial", (2, -1): "caudal",
    }  # fmt: skip
    for (axis, end), (index_axis, sign) in faces.items():
        face = np.take(array, end, axis=axis)
        if not face.any():
            continue
        outward_lps = sign * mask.axis_lps(index_axis)
        world_axis = int(np.argmax(np.abs(outward_lps)))
        direction = names[(world_axis, int(np.sign(outward_lps[world_axis])))]
        reasons.append(f"sacrum touches the volume border ({direction}): it may be cut off")
    return sorted(set(reasons))


# ---------------------------------------------------------------------------------- markers
@dataclass(frozen=True)
class _Core:
    label: int
    volume_mm3: float
    centroid_lps: np.ndarray
    low_lps: np.ndarray
    high_lps: np.ndarray
    slices: tuple


def _core_markers(working: Volume, filled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the bone cores (sacrum, hips, spine, other); also return the watershed relief.

    Raises AnatomyNotFoundError if no sacrum is found.
    """
    spacing = working.spacing_xyz
    if not filled.any():
        raise AnatomyNotFoundError(_no_sacrum_message("no bone at all"))
    # Joint spaces blurred into the threshold are cut out first, so the cores of two bones that
    # meet across a narrow joint stay apart.
    elevation, depth = _elevation(working.array, filled, spacing)
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
        first = _flood(filled, markers, elevation)
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
    sacral: _Core,
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
    core: _Core, sacral: _Core, core_labels: np.ndarray, filled: np.ndarray, working: Volume
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
    split runs along the thin bridge between them.
    """
    spacing_x = float(spacing[0])
    for label, slices in enumerate(ndimage.find_objects(core_labels), start=1):
        if slices is None or (slices[2].stop - slices[2].start) * spacing_x <= MAX_CORE_WIDTH_MM:
            continue
        inside = core_labels[slices] == label
        for split_depth in SPLIT_DEPTHS_MM:
            seeds, seed_count = label_components(inside & (depth[slices] >= split_depth))
            sizes = np.bincount(seeds.ravel())[1:] * float(np.prod(spacing))
            large = np.nonzero(sizes >= MIN_MAIN_CORE_MM3 / 2)[0] + 1
            if len(large) < 2:
                continue
            seeds = np.where(np.isin(seeds, large), seeds, 0).astype(np.uint16)
            relief = _relief(depth[slices], inside)
            grown = sitk.GetArrayFromImage(
                sitk.MorphologicalWatershedFromMarkers(
                    sitk.GetImageFromArray(relief),
                    sitk.GetImageFromArray(seeds),
                    markWatershedLine=False,
                    fullyConnected=True,
                )
            )
            region = core_labels[slices]
            for index, seed in enumerate(large):
                new_label = label if index == 0 else count + index
                region[inside & (grown == seed)] = new_label
            count += len(large) - 1
            break
    return core_labels, count


def _piece_of(core: _Core, core_labels: np.ndarray, pieces: np.ndarray) -> int:
    """Label of the connected piece of bone that holds a core (a core lies in one piece)."""
    inside = core_labels[core.slices] == core.label
    return int(pieces[core.slices][inside][0])


def _in_sacral_region(core: _Core, sacral: _Core) -> bool:
    """True when a core's centroid lies within the sacral core's height and depth."""
    x, y, z = core.centroid_lps
    return bool(
        sacral.low_lps[2] - SACRAL_REGION_CAUDAL_MM <= z <= sacral.high_lps[2]
        and sacral.low_lps[1] - SACRAL_REGION_MARGIN_MM
        <= y
        <= sacral.high_lps[1] + SACRAL_REGION_MARGIN_MM
    )


def _describe_cores(working: Volume, core_labels: np.ndarray, count: int) -> list[_Core]:
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
            _Core(
                label=label,
                volume_mm3=float(sizes[label]) * voxel_mm3,
                centroid_lps=origin + np.asarray(centroids[label - 1])[::-1] * spacing,
                low_lps=origin + low_kji[::-1] * spacing,
                high_lps=origin + high_kji[::-1] * spacing,
                slices=slices,
            )
        )
    return cores


def _choose_sacral_core(cores, core_labels, midline_x, spacing) -> _Core:
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
        raise AnatomyNotFoundError(_no_sacrum_message("no large bone crosses the midline"))
    if not hips[1] or not hips[-1]:
        raise AnatomyNotFoundError(_no_sacrum_message("no hip bone on both sides"))
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


def _gaps_to(candidate: _Core, core_labels: np.ndarray, spacing, others) -> dict[int, float]:
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
    core: _Core, sacral: _Core, midline_x: float, half_width: float, apart: bool
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


# ---------------------------------------------------------------------------------- flooding
def _elevation(ct: np.ndarray, bone: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Watershed relief (uint8) and the joint-free bone depth (mm, float32).

    Relief = minus the depth under the nearest bone surface or joint line: deep bone floods first,
    fronts meet where bone is thin (joint lines, bridges across a partly fused joint), and a joint
    line itself is crossed only after both bones are flooded. Depth, not density, drives the
    flood because marrow next to a joint can be as dark as the joint space. The relief is
    quantised to :data:`RELIEF_STEP_MM` in 8 bits: ITK floods an 8-bit relief many times faster
    than a float one, and finer depth steps change nothing a voxel can show.
    """
    joints = joint_lines(ct) & bone
    depth = distance_inside_mm(bone & ~joints, spacing)
    return _relief(depth, bone, joints), depth


def _relief(depth: np.ndarray, bone: np.ndarray, joints: np.ndarray | None = None) -> np.ndarray:
    """8-bit relief: deep bone lowest, then shallow bone, joint lines, non-bone highest."""
    levels = np.rint(depth / RELIEF_STEP_MM)
    relief = np.clip(RELIEF_JOINT - 1 - levels, 0, RELIEF_JOINT - 1).astype(np.uint8)
    if joints is not None:
        relief[joints] = RELIEF_JOINT
    relief[~bone] = RELIEF_NON_BONE
    return relief


def _flood(bone, markers, elevation, fully_connected: bool = True) -> np.ndarray:
    """Marker watershed over the bone; returns labels restricted to the bone."""
    flooded = sitk.MorphologicalWatershedFromMarkers(
        sitk.GetImageFromArray(elevation),
        sitk.GetImageFromArray(np.where(bone, markers, 0).astype(np.uint8)),
        markWatershedLine=False,
        fullyConnected=fully_connected,
    )
    labels = sitk.GetArrayFromImage(flooded).astype(np.uint8)
    labels[~bone] = BACKGROUND
    return labels


def _unseeded_pieces_to_other(
    labels: np.ndarray, filled: np.ndarray, markers: np.ndarray
) -> np.ndarray:
    """Pieces of bone holding no core were labelled through soft tissue by whichever flood
    came first: call them other bone (loose posterior elements, ossicles, calcifications)."""
    pieces, _ = label_components(filled)
    seeded = np.zeros(pieces.max() + 1, bool)
    seeded[np.unique(pieces[markers > 0])] = True
    seeded[0] = True
    result = labels.copy()
    result[~seeded[pieces]] = OTHER_BONE
    return result


def _drop_stray_sacrum_pieces(labels: np.ndarray, spacing) -> np.ndarray:
    """Keep the main sacrum piece and the large fragments close to it (fracture fragments)."""
    sacrum = labels == SACRUM
    # Face connectivity: a piece that touches the rest only along an edge or a corner (the coccyx
    # across its joint, blurred shut at this resolution) counts as apart.
    pieces, count = ndimage.label(sacrum)
    if count <= 1:
        return labels
    sizes = np.bincount(pieces.ravel())[1:] * float(np.prod(spacing))
    main = int(np.argmax(sizes)) + 1
    gap = distance_outside_mm(pieces == main, spacing)
    minimum_gap = ndimage.minimum(gap, pieces, range(1, count + 1))
    keep = np.zeros(count + 1, bool)
    for index in range(count):
        keep[index + 1] = sizes[index] >= MIN_FRAGMENT_MM3 and minimum_gap[index] <= FRAGMENT_GAP_MM
    keep[main] = True
    result = labels.copy()
    result[sacrum & ~keep[pieces]] = OTHER_BONE
    return result


# ---------------------------------------------------------------------------------- refinement
def _refine_on_input_grid(
    volume: Volume, bone_labels: Volume, soft_tissue: bool
) -> tuple[Volume, list[str]]:
    """Sacrum on the input grid (full-resolution flood around the working-grid result), and
    the reasons to doubt the sacroiliac separation found there."""
    sacrum_lps = bone_labels.index_to_lps(np.argwhere(bone_labels.array == SACRUM)[:, ::-1])
    low = sacrum_lps.min(axis=0) - REFINE_MARGIN_MM
    high = sacrum_lps.max(axis=0) + REFINE_MARGIN_MM
    box_corners = np.array(
        [[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])]
    )
    corners_ijk = volume.lps_to_index(box_corners)
    start = np.floor(corners_ijk.min(axis=0)).astype(int)
    stop = np.ceil(corners_ijk.max(axis=0)).astype(int) + 1
    try:
        crop = volume.crop(start, stop)
    except GeometryError as error:
        raise AnatomyNotFoundError(
            _no_sacrum_message("the sacrum lies outside the grid")
        ) from error

    filled = filled_bone(crop, soft_tissue)
    seeds = _shrunk_labels(bone_labels)
    seeds_crop = resample_like(seeds, crop, "nearest", default_value=0).array
    # The seeds cover all but a band a few mm wide along the borders between bones (and the
    # native detail of the surface). The band floods by depth at full resolution: where two
    # bones touch through a narrow contact (a joint space that is open at this resolution but
    # closed on the working grid) the contact is shallow and is crossed last. Face connectivity
    # keeps the flood from slipping between two bones through a diagonal contact.
    relief = _relief(distance_inside_mm(filled, crop.spacing_xyz), filled)
    labels = _flood(filled, seeds_crop, relief, fully_connected=False)
    labels = _drop_stray_sacrum_pieces(labels, crop.spacing_xyz)

    full = np.zeros(volume.array.shape, bool)
    lo = np.clip(start, 0, volume.shape_ijk)
    hi = lo + np.asarray(crop.shape_ijk)
    full[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] = labels == SACRUM
    dense = crop.array >= BRIDGE_HU_MIN if soft_tissue else filled
    return volume.with_array(full, "SEG"), _fusion_reasons(labels, dense, crop.spacing_xyz)


def _shrunk_labels(bone_labels: Volume) -> Volume:
    """Labels with the voxels next to a *different* bone removed (seeds for the refinement).

    A voxel stays when no other bone label lies within :data:`REFINE_SEED_MARGIN_VOX` voxels
    (a cube); voxels next to non-bone stay, so thin cortex keeps its seeds.
    """
    labels = bone_labels.array
    other_high = np.where(labels == BACKGROUND, np.uint8(255), labels)
    size = 2 * REFINE_SEED_MARGIN_VOX + 1
    alone = (ndimage.maximum_filter(labels, size=size) == labels) & (
        ndimage.minimum_filter(other_high, size=size) == labels
    )
    return bone_labels.with_array(np.where(alone, labels, BACKGROUND).astype(np.uint8))


# ---------------------------------------------------------------------------------- confidence
def _fusion_reasons(labels: np.ndarray, dense: np.ndarray, spacing) -> list[str]:
    """Flag SI joints where sacrum and hip bone touch face to face through dense bone.

    Counts voxel faces between a sacrum voxel and a hip-bone voxel that are both ``dense``
    (no joint space between them) and converts them to mm^2.
    """
    spacing_kji = np.asarray(spacing, float)[::-1]
    reasons = []
    for label, side in ((HIP_LEFT, "left"), (HIP_RIGHT, "right")):
        area_mm2 = 0.0
        for axis in range(3):
            head = [slice(None)] * 3
            tail = [slice(None)] * 3
            head[axis], tail[axis] = slice(1, None), slice(None, -1)
            a, b = labels[tuple(head)], labels[tuple(tail)]
            both_dense = dense[tuple(head)] & dense[tuple(tail)]
            pairs = ((a == SACRUM) & (b == label)) | ((a == label) & (b == SACRUM))
            face_mm2 = float(np.prod(np.delete(spacing_kji, axis)))
            area_mm2 += np.count_nonzero(pairs & both_dense) * face_mm2
        if area_mm2 >= FUSED_CONTACT_MIN_MM2:
            reasons.append(
                f"sacroiliac joint partly fused on the {side} ({area_mm2:.0f} mm^2 of bone "
                "bridging): separation uncertain"
            )
    return reasons


def _confidence(reasons: list[str], base: float = 1.0) -> Confidence:
    penalty = 0.15 * len([r for r in reasons if "border" in r or "fused" in r])
    return Confidence(score=float(np.clip(base - penalty, 0.0, 1.0)), reasons=tuple(reasons))


def _no_sacrum_message(detail: str) -> str:
    return (
        f"no sacrum found in the field of view ({detail}); the CT must cover the pelvis from L5 "
        "to the coccyx"
    )
