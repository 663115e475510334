"""MRI: load-side preparation, MR-to-CT registration, MR lesions, the dural sac, MR-only anatomy.

Entry points (all geometry in LPS mm)::

    from planner.mri import preprocess_mr, register_mr_to_ct, check_modality
    registration = register_mr_to_ct(ct, mr, ct_sacrum=anatomy.sacrum)
    registration.quality_ok, registration.reasons, registration.report()
"""

from planner.mri.preprocess import check_modality, preprocess_mr
from planner.mri.register import Registration, assess_registration, register_mr_to_ct
from planner.mri.transform import RigidTransform

__all__ = [
    "Registration",
    "RigidTransform",
    "assess_registration",
    "check_modality",
    "preprocess_mr",
    "register_mr_to_ct",
]
