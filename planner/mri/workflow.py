"""CT + MRI in one call: register, bring the MR lesion onto the CT, plan, and add the cautions.

This is what ``sacroplan plan CT --mri MR [--lesion-mri MASK | --lesion-seed X,Y,Z]`` runs::

    result = plan_with_mri(ct, mr, lesion_mask_mr=mask)      # or lesion_seed_mr_lps=(x, y, z)
    result.plan                  # the CT plan, target = lesion centre inside bone
    result.report()              # "mri" section for plan.json (registration quality, lesion...)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.errors import AnatomyNotFoundError
from planner.mri.anatomy import add_caution, add_registration_caution
from planner.mri.dural_sac import DuralSacEnd, find_dural_sac_end
from planner.mri.lesion import MrLesion, grow_lesion, lesion_from_mask, lesion_to_ct
from planner.mri.preprocess import check_modality, preprocess_mr
from planner.mri.register import Registration, register_mr_to_ct
from planner.mri.transform import moved_volume
from planner.volume import Volume

#: Margin (mm) the canal crossing should keep below the end of the dural sac. A planning
#: assumption (the sac's end varies and thick MR slices blur it), not a published constant.
DURAL_SAC_MARGIN_MM = 10.0
MM3_PER_ML = 1000.0


@dataclass(frozen=True, eq=False)
class MriPlanResult:
    """A CT plan informed by MRI.

    Attributes
    ----------
    plan : Plan
        With the registration's and the dural sac's cautions added.
    registration : Registration
    lesion_ct : Volume (bool) or None
        The MR lesion on the CT grid (the plan's target), when one was given.
    lesion_mr : MrLesion or None
    dural_sac : DuralSacEnd or None
        Found when the MR shows fluid in the canal (T2, STIR); None otherwise.
    """

    plan: object
    registration: Registration
    lesion_ct: Volume | None
    lesion_mr: MrLesion | None
    dural_sac: DuralSacEnd | None

    def report(self) -> dict:
        """Plain-JSON ``"mri"`` section for the plan file."""
        lesion = None
        if self.lesion_ct is not None:
            lesion = {
                "volume_on_mr_ml": round(self.lesion_mr.volume_ml, 3),
                "volume_on_ct_ml": round(float(np.count_nonzero(self.lesion_ct.array))
                                         * self.lesion_ct.voxel_volume_mm3 / MM3_PER_ML, 3),
                "edge_from_mr_intensity": bool(self.lesion_mr.uses_intensity),
            }
        dural = None
        if self.dural_sac is not None:
            point = self.dural_sac.end_ct_lps
            dural = {"end_lps": None if point is None else np.round(point, 2).tolist(),
                     "level": self.dural_sac.level}
        return {"registration": self.registration.report(), "lesion": lesion,
                "dural_sac_end": dural}


def plan_with_mri(
    ct: Volume,
    mr: Volume,
    anatomy=None,
    lesion_mask_mr: Volume | None = None,
    lesion_seed_mr_lps=None,
    contrast: str | None = None,
    **plan_options,
) -> MriPlanResult:
    """Plan on the CT with the lesion (and the dural sac) taken from the MRI.

    Parameters
    ----------
    ct : Volume
        The CT (modality "CT").
    mr : Volume
        The MRI (modality "MR"; load it with ``load(path, modality="MR")``).
    anatomy : SacralAnatomy, optional
        The CT's anatomy (found when not given).
    lesion_mask_mr : Volume, optional
        Lesion drawn on the MRI (mask or label map on any grid in the MR frame).
    lesion_seed_mr_lps : (3,) float, optional
        One point inside the lesion, MR LPS mm; the lesion is grown from it.
    contrast : {"T1", "T2", "STIR"}, optional
        MR weighting if known (T1 adds the sacrum-overlap check).
    **plan_options
        Passed to :func:`planner.plan` (``needle``, ``thresholds``, ``config``). Without a
        lesion the target is the planner's default (or ``target=`` in ``plan_options``).

    Returns
    -------
    MriPlanResult

    Raises
    ------
    PlannerError
        Wrong modality, both a mask and a seed, no sacrum, a seed outside the sacrum...
    """
    from planner.planning import plan

    check_modality(ct, "CT", "the CT")
    check_modality(mr, "MR", "the MRI (--mri)")
    if lesion_mask_mr is not None and lesion_seed_mr_lps is not None:
        from planner.errors import PlanningError

        raise PlanningError("give the MR lesion as a mask (--lesion-mri) or as a seed point "
                            "(--lesion-seed), not both")
    if anatomy is None:
        from planner.anatomy.find import find_anatomy

        anatomy = find_anatomy(ct)
    prepared = preprocess_mr(mr)
    registration = register_mr_to_ct(ct, prepared, ct_sacrum=anatomy.sacrum,
                                     preprocessed=True, contrast=contrast)
    lesion_mr = None
    sacrum_mr = moved_volume(anatomy.sacrum, registration.mr_from_ct)
    if lesion_mask_mr is not None:
        # The drawn outline is refined on the MR intensities (sub-voxel edge across thick
        # slices); it is kept as drawn when the lesion does not stand out from the marrow.
        lesion_mr = lesion_from_mask(lesion_mask_mr, prepared, sacrum_mr, preprocessed=True)
    elif lesion_seed_mr_lps is not None:
        lesion_mr = grow_lesion(prepared, lesion_seed_mr_lps, sacrum_mr, preprocessed=True)
    lesion_ct = None
    if lesion_mr is not None:
        lesion_ct = lesion_to_ct(lesion_mr, registration.mr_from_ct, ct)
        plan_options["target"] = lesion_ct
    dural = None
    if (contrast or "").upper() != "T1":
        try:
            dural = find_dural_sac_end(prepared, anatomy=anatomy,
                                       mr_from_ct=registration.mr_from_ct, preprocessed=True)
        except AnatomyNotFoundError:
            dural = None
    if dural is not None and dural.end_ct_lps is not None:
        # The crossing must stay below the sac: a hard constraint of the search, not only a
        # caution afterwards.
        from planner.planning import CanalLimit

        caudal_ct = registration.mr_from_ct.inverse().apply_direction(dural.direction_lps)
        where = f"the end of the dural sac{f' ({dural.level})' if dural.level else ''}"
        plan_options.setdefault("canal_limit", CanalLimit(
            np.asarray(dural.end_ct_lps, float), caudal_ct / np.linalg.norm(caudal_ct),
            DURAL_SAC_MARGIN_MM, where))
    result = plan(ct, anatomy, **plan_options)
    result = add_registration_caution(result, registration)
    if dural is not None:
        result = dural_sac_caution(result, dural, mr_from_ct=registration.mr_from_ct)
    return MriPlanResult(result, registration, lesion_ct, lesion_mr, dural)


def crossing_below_dural_end_mm(plan, dural: DuralSacEnd, mr_from_ct=None) -> float | None:
    """How far (mm) the canal crossing lies caudal to the end of the dural sac.

    Measured along the sac's direction at its end (positive: below the end). None when the
    plan does not cross the canal or the end has no CT position.
    """
    crossing = plan.canal_crossing
    end = dural.end_ct_lps
    if crossing is None or end is None:
        return None
    direction = dural.direction_lps
    if mr_from_ct is not None:
        direction = mr_from_ct.inverse().apply_direction(direction)
    points = np.vstack([crossing.entry_lps, crossing.exit_lps])
    return float(np.min((points - end) @ direction))


def dural_sac_caution(plan, dural: DuralSacEnd, margin_mm: float = DURAL_SAC_MARGIN_MM,
                      mr_from_ct=None):
    """Caution when the canal crossing is less than ``margin_mm`` below the dural sac's end."""
    below = crossing_below_dural_end_mm(plan, dural, mr_from_ct)
    if below is None or below >= margin_mm:
        return plan
    level = f" (end at {dural.level})" if dural.level else ""
    return add_caution(plan, [
        f"the needle crosses the canal {below:.0f} mm below the end of the dural sac{level}, "
        f"less than the {margin_mm:g} mm margin: risk of a dural puncture (CSF leak)"])
