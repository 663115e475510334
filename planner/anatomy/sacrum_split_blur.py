"""What one linear interpolation does to a CT's joints and bone surfaces, and how to see through it.

A scan that was resampled (reformatted onto an oblique grid, or onto another spacing) holds at
each voxel a weighted mean of up to eight source voxels one voxel apart. Two things the sacrum
split relies on change:

* *Joint spaces turn grey.* The sacroiliac joint of a bone-only CT is exactly 0 HU between two
  subchondral plates. After interpolation the joint voxels read a small fraction of the plates
  (median about 30 HU on pengwin-003 resampled 10 degrees onto the 2 mm working grid), and the
  plates themselves, averaged with the joint, drop from over 450 HU to 250-400 HU. The joint
  line detector of :func:`planner.anatomy.bone.joint_lines` asks for plates of at least 450 HU and
  so misses three quarters of such a joint; the joint voxels, no longer 0, count as bone; the
  cores of the sacrum and an ilium then join across the joint. :func:`grey_joint_lines` also
  takes a voxel darker than a quarter of the plates around it, over plates of 250 HU or more.
* *Bone surfaces grow by a soft shell.* Outside bone, a bone-only CT is exactly 0; after
  interpolation every voxel within one voxel of bone holds a blend of bone and 0, so "non-zero"
  takes in a shell one voxel thick (on pengwin-001 resampled 10 degrees, 13 % more voxels; a
  sacrum Dice of 0.93 at best). A voxel whose nearest source voxel is bone holds at least about
  half of that bone's value; :func:`partial_volume_shell` marks the surface voxels darker than
  :data:`SHELL_FRACTION_MAX` of the brightest voxel around them. Only on a surface that
  :func:`has_soft_edges` finds interpolated: on a bone-only CT as released, surface voxels are
  bone, some of it darker than its brightest neighbour.

Used by :func:`planner.anatomy.sacrum_flood.elevation_relief` (joint lines on the working grid:
depth, cores and flood) and :func:`planner.anatomy.sacrum_refine.refine_on_input_grid` (the trim,
and no SI fusion flagged through a joint line).

Measured (``python benchmarks/bench_storage_invariance.py --oblique-only --case C --angle A
--axis X``; sacrum Dice against the manual labels resampled by nearest neighbour): resampled 10
degrees about S then L, pengwin-003 went from no sacrum found to 0.975 and pengwin-001 from
0.778 to 0.978; 5 and 20 degrees about S and L, 10 degrees about P, 20 about L: 0.973-0.986
on both; as stored unchanged (0.9996, 0.9999). Left: blends of 0.3-0.5 of the bone are kept
and darker true bone is trimmed (about 2 % of the sacrum either way, an ambiguity one linear
interpolation leaves), and a grey joint whose valley keeps over a quarter of its plates (a
narrow joint, or one sampled across its plates) is still no joint line.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from planner.anatomy.bone import JOINT_LINE_DEPTH_HU, JOINT_PLATE_HU_MIN, closed_over_joints

#: Plates around a grey joint reach at least this (HU) after interpolation: a thin subchondral
#: plate averaged with the 0 HU joint beside it keeps about half its value.
GREY_PLATE_HU_MIN = 250.0
#: A grey joint voxel reads at most this fraction of the plates around it (the grey closing).
#: Interpolation leaks a fraction of each plate into the joint; marrow between trabeculae of the
#: same density reads more than half of them (pengwin-003, 10 degrees: joint median 0.09, marrow
#: 10th percentile 0.59).
GREY_JOINT_FRACTION_MAX = 0.25
#: A surface voxel darker than this fraction of the brightest voxel within one voxel is a
#: partial-volume blend whose nearest source voxel lay outside the bone. Below one half because
#: the brightest neighbour overestimates the bone value it was blended with.
SHELL_FRACTION_MAX = 0.3
#: Fraction of the surface voxels of a bone-only CT that must be such blends for its surface to
#: count as interpolated: 0.03 on pengwin-001 and -003 as released, 0.49-0.69 after any linear
#: resampling tried (1 to 20 degrees, about S, L or P).
SOFT_EDGE_FRACTION_MIN = 0.25
#: Cube (voxels) of the neighbourhood whose brightest voxel stands for the bone value.
NEIGHBOURHOOD_VOX = 3


def grey_joint_lines(ct: np.ndarray) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of joint lines, also where interpolation has greyed them.

    The sharp joint lines of :func:`planner.anatomy.bone.joint_lines`, plus voxels that the grey
    closing over one voxel raises by :data:`~planner.anatomy.bone.JOINT_LINE_DEPTH_HU` or more to
    at least :data:`GREY_PLATE_HU_MIN`, and that read at most :data:`GREY_JOINT_FRACTION_MAX` of
    that closing.

    Parameters
    ----------
    ct : np.ndarray
        CT values (HU), shape ``[k, j, i]``.
    """
    values = np.asarray(ct, dtype=np.float32)
    closed = closed_over_joints(values)
    # One closing for both tests; the sharp one is joint_lines' own.
    deep = closed - values >= JOINT_LINE_DEPTH_HU
    sharp = closed >= JOINT_PLATE_HU_MIN
    grey = (closed >= GREY_PLATE_HU_MIN) & (values <= GREY_JOINT_FRACTION_MAX * closed)
    return deep & (sharp | grey)


