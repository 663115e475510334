"""`find_anatomy`: the sacrum's sub-structures from a CT and a sacrum mask.

Pipeline (all geometry in LPS mm, masks returned on the input volume's own grid):

1. crop to the sacrum; fit the mid-sagittal plane by mirror symmetry (:mod:`.midplane`);
2. fit the curved sacral frame ``(x, s, d)`` on the anterior cortex (:mod:`.frame`) and resample
   mask and CT onto it (:mod:`.straight`);
3. on the straightened grid: the mid-sagittal profile and anterior cortex (:mod:`.cortex`), the
   hiatus apex (:mod:`.hiatus`), the canal (:mod:`.canal`), the foramina (:mod:`.foramina`),
   the levels (:mod:`.levels`), then the hiatus opening;
4. map every label back onto the input grid: canal and foramina are cut by the input mask so their
   walls are exactly the mask's; levels split the mask's bodies by arc length.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from planner.anatomy.canal import find_canal
from planner.anatomy.centres import centres_on_cortex
from planner.anatomy.cortex import MidlineProfile, anterior_cortex_curve, midline_profile
from planner.anatomy.foramina import ForaminaResult, find_foramina
from planner.anatomy.frame import SacralFrame, build_frame
from planner.anatomy.hiatus import find_hiatus
from planner.anatomy.levels import TYPICAL_JUNCTION_FRACTIONS, LevelsResult, find_levels
from planner.anatomy.midplane import fit_midsagittal_plane
from planner.anatomy.model import (
    FORAMEN_LABELS,
    FORAMEN_LEVELS,
    LEVEL_NAMES,
    SIDES,
    Confidence,
    Foramen,
    SacralAnatomy,
)
from planner.anatomy.straight import (
    StraightSacrum,
    build_straight,
    open_filled_holes,
    space_voxels,
)
from planner.errors import AnatomyNotFoundError
from planner.volume import Volume

#: Margin kept around the sacrum when cropping (mm): room for the canal and foramina openings.
CROP_MARGIN_MM = 8.0
#: Voxels larger than this (mm, any axis) resolve neither the small S3/S4 foramina (2-3 mm
#: radius) nor the canal walls reliably: the structures found are flagged.
COARSE_VOXEL_MM = 2.0
#: Structures whose confidence drops on coarse voxels, and the factor applied. Below 0.5, so
#: even a structure found with full confidence falls under the planner's ``confidence_min``
#: (0.5) and the plan is at least a caution that names the resolution (at 0.5 exactly a 3 mm
#: plan could be called safe while its foramina and canal walls were flagged as unresolved).
COARSE_SENSITIVE = ("canal", "foramina", "levels", "hiatus")
COARSE_FACTOR = 0.45


#: Why an external sacrum mask lowers the confidence: the planner did not segment it.
EXTERNAL_MASK_REASON = "sacrum mask given by the caller (not checked by the planner)"

def find_anatomy(volume: Volume, sacrum_mask: Volume | None = None) -> SacralAnatomy:
    """Find the sacrum and its sub-structures in a CT.

    Parameters
    ----------
    volume : Volume
        CT in HU on any grid (any axis order, flips or oblique direction cosines).
    sacrum_mask : Volume (bool), optional
        A sacrum mask from elsewhere (on any grid overlapping the CT; resampled onto the CT's
        grid if needed). If None, the sacrum is segmented by
        :func:`planner.anatomy.sacrum.segment_sacrum`.

    Returns
    -------
    SacralAnatomy
        Masks on ``volume``'s grid, landmarks in LPS mm, confidence per structure.

    Raises
    ------
    AnatomyNotFoundError
        If there is no sacrum (empty mask, or no vertebral body column in it).
    """
    from planner.anatomy import sacrum as sacrum_module  # lazy: segmentation is heavy

    if sacrum_mask is None:
        segmentation = sacrum_module.segment_sacrum(volume)
        mask = segmentation.mask
        sacrum_confidence = segmentation.confidence
        soft_tissue = segmentation.has_soft_tissue
    else:
        mask = _mask_on_grid(sacrum_mask, volume)
        reasons = [EXTERNAL_MASK_REASON]
        reasons += sacrum_module.border_reasons(mask)
        sacrum_confidence = Confidence(0.9 if len(reasons) == 1 else 0.6, tuple(reasons))
        soft_tissue = sacrum_module.has_soft_tissue(volume)
    return _structures(volume, mask, sacrum_confidence, soft_tissue)


def _mask_on_grid(sacrum_mask: Volume, volume: Volume) -> Volume:
    array = sacrum_mask.array
    mask = sacrum_mask.with_array(array if array.dtype == bool else array != 0, "SEG")
    if not mask.same_grid(volume):
        from planner.sitk_bridge import resample_like

        mask = resample_like(mask, volume, "nearest", default_value=0)
        mask = mask.with_array(mask.array.astype(bool), "SEG")
    if not mask.array.any():  # stops at the first sacrum voxel
        raise AnatomyNotFoundError(
            "sacrum_mask is empty on the CT's grid: no sacrum to analyse "
            "(check that the mask belongs to this CT)"
        )
    return mask


def _mask_box(mask: Volume, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index box ``start_ijk <= ijk < stop_ijk`` of the mask plus a margin (clipped to the grid).

    Axis projections instead of a list of every voxel: cheap on 512 x 512 x 300 grids.
    """
    start, stop = [], []
    for axis in range(3):  # array axes k, j, i
        others = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.array.any(axis=others))
        if present.size == 0:
            raise AnatomyNotFoundError("no sacrum in the field of view (empty sacrum mask)")
        start.append(present[0])
        stop.append(present[-1] + 1)
    margin_ijk = np.ceil(margin_mm / mask.spacing_xyz).astype(int)
    shape_ijk = np.asarray(mask.shape_ijk)
    start_ijk = np.clip(np.asarray(start[::-1]) - margin_ijk, 0, shape_ijk)
    stop_ijk = np.clip(np.asarray(stop[::-1]) + margin_ijk, 0, shape_ijk)
    return start_ijk, stop_ijk


