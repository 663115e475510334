"""Rigid registration of an MRI to the CT of the same patient, with a quality report.

Method (SimpleITK ``ImageRegistrationMethod``): the CT is the fixed image, cropped to the sacrum
plus a margin and resampled to :data:`FIXED_SPACING_MM`; the metric (Mattes mutual information,
which needs no relation between HU and MR units) is sampled only inside the sacrum grown by
:data:`MASK_MARGIN_MM`, so the sacrum drives the fit and a moved leg or bowel does not. The start
is sacrum-centred: the rotation centre is the CT sacrum's centre, the start translation puts it
on the centre of the MR field of view and (when known) on the MR sacrum, and a coarse exhaustive
search over translations (:data:`SEARCH_STEPS` x :data:`SEARCH_STEP_MM` per axis), then over
rotations (:data:`ROTATION_STEP_DEG` either side about each axis) picks the best start before
a gradient descent refines rotation and translation on two coarse levels. The last, full-
resolution fit swaps the roles (MR fixed, sampled at the voxels it measured; CT moving, masked
by its sacrum): thick MR slices interpolated as a moving image bias mutual information towards
the slice grid by one to two degrees.

The result says how far it can be trusted: the final metric, the overlap (Dice) of the sacrum
found on each image after mapping (T1 only), whether the CT cortex falls on dark MR cortex,
whether the transform sits at the optimum of the image similarity (any contrast, see
:mod:`planner.mri.register_quality`), how much of the sacrum the MR covers, and a fused
MR-on-CT picture. Every failed check is a reason, and a
registration with any reason is not ``quality_ok``: the plan must carry it as a caution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from planner.errors import AnatomyNotFoundError
from planner.mri.fusion import fused_picture
from planner.mri.preprocess import check_modality, preprocess_mr
from planner.mri.register_quality import (
    CORTEX_HU_MIN,  # noqa: F401  (re-exported: the cortex check's limits)
    MARROW_DEPTH_MM,  # noqa: F401
    OptimumCheck,
    cortex_contrast,
    grown,
    mapped,
    mr_indices,
    optimum_check,
)
from planner.mri.transform import RigidTransform
from planner.sitk_bridge import resample_like, resample_to_spacing, volume_to_sitk
from planner.volume import Volume

#: Margin (mm) around the CT sacrum kept in the fixed image.
REGION_MARGIN_MM = 20.0
#: Voxel size (mm) of the fixed (CT) image the metric is computed on.
FIXED_SPACING_MM = 1.5
#: The metric is sampled inside the CT sacrum grown by this margin (mm): bone edges and the soft
#: tissue touching them carry the information.
MASK_MARGIN_MM = 8.0
#: The fine fit samples only CT points at least this far (mm) inside the MR's field of view
#: (after the coarse search), unless that leaves less than ``MIN_SAMPLED_SHARE`` of the sacrum.
FOV_EDGE_MARGIN_MM = 8.0
MIN_SAMPLED_SHARE = 0.3
#: CT window (HU) handed to the metric: air and metal extremes carry no sacral information.
CT_WINDOW_HU = (-200.0, 1300.0)
#: Threads of the registration (1: deterministic).
REGISTRATION_THREADS = 1
#: Mattes mutual information settings.
HISTOGRAM_BINS = 32
SAMPLING_SHARE = 0.3
SAMPLING_SEED = 20240601
#: Multi-resolution pyramid with the CT fixed: shrink factors and smoothing sigmas (mm), coarse
#: to fine; the full resolution is fitted with the MR fixed (see ``_refine_on_mr_grid``).
SHRINK_FACTORS = (4, 2)
SMOOTHING_SIGMAS_MM = (3.0, 1.5)
#: Gradient descent: first step (mm of the largest physical shift), smallest step, iterations.
LEARNING_RATE = 2.0
MIN_STEP = 1e-3
FINE_LEARNING_RATE = 1.0
MAX_ITERATIONS = 400
#: Coarse exhaustive search over start translations: steps either side and step size (mm).
SEARCH_STEPS = 3
SEARCH_STEP_MM = 8.0
#: ... then over start rotations about x, y and z: steps either side and step size (deg).
ROTATION_STEPS = 1
ROTATION_STEP_DEG = 8.0
SEARCH_SHRINK = 4
SEARCH_SIGMA_MM = 3.0

#: Quality limits (each failure is a reason, and makes the registration not quality_ok).
#: Sacrum overlap after mapping: the T1 sacrum itself reaches Dice 0.8-0.9 against the truth
#: (thin laminae missed), so a lower overlap only flags a clear misalignment.
DICE_MIN = 0.70
COVERAGE_MIN = 0.60  # share of the CT sacrum inside the MR field of view
CORTEX_CONTRAST_MIN = 0.15  # MR beside the CT cortex minus MR at it, normalised units
ROTATION_MAX_DEG = 30.0  # larger rotations between two scans of a lying patient are implausible


@dataclass(frozen=True, eq=False)
class Registration:
    """A rigid MR-to-CT registration and its quality report.

    Attributes
    ----------
    mr_from_ct : RigidTransform
        Maps CT LPS points to MR LPS points (ITK's fixed -> moving convention).
    final_metric, start_metric : float
        Mattes mutual information (negative; lower is better) at the end and at the start.
    sacrum_dice : float or None
        Dice of the CT sacrum and the MR sacrum mapped onto the CT, inside the MR field of view
        (None when no MR sacrum was available).
    cortex_contrast : float or None
        Median MR (normalised) on the brighter side of the CT cortex (sacral interior, or a
        shell outside the sacrum) minus median MR at the CT's dense cortex: positive and large
        when the dark MR cortex lies on the CT cortex (any MR contrast, STIR included).
    coverage : float
        Share of the CT sacrum inside the MR field of view after mapping.
    optimum : OptimumCheck or None
        How far the image similarity's optimum lies from the transform (any MR contrast; None
        when too few MR voxels fall in the sacral region), see
        :func:`~planner.mri.register_quality.optimum_check`.
    fused_rgb : (H, W, 3) uint8 ndarray or None
        Sagittal MR-on-CT picture through the target (CT magenta, MR green, both white).
    fused_centre_lps : (3,) ndarray or None
        CT LPS point at the centre of ``fused_rgb`` (to draw the plan on it).
    quality_ok : bool
    reasons : tuple of str
        Why the registration is not trusted (empty when ``quality_ok``).
    stop_condition : str
    iterations : int
    seconds : float
    """

    mr_from_ct: RigidTransform
    final_metric: float
    start_metric: float
    sacrum_dice: float | None
    cortex_contrast: float | None
    coverage: float
    optimum: OptimumCheck | None
    fused_rgb: np.ndarray | None
    quality_ok: bool
    reasons: tuple[str, ...]
    stop_condition: str
    iterations: int
    seconds: float
    fused_centre_lps: np.ndarray | None = None

    def caution_reasons(self) -> list[str]:
        """Reasons in the words a plan's ``caution`` carries (empty when quality_ok)."""
        return [f"MRI-to-CT registration: {reason}" for reason in self.reasons]

    def report(self) -> dict:
        """Plain-JSON quality report."""
        def rounded(value, digits=3):
            return None if value is None else round(float(value), digits)

        return {
            "transform": {
                "rotation": np.round(self.mr_from_ct.rotation, 6).tolist(),
                "offset_mm": np.round(self.mr_from_ct.offset_mm, 3).tolist(),
                "rotation_deg": rounded(self.mr_from_ct.angle_deg, 2),
                "convention": "mr_lps = rotation @ ct_lps + offset_mm",
            },
            "final_metric": rounded(self.final_metric, 4),
            "start_metric": rounded(self.start_metric, 4),
            "sacrum_dice": rounded(self.sacrum_dice),
            "cortex_contrast": rounded(self.cortex_contrast),
            "coverage": rounded(self.coverage),
            "optimum_offset_mm": None if self.optimum is None else rounded(
                min(self.optimum.offset_mm, 1e6), 2),
            "optimum_offset_deg": None if self.optimum is None else rounded(
                min(self.optimum.offset_deg, 1e6), 2),
            "quality_ok": self.quality_ok,
            "reasons": list(self.reasons),
            "stop_condition": self.stop_condition,
            "iterations": self.iterations,
            "seconds": rounded(self.seconds, 2),
        }


