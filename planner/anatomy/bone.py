"""Bone masks from CT: bone-only detection, thresholding, filling and thick "cores".

These helpers know nothing about which bone is which; :mod:`planner.anatomy.sacrum` does that.
All sizes are in mm and every distance is computed with the grid's own spacing, so the results do
not depend on the voxel size or on how the axes are stored.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from planner.volume import Volume

#: Lowest HU counted as bone on a CT with soft tissue (cortex and dense trabecular bone; the
#: marrow-rich trabecular interior below it is recovered by filling the cortical shell).
BONE_HU_MIN = 200.0
#: Lowest HU of trabecular bone that is joined to dense bone it touches (CT with soft tissue).
TRABECULAR_HU_MIN = 110.0
#: Radius (mm) of the closing that seals a cortex broken by partial volume (CT with soft tissue).
SHELL_CLOSING_MM = 0.0
#: Gaussian sigma (mm) of the local mean, and the local mean (HU) above which a voxel enclosed by
#: bone in its axial plane counts as marrow rather than canal fat or CSF (fat about -100 HU,
#: CSF about 10 HU; fatty osteoporotic marrow about 50-200 HU with its trabeculae).
MARROW_SMOOTHING_MM = 2.0
MARROW_MEAN_HU_MIN = 30.0
#: Half-thickness (mm) below which an enclosed soft sheet is a joint space, not marrow.
JOINT_SHEET_MM = 1.5
#: Soft-tissue HU range: fat, muscle, organs, blood.
SOFT_TISSUE_HU = (-150.0, 100.0)
#: A CT counts as having soft tissue when at least this fraction of its non-zero, non-air voxels
#: are soft tissue (a full CT: about 0.8; a bone-only volume: about 0.25, its marrow).
SOFT_TISSUE_FRACTION_MIN = 0.5
#: Values below this are air (or padding outside the scanner's field of view).
AIR_HU_MAX = -500.0
#: Depth (HU) of a dark line between denser bone on both sides that marks a joint space: the
#: grey closing over one voxel minus the CT. Cartilage or fluid between two cortical plates is
#: several hundred HU darker than the plates; trabecular bone between cortices of a thick bone is
#: wider than the closing and is not flagged.
JOINT_LINE_DEPTH_HU = 150.0
#: The plates on both sides of a joint are subchondral cortex: the grey closing over a joint line
#: reaches at least this (HU). Dips in the trabecular texture, between trabeculae of a few hundred
#: HU, stay below it and are not taken for joints.
JOINT_PLATE_HU_MIN = 450.0
#: Subsampling step (voxels per axis) for the cheap soft-tissue census.
CENSUS_STEP = 3


def has_soft_tissue(volume: Volume) -> bool:
    """True for a CT with soft tissue; False for a bone-only volume (outside bone exactly 0 HU).

    The census is taken on every third voxel per axis: the answer is a property of the whole
    scan, so subsampling does not change it.
    """
    values = volume.array[::CENSUS_STEP, ::CENSUS_STEP, ::CENSUS_STEP].astype(np.float32)
    body = values[(values != 0) & (values > AIR_HU_MAX)]
    if body.size == 0:
        return False
    soft = np.count_nonzero((body >= SOFT_TISSUE_HU[0]) & (body <= SOFT_TISSUE_HU[1]))
    return bool(soft / body.size >= SOFT_TISSUE_FRACTION_MIN)


def bone_threshold(array: np.ndarray, soft_tissue: bool, spacing_xyz) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of bone voxels, ready for :func:`fill_bone`.

    On a CT with soft tissue: voxels of at least :data:`BONE_HU_MIN`, closed over
    :data:`SHELL_CLOSING_MM` so that a thin cortex broken by partial volume still encloses the
    marrow. On a bone-only volume: the non-zero voxels.
    """
    if soft_tissue:
        # Hysteresis: trabecular bone of at least TRABECULAR_HU_MIN joins where it touches dense
        # bone; discs (about 80 HU) and muscle (40-60 HU) stay out.
        dense = _hysteresis(array, TRABECULAR_HU_MIN, BONE_HU_MIN)
        if SHELL_CLOSING_MM <= 0:
            return dense
        radius = np.maximum(1, np.round(SHELL_CLOSING_MM / np.asarray(spacing_xyz, float))).astype(
            int
        )
        closed = sitk.BinaryMorphologicalClosing(
            sitk.GetImageFromArray(dense.astype(np.uint8)),
            [int(r) for r in radius],
            sitk.sitkBall,
        )
        return sitk.GetArrayFromImage(closed).astype(bool) | dense
    # Bone-only: the released bone is exactly the non-zero voxels (marrow can read near 0 HU,
    # so no margin around 0 is safe).
    return array != 0


