"""MR intensity preparation: modality check, body mask, N4 bias correction, robust scaling.

MR values are in arbitrary scanner units, shaded by the coil's receive field. The planner never
reads them as HU: it first removes the slowly varying bias (N4, fitted on a shrunk copy and
applied at full resolution through its log field, so it takes seconds) and then scales the body's
intensities by robust percentiles, so that 0 is the body's dark end and 1 its bright end.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from planner.errors import UnsupportedInputError
from planner.sitk_bridge import volume_from_sitk, volume_to_sitk
from planner.volume import Volume

#: Shrink factor of the image N4 is fitted on (per axis; thick MR slices are not shrunk below 1).
N4_SHRINK = 4
#: N4 fitting iterations at each of its resolution levels.
N4_ITERATIONS = (40, 30, 20)
#: Mesh size of N4's B-spline at its first level (control-point spans per axis).
N4_CONTROL_POINTS = 4
#: Percentiles (of voxels in the body) mapped to 0 and 1 by the robust scaling.
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
#: Body mask: smoothing (mm) before Otsu, and closing radius (mm) after.
BODY_SMOOTHING_MM = 2.0
BODY_CLOSING_MM = 6.0
#: Body = smoothed values above this share of the bright end (``BRIGHT_PERCENTILE``).
BODY_FRACTION_OF_BRIGHT = 0.1
BRIGHT_PERCENTILE = 98.0
#: Smallest body-mask share of the volume accepted before falling back to "everything".
MIN_BODY_FRACTION = 0.02
#: Note recorded in ``info.notes`` of a prepared MR.
PREPROCESSED_NOTE = "MR bias corrected (N4) and scaled by body percentiles"

#: What each modality looks like to a user, for the messages of :func:`check_modality`.
_WHAT = {"CT": "a CT (Hounsfield units)", "MR": "an MRI"}


def check_modality(volume: Volume, expected: str, where: str = "the image") -> None:
    """Refuse a volume of the wrong modality with a message that says which is which.

    Parameters
    ----------
    volume : Volume
    expected : {"CT", "MR"}
    where : str
        Name of the argument or file, for the message (e.g. ``"CT argument scan/"``).

    Raises
    ------
    UnsupportedInputError
        ``volume.modality`` differs from ``expected``, or (for a volume labelled CT, as files
        without a modality tag are) its values cannot be Hounsfield units.
    """
    expected = expected.upper()
    if expected not in _WHAT:
        raise ValueError(f"expected must be 'CT' or 'MR', got {expected!r}")
    modality = volume.modality.upper()
    if modality != expected:
        raise UnsupportedInputError(
            f"{where} is {_WHAT.get(modality, modality)}, but {_WHAT[expected]} is expected "
            f"here; {_fix(expected)}"
        )
    if expected == "MR" and has_hounsfield_air(volume):
        raise UnsupportedInputError(
            f"{where} holds Hounsfield units (air or fat far below 0), so it is a CT, not an "
            f"MRI; {_fix('MR')}"
        )
    if expected == "CT" and not looks_like_ct(volume):
        raise UnsupportedInputError(
            f"{where} does not look like a CT: its values are not Hounsfield units (no bone "
            "above 150 HU, or no fat or air below -50 HU); if it is an MRI, "
            f"{_fix('MR')}"
        )


def _fix(expected: str) -> str:
    if expected == "CT":
        return ("give the CT as the main input and the MRI with --mri, or plan on the MRI alone "
                "with --modality MR (NIfTI files carry no modality: they load as CT unless "
                "loaded with modality='MR')")
    return "give the MRI with --mri and the CT as the main input"


#: Values read to judge a volume's units (every n-th voxel): enough for its percentiles.
VALUE_SAMPLE_SIZE = 2_000_000


def _value_sample(volume: Volume) -> np.ndarray:
    values = np.asarray(volume.array)
    return values.reshape(-1)[:: max(1, values.size // VALUE_SAMPLE_SIZE)]


def _has_air_or_fat(sample: np.ndarray) -> bool:
    return bool(np.percentile(sample, 1.0) < -50.0)


def has_hounsfield_air(volume: Volume) -> bool:
    """True if at least 1 % of the values lie below -50: air or fat in HU, never MR units."""
    return _has_air_or_fat(_value_sample(volume))


def looks_like_ct(volume: Volume) -> bool:
    """True if the values can be HU: bone above 150 HU, and fat or air below -50 HU or a
    zeroed background.

    MR values are non-negative scanner units; a CT holds fat (about -100 HU) and air (-1000 HU),
    or (bone-only exports) a background of exactly 0 with bone above 150 HU.
    """
    sample = _value_sample(volume)
    has_bone = np.percentile(sample, 99.5) > 150.0
    zero_background = np.mean(sample == 0) > 0.3
    return bool(has_bone and (_has_air_or_fat(sample) or zero_background))


def body_mask(volume: Volume) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of the body on an MR (Otsu on a smoothed copy, holes filled).

    Falls back to every voxel when the result is implausibly small.
    """
    array = np.asarray(volume.array, np.float32)
    sigma_kji = (BODY_SMOOTHING_MM / volume.spacing_xyz)[::-1]
    smooth = ndimage.gaussian_filter(array, sigma_kji)
    # Air is noise near zero; every tissue, even dark muscle, is well above a tenth of the
    # bright end (fat, marrow, fluid). Cortex, tendons and air pockets inside are filled below.
    mask = smooth > BODY_FRACTION_OF_BRIGHT * np.percentile(smooth, BRIGHT_PERCENTILE)
    mask = closed(mask, BODY_CLOSING_MM, volume.spacing_xyz)
    mask = _fill_holes_per_slice(mask)
    if mask.mean() < MIN_BODY_FRACTION:
        return np.ones(array.shape, bool)
    return mask