def partial_volume_shell(ct: np.ndarray, bone: np.ndarray | None = None) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of the soft shell that interpolation adds to bone-only CT.

    Surface voxels of the bone (with a face neighbour outside it) that read less than
    :data:`SHELL_FRACTION_MAX` of the brightest voxel in their :data:`NEIGHBOURHOOD_VOX` cube.

    Parameters
    ----------
    ct : np.ndarray
        Bone-only CT (HU, exactly 0 outside bone), shape ``[k, j, i]``.
    bone : np.ndarray of bool, optional
        The bone whose surface is meant, e.g. with its enclosed marrow filled in (a marrow voxel
        reading exactly 0 HU is no surface); default: the non-zero voxels.
    """
    return _shell_and_surface(ct, bone)[0]


def has_soft_edges(ct: np.ndarray, bone: np.ndarray | None = None) -> bool:
    """True when a bone-only CT's bone surface was interpolated (a soft partial-volume edge).

    At least :data:`SOFT_EDGE_FRACTION_MIN` of the surface voxels belong to
    :func:`partial_volume_shell` (``bone`` as there). False when there is no bone surface.
    """
    shell, surface = _shell_and_surface(ct, bone)
    return _soft(shell, surface)


def without_partial_volume_shell(ct: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """``bone`` without its :func:`partial_volume_shell` where :func:`has_soft_edges`, else
    ``bone`` itself: the bone-only CT's bone as the scan held it before it was resampled.

    Parameters
    ----------
    ct : np.ndarray
        Bone-only CT (HU, exactly 0 outside bone), shape ``[k, j, i]``.
    bone : np.ndarray of bool
        Its bone, enclosed marrow filled in, same shape.
    """
    shell, surface = _shell_and_surface(ct, bone)
    return bone & ~shell if _soft(shell, surface) else bone


def _shell_and_surface(ct: np.ndarray, bone: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(ct, dtype=np.float32)
    surface = _surface(values != 0 if bone is None else np.asarray(bone, bool))
    brightest = ndimage.maximum_filter(values, size=NEIGHBOURHOOD_VOX)
    return surface & (values < SHELL_FRACTION_MAX * brightest), surface


def _soft(shell: np.ndarray, surface: np.ndarray) -> bool:
    count = np.count_nonzero(surface)
    return count > 0 and np.count_nonzero(shell) >= SOFT_EDGE_FRACTION_MIN * count


def _surface(bone: np.ndarray) -> np.ndarray:
    """Bone voxels with a face neighbour outside the bone (beyond the array's border counts as
    bone: a crop's border cuts through bone, it is no surface)."""
    return bone & ndimage.binary_dilation(~bone)
