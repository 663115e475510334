"""Quality checks of an MR-to-CT registration that hold on every MR contrast (T1, T2, STIR).

Two checks live here (the sacrum overlap, coverage and plausibility checks stay in
:mod:`planner.mri.register`):

* **cortex contrast**: the MR must be dark where the CT has dense cortex (cortical bone gives no
  MR signal in any weighting). It catches gross misalignments, but a shift of a few millimetres
  still leaves much of the thick CT cortex on dark MR (0.20 at 7 mm / 6 deg on T2 and STIR,
  above its 0.15 limit).
* **optimum check**: a correct registration sits at the optimum of the image similarity, so
  moving the MR a little either way along any axis makes the match worse, symmetrically. The
  Mattes mutual information (MR fixed, sampled at every MR voxel that falls in the CT sacrum
  grown by a margin; CT moving) is evaluated at the transform and at +-
  :data:`OPTIMUM_STEP_MM` along L, P and S and +- :data:`OPTIMUM_STEP_DEG` about them (about
  the CT sacrum's centre): 13 evaluations, no optimisation, all samples (deterministic). A
  parabola through the three values of each axis puts the similarity's optimum ``h (f- - f+) /
  (2 (f- - 2 f0 + f+))`` away; the estimated offset is the length of the three translation
  offsets (mm) and of the three rotation offsets (deg). A misregistration of 3 mm or 3 deg
  puts the optimum 3.8 mm / 2.4 deg or more away (or leaves no optimum inside the steps:
  ``f- - 2 f0 + f+ <= 0``, offset infinite); a registration within 1 mm and 1 deg of the truth
  keeps it within 2.3 mm / 1.4 deg (phantom pairs, T1, T2 and STIR; see ``benchmarks/
  bench_mri.py``). The offset is only an estimate (mutual information is not a parabola over
  millimetres), which is why its limit lies between those two groups and not at 1 mm.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from planner.mri.transform import RigidTransform
from planner.sitk_bridge import volume_to_sitk
from planner.volume import Volume

#: Dense cortex on CT (HU) and the interior depth (mm) used by the cortex check.
CORTEX_HU_MIN = 500.0
MARROW_DEPTH_MM = 3.0

#: Optimum check: steps along / about each LPS axis (mm, deg), about the CT sacrum's centre.
#: The translation step is the larger: the similarity falls off over millimetres more slowly
#: than the parabola assumes, and a 3 mm step keeps a 1 mm error's estimate near 1 mm.
OPTIMUM_STEP_MM = 3.0
OPTIMUM_STEP_DEG = 2.0
#: Largest estimated offset of the similarity's optimum (mm of translation, deg of rotation)
#: of a trusted registration. Calibrated on phantom pairs at 1 mm CT / 1.2 x 1.2 x 4 mm MR
#: (``python benchmarks/bench_mri.py --quality-only --skip-large``, 10 cases each of T1, T2 and
#: STIR): registrations found <= 0.3 mm / 0.4 deg; the truth moved 1 mm + 1 deg <= 2.3 mm /
#: 1.4 deg; found registrations moved 3 mm >= 3.8 mm, moved 3 deg >= 2.4 deg, moved 7 mm + 6 deg
#: >= 3.1 mm (or no optimum at all). Each limit sits between the two groups.
OPTIMUM_OFFSET_MAX_MM = 2.7
OPTIMUM_OFFSET_MAX_DEG = 1.8
#: Mattes mutual information histogram bins (as the registration) and the fewest MR samples.
OPTIMUM_HISTOGRAM_BINS = 32
OPTIMUM_MIN_SAMPLES = 1000
AXIS_NAMES = ("left-right", "anterior-posterior", "inferior-superior")


@dataclass(frozen=True)
class OptimumCheck:
    """Where the image similarity peaks, seen from a registration.

    Attributes
    ----------
    offset_mm : float
        Estimated distance (mm) from the registration to the similarity's optimum in
        translation (``inf`` when some axis has no optimum within the steps).
    offset_deg : float
        Same in rotation (deg).
    flat_axes : tuple of str
        Movements along / about which the similarity has no optimum within the steps.
    rises : (12,) float ndarray
        Metric at each step minus at the registration (positive: the step matches worse),
        ordered -x, +x, -y, +y, -z, +z translations then the same rotations.
    samples : int
        MR voxels the metric is evaluated on.
    seconds : float
    """

    offset_mm: float
    offset_deg: float
    flat_axes: tuple[str, ...]
    rises: np.ndarray
    samples: int
    seconds: float

    @property
    def ok(self) -> bool:
        return (self.offset_mm <= OPTIMUM_OFFSET_MAX_MM
                and self.offset_deg <= OPTIMUM_OFFSET_MAX_DEG)

    def reason(self) -> str | None:
        """Why the registration is not at the similarity's optimum (None when it is)."""
        if self.ok:
            return None
        if self.flat_axes:
            where = "; no optimum within the checked steps for the " + ", ".join(self.flat_axes)
        else:
            where = (f"; the best match lies about {self.offset_mm:.1f} mm and "
                     f"{self.offset_deg:.1f} deg away")
        return (f"the MRI is not at its best match with the CT (limit "
                f"{OPTIMUM_OFFSET_MAX_MM:.1f} mm / {OPTIMUM_OFFSET_MAX_DEG:.1f} deg{where}): "
                "bones likely misaligned by millimetres, the lesion target may be off")


