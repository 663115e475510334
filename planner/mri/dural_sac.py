"""Where the dural sac ends, on T2-weighted MRI.

On T2 the cerebrospinal fluid is the brightest tissue; inside the canal it fills the dural sac,
which ends as a tapering tube, usually at S2 (range S1-S3). The sac is the largest bright tube
(restricted to the canal when a canal mask is given); its end is its extreme point along the
canal, taken as the direction of its caudal part (principal axis of the last
:data:`END_SEGMENT_MM`), and reported in LPS mm with the sacral level beside it, so the needle's
canal crossing can keep a margin below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.anatomy.model import LEVEL_NAMES, SacralAnatomy
from planner.errors import AnatomyNotFoundError
from planner.mri.preprocess import body_mask, check_modality, preprocess_mr
from planner.mri.transform import RigidTransform
from planner.sitk_bridge import resample_to_lps_grid
from planner.volume import Volume

#: Isotropic working grid (mm).
WORKING_SPACING_MM = 1.5
#: CSF = above ``median + CSF_SHARE * (bright_end - median)`` of the body, where the bright end
#: is the 99.9th percentile (CSF is the brightest tissue on T2, but a small one).
CSF_SHARE = 0.6
BRIGHT_END_PERCENTILE = 99.9
#: Length (mm) of the caudal part of the sac whose principal axis gives the canal direction.
END_SEGMENT_MM = 30.0
#: The end point is the mean of the sac voxels within this distance (mm) of its extreme.
END_SLAB_MM = 2.0
#: A canal mask given by the caller is grown by this margin (mm) before restricting to it.
CANAL_MARGIN_MM = 2.0
#: Search radius (mm) for the sacral body beside the end point (its level).
LEVEL_SEARCH_MM = 25.0


@dataclass(frozen=True)
class DuralSacEnd:
    """The caudal end of the dural sac.

    Attributes
    ----------
    end_lps : (3,) ndarray
        End point, MR frame (LPS mm).
    end_ct_lps : (3,) ndarray or None
        The same point in the CT frame when a registration was given.
    level : str or None
        Sacral level beside the end ("S1".."S5"), when an anatomy was given.
    direction_lps : (3,) ndarray
        Unit vector along the sac towards its end (caudal), MR frame.
    """

    end_lps: np.ndarray
    end_ct_lps: np.ndarray | None
    level: str | None
    direction_lps: np.ndarray

    def summary(self) -> str:
        where = ", ".join(f"{v:.1f}" for v in (self.end_ct_lps if self.end_ct_lps is not None
                                              else self.end_lps))
        frame = "CT" if self.end_ct_lps is not None else "MR"
        level = f" at {self.level}" if self.level else ""
        return f"dural sac ends{level} ({where}) LPS mm, {frame} frame"


def find_dural_sac_end(
    t2: Volume,
    canal: Volume | None = None,
    anatomy: SacralAnatomy | None = None,
    mr_from_ct: RigidTransform | None = None,
    preprocessed: bool = False,
) -> DuralSacEnd:
    """Find the end of the dural sac on a T2-weighted MRI.

    Parameters
    ----------
    t2 : Volume
        T2-weighted MR, its own frame.
    canal : Volume (bool), optional
        Sacral canal mask in the frame of ``anatomy`` (CT frame if ``mr_from_ct`` is given, else
        the MR frame); restricts the search to the canal (no bladder, no lesion).
    anatomy : SacralAnatomy, optional
        For the level of the end (its ``levels`` label map); its canal is used when ``canal`` is
        not given.
    mr_from_ct : RigidTransform, optional
        When the anatomy is on a CT: CT LPS -> MR LPS.
    preprocessed : bool

    Returns
    -------
    DuralSacEnd

    Raises
    ------
    AnatomyNotFoundError
        No bright fluid tube (not a T2-weighted image, or no canal in view).
    """
    check_modality(t2, "MR", "the T2-weighted MRI")
    prepared = t2 if preprocessed else preprocess_mr(t2)
    work = resample_to_lps_grid(prepared, WORKING_SPACING_MM, "linear", default_value=0.0)
    values = work.array
    body = body_mask(work)
    median, bright_end = np.percentile(values[body], [50.0, BRIGHT_END_PERCENTILE])
    csf = (values > median + CSF_SHARE * (bright_end - median)) & body
    if canal is None and anatomy is not None:
        canal = anatomy.canal
    if canal is not None:
        csf[csf] = _in_canal(work, np.argwhere(csf), canal, mr_from_ct)
    labels, count = ndimage.label(csf)
    if count == 0:
        raise AnatomyNotFoundError(
            "no cerebrospinal fluid found in the canal on the T2-weighted MRI; check that the "
            "series is T2-weighted (fluid bright) and covers the sacral canal")
    sizes = ndimage.sum(csf, labels, np.arange(1, count + 1))
    sac = labels == int(np.argmax(sizes)) + 1
    k, j, i = np.nonzero(sac)
    points = work.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    end, direction = _extreme(points)
    end_ct = None if mr_from_ct is None else mr_from_ct.inverse().apply(end)
    level = None
    if anatomy is not None:
        level = level_at(anatomy, end if mr_from_ct is None else end_ct)
    return DuralSacEnd(end_lps=end, end_ct_lps=end_ct, level=level, direction_lps=direction)


def _in_canal(work: Volume, voxels_kji: np.ndarray, canal: Volume,
              mr_from_ct: RigidTransform | None) -> np.ndarray:
    """Which working-grid voxels lie in the canal grown by :data:`CANAL_MARGIN_MM`."""
    points = work.index_to_lps(voxels_kji[:, ::-1].astype(float))
    if mr_from_ct is not None:
        points = mr_from_ct.inverse().apply(points)
    mask = np.asarray(canal.array, bool)
    if not mask.any():
        return np.zeros(len(points), bool)
    box = canal.crop_to_mask(mask, CANAL_MARGIN_MM + max(canal.spacing_xyz))
    inside = np.asarray(box.array, bool)
    outside = ndimage.distance_transform_edt(~inside, sampling=box.spacing_xyz[::-1])
    grown = box.with_array((outside <= CANAL_MARGIN_MM).astype(np.float32))
    return grown.sample(points, order=0) > 0.5


def _extreme(points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """End of a tube of points: extreme along the principal axis of its caudal part."""
    z = points_lps[:, 2]
    caudal = points_lps[z <= z.min() + END_SEGMENT_MM]
    centred = caudal - caudal.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    direction = vt[0] if vt[0][2] < 0 else -vt[0]  # pointing inferiorly (down the canal)
    if len(caudal) < 4:
        direction = np.array([0.0, 0.0, -1.0])
    along = (points_lps - caudal.mean(axis=0)) @ direction
    tip = points_lps[along >= along.max() - END_SLAB_MM]
    return tip.mean(axis=0), direction


def level_at(anatomy: SacralAnatomy, point_lps: np.ndarray) -> str | None:
    """Sacral level whose body lies nearest to a point (within :data:`LEVEL_SEARCH_MM`)."""
    levels = anatomy.levels
    array = np.asarray(levels.array)
    k, j, i = np.nonzero(array)
    if k.size == 0:
        return None
    points = levels.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    distance = np.linalg.norm(points - np.asarray(point_lps, float), axis=1)
    nearest = int(np.argmin(distance))
    if distance[nearest] > LEVEL_SEARCH_MM:
        return None
    label = int(array[k[nearest], j[nearest], i[nearest]])
    return LEVEL_NAMES[label - 1] if 1 <= label <= len(LEVEL_NAMES) else None