# ------------------------------------------------------------------------------ images
def _fixed_region(ct: Volume, ct_sacrum: Volume) -> tuple[Volume, Volume]:
    """CT cropped to the sacrum + margin, resampled; and the sacrum on that grid."""
    sacrum_on_ct = ct_sacrum if ct_sacrum.same_grid(ct) else resample_like(
        ct_sacrum, ct, "nearest", default_value=0)
    mask = np.asarray(sacrum_on_ct.array) > 0
    if not mask.any():
        raise AnatomyNotFoundError("the CT sacrum mask is empty: registration needs the sacrum")
    crop = ct.crop_to_mask(mask, REGION_MARGIN_MM)
    crop = crop.with_array(np.clip(crop.array.astype(np.float32), *CT_WINDOW_HU))
    fixed = resample_to_spacing(crop, FIXED_SPACING_MM, "linear", default_value=CT_WINDOW_HU[0])
    sacrum = resample_like(sacrum_on_ct.with_array(mask), fixed, "nearest", default_value=0)
    return fixed, sacrum


def _centre_lps(mask: Volume) -> np.ndarray:
    k, j, i = np.nonzero(np.asarray(mask.array) > 0)
    return mask.index_to_lps(np.stack([i, j, k], axis=1).astype(float)).mean(axis=0)