# ------------------------------------------------------------------------------ sampling
def grown(mask: Volume, margin_mm: float) -> np.ndarray:
    """(K, J, I) bool: ``mask`` grown by ``margin_mm`` (Euclidean, in mm)."""
    outside = ndimage.distance_transform_edt(~np.asarray(mask.array, bool),
                                             sampling=mask.spacing_xyz[::-1])
    return outside <= margin_mm


def mr_indices(mr: Volume, mr_from_ct: RigidTransform, grid: Volume) -> np.ndarray:
    """(3, K, J, I) float32 MR indices, ordered (k, j, i), of the voxel centres of ``grid``.

    The chain CT index -> CT LPS -> MR LPS -> MR index is one affine map, evaluated as a sum of
    three broadcast 1D terms (no (N, 3) point arrays over millions of voxels).
    """
    affine = mr.index_from_world @ _homogeneous(mr_from_ct) @ grid.world_from_index
    shape = grid.array.shape
    axes = [np.arange(n, dtype=np.float32) for n in shape[::-1]]  # i, j, k
    out = np.empty((3, *shape), np.float32)
    for row, axis_out in zip(range(3), (2, 1, 0), strict=True):  # MR i, j, k -> kji order
        out[axis_out] = (
            affine[row, 0] * axes[0][None, None, :]
            + affine[row, 1] * axes[1][None, :, None]
            + affine[row, 2] * axes[2][:, None, None]
            + affine[row, 3]
        )
    return out


def _homogeneous(transform: RigidTransform) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = transform.rotation
    matrix[:3, 3] = transform.offset_mm
    return matrix


def mapped(volume: Volume, mr_from_ct: RigidTransform, grid: Volume, order: int,
           fill: float) -> np.ndarray:
    """Values of ``volume`` (MR frame) at the voxel centres of ``grid`` (CT frame)."""
    coordinates = mr_indices(volume, mr_from_ct, grid)
    array = volume.array.astype(np.float32) if volume.array.dtype == bool else volume.array
    return ndimage.map_coordinates(array, coordinates, order=order, mode="constant", cval=fill,
                                   prefilter=False)


# ------------------------------------------------------------------------------ checks
def cortex_contrast(fixed: Volume, sacrum: np.ndarray, mr_on_ct: np.ndarray) -> float | None:
    """How much darker the MR is at the CT's dense cortex than on either side of it: the larger
    of the medians of the sacral interior and of a shell just outside the sacrum, minus the
    median at the cortex. Cortical bone gives no MR signal in any weighting, while what lies on
    its bright side depends on it (marrow on T1 and T2; soft tissue on STIR, where the fatty
    marrow is suppressed)."""
    sampling = fixed.spacing_xyz[::-1]
    depth = ndimage.distance_transform_edt(sacrum, sampling=sampling)
    outside = ndimage.distance_transform_edt(~sacrum, sampling=sampling)
    finite = np.isfinite(mr_on_ct)
    interior = (depth >= MARROW_DEPTH_MM) & finite
    shell = ~sacrum & (outside <= MARROW_DEPTH_MM) & finite
    cortex = sacrum & (fixed.array >= CORTEX_HU_MIN) & (depth < MARROW_DEPTH_MM) & finite
    if interior.sum() < 10 or cortex.sum() < 10:
        return None
    sides = [np.median(mr_on_ct[interior])]
    if shell.sum() >= 10:
        sides.append(np.median(mr_on_ct[shell]))
    return float(max(sides) - np.median(mr_on_ct[cortex]))


