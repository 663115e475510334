"""MRI: load-side preparation, MR-to-CT registration, MR lesions, the dural sac, MR-only anatomy.

Entry points (all geometry in LPS mm)::

    from planner.mri import plan_with_mri, find_anatomy_mr, add_mri_bone_caution
    result = plan_with_mri(ct, mr, lesion_seed_mr_lps=(x, y, z))   # CT + MRI
    result.plan, result.registration.quality_ok, result.report()
    mr_only = find_anatomy_mr(t1)                                   # MRI alone (T1)
    plan = add_mri_bone_caution(planner.plan(mr_only.pseudo_ct, mr_only.anatomy))
"""

from planner.mri.anatomy import add_mri_bone_caution, add_registration_caution, find_anatomy_mr
from planner.mri.dural_sac import find_dural_sac_end
from planner.mri.lesion import grow_lesion, lesion_from_mask, lesion_to_ct
from planner.mri.preprocess import check_modality, preprocess_mr
from planner.mri.register import Registration, assess_registration, register_mr_to_ct
from planner.mri.transform import RigidTransform
from planner.mri.workflow import plan_with_mri

__all__ = [
    "Registration",
    "RigidTransform",
    "add_mri_bone_caution",
    "add_registration_caution",
    "assess_registration",
    "check_modality",
    "find_anatomy_mr",
    "find_dural_sac_end",
    "grow_lesion",
    "lesion_from_mask",
    "lesion_to_ct",
    "plan_with_mri",
    "preprocess_mr",
    "register_mr_to_ct",
]