def _structures(
    volume: Volume, mask: Volume, sacrum_confidence: Confidence, soft_tissue: bool
) -> SacralAnatomy:
    start_ijk, stop_ijk = _mask_box(mask, CROP_MARGIN_MM)
    mask_crop = mask.crop(start_ijk, stop_ijk)
    ct_crop = volume.crop(start_ijk, stop_ijk)

    # Bone = in the mask and not a space: a mask that fills the canal or foramina is reopened.
    bone_crop = mask_crop.with_array(
        open_filled_holes(mask_crop.array, space_voxels(ct_crop.array, soft_tissue))
    )
    plane, plane_confidence = fit_midsagittal_plane(bone_crop)
    frame = build_frame(bone_crop, plane)
    straight = build_straight(ct_crop, bone_crop, frame)
    profile = midline_profile(straight)
    tip_s = float(min(profile.body_s_range[1], frame.height_mm))

    provisional_s5 = TYPICAL_JUNCTION_FRACTIONS[-1] * tip_s
    hiatus_first = find_hiatus(straight, profile, tip_s, provisional_s5)
    canal_first = find_canal(
        straight, profile, hiatus_first.apex_s, tip_s, hiatus_first.canal_back_d
    )
    foramina = find_foramina(straight, profile, canal_first.mask, canal_first.half_width_mm)
    levels = find_levels(
        straight, profile, foramina.junction_s, _foramen_medial_edges(foramina), tip_s
    )
    tip_s = float(levels.boundaries_s[-1])  # may end at the sacrococcygeal junction
    cortex_lps, cortex_confidence = anterior_cortex_curve(
        straight, profile, tip_s, junctions_s=levels.boundaries_s[1:-1]
    )
    hiatus = find_hiatus(straight, profile, tip_s, float(levels.boundaries_s[4]))
    # The canal ends at the hiatus opening (the apex does not depend on the levels).
    canal_first.mask[straight.s_mm > hiatus.opening_s] = False
    canal = canal_first

    canal_in, foramina_in, levels_in = _labels_on_input(
        bone_crop, straight, profile, canal.mask, foramina, levels
    )
    canal_full, foramina_full, levels_full = (
        _paste(volume, start_ijk, array) for array in (canal_in, foramina_in, levels_in)
    )
    foramen_list = _foramen_list(frame, foramina)
    # The sacrum excludes canal and foramina (a filled mask from elsewhere is opened here).
    bone_full = _paste(volume, start_ijk, bone_crop.array)
    sacrum = mask.with_array(bone_full & ~canal_full & (foramina_full == 0), "SEG")
    centers = _level_centres(frame, profile, foramina, levels, cortex_lps)
    confidence = {
        "sacrum": sacrum_confidence,
        "midsagittal": plane_confidence,
        "anterior_cortex": cortex_confidence,
        "canal": canal.confidence,
        "foramina": foramina.confidence,
        "levels": levels.confidence,
        "hiatus": hiatus.confidence,
    }
    if volume.spacing_xyz.max() > COARSE_VOXEL_MM:
        reason = (
            f"voxels up to {volume.spacing_xyz.max():.1f} mm: foramina, canal walls and level "
            "junctions are not reliably resolved at this resolution"
        )
        for name in COARSE_SENSITIVE:
            old = confidence[name]
            confidence[name] = Confidence(old.score * COARSE_FACTOR, (*old.reasons, reason))
    notes = tuple(
        f"levels {n}: {src}" for n, src in zip(_junction_names(), levels.sources, strict=True)
    )
    return SacralAnatomy(
        sacrum=sacrum,
        canal=volume.with_array(canal_full, "SEG"),
        foramina=volume.with_array(foramina_full, "SEG"),
        levels=volume.with_array(levels_full, "SEG"),
        level_centers_lps=centers,
        midsagittal=plane,
        anterior_cortex_lps=cortex_lps,
        hiatus=hiatus.hiatus,
        foramen_list=foramen_list,
        confidence=confidence,
        has_soft_tissue=bool(soft_tissue),
        notes=notes,
    )


