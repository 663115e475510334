"""Refinement of the working-grid sacrum on the input's own grid, and the SI-fusion check."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from planner.anatomy.bone import distance_inside_mm, filled_bone, joint_lines
from planner.anatomy.sacrum_flood import (
    depth_relief,
    drop_caudal_pieces,
    drop_stray_sacrum_pieces,
    flood,
)
from planner.anatomy.sacrum_labels import BACKGROUND, HIP_LEFT, HIP_RIGHT, SACRUM, no_sacrum_message
from planner.anatomy.sacrum_split_blur import grey_joint_lines, without_partial_volume_shell
from planner.errors import AnatomyNotFoundError, GeometryError
from planner.sitk_bridge import resample_like
from planner.volume import Volume

#: Working-grid voxels next to another bone label within this many voxels are not trusted as
#: seeds for the refinement (the working grid can misplace a border by a voxel or two).
REFINE_SEED_MARGIN_VOX = 2
#: Margin (mm) around the working-grid sacrum for the refinement crop.
REFINE_MARGIN_MM = 8.0
#: Box searched for a coccyx held only by its joint line (mm), around the lowest voxel of the
#: working-grid sacrum, which is the coccyx's own tip when the coccyx is still in the label: the
#: coccyx (about 30 mm) and enough of the wider sacral tip above it to be the largest piece.
COCCYX_BOX_HALF_WIDTH_MM = 30.0
COCCYX_BOX_BELOW_MM = 10.0
COCCYX_BOX_ABOVE_MM = 60.0
#: Contact (mm^2) between sacrum and a hip bone through continuous bone above which the SI joint
#: counts as partly fused.
FUSED_CONTACT_MIN_MM2 = 150.0
#: HU above which a voxel on the sacrum/hip boundary counts as bone bridging the joint.
BRIDGE_HU_MIN = 250.0
#: Margin (voxels) around a sacrum/hip contact when looking for its joint line: the reach of a
#: grey closing over one voxel (a dilation and an erosion).
JOINT_BOX_MARGIN_VOX = 2


def refine_on_input_grid(
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
        raise AnatomyNotFoundError(no_sacrum_message("the sacrum lies outside the grid")) from error

    filled = filled_bone(crop, soft_tissue)
    if not soft_tissue:
        # A bone-only scan that was resampled: "non-zero" takes in a one-voxel shell of
        # partial-volume blends around every bone and across narrow joint spaces.
        filled = without_partial_volume_shell(crop.array, filled)
    seeds = shrunk_labels(bone_labels)
    seeds_crop = resample_like(seeds, crop, "nearest", default_value=0).array
    # The seeds cover all but a band a few mm wide along the borders between bones (and the
    # native detail of the surface). The band floods by depth at full resolution: where two
    # bones touch through a narrow contact (a joint space that is open at this resolution but
    # closed on the working grid) the contact is shallow and is crossed last. Face connectivity
    # keeps the flood from slipping between two bones through a diagonal contact.
    relief = depth_relief(distance_inside_mm(filled, crop.spacing_xyz), filled)
    labels = flood(filled, seeds_crop, relief, fully_connected=False)
    _drop_coccyx(crop, labels, filled, bone_labels)
    labels = drop_stray_sacrum_pieces(labels, crop.spacing_xyz)

    full = np.zeros(volume.array.shape, bool)
    lo = np.clip(start, 0, volume.shape_ijk)
    hi = lo + np.asarray(crop.shape_ijk)
    full[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] = labels == SACRUM
    dense = crop.array >= BRIDGE_HU_MIN if soft_tissue else filled
    dense = _off_joint_lines(crop.array, labels, dense)
    return volume.with_array(full, "SEG"), fusion_reasons(labels, dense, crop.spacing_xyz)


def _drop_coccyx(crop: Volume, labels: np.ndarray, filled: np.ndarray, bone_labels: Volume) -> None:
    """Give the coccyx to other bone (in place) where only its joint line, open at this
    resolution but blurred shut on the working grid, holds it to the sacral tip.

    Works in a box around the working-grid sacrum's lowest voxel (:data:`COCCYX_BOX_BELOW_MM`
    below it, :data:`COCCYX_BOX_ABOVE_MM` above, :data:`COCCYX_BOX_HALF_WIDTH_MM` around), so
    the cost does not grow with the scan (see :func:`drop_caudal_pieces`).
    """
    working_sacrum = np.argwhere(bone_labels.array == SACRUM)[:, ::-1]
    sacrum_lps = bone_labels.index_to_lps(working_sacrum)
    tip_lps = sacrum_lps[np.argmin(sacrum_lps[:, 2])]
    width, below, above = COCCYX_BOX_HALF_WIDTH_MM, COCCYX_BOX_BELOW_MM, COCCYX_BOX_ABOVE_MM
    offsets = np.array(
        [[x, y, z] for x in (-width, width) for y in (-width, width) for z in (-below, above)]
    )
    corners_ijk = crop.lps_to_index(tip_lps + offsets)
    start = np.clip(np.floor(corners_ijk.min(axis=0)).astype(int), 0, crop.shape_ijk)
    stop = np.clip(np.ceil(corners_ijk.max(axis=0)).astype(int) + 1, 0, crop.shape_ijk)
    box = tuple(slice(a, b) for a, b in zip(start[::-1], stop[::-1], strict=True))
    if any(s.stop - s.start < 2 for s in box):
        return
    joints = joint_lines(crop.array[box]) & filled[box]
    # Caudal direction per voxel step along k, j, i (mm): minus the S component of each axis.
    caudal_kji = -(crop.direction[2, :] * crop.spacing_xyz)[::-1]
    labels[box] = drop_caudal_pieces(labels[box], joints, caudal_kji, crop.spacing_xyz)


def shrunk_labels(bone_labels: Volume) -> Volume:
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
def _off_joint_lines(ct: np.ndarray, labels: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """``dense`` without the joint-line voxels around each sacrum/hip contact (a copy).

    Bone on a joint line bridges nothing: an interpolated joint space is grey, not empty (see
    :func:`~planner.anatomy.sacrum_split_blur.grey_joint_lines`). The lines are looked for only
    in the box around each side's contact voxels, with the closing's reach as margin, since a
    grey closing of the whole full-resolution crop costs about a second.
    """
    result = dense.copy()
    sacrum_near = ndimage.binary_dilation(labels == SACRUM)
    for label in (HIP_LEFT, HIP_RIGHT):
        contact = sacrum_near & (labels == label)
        if not contact.any():
            continue
        found = ndimage.find_objects(contact.astype(np.uint8))[0]
        box = tuple(
            slice(max(0, s.start - JOINT_BOX_MARGIN_VOX), s.stop + JOINT_BOX_MARGIN_VOX)
            for s in found
        )
        result[box] &= ~grey_joint_lines(ct[box])
    return result


def fusion_reasons(labels: np.ndarray, dense: np.ndarray, spacing) -> list[str]:
    """Flag SI joints where sacrum and hip bone touch face to face through dense bone.

    Counts voxel faces between a sacrum voxel and a hip-bone voxel that are both ``dense``
    (no joint space between them; the caller leaves joint-line voxels out of ``dense``) and
    converts them to mm^2.
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
