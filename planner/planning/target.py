"""Resolve the user's target (a level, a point, or a lesion mask) to one LPS point."""

from __future__ import annotations

import numpy as np

from planner.anatomy.model import LEVEL_NAMES, SacralAnatomy
from planner.errors import PlanningError
from planner.planning.geometry import SacrumCrop, level_name
from planner.planning.model import TargetInfo
from planner.volume import Volume

DEFAULT_TARGET_LEVEL = "S3"
#: Fraction of the lesion volume assumed to take cement. A planning assumption, not a
#: published constant: vertebroplasty series fill roughly a third to two thirds of a lytic lesion.
CEMENT_FILL_FRACTION = 0.5
#: Range of PMMA volumes reported for sacroplasty (mL): Frey 2017, Kortman 2013, Moussazadeh 2015.
CEMENT_RANGE_ML = (2.0, 7.0)
#: A target may lie this far (mm) outside the bone envelope and still be accepted.
TARGET_TOLERANCE_MM = 1.0
MM3_PER_ML = 1000.0


def resolve_target(target, anatomy: SacralAnatomy, crop: SacrumCrop) -> TargetInfo:
    """Turn ``target`` into a :class:`TargetInfo`.

    Parameters
    ----------
    target : None, str, (3,) array-like or Volume
        None: the centre of the S3 body. ``"S2"``..``"S4"`` (any of S1-S5): that body's
        centre. Three numbers: a point in LPS mm. A ``Volume`` mask: a lesion, targeted at
        the centre of its part inside bone.

    Raises
    ------
    PlanningError
        Unknown level, a level the anatomy did not find, a point outside the sacrum, or a
        lesion mask with no voxel in bone.
    """
    if target is None:
        target = DEFAULT_TARGET_LEVEL
    if isinstance(target, Volume):
        info = _lesion_target(target, crop)
    elif isinstance(target, str):
        info = _level_target(target.strip().upper(), anatomy)
    else:
        point = np.asarray(target, float).reshape(-1)
        if point.shape != (3,) or not np.all(np.isfinite(point)):
            raise PlanningError(
                f"target must be a level name, three LPS coordinates (mm) or a lesion mask; "
                f"got {target!r}"
            )
        info = TargetInfo(point, "point", "point given in LPS mm", None)
    _check_in_bone(info.target_lps, crop)
    level = level_name(int(crop.level_at(info.target_lps)))
    return TargetInfo(info.target_lps, info.source, info.description, level,
                      info.lesion_volume_ml, info.cement_volume_ml)


def _level_target(name: str, anatomy: SacralAnatomy) -> TargetInfo:
    if name not in LEVEL_NAMES:
        raise PlanningError(f"target level {name!r} is not a sacral level; use one of "
                            f"{', '.join(LEVEL_NAMES)}")
    center = anatomy.level_centers_lps.get(name)
    if center is None:
        raise PlanningError(f"the {name} body was not found in this scan; give the target as "
                            "a point in LPS mm instead")
    return TargetInfo(np.asarray(center, float), "level", f"centre of the {name} body", name)


def _lesion_target(lesion: Volume, crop: SacrumCrop) -> TargetInfo:
    """Centre of the lesion's part inside bone (snapped into it if the centroid falls outside)."""
    mask = np.asarray(lesion.array) > 0
    if not mask.any():
        raise PlanningError("the lesion mask is empty: draw the lesion or give a target point")
    k, j, i = np.nonzero(mask)
    points_lps = lesion.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    in_bone = crop.in_solid(points_lps)
    if not in_bone.any():
        raise PlanningError("the lesion mask does not overlap the sacrum; check that it was "
                            "drawn on this scan (same patient, same frame)")
    bone_points = points_lps[in_bone]
    centroid = bone_points.mean(axis=0)
    nearest = bone_points[np.argmin(np.linalg.norm(bone_points - centroid, axis=1))]
    if np.linalg.norm(nearest - centroid) > max(lesion.spacing_xyz):
        centroid = nearest  # a non-convex lesion: its centroid is not inside it
    volume_ml = mask.sum() * lesion.voxel_volume_mm3 / MM3_PER_ML
    cement_ml = float(np.clip(CEMENT_FILL_FRACTION * volume_ml, *CEMENT_RANGE_ML))
    return TargetInfo(centroid, "lesion", "centre of the lesion inside bone", None,
                      float(volume_ml), cement_ml)


def _check_in_bone(target_lps: np.ndarray, crop: SacrumCrop) -> None:
    """Accept a target in the bone envelope or within TARGET_TOLERANCE_MM of it."""
    offsets = TARGET_TOLERANCE_MM * np.vstack([np.zeros(3), np.eye(3), -np.eye(3)])
    if crop.in_solid(target_lps + offsets).any():
        return
    where = ", ".join(f"{v:.1f}" for v in target_lps)
    raise PlanningError(
        f"target ({where}) LPS mm lies outside the sacrum (more than {TARGET_TOLERANCE_MM:g} mm "
        "from its bone); give a point inside the sacral bodies"
    )