def _level_centres(
    frame: SacralFrame,
    profile: MidlineProfile,
    foramina: ForaminaResult,
    levels: LevelsResult,
    cortex_lps: np.ndarray,
) -> dict[str, np.ndarray]:
    """Body centres (LPS mm) placed on the fitted anterior cortex (:mod:`.centres`).

    Each junction is taken where it was found: at the mean depth of its foramina, or on the
    anterior edge (disc remnant, proportional fallback). Falls back to the frame's centres when
    the curve is missing.
    """
    boundaries = levels.boundaries_s
    depth_by_junction: dict[int, list[float]] = {}
    for found in foramina.found:
        junction = FORAMEN_LEVELS.index(found.level)
        depth_by_junction.setdefault(junction, []).append(found.center_xsd[2])
    junction_lps = np.array(
        [
            frame.to_lps(
                0.0,
                boundaries[j + 1],
                float(np.mean(depth_by_junction[j]))
                if levels.sources[j] == "foramina" and j in depth_by_junction
                else 0.0,
            )
            for j in range(4)
        ]
    )
    s_grid = profile.s_mm
    finite = np.isfinite(profile.body_back_d)
    centre_s = np.array([levels.centers_xsd[name][1] for name in LEVEL_NAMES])
    if finite.sum() >= 2 and len(cortex_lps) >= 2:
        # Half-way between the fitted anterior edge (the curve the centres are placed on, not
        # the per-station surface, which keeps the voxel staircase) and the smoothed back.
        _, curve_s, curve_d = frame.from_lps(cortex_lps)
        half_depths = 0.5 * (
            np.interp(centre_s, s_grid[finite], profile.body_back_d[finite])
            - np.interp(centre_s, curve_s, curve_d)
        )
        placed = centres_on_cortex(
            cortex_lps,
            junction_lps,
            frame.to_lps(0.0, boundaries[0], 0.0),
            frame.to_lps(0.0, boundaries[-1], 0.0),
            half_depths,
            frame.plane.normal_lps,
        )
        if placed is not None:
            return {name: placed[n] for n, name in enumerate(LEVEL_NAMES)}
    return {name: frame.to_lps(*levels.centers_xsd[name]) for name in LEVEL_NAMES}


def _junction_names() -> list[str]:
    return [f"{LEVEL_NAMES[j]}/{LEVEL_NAMES[j + 1]}" for j in range(4)]


def _foramen_medial_edges(foramina: ForaminaResult) -> dict[int, float]:
    """Junction index -> smallest distance (mm) from the midline to a foramen's medial edge."""
    edges: dict[int, float] = {}
    for found in foramina.found:
        junction = FORAMEN_LEVELS.index(found.level)
        edge = abs(found.center_xsd[0]) - found.radius_mm
        edges[junction] = min(edges.get(junction, np.inf), edge)
    return edges


