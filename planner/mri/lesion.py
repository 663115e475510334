"""A lesion seen on MRI: grown from one seed point, or drawn as a mask; mapped onto the CT.

Growing (:func:`grow_lesion`) is SimpleITK's ``ConnectedThreshold`` region growing on the
prepared MR, resampled to an isotropic grid around the seed: the lesion's own intensity is read
around the seed, the marrow's inside the sacrum away from it (the most common value), and the
region grows from the seed through voxels on the lesion's side of the midpoint, never outside
the sacrum's interior (the sacrum eroded by :data:`CORTEX_MM`), so it stops at the cortex.
Works whether the lesion is darker than marrow (T1) or brighter (T2, STIR).

Mapping (:func:`lesion_to_ct`) places the boundary on the CT grid with sub-voxel precision:

* when the lesion knows its MR image and the lesion and marrow levels (a grown lesion, or a
  drawn mask refined by :func:`lesion_from_mask` with the MR and the sacrum), every CT voxel
  centre is mapped into the MR, the MR is interpolated linearly there, and the voxel is lesion
  when it lies on the lesion's side of the half-way intensity (:data:`LESION_SHARE`), inside a
  narrow band (:data:`BAND_MM`) around the region grown on the isotropic grid (a drawn mask
  is regrown there first, from its core, within its voxel size plus :data:`BAND_MM`). Thick
  MR slices integrate the signal across their thickness, so the half-way intensity between two
  slice centres is where the edge crosses (partial volume). The lesion and marrow levels are
  the median around the seed (or of the drawn mask's core) and the mode of the sacral interior
  around it;
* otherwise (a bare mask) the mask's signed distance is interpolated linearly and thresholded
  at 0 (shape-based interpolation: smoother than a resampled binary mask, no stair steps).

The truth lesion of a phantom is a sphere (4-7 mm radius). With point-sampled 4 mm slices no
mapping reaches Dice 0.85 on spheres under about 4.8 mm radius (measured: 0.77-0.83 for the
binary mask resampled or its signed distance, on the truth itself), because an edge between
two slice centres leaves no trace; with slice-profile partial volume the intensity edge gives
0.88 or more (``benchmarks/bench_mri.py`` prints both ceilings).
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
#: The intensity edge is searched within this distance (mm) of the region grown on the
#: isotropic grid (its edge is already at the half-way intensity, to a voxel); a drawn mask is
#: regrown within this distance plus its largest voxel size (on 4 mm slices the edge may lie
#: almost a slice beyond the last slice centre inside the lesion).
BAND_MM = 1.0
#: A drawn mask's lesion level is the median of its core: voxels deeper than this share of the
#: mask's largest depth (the edge voxels are partial volume).
CORE_DEPTH_SHARE = 0.5
#: A drawn mask's marrow level is the mode of the sacrum in this shell (mm) around it: beyond
#: the band (no partial volume of the lesion), within the sacral body.
MARROW_SHELL_MM = (7.0, 15.0)
#: Signed distance (mm) standing for "far outside" where a mask's grid ends.
FAR_OUTSIDE_MM = 1.0e3
#: The marrow level is the mode of the sacral interior's intensities (histogram bin and Gaussian
#: smoothing, normalised MR units): the interior also holds dark cortex edges, fused-disc
#: remnants and foramen walls (partial volume on thick slices), which pull a median off the
#: marrow (T1 seed 209 of the benchmark: median 0.67, marrow 0.81).
LEVEL_BIN = 0.005
LEVEL_SMOOTHING = 0.02


@dataclass(frozen=True, eq=False)
class MrLesion:
    """A lesion on the MR (its own frame).

    Attributes
    ----------
    mask : Volume (bool)
        On the isotropic growing grid (or the grid it was drawn on).
    volume_ml : float
        Volume of ``mask``.
    lesion_level, marrow_level : float or None
        Normalised MR intensities of the lesion and the marrow around it (None for a bare
        drawn mask).
    image : Volume or None
        The prepared MR whose intensities place the boundary on the CT (with the levels).
    band : Volume (bool) or None
        Where the boundary may lie: ``mask`` grown by :data:`BAND_MM`, kept inside the
        sacrum's interior (``mask``'s grid).
    """

    mask: Volume
    volume_ml: float
    lesion_level: float | None = None
    marrow_level: float | None = None
    image: Volume | None = None
    band: Volume | None = None

    @property
    def uses_intensity(self) -> bool:
        """True when the CT boundary is read on the MR intensities (see the module docstring)."""
        return (self.image is not None and self.band is not None
                and self.lesion_level is not None and self.marrow_level is not None)


def _grid_around(mr: Volume, centre_lps: np.ndarray, half_size_mm: float) -> Volume:
    """Isotropic growing grid (MR's direction, :data:`GROW_SPACING_MM`) centred on a point."""
    count = 2 * int(np.ceil(half_size_mm / GROW_SPACING_MM)) + 1
    half = (count - 1) / 2.0 * GROW_SPACING_MM
    origin = centre_lps - mr.direction @ np.full(3, half)
    grid = make_grid(origin, [GROW_SPACING_MM] * 3, mr.direction, [count] * 3)
    return volume_from_sitk(grid, "SEG")


def _on_grid(prepared: Volume, sacrum_mask: Volume, reference: Volume):
    """The MR (NaN outside it), the sacrum and its interior (cortex removed) on ``reference``."""
    image = resample_like(prepared, reference, "linear", default_value=np.nan).array
    sacrum = resample_like(sacrum_mask.with_array(np.asarray(sacrum_mask.array, np.float32)),
                           reference, "linear", default_value=0.0).array >= 0.5
    sampling = reference.spacing_xyz[::-1]
    interior = ndimage.distance_transform_edt(sacrum, sampling=sampling) > CORTEX_MM
    return image, sacrum, interior


def _grow(reference: Volume, image: np.ndarray, allowed: np.ndarray, seeds_kji: np.ndarray,
          levels: tuple[float, float]) -> np.ndarray:
    """Region grown from the seed voxels (K, 3) through allowed voxels on the lesion's side of
    the half-way intensity; thin leaks cut (about the first seed) and holes filled."""
    lesion_level, marrow_level = levels
    cut = marrow_level + LESION_SHARE * (lesion_level - marrow_level)
    allowed = allowed & np.isfinite(image)
    values = np.where(allowed, np.nan_to_num(image, nan=marrow_level), marrow_level)
    if lesion_level < marrow_level:
        lower, upper = float(np.min(values)) - 1.0, cut
    else:
        lower, upper = cut, float(np.max(values)) + 1.0
    grown = sitk.ConnectedThreshold(volume_to_sitk(reference.with_array(values.astype(np.float32))),
                                    seedList=[tuple(int(v) for v in seed[::-1])
                                              for seed in seeds_kji],
                                    lower=lower, upper=upper)
    mask = volume_from_sitk(grown, "SEG").array.astype(bool) & allowed
    mask = _cut_thin_leaks(mask, seeds_kji[0])
    return ndimage.binary_fill_holes(mask)


def _grown_lesion(reference: Volume, mask: np.ndarray, interior: np.ndarray,
                  levels: tuple[float, float], prepared: Volume) -> MrLesion:
    volume_ml = float(mask.sum() * reference.voxel_volume_mm3 / MM3_PER_ML)
    distance = _signed_distance_mm(mask, reference.spacing_xyz)
    band = (distance <= BAND_MM) & interior
    return MrLesion(reference.with_array(mask, "SEG"), volume_ml, levels[0], levels[1],
                    prepared, reference.with_array(band, "SEG"))


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
    reference = _grid_around(prepared, seed, GROW_HALF_SIZE_MM)
    image, sacrum, interior = _on_grid(prepared, sacrum_mask, reference)
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
    marrow_level = _mode(image[far])
    if abs(lesion_level - marrow_level) < MIN_LESION_CONTRAST:
        raise PlanningError(
            "no lesion at the seed: the MRI there looks like the surrounding marrow; click inside "
            "the lesion or draw its mask")
    levels = (lesion_level, marrow_level)
    mask = _grow(reference, image, interior, centre[None], levels)
    return _grown_lesion(reference, mask, interior, levels, prepared)


def _mode(values: np.ndarray) -> float:
    """Most common value (peak of the smoothed histogram, :data:`LEVEL_BIN` bins)."""
    low, high = float(np.min(values)), float(np.max(values))
    bins = max(1, int(np.ceil((high - low) / LEVEL_BIN)))
    counts, edges = np.histogram(values, bins=bins, range=(low, low + bins * LEVEL_BIN))
    smooth = ndimage.gaussian_filter1d(counts.astype(float), LEVEL_SMOOTHING / LEVEL_BIN,
                                       mode="constant")
    peak = int(np.argmax(smooth))
    return float(0.5 * (edges[peak] + edges[peak + 1]))


def _signed_distance_mm(mask: np.ndarray, spacing_xyz: np.ndarray) -> np.ndarray:
    """Signed distance (mm, negative inside) of each voxel centre of a boolean ``[k, j, i]``
    mask: inside, minus the distance to the nearest outside voxel; outside, the distance to the
    nearest inside voxel. Zero half-way between neighbours, any voxel shape."""
    sampling = np.asarray(spacing_xyz, float)[::-1]
    if not mask.any():
        return np.full(mask.shape, FAR_OUTSIDE_MM)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    return np.where(mask, -inside, outside)


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


def lesion_from_mask(mask: Volume, mr: Volume | None = None,
                     sacrum_mask: Volume | None = None, preprocessed: bool = False) -> MrLesion:
    """A lesion drawn on the MR (a mask or label map; any value > 0 is lesion).

    Parameters
    ----------
    mask : Volume
        The drawn lesion, any grid in the MR frame.
    mr : Volume, optional
        The MR it was drawn on. With ``sacrum_mask`` the CT boundary is then read on the MR
        intensities near the drawn outline (sub-voxel; see the module docstring).
    sacrum_mask : Volume (bool), optional
        The sacrum in the MR frame (any grid): where the marrow level is read.
    preprocessed : bool
        True if ``mr`` already went through :func:`preprocess_mr`.

    Returns
    -------
    MrLesion
        With ``uses_intensity`` False when no MR or sacrum was given, or when the lesion does not
        differ from the marrow around it (the drawn outline is then used as it is).

    Raises
    ------
    PlanningError
        The mask is empty.
    """
    array = np.asarray(mask.array) > 0
    if not array.any():
        raise PlanningError("the MR lesion mask is empty: draw the lesion or give a seed point")
    drawn = mask.with_array(array, "SEG")
    volume_ml = float(array.sum() * mask.voxel_volume_mm3 / MM3_PER_ML)
    if mr is None or sacrum_mask is None:
        return MrLesion(drawn, volume_ml)
    check_modality(mr, "MR", "the MRI")
    prepared = mr if preprocessed else preprocess_mr(mr)
    refined = _refine_drawn(drawn, prepared, sacrum_mask)
    return MrLesion(drawn, volume_ml) if refined is None else refined


def _refine_drawn(drawn: Volume, prepared: Volume, sacrum_mask: Volume) -> MrLesion | None:
    """The drawn lesion regrown on the isotropic grid from its core, within its band and the
    sacrum's interior. The lesion level is the median of the core (voxels deeper than
    :data:`CORE_DEPTH_SHARE` of the deepest), the marrow level the mode of the interior in
    :data:`MARROW_SHELL_MM` around the mask. None when they differ by less than
    :data:`MIN_LESION_CONTRAST` or no core voxel is on the lesion's side of the cut."""
    array = np.asarray(drawn.array, bool)
    kji = np.argwhere(array)
    points = drawn.index_to_lps(kji[:, ::-1].astype(float))
    centre = points.mean(axis=0)
    half = float(np.max(np.linalg.norm(points - centre, axis=1))) + MARROW_SHELL_MM[1]
    reference = _grid_around(prepared, centre, half)
    image, _, interior = _on_grid(prepared, sacrum_mask, reference)
    distance_mm = resample_like(
        drawn.with_array(_signed_distance_mm(array, drawn.spacing_xyz).astype(np.float32)),
        reference, "linear", default_value=FAR_OUTSIDE_MM).array
    core = distance_mm <= CORE_DEPTH_SHARE * float(distance_mm.min())
    near, far = MARROW_SHELL_MM
    shell = interior & (distance_mm > near) & (distance_mm <= far) & np.isfinite(image)
    if not np.any(core & np.isfinite(image)) or shell.sum() < 10:
        return None
    levels = (float(np.nanmedian(image[core])), _mode(image[shell]))
    if abs(levels[0] - levels[1]) < MIN_LESION_CONTRAST:
        return None
    allowed = (distance_mm <= BAND_MM + float(np.max(drawn.spacing_xyz))) & interior
    cut = levels[1] + LESION_SHARE * (levels[0] - levels[1])
    lesion_side = (image - cut) * np.sign(levels[0] - levels[1]) >= 0
    seeds = np.argwhere(core & allowed & lesion_side)
    if len(seeds) == 0:
        return None
    deepest = np.argmin(distance_mm[tuple(seeds.T)])
    seeds = np.concatenate([seeds[deepest:deepest + 1], seeds])
    mask = _grow(reference, image, allowed, seeds, levels)
    if not mask.any():
        return None
    return _grown_lesion(reference, mask, allowed, levels, prepared)


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
    if not isinstance(lesion, MrLesion):
        lesion = lesion_from_mask(lesion)
    mask = lesion.mask
    array = np.asarray(mask.array) > 0
    reach = lesion.band.array if lesion.uses_intensity else array
    k, j, i = np.nonzero(reach)
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
    points_mr = mr_from_ct.apply(points)
    if lesion.uses_intensity:
        inside = _intensity_inside(lesion, points_mr)
    else:
        distance = mask.with_array(_signed_distance_mm(array, mask.spacing_xyz))
        inside = distance.sample(points_mr, order=1, fill_value=FAR_OUTSIDE_MM) <= 0.0
    inside = ndimage.binary_fill_holes(inside.reshape(box.array.shape))
    result = np.zeros(ct.array.shape, bool)
    result[start[2]:stop[2], start[1]:stop[1], start[0]:stop[0]] = inside
    if not result.any():
        raise PlanningError("the MR lesion maps onto no CT voxel: check the registration")
    return ct.with_array(result, "SEG")


def _intensity_inside(lesion: MrLesion, points_mr: np.ndarray) -> np.ndarray:
    """Lesion at MR points (N, 3): in the band, on the lesion's side of the half-way intensity
    of the linearly interpolated MR."""
    values = lesion.image.sample(points_mr, order=1, fill_value=np.nan)
    share = (values - lesion.marrow_level) / (lesion.lesion_level - lesion.marrow_level)
    in_band = lesion.band.sample(points_mr, order=0, fill_value=0.0) > 0
    return in_band & np.isfinite(share) & (share >= LESION_SHARE)
