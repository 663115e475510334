"""The posterior wall of the sacral canal on a T1-weighted MRI.

The laminae (with the median crest on them) close the sacral canal behind, down to the hiatus.
They are thin plates of bone, 3-6 mm, mostly cortex around a little marrow, so on MR slices a
few millimetres thick they read as a mix of dark and bright voxels, often no brighter than
muscle on average: the marrow search of :mod:`planner.mri.sacrum_t1` misses them, the canal is
left open behind and the sacrum's volume falls short. The canal in front of them is easy to see:
epidural fat, brighter than marrow on T1, around the dark dural sac, in the middle of the
sacrum's axial section. So the wall is found from the canal outwards:

1. **canal**: inside the convex hull of the sacrum's axial section, not yet sacrum, voxels as
   bright as fat or in a thick dark region (the sac; cortex is thin), their section holes filled;
2. **behind it**: voxels within :data:`WALL_MAX_MM` of the canal whose nearest canal voxel lies
   in front of them (the offset within :data:`WALL_CONE_DEG` of posterior). Bodies and lateral
   masses, in front and beside the canal, are already sacrum; the hiatus has no wall and reads
   as soft tissue;
3. **bone there** reads heterogeneous: dark cortex, bright marrow and the partial volume between.
   Muscle reads at the body's median intensity and fat brighter than marrow, both homogeneous;
   so the wall is what is neither (:data:`SOFT_TOLERANCE`), closed over single voxels that pass
   through the muscle level between cortex and marrow, and kept where it touches the canal or the
   sacrum. The marrow enclosed by the wall (holes in axial and sagittal sections) joins it.

Works on the isotropic LPS working grid of :func:`~planner.mri.sacrum_t1.find_sacrum_t1`
(identity direction: array axes are superior, posterior, left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Array axes of the LPS working grid (identity direction, ``[k, j, i]``).
AXIS_SUPERIOR, AXIS_POSTERIOR, AXIS_LEFT = 0, 1, 2
#: Farthest the wall may reach behind the canal (mm): laminae 3-6 mm thick and the median crest
#: on them up to about 6 mm high (S1). Only a bound: where the wall ends is read on the image.
#: (Measured, held-out seeds 200-239: 9 mm min Dice 0.900, median 0.929; 12 mm 0.901, 0.928;
#: 15 mm 0.901, 0.928.)
WALL_MAX_MM = 12.0
#: Largest angle (deg) between "posterior" and the offset from a voxel's nearest canal voxel for
#: the voxel to count as behind the canal (the laminae wrap round it posterolaterally).
WALL_CONE_DEG = 60.0
#: Fat (epidural, subcutaneous): brighter than the marrow by this share of the way to the body's
#: 99th percentile. Never bone: marrow is the brightest bone.
FAT_SHARE = 0.5
#: Dark: below this share of the way from the darkest tissue to the body's median (muscle).
DARK_SHARE = 0.5
#: Dark regions thicker than this opening radius (mm) are the dural sac, not the thin cortex.
THICK_DARK_MM = 2.25
#: Plain soft tissue: within this share of the marrow-to-muscle contrast of the body's median.
SOFT_TOLERANCE = 0.2
#: Closing radius (mm) that bridges single voxels at the muscle level inside the wall.
WALL_CLOSING_MM = 1.5


@dataclass(frozen=True)
class T1Levels:
    """Normalised T1 intensities of the tissues around the sacrum.

    Attributes
    ----------
    muscle : float
        The body's median (muscle and pelvic soft tissue).
    marrow : float
        The sacral marrow's median.
    fat : float
        Brighter than this is fat (:data:`FAT_SHARE`).
    dark : float
        Darker than this is cortex, ligament or fluid (:data:`DARK_SHARE`).
    """

    muscle: float
    marrow: float
    fat: float
    dark: float

    @classmethod
    def measure(cls, values: np.ndarray, body: np.ndarray, marrow_level: float,
                cortex_level: float) -> T1Levels:
        """Levels from the body's intensities (``values[body]``) and the marrow and darkest
        tissue levels."""
        muscle, bright_end = np.percentile(values[body], [50.0, 99.0])
        return cls(muscle=float(muscle), marrow=float(marrow_level),
                   fat=float(marrow_level + FAT_SHARE * max(bright_end - marrow_level, 0.0)),
                   dark=float(cortex_level + DARK_SHARE * (muscle - cortex_level)))


def _ball(radius_mm: float, spacing_mm: float) -> np.ndarray:
    r = max(1, int(round(radius_mm / spacing_mm)))
    grid = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (grid**2).sum(axis=0) <= (radius_mm / spacing_mm) ** 2 + 1e-9


def canal_content(sacrum: np.ndarray, hull: np.ndarray, values: np.ndarray, levels: T1Levels,
                  spacing_mm: float) -> np.ndarray:
    """The sacral canal's content (epidural fat and the dural sac) inside the sacrum's sections.

    Parameters
    ----------
    sacrum, hull : (K, J, I) bool
        The sacrum so far, and the filled convex hull of each of its axial sections.
    values : (K, J, I) float
        The prepared T1 on the working grid.
    levels : T1Levels
    spacing_mm : float
        Isotropic voxel size.

    Returns
    -------
    (K, J, I) bool
    """
    thick_dark = ndimage.binary_opening(values < levels.dark, _ball(THICK_DARK_MM, spacing_mm))
    content = hull & ~sacrum & ((values > levels.fat) | thick_dark)
    for k in np.flatnonzero(content.any(axis=(1, 2))):
        content[k] = ndimage.binary_fill_holes(content[k])
    return content & ~sacrum


def posterior_wall(sacrum: np.ndarray, hull: np.ndarray, values: np.ndarray, body: np.ndarray,
                   levels: T1Levels, spacing_mm: float) -> np.ndarray:
    """The laminae and crest behind the sacral canal (see the module docstring).

    Parameters
    ----------
    sacrum : (K, J, I) bool
        The sacrum found so far (marrow grown by the cortex) on the LPS working grid.
    hull : (K, J, I) bool
        The filled convex hull of each axial section of ``sacrum``.
    values : (K, J, I) float
        The prepared T1 on that grid.
    body : (K, J, I) bool
        The body.
    levels : T1Levels
    spacing_mm : float
        Isotropic voxel size (mm).

    Returns
    -------
    (K, J, I) bool
        Voxels to add to the sacrum (none of them in ``sacrum``).
    """
    content = canal_content(sacrum, hull, values, levels, spacing_mm)
    if not content.any():
        return np.zeros(sacrum.shape, bool)
    behind = _behind_canal(content, spacing_mm) & ~sacrum & body
    soft = ((np.abs(values - levels.muscle) <= SOFT_TOLERANCE * (levels.marrow - levels.muscle))
            | (values > levels.fat))
    wall = behind & ~soft
    wall |= ndimage.binary_closing(wall, _ball(WALL_CLOSING_MM, spacing_mm)) & behind
    labels, _ = ndimage.label(wall)
    touching = np.unique(labels[ndimage.binary_dilation(content | sacrum) & wall])
    wall = np.isin(labels, touching[touching > 0])
    enclosed = _section_holes(sacrum | content | wall, (AXIS_SUPERIOR, AXIS_LEFT))
    return wall | (enclosed & behind)


def _behind_canal(content: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Voxels within :data:`WALL_MAX_MM` of the canal whose offset from their nearest canal
    voxel points posteriorly (within :data:`WALL_CONE_DEG`)."""
    distance, nearest = ndimage.distance_transform_edt(~content, sampling=spacing_mm,
                                                       return_indices=True)
    rows = np.arange(content.shape[AXIS_POSTERIOR]).reshape(1, -1, 1)
    posterior_mm = (rows - nearest[AXIS_POSTERIOR]) * spacing_mm
    cone = posterior_mm >= np.cos(np.deg2rad(WALL_CONE_DEG)) * distance
    return (distance > 0) & (distance <= WALL_MAX_MM) & cone


def _section_holes(mask: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Voxels enclosed by ``mask`` in a 2D section normal to any of ``axes`` (not in it)."""
    enclosed = np.zeros(mask.shape, bool)
    for axis in axes:
        sections = np.moveaxis(mask, axis, 0)
        filled = np.zeros(sections.shape, bool)
        for n in np.flatnonzero(sections.any(axis=(1, 2))):
            filled[n] = ndimage.binary_fill_holes(sections[n])
        enclosed |= np.moveaxis(filled, 0, axis)
    return enclosed & ~mask
