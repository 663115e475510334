"""Turn a DICOM slice stack that is not a regular grid into one.

Two irregularities are handled, both from the slice positions alone:

* gantry tilt: slices are parallel but their origins drift sideways in their own plane (they are
  stacked along the table, not along the slice normal). Each slice is moved in-plane by its
  drift (linear interpolation) onto a common in-plane grid that covers every slice; the result
  is an orthogonal grid whose k axis is the slice normal and whose slice spacing is the true
  distance between slice planes. Corners no slice covers get ``fill_value`` (air).
* uneven spacing or missing slices: new slices at a regular step are interpolated linearly
  between the two acquired slices that bracket them.

A stack (n slices of arbitrary in-plane drift and normal position) is not a grid a `Volume` or
a SimpleITK image can describe, so this resampling works on the raw stack with scipy rather than
through :mod:`planner.sitk_bridge`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.dicom_geometry import SliceStack

#: Slack when comparing fractional positions to whole pixels / slices.
_EPSILON = 1e-6
#: In-plane drifts closer than this to a whole number of pixels are that whole number.
_WHOLE_PIXEL = 1e-3


@dataclass(frozen=True)
class RegularGrid:
    """A stack resampled onto a regular grid.

    ``array`` is ``(K, J, I)`` float32; ``origin_lps`` the LPS centre (mm) of voxel (0, 0, 0);
    ``spacing_xyz`` mm along i, j, k; ``direction`` the stack's direction.
    """

    array: np.ndarray
    origin_lps: np.ndarray
    spacing_xyz: np.ndarray
    direction: np.ndarray


def untilt(
    stack: SliceStack, array: np.ndarray, fill_value: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shift each slice in-plane by its drift so all slices share one in-plane grid.

    Parameters
    ----------
    array : (n, rows, cols) ndarray
        Slices in stack order.

    Returns
    -------
    shifted : (n, rows', cols') float32 ndarray
        Slices on the common grid, which covers every slice.
    origin_offset_mm : (2,) ndarray
        Position of the common grid's first pixel relative to the first slice's, along i and j.
    """
    drift_pixels_ij = stack.inplane_mm / stack.pixel_spacing_ij[np.newaxis, :]
    # Decimal rounding of ImagePositionPatient leaves drifts like 5e-7 pixel; taken literally,
    # they would push a whole row or column of every slice off the grid's edge.
    whole = np.rint(drift_pixels_ij)
    drift_pixels_ij = np.where(
        np.abs(drift_pixels_ij - whole) < _WHOLE_PIXEL, whole, drift_pixels_ij
    )
    low_ij = np.floor(drift_pixels_ij.min(axis=0) + _EPSILON).astype(int)
    high_ij = np.ceil(drift_pixels_ij.max(axis=0) - _EPSILON).astype(int)
    n, rows, cols = array.shape
    out_shape = (rows + high_ij[1] - low_ij[1], cols + high_ij[0] - low_ij[0])
    shifted = np.empty((n, *out_shape), dtype=np.float32)
    for s in range(n):
        # output[j', i'] = slice[j' + low_j - drift_j, i' + low_i - drift_i]
        offset_ji = (low_ij - drift_pixels_ij[s])[::-1]
        ndimage.affine_transform(
            array[s].astype(np.float32, copy=False),
            np.eye(2),
            offset=offset_ji,
            output_shape=out_shape,
            output=shifted[s],
            order=1,
            mode="constant",
            cval=fill_value,
        )
    return shifted, low_ij * stack.pixel_spacing_ij


def resample_along_normal(
    normal_mm: np.ndarray, array: np.ndarray, step_mm: float
) -> tuple[np.ndarray, float]:
    """Interpolate slices at a regular step between the first and last acquired slice.

    Parameters
    ----------
    normal_mm : (n,) ndarray
        Ascending slice positions along the normal, mm.
    array : (n, rows, cols) ndarray
    step_mm : float
        New slice spacing.

    Returns
    -------
    (m, rows, cols) float32 ndarray, and the position (mm) of its first slice.
    """
    count = int(np.floor((normal_mm[-1] - normal_mm[0]) / step_mm + _EPSILON)) + 1
    targets_mm = normal_mm[0] + step_mm * np.arange(count)
    upper = np.clip(np.searchsorted(normal_mm, targets_mm, side="right"), 1, len(normal_mm) - 1)
    lower = upper - 1
    weight = (targets_mm - normal_mm[lower]) / (normal_mm[upper] - normal_mm[lower])
    weight = np.clip(weight, 0.0, 1.0).astype(np.float32)
    result = np.empty((count, *array.shape[1:]), dtype=np.float32)
    for t in range(count):
        result[t] = (1 - weight[t]) * array[lower[t]] + weight[t] * array[upper[t]]
    return result, float(targets_mm[0])


def regularise(
    stack: SliceStack, array: np.ndarray, fill_value: float, resample: bool
) -> RegularGrid:
    """A regular grid from a stack: tilt removed if present, slices resampled if asked.

    Parameters
    ----------
    array : (n, rows, cols) ndarray
        Modality values in stack order.
    resample : bool
        Interpolate slices at the median step (for gaps or uneven spacing); otherwise the
        slices are kept and the spacing is the mean step.
    """
    origin_lps = stack.origin_lps.copy()
    if stack.is_tilted:
        array, offset_mm = untilt(stack, array, fill_value)
        origin_lps = origin_lps + stack.direction[:, :2] @ offset_mm
    if resample:
        step_mm = stack.median_step_mm
        array, first_mm = resample_along_normal(stack.normal_mm, array, step_mm)
    else:
        step_mm = stack.regular_step_mm()
        first_mm = float(stack.normal_mm[0])
    # Put the origin on the plane of the first (possibly new) slice.
    origin_lps = origin_lps + stack.direction[:, 2] * (first_mm - stack.normal_mm[0])
    spacing_xyz = np.array([*stack.pixel_spacing_ij, step_mm], dtype=float)
    return RegularGrid(np.asarray(array, np.float32), origin_lps, spacing_xyz, stack.direction)
