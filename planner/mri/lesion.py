"""A lesion seen on MRI: grown from one seed point, or drawn as a mask; mapped onto the CT.

Growing (:func:`grow_lesion`) is SimpleITK's ``ConnectedThreshold`` region growing on the
prepared MR, resampled to an isotropic grid around the seed: the lesion's own intensity is read
around the seed, the marrow's inside the sacrum away from it, and the region grows from the seed
through voxels on the lesion's side of the midpoint, never outside the sacrum's interior (the
sacrum eroded by :data:`CORTEX_MM`), so it stops at the cortex. Works whether the lesion is
darker than marrow (T1) or brighter (T2, STIR).

Mapping (:func:`lesion_to_ct`) resamples the mask through the registration onto the CT grid with
linear interpolation of the mask and a 0.5 threshold (a label resampling that keeps the boundary
where it was, unlike nearest-neighbour stair steps on thick MR slices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from planner.errors import PlanningError
from planner.mri.preprocess import check_modality, preprocess_mr
from planner.mri.transform import RigidTransform
from planner.sitk_bridge import make_grid, resample_like, volume_from_sitk, volume_to_sitk
from planner.volume import Volume

#: Isotropic voxel (mm) of the growing grid and half-size (mm) of the box around the seed.
GROW_SPACING_MM = 1.0
GROW_HALF_SIZE_MM = 30.0
#: Radius (mm) around the seed whose median is the lesion's intensity.
SEED_RADIUS_MM = 2.0
#: Marrow intensity is read inside the sacrum at least this far (mm) from the seed.
MARROW_MIN_DISTANCE_MM = 15.0
#: Thickness (mm) of cortex removed from the sacrum mask: the growth stays in the interior.
CORTEX_MM = 1.0
#: Plates thinner than twice this radius (mm) are cut off the grown lesion (leaks).
LEAK_OPENING_MM = 2.0
#: The region grows through voxels beyond this share of the way from marrow to lesion.
LESION_SHARE = 0.5
#: Smallest lesion/marrow difference (normalised MR units) that counts as a visible lesion.
MIN_LESION_CONTRAST = 0.08
MM3_PER_ML = 1000.0


@dataclass(frozen=True, eq=False)
class MrLesion:
    """A lesion on the MR (its own frame).

    Attributes
    ----------
    mask : Volume (bool)
        On the isotropic growing grid (or the grid it was drawn on).
    volume_ml : float
    lesion_level, marrow_level : float or None
        Normalised MR intensities read for the growth (None for a drawn mask).
    """

    mask: Volume
    volume_ml: float
    lesion_level: float | None = None
    marrow_level: float | None = None


def _seed_box(mr: Volume, seed_lps: np.ndarray) -> sitk.Image:
    """Isotropic grid (MR's direction) centred on the seed."""
    count = int(round(2 * GROW_HALF_SIZE_MM / GROW_SPACING_MM)) + 1
    half = (count - 1) / 2.0 * GROW_SPACING_MM
    origin = seed_lps - mr.direction @ np.full(3, half)
    return make_grid(origin, [GROW_SPACING_MM] * 3, mr.direction, [count] * 3)


def grow_lesion(mr: Volume, seed_lps, sacrum_mask: Volume, preprocessed: bool = False) -> MrLesion:
    """Grow a lesion on the MR from one seed point, bounded by the sacrum.

    Parameters
    ----------
    mr : Volume
        MR (any weighting in which the lesion differs from marrow), its own frame.
    seed_lps : (3,) float
        A point inside the lesion, MR LPS mm.
    sacrum_mask : Volume (bool)
        The sacrum in the MR frame (any grid), e.g. from :func:`find_sacrum_t1` or the CT's
        sacrum mapped through the registration.
    preprocessed : bool
        True if ``mr`` already went through :func:`preprocess_mr`.

    Returns
    -------
    MrLesion

    Raises
    ------
    PlanningError
        The seed is outside the sacrum, or the lesion does not differ from the marrow.
    """
    check_modality(mr, "MR", "the MRI")
    seed = np.asarray(seed_lps, float).reshape(3)
    prepared = mr if preprocessed else preprocess_mr(mr)
    reference = volume_from_sitk(_seed_box(prepared, seed), "SEG")
    image = resample_like(prepared, reference, "linear", default_value=np.nan).array
    sacrum = resample_like(sacrum_mask.with_array(np.asarray(sacrum_mask.array, np.float32)),
                           reference, "linear", default_value=0.0).array >= 0.5
    sampling = reference.spacing_xyz[::-1]
    interior = ndimage.distance_transform_edt(sacrum, sampling=sampling) > CORTEX_MM
    centre = np.array(image.shape) // 2
    if not sacrum[tuple(centre)]:
        raise PlanningError(f"the lesion seed ({', '.join(f'{v:.1f}' for v in seed)}) LPS mm is "
                            "not inside the sacrum on the MRI; click inside the lesion")
    offsets = np.indices(image.shape) - centre[:, None, None, None]
    distance = np.sqrt((offsets**2).sum(axis=0)) * GROW_SPACING_MM
    lesion_level = float(np.nanmedian(image[(distance <= SEED_RADIUS_MM) & sacrum]))
    far = interior & (distance >= MARROW_MIN_DISTANCE_MM) & np.isfinite(image)
    if far.sum() < 10:
        far = interior & (distance >= SEED_RADIUS_MM * 3) & np.isfinite(image)
    marrow_level = float(np.median(image[far]))
    if abs(lesion_level - marrow_level) < MIN_LESION_CONTRAST:
        raise PlanningError(
            "no lesion at the seed: the MRI there looks like the surrounding marrow; click inside "
            "the lesion or draw its mask")
    cut = marrow_level + LESION_SHARE * (lesion_level - marrow_level)
    allowed = interior & np.isfinite(image)
    values = np.where(allowed, np.nan_to_num(image, nan=marrow_level), marrow_level)
    if lesion_level < marrow_level:
        lower, upper = float(np.nanmin(values)) - 1.0, cut
    else:
        lower, upper = cut, float(np.nanmax(values)) + 1.0
    grown = sitk.ConnectedThreshold(volume_to_sitk(reference.with_array(values.astype(np.float32))),
                                    seedList=[tuple(int(v) for v in centre[::-1])],
                                    lower=lower, upper=upper)
    mask = volume_from_sitk(grown, "SEG").array.astype(bool) & allowed
    mask = _cut_thin_leaks(mask, centre)
    mask = ndimage.binary_fill_holes(mask)
    volume_ml = float(mask.sum() * reference.voxel_volume_mm3 / MM3_PER_ML)
    return MrLesion(reference.with_array(mask, "SEG"), volume_ml, lesion_level, marrow_level)


def _cut_thin_leaks(mask: np.ndarray, seed_kji: np.ndarray) -> np.ndarray:
    """Drop thin plates the growth ran along (e.g. fused-disc remnants as dark as a lesion on
    T1): an opening by :data:`LEAK_OPENING_MM` keeps the lesion's bulk, then the part connected
    to the seed is kept and grown back within the original region."""
    radius = max(1, int(round(LEAK_OPENING_MM / GROW_SPACING_MM)))
    grid = np.indices((2 * radius + 1,) * 3) - radius
    ball = (grid**2).sum(axis=0) <= radius**2
    opened = ndimage.binary_opening(mask, ball)
    labels, _ = ndimage.label(opened)
    label = labels[tuple(seed_kji)]
    if label == 0:
        return mask  # a lesion thinner than the opening: keep the growth as it is
    core = labels == label
    return ndimage.binary_dilation(core, ball) & mask


def lesion_from_mask(mask: Volume) -> MrLesion:
    """A lesion drawn on the MR (a mask or label map; any value > 0 is lesion)."""
    array = np.asarray(mask.array) > 0
    if not array.any():
        raise PlanningError("the MR lesion mask is empty: draw the lesion or give a seed point")
    return MrLesion(mask.with_array(array, "SEG"), float(array.sum() * mask.voxel_volume_mm3
                                                         / MM3_PER_ML))


def lesion_to_ct(lesion: MrLesion | Volume, mr_from_ct: RigidTransform, ct: Volume) -> Volume:
    """Map an MR lesion onto the CT grid through the registration.

    Parameters
    ----------
    lesion : MrLesion or Volume (bool)
        Lesion in the MR frame.
    mr_from_ct : RigidTransform
        CT LPS -> MR LPS (``Registration.mr_from_ct``).
    ct : Volume
        The CT whose grid receives the mask.

    Returns
    -------
    Volume (bool)
        Lesion on the CT grid (modality ``"SEG"``), ready for ``plan(ct, target=...)``.

    Raises
    ------
    PlanningError
        The lesion falls outside the CT.
    """
    mask = lesion.mask if isinstance(lesion, MrLesion) else lesion
    array = np.asarray(mask.array) > 0
    k, j, i = np.nonzero(array)
    corners = mask.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    in_ct = ct.lps_to_index(mr_from_ct.inverse().apply(corners))
    margin = 2.0 + np.max(mask.spacing_xyz) / np.min(ct.spacing_xyz)
    start = np.floor(in_ct.min(axis=0) - margin).astype(int)
    stop = np.ceil(in_ct.max(axis=0) + margin).astype(int) + 1
    shape = np.asarray(ct.shape_ijk)
    start, stop = np.clip(start, 0, shape), np.clip(stop, 0, shape)
    if np.any(stop <= start):
        raise PlanningError("the MR lesion maps outside the CT: check the registration")
    box = ct.crop(start, stop)
    kk, jj, ii = np.indices(box.array.shape)
    points = box.index_to_lps(np.stack([ii, jj, kk], axis=-1).reshape(-1, 3).astype(float))
    values = mask.with_array(array.astype(np.float32)).sample(mr_from_ct.apply(points), order=1)
    result = np.zeros(ct.array.shape, bool)
    result[start[2]:stop[2], start[1]:stop[1], start[0]:stop[0]] = \
        values.reshape(box.array.shape) >= 0.5
    return ct.with_array(result, "SEG")