def closed(mask: np.ndarray, radius_mm: float, spacing_xyz) -> np.ndarray:
    """Morphological closing by a ball of ``radius_mm`` (exact, from two distance maps).

    The volume is padded by the radius first so that the border does not erode what it cut.
    """
    sampling = np.asarray(spacing_xyz, float)[::-1]
    pad = np.ceil(radius_mm / sampling).astype(int) + 1
    padded = np.pad(mask, [(p, p) for p in pad])
    grown = ndimage.distance_transform_edt(~padded, sampling=sampling) <= radius_mm
    shrunk = ndimage.distance_transform_edt(grown, sampling=sampling) > radius_mm
    inner = tuple(slice(p, p + n) for p, n in zip(pad, mask.shape, strict=True))
    return shrunk[inner] | mask


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill holes in 3D and in every slice of the thickest axis (open-ended tubes stay filled)."""
    filled = ndimage.binary_fill_holes(mask)
    for axis in range(3):
        for index in range(filled.shape[axis]):
            section = np.take(filled, index, axis=axis)
            filled_section = ndimage.binary_fill_holes(section)
            slicer = [slice(None)] * 3
            slicer[axis] = index
            filled[tuple(slicer)] = filled_section
    return filled


def n4_bias_correct(volume: Volume, mask: np.ndarray | None = None) -> Volume:
    """Remove the MR bias field with N4, fitted on a shrunk image and applied at full size.

    Parameters
    ----------
    volume : Volume
        MR, any positive scanner units.
    mask : (K, J, I) bool, optional
        Where to fit (default :func:`body_mask`).

    Returns
    -------
    Volume
        Same grid, float32: ``volume / exp(log_bias)``.
    """
    mask = body_mask(volume) if mask is None else np.asarray(mask, bool)
    floor = np.float32(max(float(np.percentile(volume.array[mask], 0.1)), 1e-3))
    positive = volume.with_array(np.maximum(np.asarray(volume.array, np.float32), floor))
    image = volume_to_sitk(positive)
    mask_image = volume_to_sitk(volume.with_array(mask.astype(np.uint8)))
    shrink = [int(max(1, min(N4_SHRINK, round(N4_SHRINK / s * min(volume.spacing_xyz)))))
              for s in volume.spacing_xyz]
    small = sitk.Shrink(image, shrink)
    small_mask = sitk.Shrink(mask_image, shrink)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations(list(N4_ITERATIONS))
    corrector.SetNumberOfControlPoints([N4_CONTROL_POINTS] * 3)
    corrector.Execute(small, small_mask)
    log_bias = volume_from_sitk(corrector.GetLogBiasFieldAsImage(image), "MR").array
    corrected = positive.array / np.exp(log_bias).astype(np.float32)
    return volume.with_array(corrected.astype(np.float32))


def normalise_mr(volume: Volume, mask: np.ndarray | None = None) -> Volume:
    """Scale so the body's 1st and 99th percentiles map to 0 and 1 (float32; not clipped)."""
    mask = body_mask(volume) if mask is None else np.asarray(mask, bool)
    values = np.asarray(volume.array, np.float32)[mask]
    low, high = np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE])
    scale = max(float(high - low), 1e-6)
    return volume.with_array(((np.asarray(volume.array, np.float32) - low) / scale)
                             .astype(np.float32))


def preprocess_mr(volume: Volume, bias_correct: bool = True) -> Volume:
    """N4 bias correction then robust normalisation of an MR (see module docstring).

    Parameters
    ----------
    volume : Volume
        An MR (``modality == "MR"``), any grid.
    bias_correct : bool
        Skip N4 when False (e.g. an already corrected image).

    Returns
    -------
    Volume
        Same grid, float32, body values mostly in [0, 1]; a note in ``info.notes``.

    Raises
    ------
    UnsupportedInputError
        If the volume is not an MR.
    """
    check_modality(volume, "MR", "the MRI")
    mask = body_mask(volume)
    corrected = n4_bias_correct(volume, mask) if bias_correct else volume
    result = normalise_mr(corrected, mask)
    info = replace(result.info, notes=(*result.info.notes, PREPROCESSED_NOTE))
    return replace(result, info=info)
