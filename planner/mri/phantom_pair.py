"""CT and MR phantoms of one anatomy with a known rigid transform between their frames.

The phantom is analytic, so the MR of the *same* anatomy in a *moved* position is exact: the MR
contrast is drawn on a grid of the CT's frame whose direction is ``R.T @ D``, and the grid is then
relabelled by the movement ``x -> R (x - c) + c + t`` (origin moved, direction becomes ``D``).
Every voxel keeps its anatomy; only the patient frame changes, as between two scanners. No
resampling is involved, so the truth (labels, landmarks) is exact on both grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.mri.transform import RigidTransform, moved_volume, rotation_about_axes_deg
from planner.phantom import PhantomParams, make_phantom
from planner.phantom.build import Phantom
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
        MR grid.
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


def _crop_box(mr: Phantom, n_slices: int, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index box: ``n_slices`` centred on the sacrum, in-plane the sacrum plus a margin."""
    sacrum = mr.truth.sacrum.array
    kji = np.argwhere(sacrum)
    low_ijk, high_ijk = kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]
    margin = np.ceil(margin_mm / mr.volume.spacing_xyz).astype(int)
    start, stop = low_ijk - margin, high_ijk + 1 + margin
    middle = int(round(0.5 * (low_ijk[2] + high_ijk[2])))
    start[2], stop[2] = middle - n_slices // 2, middle - n_slices // 2 + n_slices
    return start, stop


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
) -> PhantomPair:
    """Draw a CT phantom and an MR of the same anatomy moved by a known rigid transform.

    Parameters
    ----------
    params : PhantomParams, optional
        Anatomy shared by both (lesion, dural sac end, pose...).
    contrast : {"T1", "T2"}
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

    Returns
    -------
    PhantomPair
    """
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
    mr = make_phantom(mr_params, spacing_mm=mr_spacing_mm, orientation=drawn_direction,
                      contrast=contrast)
    names = ("sacrum", "lesion", "dural_sac", "canal", "levels")
    volumes = {"image": mr.volume, **{name: getattr(mr.truth, name) for name in names}}
    if mr_slices is not None:
        start, stop = _crop_box(mr, mr_slices, MR_INPLANE_MARGIN_MM)
        volumes = {name: volume.crop(start, stop) for name, volume in volumes.items()}
    moved = {name: moved_volume(volume, movement) for name, volume in volumes.items()}
    image = moved.pop("image")
    return PhantomPair(ct=ct, mr=image, mr_truth=moved, mr_from_ct=movement, contrast=contrast)
