"""The one door between SimpleITK images and :class:`~planner.volume.Volume`.

SimpleITK already reports geometry in LPS and returns arrays indexed ``[k, j, i]``, which is the
`Volume` convention, so no axes are reordered here. Reorientation and resampling, the only
operations that change the voxel order, also live here and nowhere else.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from planner.errors import GeometryError
from planner.volume import Volume, VolumeInfo

_INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
    "label": sitk.sitkLabelGaussian,
}


def volume_from_sitk(
    image: sitk.Image, modality: str = "CT", info: VolumeInfo | None = None
) -> Volume:
    """Wrap a 3D SimpleITK image as a `Volume` (the voxel array is copied)."""
    if image.GetDimension() != 3:
        raise GeometryError(f"expected a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise GeometryError(
            f"expected one value per voxel, got {image.GetNumberOfComponentsPerPixel()} "
            "(a colour or vector image)"
        )
    return Volume(
        array=sitk.GetArrayFromImage(image),
        origin_lps=np.array(image.GetOrigin()),
        spacing_xyz=np.array(image.GetSpacing()),
        direction=np.array(image.GetDirection()).reshape(3, 3),
        modality=modality,
        info=info or VolumeInfo(),
    )


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """A SimpleITK image with the volume's voxels and geometry (bool becomes uint8)."""
    array = volume.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetOrigin(tuple(float(v) for v in volume.origin_lps))
    image.SetSpacing(tuple(float(v) for v in volume.spacing_xyz))
    image.SetDirection(tuple(float(v) for v in volume.direction.reshape(-1)))
    return image


def _resample(volume: Volume, reference: sitk.Image, interpolator: str, default_value) -> Volume:
    if interpolator not in _INTERPOLATORS:
        raise ValueError(
            f"interpolator must be one of {sorted(_INTERPOLATORS)}, got {interpolator!r}"
        )
    image = volume_to_sitk(volume)
    if default_value is None:
        default_value = float(volume.array.min()) if volume.array.dtype != bool else 0.0
    resampled = sitk.Resample(
        image,
        reference,
        sitk.Transform(),
        _INTERPOLATORS[interpolator],
        float(default_value),
        image.GetPixelID(),
    )
    result = volume_from_sitk(resampled, volume.modality, volume.info)
    if volume.array.dtype == bool:
        result = result.with_array(result.array.astype(bool))
    return result


def resample_like(
    volume: Volume, grid: Volume, interpolator: str = "linear", default_value=None
) -> Volume:
    """Resample ``volume`` onto the grid (shape, origin, spacing, direction) of ``grid``."""
    return _resample(
        volume,
        volume_to_sitk(grid.with_array(np.zeros(grid.array.shape, np.uint8))),
        interpolator,
        default_value,
    )


def make_grid(origin_lps, spacing_xyz, direction, shape_ijk) -> sitk.Image:
    """An empty SimpleITK reference image describing a grid (for resampling)."""
    shape_ijk = [int(n) for n in shape_ijk]
    if min(shape_ijk) < 1:
        raise GeometryError(f"grid must have at least one voxel per axis, got {shape_ijk}")
    reference = sitk.Image(shape_ijk, sitk.sitkUInt8)
    reference.SetOrigin(tuple(float(v) for v in origin_lps))
    reference.SetSpacing(tuple(float(v) for v in spacing_xyz))
    reference.SetDirection(tuple(float(v) for v in np.asarray(direction, float).reshape(-1)))
    return reference


def resample_to_spacing(
    volume: Volume, spacing_xyz, interpolator: str = "linear", default_value=None
) -> Volume:
    """Resample onto a new spacing (mm), keeping origin, direction and physical extent."""
    spacing = np.asarray(spacing_xyz, dtype=float).reshape(-1)
    if spacing.size == 1:
        spacing = np.repeat(spacing, 3)
    if np.any(spacing <= 0):
        raise GeometryError(f"spacing must be positive, got {spacing.tolist()} mm")
    extent = np.asarray(volume.shape_ijk) * volume.spacing_xyz
    shape = np.maximum(1, np.round(extent / spacing)).astype(int)
    # Keep the physical box: the first voxel centre moves by half the change in voxel size.
    shift_ijk = (spacing - volume.spacing_xyz) / 2.0
    origin = volume.origin_lps + volume.direction @ shift_ijk
    reference = make_grid(origin, spacing, volume.direction, shape)
    return _resample(volume, reference, interpolator, default_value)


def resample_to_lps_grid(
    volume: Volume,
    spacing_mm: float | None = None,
    interpolator: str = "linear",
    default_value=None,
) -> Volume:
    """Resample onto an axis-aligned LPS grid (identity direction) covering the whole volume.

    This is how algorithms become independent of how a scan was stored: any axis order, flips or
    oblique direction cosines give the same grid up to the bounding box of the data.

    Parameters
    ----------
    spacing_mm : float, optional
        Isotropic voxel size of the new grid. Default: the volume's smallest spacing.
    """
    spacing = float(spacing_mm if spacing_mm is not None else volume.spacing_xyz.min())
    half_voxel = 0.5 * (volume.direction * volume.spacing_xyz[np.newaxis, :])
    corners = volume.corners_lps()
    # Grow the box by half a voxel in every index direction so edge voxels are kept whole.
    extent_pad = np.abs(half_voxel).sum(axis=1)
    low = corners.min(axis=0) - extent_pad
    high = corners.max(axis=0) + extent_pad
    shape = np.maximum(1, np.ceil((high - low) / spacing - 1e-6)).astype(int)
    origin = low + spacing / 2.0
    reference = make_grid(origin, [spacing] * 3, np.eye(3), shape)
    return _resample(volume, reference, interpolator, default_value)


def reorient_to_lps(volume: Volume) -> Volume:
    """Permute and flip axes (no interpolation) so i, j, k point as near as possible to L, P, S.

    Exact for axis-aligned volumes; an oblique volume keeps its residual rotation in ``direction``.
    """
    image = sitk.DICOMOrient(volume_to_sitk(volume), "LPS")
    result = volume_from_sitk(image, volume.modality, volume.info)
    if volume.array.dtype == bool:
        result = result.with_array(result.array.astype(bool))
    return result