def _method(fixed_mask: sitk.Image | None) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    # One thread: multi-threaded metric sums change with thread scheduling, and so would the
    # result (by up to a millimetre); the same input must give the same plan.
    method.SetNumberOfThreads(REGISTRATION_THREADS)
    method.SetMetricAsMattesMutualInformation(HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING_SHARE, SAMPLING_SEED)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    method.SetInterpolator(sitk.sitkLinear)
    return method


# ------------------------------------------------------------------------------ public API
def register_mr_to_ct(
    ct: Volume,
    mr: Volume,
    ct_sacrum: Volume | None = None,
    mr_sacrum: Volume | None = None,
    target_lps=None,
    preprocessed: bool = False,
    contrast: str | None = None,
) -> Registration:
    """Rigidly register an MRI (moving) to a CT (fixed) of the same patient.

    Parameters
    ----------
    ct : Volume
        CT in HU (modality ``"CT"``), any grid.
    mr : Volume
        MR (modality ``"MR"``): T1, T2 or STIR, any grid (thick oblique sagittal slices fine).
    ct_sacrum : Volume (bool), optional
        Sacrum on the CT (e.g. ``anatomy.sacrum``); segmented here when not given.
    mr_sacrum : Volume (bool), optional
        Sacrum on the MR, for the start and the overlap check. Found here on T1 when not given
        and ``contrast == "T1"``.
    target_lps : (3,) float, optional
        CT LPS point the fused picture passes through (default: the CT sacrum's centre).
    preprocessed : bool
        True if ``mr`` already went through :func:`~planner.mri.preprocess.preprocess_mr`.
    contrast : {"T1", "T2", "STIR"}, optional
        MR weighting when known (enables the T1 sacrum overlap check).

    Returns
    -------
    Registration

    Raises
    ------
    UnsupportedInputError
        A CT where the MR is expected or the reverse.
    AnatomyNotFoundError
        No sacrum on the CT.
    """
    check_modality(ct, "CT", "the CT")
    check_modality(mr, "MR", "the MRI")
    started = time.perf_counter()
    if ct_sacrum is None:
        from planner.anatomy.sacrum import segment_sacrum

        ct_sacrum = segment_sacrum(ct).mask
    prepared = mr if preprocessed else preprocess_mr(mr)
    if mr_sacrum is None and (contrast or "").upper() == "T1":
        mr_sacrum = _t1_sacrum(prepared)
    fixed, fixed_sacrum = _fixed_region(ct, ct_sacrum)
    fixed_image = volume_to_sitk(fixed)
    moving_image = volume_to_sitk(prepared.with_array(prepared.array.astype(np.float32)))
    mask_image = volume_to_sitk(fixed.with_array(grown(fixed_sacrum, MASK_MARGIN_MM)
                                                 .astype(np.uint8)))
    centre = _centre_lps(fixed_sacrum)
    starts = [prepared.center_lps()]
    if mr_sacrum is not None:
        starts.append(_centre_lps(mr_sacrum))
    transform, start_metric = _best_start(fixed_image, moving_image, mask_image, centre, starts)
    # Sample only where the MR surely covers, whatever the last millimetres of movement: points
    # falling in and out of the MR's field of view while the fit moves would bias the metric.
    covered = _inside_mr(prepared, _as_rigid(transform), fixed, FOV_EDGE_MARGIN_MM)
    sampled = grown(fixed_sacrum, MASK_MARGIN_MM) & covered
    if sampled.sum() >= MIN_SAMPLED_SHARE * np.count_nonzero(fixed_sacrum.array):
        mask_image = volume_to_sitk(fixed.with_array(sampled.astype(np.uint8)))
    method = _method(mask_image)
    method.SetOptimizerAsRegularStepGradientDescent(
        LEARNING_RATE, MIN_STEP, MAX_ITERATIONS, relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS_MM))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed_image, moving_image)
    mr_from_ct, fine = _refine_on_mr_grid(moving_image, fixed_image, fixed, fixed_sacrum,
                                          _as_rigid(transform))
    target = centre if target_lps is None else np.asarray(target_lps, float)
    return _assess(
        ct, prepared, fixed, fixed_sacrum, mr_from_ct, mr_sacrum, target,
        final_metric=float(fine.GetMetricValue()), start_metric=start_metric,
        stop=fine.GetOptimizerStopConditionDescription(),
        iterations=int(fine.GetOptimizerIteration()), started=started,
    )


