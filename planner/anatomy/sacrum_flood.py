"""Watershed flooding of the filled bone from labelled markers, by depth under the bone surface.

Used on the working grid (cores to whole bones) and on the input grid (refinement), see
:mod:`planner.anatomy.sacrum`.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from planner.anatomy.bone import distance_inside_mm, distance_outside_mm, label_components
from planner.anatomy.sacrum_labels import BACKGROUND, OTHER_BONE, SACRUM
from planner.anatomy.sacrum_split_blur import grey_joint_lines

#: Depth step (mm) of the 8-bit watershed relief.
RELIEF_STEP_MM = 0.2
#: Relief of joint-line voxels: above any bone, so a flood crosses a joint only after both
#: bones are flooded (otherwise low-density marrow next to a joint could be taken across it).
RELIEF_JOINT = 254
#: Relief of non-bone voxels: above everything, so bone is flooded first.
RELIEF_NON_BONE = 255
#: A piece of the sacrum label apart from the largest one is dropped when it is smaller than
#: this (mm^3) or further than FRAGMENT_GAP_MM from it: calcifications, phleboliths, the coccyx
#: beyond its joint, loose posterior elements of L5. Fracture fragments worth keeping are larger
#: and touch the rest across the fracture line (a fragment under 4 mL is lost: a known limit).
MIN_FRAGMENT_MM3 = 4000.0
FRAGMENT_GAP_MM = 6.0


def elevation_relief(ct: np.ndarray, bone: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Watershed relief (uint8) and the joint-free bone depth (mm, float32).

    Relief = minus the depth under the nearest bone surface or joint line: deep bone floods first,
    fronts meet where bone is thin (joint lines, bridges across a partly fused joint), and a joint
    line itself is crossed only after both bones are flooded. Depth, not density, drives the
    flood because marrow next to a joint can be as dark as the joint space. The relief is
    quantised to :data:`RELIEF_STEP_MM` in 8 bits: ITK floods an 8-bit relief many times faster
    than a float one, and finer depth steps change nothing a voxel can show. Joint lines include
    those an interpolation has greyed (:func:`~planner.anatomy.sacrum_split_blur.grey_joint_lines`):
    the working grid is itself interpolated, and an oblique scan was interpolated once before.
    """
    joints = grey_joint_lines(ct) & bone
    depth = distance_inside_mm(bone & ~joints, spacing)
    return depth_relief(depth, bone, joints), depth


def depth_relief(
    depth: np.ndarray, bone: np.ndarray, joints: np.ndarray | None = None
) -> np.ndarray:
    """8-bit relief: deep bone lowest, then shallow bone, joint lines, non-bone highest."""
    levels = np.rint(depth / RELIEF_STEP_MM)
    relief = np.clip(RELIEF_JOINT - 1 - levels, 0, RELIEF_JOINT - 1).astype(np.uint8)
    if joints is not None:
        relief[joints] = RELIEF_JOINT
    relief[~bone] = RELIEF_NON_BONE
    return relief


def flood(bone, markers, elevation, fully_connected: bool = True) -> np.ndarray:
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


def unseeded_pieces_to_other(
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


def drop_stray_sacrum_pieces(labels: np.ndarray, spacing) -> np.ndarray:
    """Keep the main sacrum piece and the large fragments close to it (fracture fragments)."""
    sacrum = labels == SACRUM
    # Face connectivity: a piece that touches the rest only along an edge or a corner (the coccyx
    # across its joint, blurred shut at this resolution) counts as apart.
    pieces, count = ndimage.label(sacrum)
    if count <= 1:
        return labels
    sizes = np.bincount(pieces.ravel())[1:] * float(np.prod(spacing))
    main = int(np.argmax(sizes)) + 1
    keep = np.zeros(count + 1, bool)
    keep[main] = True
    # Only a large piece can be a fragment worth keeping; the distance map is needed for those
    # alone (small pieces from corner contacts are many, and dropped whatever their gap).
    large = [index + 1 for index in range(count) if sizes[index] >= MIN_FRAGMENT_MM3]
    large = [label for label in large if label != main]
    if large:
        gap = distance_outside_mm(pieces == main, spacing)
        boxes = ndimage.find_objects(pieces)
        for label in large:
            inside = pieces[boxes[label - 1]] == label
            keep[label] = float(gap[boxes[label - 1]][inside].min()) <= FRAGMENT_GAP_MM
    result = labels.copy()
    result[sacrum & ~keep[pieces]] = OTHER_BONE
    return result


def drop_caudal_pieces(
    labels: np.ndarray, joints: np.ndarray, caudal_axis_kji: np.ndarray, spacing
) -> np.ndarray:
    """Give the caudal end of the sacrum to other bone where only a joint line holds it (the
    coccyx, whose joint the working grid blurred shut).

    The sacrum label without the joint-line voxels is split into face-connected pieces; a piece
    smaller than :data:`MIN_FRAGMENT_MM3` that reaches further caudally (along
    ``caudal_axis_kji``, mm per voxel step along k, j, i) than the largest piece is dropped.
    Returns the relabelled copy; stranded joint voxels are left to :func:`drop_stray_sacrum_pieces`.
    """
    pieces, count = ndimage.label((labels == SACRUM) & ~joints)
    if count <= 1:
        return labels
    sizes = np.bincount(pieces.ravel())[1:] * float(np.prod(spacing))
    main = int(np.argmax(sizes)) + 1
    caudal_mm = np.full(pieces.shape, -np.inf, np.float32)
    voxels_kji = np.argwhere(pieces > 0)
    caudal_mm[tuple(voxels_kji.T)] = voxels_kji @ np.asarray(caudal_axis_kji, float)
    reach = ndimage.maximum(caudal_mm, pieces, range(1, count + 1))
    beyond = [
        index + 1
        for index in range(count)
        if index + 1 != main and sizes[index] < MIN_FRAGMENT_MM3 and reach[index] > reach[main - 1]
    ]
    if not beyond:
        return labels
    result = labels.copy()
    result[np.isin(pieces, beyond)] = OTHER_BONE
    return result