def _foramen_list(frame: SacralFrame, foramina: ForaminaResult) -> list[Foramen]:
    by_key = {(f.level, f.side): f for f in foramina.found}
    result = []
    for level in FORAMEN_LEVELS:
        for side in SIDES:
            found = by_key.get((level, side))
            result.append(
                Foramen(
                    level=level,
                    side=side,
                    found=found is not None,
                    center_lps=None if found is None else frame.to_lps(*found.center_xsd),
                    label=FORAMEN_LABELS[(level, side)],
                )
            )
    return result


def _labels_on_input(
    bone_crop: Volume,
    straight: StraightSacrum,
    profile: MidlineProfile,
    canal: np.ndarray,
    foramina: ForaminaResult,
    levels: LevelsResult,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canal (bool), foramina and levels (uint8) on the cropped input grid."""
    foramen_lookup = np.zeros(foramina.labels.max() + 1, np.uint8)
    for found in foramina.found:
        foramen_lookup[found.component] = FORAMEN_LABELS[(found.level, found.side)]
    straight_foramina = foramen_lookup[foramina.labels]

    bone = bone_crop.array
    x, s, d = straight.frame.grid_coordinates(bone_crop)
    valid, (si, di, xi) = _straight_index(straight, x, s, d)
    # Holes take their walls from the input mask: only non-bone voxels get a hole label.
    hole = valid & ~bone
    canal_out = np.zeros(bone.shape, bool)
    canal_out[hole] = canal[si[hole], di[hole], xi[hole]]
    foramina_out = np.zeros(bone.shape, np.uint8)
    foramina_out[hole] = straight_foramina[si[hole], di[hole], xi[hole]]

    s_grid = straight.s_mm
    finite = np.isfinite(profile.body_back_d)
    back_d = np.interp(s_grid, s_grid[finite], profile.body_back_d[finite])
    s_bone, x_bone, d_bone = s[bone], x[bone], d[bone]
    boundaries = levels.boundaries_s
    body = (np.abs(x_bone) <= np.interp(s_bone, s_grid, levels.body_half_width)) & (
        d_bone <= np.interp(s_bone, s_grid, back_d) + 0.5
    )
    body &= (s_bone >= boundaries[0]) & (s_bone <= boundaries[-1])
    level = np.searchsorted(boundaries[1:-1], s_bone, side="right") + 1
    levels_out = np.zeros(bone.shape, np.uint8)
    levels_out[bone] = np.where(body, level, 0)
    canal_out |= _canal_floor_gaps(bone, canal_out, foramina_out, levels_out)
    return canal_out, foramina_out, levels_out


def _canal_floor_gaps(
    bone: np.ndarray, canal: np.ndarray, foramina: np.ndarray, levels: np.ndarray
) -> np.ndarray:
    """Non-bone voxels touching both the canal and a sacral body: canal the mapping missed.

    The canal is bounded in front by the bodies; a space voxel between them that is neither
    canal nor foramen is a voxel the nearest-cell mapping from the straightened grid left out.
    Left unlabelled, it would read as a hole in the bone right at the canal floor (planning
    would measure the anterior-cortex clearance to it).
    """
    face = ndimage.generate_binary_structure(3, 1)
    free = ~bone & ~canal & (foramina == 0)
    return (
        free
        & ndimage.binary_dilation(canal, face)
        & ndimage.binary_dilation(levels > 0, face)
    )


def _straight_index(straight: StraightSacrum, x, s, d):
    """Nearest straightened-grid cell of each (x, s, d), and whether it lies in the grid."""
    step = straight.step_mm
    indices = []
    valid = np.ones(np.shape(x), bool)
    for value, axis in ((s, straight.s_mm), (d, straight.d_mm), (x, straight.x_mm)):
        index = np.rint((value - axis[0]) / step).astype(np.int32)
        valid &= (index >= 0) & (index < len(axis))
        indices.append(np.clip(index, 0, len(axis) - 1))
    return valid, tuple(indices)


def _paste(volume: Volume, start_ijk: np.ndarray, array: np.ndarray) -> np.ndarray:
    full = np.zeros(volume.array.shape, array.dtype)
    k0, j0, i0 = start_ijk[2], start_ijk[1], start_ijk[0]
    nk, nj, ni = array.shape
    full[k0 : k0 + nk, j0 : j0 + nj, i0 : i0 + ni] = array
    return full