def _refine_on_mr_grid(mr_image: sitk.Image, ct_image: sitk.Image, fixed: Volume,
                       fixed_sacrum: Volume, mr_from_ct: RigidTransform):
    """Last stage with the roles swapped: MR fixed (sampled at its own voxels), CT moving.

    Thick MR slices interpolated as the moving image give intensities no scanner measured, and
    mutual information then favours alignments with the slice grid (interpolation bias, about
    1-2 deg here); sampling the MR where it was measured and interpolating the fine CT instead
    removes it. The CT sacrum (grown) is the moving mask, so the sacrum still drives the fit.
    """
    ct_from_mr = mr_from_ct.inverse()
    transform = sitk.Euler3DTransform()
    transform.SetCenter(tuple(float(v) for v in mr_from_ct.apply(mr_from_ct.centre_lps)))
    transform.SetMatrix(tuple(float(v) for v in ct_from_mr.rotation.ravel()))
    centre = np.asarray(transform.GetCenter())
    transform.SetTranslation(tuple(float(v) for v in ct_from_mr.apply(centre) - centre))
    method = _method(None)
    method.SetMetricMovingMask(volume_to_sitk(fixed.with_array(
        grown(fixed_sacrum, MASK_MARGIN_MM).astype(np.uint8))))
    method.SetOptimizerAsRegularStepGradientDescent(
        FINE_LEARNING_RATE, MIN_STEP, MAX_ITERATIONS, relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([1])
    method.SetSmoothingSigmasPerLevel([0.0])
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(mr_image, ct_image)
    return _as_rigid(transform).inverse(), method


def _as_rigid(transform: sitk.Euler3DTransform) -> RigidTransform:
    return RigidTransform(np.asarray(transform.GetMatrix()).reshape(3, 3),
                          np.asarray(transform.GetTranslation()),
                          np.asarray(transform.GetCenter()))


def _inside_mr(mr: Volume, mr_from_ct: RigidTransform, grid: Volume, margin_mm: float):
    """CT-grid voxels that map at least ``margin_mm`` inside the MR's field of view."""
    coordinates = mr_indices(mr, mr_from_ct, grid)  # (k, j, i)
    room = np.full(grid.array.shape, np.inf, np.float32)
    for axis, size in enumerate(mr.array.shape):
        spacing = mr.spacing_xyz[2 - axis]
        room = np.minimum(room, np.minimum(coordinates[axis], size - 1 - coordinates[axis])
                          * spacing)
    return room >= margin_mm


def _t1_sacrum(prepared: Volume) -> Volume | None:
    from planner.mri.sacrum_t1 import find_sacrum_t1

    try:
        return find_sacrum_t1(prepared, preprocessed=True).mask
    except AnatomyNotFoundError:
        return None


def _best_start(fixed, moving, mask, centre_lps, starts_lps):
    """Coarse search from each start point (the MR centre, the MR sacrum's centre); the start
    with the best metric wins (same fixed samples, so the metrics compare)."""
    best, best_metric = None, np.inf
    for start in starts_lps:
        transform = sitk.Euler3DTransform()
        transform.SetCenter(tuple(float(v) for v in centre_lps))
        transform.SetTranslation(tuple(float(v) for v in np.asarray(start) - centre_lps))
        metric = _coarse_search(fixed, moving, mask, transform)
        if best is None or (np.isfinite(metric) and metric < best_metric):
            best, best_metric = transform, metric
    return best, float(best_metric)


def _coarse_search(fixed, moving, mask, transform: sitk.Euler3DTransform) -> float:
    """Exhaustive search of the start: translations first, then rotations; updates ``transform``.

    Returns the metric at the chosen start (NaN if every candidate left the MR).
    """
    metric = float("nan")
    for steps, step_length in (
        ([0, 0, 0, SEARCH_STEPS, SEARCH_STEPS, SEARCH_STEPS], SEARCH_STEP_MM),
        ([ROTATION_STEPS] * 3 + [0, 0, 0], np.deg2rad(ROTATION_STEP_DEG)),
    ):
        method = _method(mask)
        method.SetOptimizerAsExhaustive(steps, stepLength=float(step_length))
        method.SetOptimizerScales([1.0] * 6)
        method.SetShrinkFactorsPerLevel([SEARCH_SHRINK])
        method.SetSmoothingSigmasPerLevel([SEARCH_SIGMA_MM])
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        before = transform.GetParameters()
        method.SetInitialTransform(transform, inPlace=True)
        try:
            method.Execute(fixed, moving)
            metric = float(method.GetMetricValue())
        except RuntimeError:
            # Some candidates leave the MR entirely; keep the start this stage began with.
            transform.SetParameters(before)
    return metric


# ------------------------------------------------------------------------------ quality
def assess_registration(
    ct: Volume,
    mr: Volume,
    mr_from_ct: RigidTransform,
    ct_sacrum: Volume,
    mr_sacrum: Volume | None = None,
    target_lps=None,
    preprocessed: bool = False,
) -> Registration:
    """Quality report of a given MR-to-CT transform (e.g. one from another program).

    Same checks as :func:`register_mr_to_ct` (sacrum overlap, cortex contrast, coverage,
    plausibility); the metric fields are NaN and no optimisation is run.
    """
    check_modality(ct, "CT", "the CT")
    check_modality(mr, "MR", "the MRI")
    started = time.perf_counter()
    prepared = mr if preprocessed else preprocess_mr(mr)
    fixed, fixed_sacrum = _fixed_region(ct, ct_sacrum)
    target = _centre_lps(fixed_sacrum) if target_lps is None else np.asarray(target_lps, float)
    return _assess(ct, prepared, fixed, fixed_sacrum, mr_from_ct, mr_sacrum, target,
                   final_metric=float("nan"), start_metric=float("nan"), stop="not optimised",
                   iterations=0, started=started)


def _assess(ct, prepared, fixed, fixed_sacrum, mr_from_ct, mr_sacrum, target, *,
            final_metric, start_metric, stop, iterations, started) -> Registration:
    sacrum = np.asarray(fixed_sacrum.array, bool)
    inside = mapped(prepared.with_array(np.ones(prepared.array.shape, np.float32)),
                     mr_from_ct, fixed, 0, 0.0) > 0.5
    coverage = float(np.mean(inside[sacrum]))
    dice = None
    if mr_sacrum is not None:
        on_ct = mapped(mr_sacrum.with_array(np.asarray(mr_sacrum.array, np.float32)),
                         mr_from_ct, fixed, 1, 0.0) >= 0.5
        overlap = float(np.sum(on_ct & sacrum & inside))
        dice = 2.0 * overlap / max(float(np.sum(on_ct & inside) + np.sum(sacrum & inside)), 1.0)
    mr_on_ct = mapped(prepared, mr_from_ct, fixed, 1, np.nan)
    contrast = cortex_contrast(fixed, sacrum, mr_on_ct)
    optimum = optimum_check(prepared, fixed, grown(fixed_sacrum, MASK_MARGIN_MM) & inside,
                            mr_from_ct, _centre_lps(fixed_sacrum))
    reasons = []
    if coverage < COVERAGE_MIN:
        reasons.append(f"the MRI covers only {100 * coverage:.0f}% of the sacrum "
                       f"(< {100 * COVERAGE_MIN:.0f}%)")
    if dice is not None and dice < DICE_MIN:
        reasons.append(f"sacrum overlap (Dice) after registration {dice:.2f} < {DICE_MIN:.2f}")
    if contrast is None or contrast < CORTEX_CONTRAST_MIN:
        shown = "unmeasurable" if contrast is None else f"{contrast:.2f}"
        reasons.append(f"the CT cortex does not fall on dark MR cortex (contrast {shown} < "
                       f"{CORTEX_CONTRAST_MIN:.2f}): bones misaligned")
    if optimum is None:
        reasons.append("too little of the MRI overlaps the sacrum to check that it is at its "
                       "best match with the CT")
    elif not optimum.ok:
        reasons.append(optimum.reason())
    if mr_from_ct.angle_deg > ROTATION_MAX_DEG:
        reasons.append(f"rotation between the scans {mr_from_ct.angle_deg:.0f} deg > "
                       f"{ROTATION_MAX_DEG:.0f} deg is implausible")
    if iterations >= MAX_ITERATIONS:
        reasons.append("the optimiser stopped at its iteration limit without converging")
    fused = fused_picture(ct, prepared, mr_from_ct, target)
    return Registration(
        mr_from_ct=mr_from_ct, final_metric=final_metric, start_metric=start_metric,
        sacrum_dice=dice, cortex_contrast=contrast, coverage=coverage, optimum=optimum,
        fused_rgb=fused,
        quality_ok=not reasons, reasons=tuple(reasons), stop_condition=stop,
        iterations=iterations, seconds=time.perf_counter() - started,
        fused_centre_lps=np.asarray(target, float),
    )