def _hysteresis(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Voxels of at least ``low`` that are 26-connected to a voxel of at least ``high``."""
    candidates, _ = label_components(array >= low)
    seeded = np.unique(candidates[(array >= high) & (candidates > 0)])
    return np.isin(candidates, seeded) & (candidates > 0)


def fill_bone(bone: np.ndarray) -> np.ndarray:
    """Fill the cavities that the cortical shell encloses (the trabecular interior) in 3D.

    Filling is 3D, never slice by slice: the sacral canal and foramina are channels open to the
    outside (the canal at both ends, the foramina at both surfaces), so they stay empty, as the
    manual masks draw them, while the marrow enclosed by the cortex is filled.
    """
    return ndimage.binary_fill_holes(bone)


def filled_bone(volume: Volume, soft_tissue: bool) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of bone with its marrow filled in, canal and foramina left out.

    Bone-only volumes: the non-zero voxels, with enclosed cavities filled in 3D.

    CTs with soft tissue: dense bone (:func:`bone_threshold`) filled in 3D. Fatty, osteoporotic
    marrow often leaks out of that shell where partial volume hides a thin cortex (typically
    through the posterior wall of the sacral bodies into the canal), so the fill is completed
    slice by slice in axial planes, where the cortex, pedicles and laminae ring the body and the
    canal, and then only the part denser than :data:`MARROW_MEAN_HU_MIN` (local mean) is kept:
    marrow stays, the fat and CSF of the canal and foramina go.
    """
    array = volume.array
    filled = fill_bone(bone_threshold(array, soft_tissue, volume.spacing_xyz))
    if not soft_tissue:
        return filled
    axial_axis = 2 - int(np.argmax(np.abs(volume.direction[2, :])))  # array axis nearest S
    enclosed = np.zeros_like(filled)
    for index in range(array.shape[axial_axis]):
        plane = [slice(None)] * 3
        plane[axial_axis] = index
        enclosed[tuple(plane)] = ndimage.binary_fill_holes(filled[tuple(plane)])
    marrow = (
        enclosed & ~filled & (_soft_local_mean(array, volume.spacing_xyz) >= MARROW_MEAN_HU_MIN)
    )
    # Marrow is bulky; a joint space enclosed between two bones in the axial plane is a thin
    # sheet of similar density. An opening removes the sheets.
    radius_vox = np.maximum(1, np.round(JOINT_SHEET_MM / np.asarray(volume.spacing_xyz)[::-1]))
    marrow = ndimage.binary_opening(marrow, structure=_ellipsoid(radius_vox))
    return fill_bone(filled | marrow)


def _ellipsoid(radius_kji: np.ndarray) -> np.ndarray:
    """Boolean ellipsoid structuring element with the given radii (voxels) along k, j, i."""
    radius = np.asarray(radius_kji, int)
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    return sum((g / max(r, 1)) ** 2 for g, r in zip(grids, radius, strict=True)) <= 1.0


def _soft_local_mean(array: np.ndarray, spacing_xyz) -> np.ndarray:
    """Gaussian local mean (HU) of the voxels below :data:`BONE_HU_MIN` only.

    Dense bone is left out of the average (normalised convolution), so canal fat or CSF next to
    a bright cortex still reads as fat or CSF, while marrow between sparse trabeculae reads as
    marrow.
    """
    sigma_vox = MARROW_SMOOTHING_MM / np.asarray(spacing_xyz, float)[::-1]
    soft = (array < BONE_HU_MIN).astype(np.float32)
    values = np.where(soft > 0, array, 0).astype(np.float32)
    weight = ndimage.gaussian_filter(soft, sigma_vox)
    total = ndimage.gaussian_filter(values, sigma_vox)
    return np.where(weight > 1e-3, total / np.maximum(weight, 1e-3), BONE_HU_MIN)


def joint_lines(ct: np.ndarray) -> np.ndarray:
    """Boolean mask of thin dark lines between denser bone (joint spaces, fracture lines).

    A grey closing with a 3x3x3 box fills gaps up to two voxels wide; where it raises the CT by
    at least :data:`JOINT_LINE_DEPTH_HU` the voxel sits in such a gap. On the 2 mm working grid
    that catches joints up to about 4 mm wide, also where interpolation has blurred them into
    the bone threshold.
    """
    closed = closed_over_joints(ct)
    return ((closed - ct) >= JOINT_LINE_DEPTH_HU) & (closed >= JOINT_PLATE_HU_MIN)


def closed_over_joints(ct: np.ndarray) -> np.ndarray:
    """Grey closing of a ``[k, j, i]`` CT with a 3x3x3 box (float32 HU): dark gaps up to two
    voxels wide filled to the level of the bone on both sides (the joint-line detectors' base)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(ct, dtype=np.float32))
    closed = sitk.GrayscaleMorphologicalClosing(image, (1, 1, 1), sitk.sitkBox)
    return sitk.GetArrayFromImage(closed)


def distance_inside_mm(mask: np.ndarray, spacing_xyz: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm, float32) from each mask voxel's centre to the mask border.

    Uses ITK's Maurer distance (multithreaded, several times faster than scipy's) on the raw
    ``[k, j, i]`` array; the distance is measured to the boundary between voxels, so a voxel on
    the surface has depth about half a voxel. Outside the mask the value is 0.
    """
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    distance = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(
            image, insideIsPositive=True, squaredDistance=False, useImageSpacing=True
        )
    )
    return np.maximum(distance, 0.0).astype(np.float32)


def distance_outside_mm(mask: np.ndarray, spacing_xyz: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm, float32) from each voxel outside the mask to the mask (0 inside)."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    distance = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(
            image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
    )
    return np.maximum(distance, 0.0).astype(np.float32)


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of a boolean mask: (labels int32, count)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    return labels.astype(np.int32, copy=False), int(count)