def _steps(centre_lps: np.ndarray) -> list[RigidTransform]:
    """The 12 CT-side moves of the check: -+ each translation, then -+ each rotation."""
    moves = []
    for kind in ("translation", "rotation"):
        for axis in range(3):
            for sign in (-1.0, 1.0):
                vector = np.zeros(3)
                if kind == "translation":
                    vector[axis] = sign * OPTIMUM_STEP_MM
                    moves.append(RigidTransform.from_angles((0.0, 0.0, 0.0), vector, centre_lps))
                else:
                    vector[axis] = sign * OPTIMUM_STEP_DEG
                    moves.append(RigidTransform.from_angles(vector, (0.0, 0.0, 0.0), centre_lps))
    return moves


def _sitk_transform(ct_from_mr: RigidTransform) -> sitk.AffineTransform:
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in ct_from_mr.rotation.ravel()))
    transform.SetTranslation(tuple(float(v) for v in ct_from_mr.offset_mm))
    return transform


def optimum_check(mr: Volume, fixed: Volume, sampled_ct: np.ndarray,
                  mr_from_ct: RigidTransform, centre_lps: np.ndarray) -> OptimumCheck | None:
    """Estimate how far the image similarity's optimum lies from ``mr_from_ct``.

    Parameters
    ----------
    mr : Volume
        Preprocessed MR (its own grid and frame).
    fixed : Volume
        CT region (windowed HU) the registration used.
    sampled_ct : (K, J, I) bool ndarray
        Region of ``fixed`` the similarity is measured in (the sacrum grown by a margin).
    mr_from_ct : RigidTransform
        The registration to check (CT LPS -> MR LPS).
    centre_lps : (3,) float
        Centre (CT LPS, mm) of the rotation steps (the sacrum's centre).

    Returns
    -------
    OptimumCheck or None
        None when fewer than :data:`OPTIMUM_MIN_SAMPLES` MR voxels fall in the region.
    """
    started = time.perf_counter()
    region = fixed.with_array(sampled_ct.astype(np.float32))
    # The samples are the MR voxels in the region at the transform checked, the same for every
    # step, so the 13 metric values compare.
    samples = mapped(region, mr_from_ct.inverse(), mr, 0, 0.0) > 0.5
    count = int(samples.sum())
    if count < OPTIMUM_MIN_SAMPLES:
        return None
    mr_image = volume_to_sitk(mr.with_array(mr.array.astype(np.float32)))
    ct_image = volume_to_sitk(fixed.with_array(fixed.array.astype(np.float32)))
    method = sitk.ImageRegistrationMethod()
    method.SetNumberOfThreads(1)  # threaded sums vary in the last digits; the check must not
    method.SetMetricAsMattesMutualInformation(OPTIMUM_HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetMetricFixedMask(volume_to_sitk(mr.with_array(samples.astype(np.uint8))))
    method.SetInterpolator(sitk.sitkLinear)
    # Values only: no gradient images of the whole MR and CT on every evaluation.
    method.MetricUseFixedImageGradientFilterOff()
    method.MetricUseMovingImageGradientFilterOff()
    values = []
    for move in [RigidTransform.identity(), *_steps(np.asarray(centre_lps, float))]:
        method.SetInitialTransform(_sitk_transform(mr_from_ct.compose(move).inverse()))
        values.append(method.MetricEvaluate(mr_image, ct_image))
    values = np.asarray(values)
    offsets, flat = _parabola_offsets(values)
    return OptimumCheck(
        offset_mm=float(np.linalg.norm(offsets[:3])),
        offset_deg=float(np.linalg.norm(offsets[3:])),
        flat_axes=tuple(flat), rises=values[1:] - values[0], samples=count,
        seconds=time.perf_counter() - started,
    )


def _parabola_offsets(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per axis, the optimum of the parabola through (-h, f-), (0, f0), (h, f+), in step units
    times the step (mm or deg); ``inf`` where the three values curve the wrong way."""
    centre = values[0]
    offsets = np.empty(6)
    flat = []
    for axis in range(6):
        before, after = values[1 + 2 * axis], values[2 + 2 * axis]
        curvature = before - 2.0 * centre + after
        step = OPTIMUM_STEP_MM if axis < 3 else OPTIMUM_STEP_DEG
        if curvature <= 0.0:
            offsets[axis] = np.inf
            kind = "shift along" if axis < 3 else "turn about"
            flat.append(f"{kind} the {AXIS_NAMES[axis % 3]} axis")
        else:
            offsets[axis] = step * (before - after) / (2.0 * curvature)
    return offsets, flat
