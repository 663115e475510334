"""CT and MR phantoms of one anatomy with a known rigid transform between their frames.

The phantom is analytic, so the MR of the *same* anatomy in a *moved* position is exact: the MR
contrast is drawn on a grid of the CT's frame whose direction is ``R.T @ D``, and the grid is then
relabelled by the movement ``x -> R (x - c) + c + t`` (origin moved, direction becomes ``D``).
Every voxel keeps its anatomy; only the patient frame changes, as between two scanners. No
resampling is involved, so the truth (labels, landmarks) is exact on both grids.

An MR slice is not a point sample at its centre: the scanner's slice profile integrates the
signal across the slice thickness (4 mm here), so a lesion edge between two slice centres shows as
partial volume. The MR is therefore drawn on :data:`SLICE_PROFILE_SAMPLES` sub-slices per slice
and averaged (a box profile); the noise is added once per final voxel. The truth labels are those
of the middle sub-slice (the slice centre); ``mr_truth["lesion_fraction"]`` is the share of each
MR voxel's slice profile inside the lesion.

Contrasts: :data:`planner.phantom.MR_CONTRASTS` (``"T1"``, ``"T2"`` and ``"STIR"``, fat
suppressed), all drawn by :func:`planner.phantom.make_phantom`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.errors import PlannerError
from planner.mri.transform import RigidTransform, moved_volume, rotation_about_axes_deg
from planner.phantom import PhantomParams, make_phantom
from planner.phantom.build import Phantom
from planner.phantom.params import MR_CONTRASTS
from planner.volume import Volume

#: A sagittal MR stack as scanners write it: columns run anterior->posterior, rows
#: superior->inferior, slices along the DICOM slice normal (row x column), i.e. towards patient
#: right (columns of the matrix: LPS unit vectors of i, j, k; right-handed).
SAGITTAL_DIRECTION = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
#: Obliquity (deg about x, y, z) of the default MR stack: a sagittal prescribed along the sacrum.
SAGITTAL_OBLIQUITY_DEG = (8.0, 0.0, 6.0)
#: Default MR voxel size (mm): in-plane 1.2 mm, 4 mm slices.
MR_SPACING_MM = (1.2, 1.2, 4.0)
#: Default number of sagittal MR slices.
MR_SLICES = 20
#: Margin (mm) around the sacrum kept in-plane by the MR field of view.
MR_INPLANE_MARGIN_MM = 45.0
#: Sub-slices averaged per MR slice (box slice profile). Odd, so the middle one lies on the slice
#: centre. 1 gives point-sampled slices (no partial volume across the slice).
SLICE_PROFILE_SAMPLES = 5
#: MR contrasts a pair can have.
#: Seed offset of the MR noise (drawn per final voxel, after the slice averaging).
MR_NOISE_SEED_OFFSET = 7127
#: Truth label maps carried to the MR grid.
LABEL_NAMES = ("sacrum", "lesion", "dural_sac", "canal", "levels")


@dataclass(frozen=True, eq=False)
class PhantomPair:
    """A CT phantom and an MR of the same anatomy in a moved position.

    Attributes
    ----------
    ct : Phantom
        The CT and its exact truth (CT frame).
    mr : Volume
        The MR (T1 or T2), modality ``"MR"``, in its own frame.
    mr_truth : dict of str -> Volume
        ``"sacrum"``, ``"lesion"``, ``"dural_sac"``, ``"canal"``, ``"levels"`` label maps on the
        MR grid (at the slice centres), and ``"lesion_fraction"`` (float32, 0-1: the share of
        each voxel's slice profile inside the lesion).
    mr_from_ct : RigidTransform
        Maps CT LPS points to MR LPS points of the same anatomy (ITK's fixed -> moving).
    contrast : str
    """

    ct: Phantom
    mr: Volume
    mr_truth: dict
    mr_from_ct: RigidTransform
    contrast: str

    def mr_point(self, ct_lps: np.ndarray) -> np.ndarray:
        """LPS position in the MR frame of CT LPS points (..., 3)."""
        return self.mr_from_ct.apply(ct_lps)


def _crop_box(sacrum: np.ndarray, spacing_xyz: np.ndarray, n_slices: int,
              margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index box: ``n_slices`` centred on the sacrum, in-plane the sacrum plus a margin."""
    kji = np.argwhere(sacrum)
    low_ijk, high_ijk = kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]
    margin = np.ceil(margin_mm / spacing_xyz).astype(int)
    start, stop = low_ijk - margin, high_ijk + 1 + margin
    middle = int(round(0.5 * (low_ijk[2] + high_ijk[2])))
    start[2], stop[2] = middle - n_slices // 2, middle - n_slices // 2 + n_slices
    return start, stop


def _draw_noise_free(params: PhantomParams, spacing_xyz: np.ndarray, direction: np.ndarray,
                     contrast: str) -> tuple[Phantom, np.ndarray]:
    """A noise-free MR phantom (blurred by ``params.blur_mm``) and its image array."""
    quiet = params.with_(noise_hu=0.0)
    phantom = make_phantom(quiet, spacing_mm=spacing_xyz, orientation=direction,
                           contrast=contrast)
    return phantom, phantom.volume.array


def _draw_mr(params: PhantomParams, spacing_xyz, direction: np.ndarray, contrast: str,
             samples: int) -> dict[str, Volume]:
    """MR image, truth labels and lesion fraction on a grid of ``spacing_xyz`` whose slices
    average ``samples`` sub-slices (see the module docstring). Returns volumes by name
    (``"image"``, :data:`LABEL_NAMES`, ``"lesion_fraction"``)."""
    spacing = np.asarray(spacing_xyz, float).reshape(3)
    fine = spacing / np.array([1.0, 1.0, samples])
    phantom, image = _draw_noise_free(params, fine, direction, contrast)
    n_fine = phantom.volume.shape_ijk[2]
    first = (n_fine % samples) // 2
    count = (n_fine - first) // samples
    middle = first + samples // 2

    def averaged(array: np.ndarray) -> np.ndarray:
        used = np.asarray(array[first:first + count * samples], np.float32)
        return used.reshape(count, samples, *array.shape[1:]).mean(axis=1)

    origin = phantom.volume.index_to_lps(np.array([0.0, 0.0, float(middle)]))
    grid = Volume(np.zeros((count, *image.shape[1:]), np.uint8), origin, spacing, direction)
    signal = averaged(image)
    if params.noise_hu > 0:
        rng = np.random.default_rng(params.seed + MR_NOISE_SEED_OFFSET)
        signal = signal + rng.normal(0.0, params.noise_hu, signal.shape).astype(np.float32)
    volumes = {"image": Volume(np.abs(signal).astype(np.float32), origin, spacing, direction,
                               modality="MR", info=phantom.volume.info)}
    for name in LABEL_NAMES:
        labels = getattr(phantom.truth, name).array
        volumes[name] = grid.with_array(labels[middle::samples][:count], "SEG")
    volumes["lesion_fraction"] = grid.with_array(averaged(phantom.truth.lesion.array), "SEG")
    return volumes


def make_phantom_pair(
    params: PhantomParams | None = None,
    contrast: str = "T1",
    rotation_deg=(0.0, 0.0, 0.0),
    translation_mm=(0.0, 0.0, 0.0),
    ct_spacing_mm: float | tuple = 1.0,
    mr_spacing_mm: tuple = MR_SPACING_MM,
    mr_slices: int | None = MR_SLICES,
    mr_direction: np.ndarray | None = None,
    ct_orientation: str | np.ndarray = "LPS",
    slice_samples: int = SLICE_PROFILE_SAMPLES,
) -> PhantomPair:
    """Draw a CT phantom and an MR of the same anatomy moved by a known rigid transform.

    Parameters
    ----------
    params : PhantomParams, optional
        Anatomy shared by both (lesion, dural sac end, pose...).
    contrast : {"T1", "T2", "STIR"}
    rotation_deg : (3,) float
        Movement of the patient between CT and MR: rotation about x, y, z (deg) about the S3
        body centre ...
    translation_mm : (3,) float
        ... followed by this translation (mm, LPS).
    ct_spacing_mm, mr_spacing_mm : float or (3,) float
        Voxel sizes (mm) along i, j, k of each grid (MR default 1.2 x 1.2 x 4 mm).
    mr_slices : int or None
        Number of MR slices kept around the sacrum's middle (None: the whole field of view).
    mr_direction : (3, 3) array, optional
        Direction of the MR grid in its own frame; default an oblique sagittal stack.
    ct_orientation : str or (3, 3) array
        Orientation preset or direction matrix of the CT grid.
    slice_samples : int
        Sub-slices averaged per MR slice (odd; 1: point-sampled slices, no partial volume).

    Returns
    -------
    PhantomPair
    """
    if contrast not in MR_CONTRASTS:
        raise PlannerError(f"MR contrast must be one of {MR_CONTRASTS}, got {contrast!r}")
    if slice_samples < 1 or slice_samples % 2 == 0:
        raise PlannerError(f"slice_samples must be an odd number >= 1, got {slice_samples}")
    params = params or PhantomParams()
    ct = make_phantom(params, spacing_mm=ct_spacing_mm, orientation=ct_orientation,
                      contrast="CT")
    centre = ct.truth.landmarks.level_centers_lps["S3"]
    movement = RigidTransform(rotation_about_axes_deg(rotation_deg), translation_mm, centre)
    if mr_direction is None:
        mr_direction = rotation_about_axes_deg(SAGITTAL_OBLIQUITY_DEG) @ SAGITTAL_DIRECTION
    drawn_direction = movement.rotation.T @ np.asarray(mr_direction, float)
    # The MR is drawn over the sacrum and a margin only (a sacral MR's field of view).
    mr_params = params.with_(fov="sacrum", fov_margin_mm=MR_INPLANE_MARGIN_MM + 5.0)
    spacing = np.broadcast_to(np.asarray(mr_spacing_mm, float), (3,))
    volumes = _draw_mr(mr_params, spacing, drawn_direction, contrast, slice_samples)
    if mr_slices is not None:
        start, stop = _crop_box(volumes["sacrum"].array, spacing, mr_slices,
                                MR_INPLANE_MARGIN_MM)
        volumes = {name: volume.crop(start, stop) for name, volume in volumes.items()}
    moved = {name: moved_volume(volume, movement) for name, volume in volumes.items()}
    image = moved.pop("image")
    return PhantomPair(ct=ct, mr=image, mr_truth=moved, mr_from_ct=movement, contrast=contrast)
