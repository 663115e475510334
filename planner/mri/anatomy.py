"""Planning from MRI alone: the sacral anatomy on T1, and the cautions MRI-based plans carry.

The anatomy stage (:func:`planner.anatomy.find_anatomy`) reads a CT. On T1-weighted MRI the
sacrum is found by :func:`~planner.mri.sacrum_t1.find_sacrum_t1`, and a *pseudo-CT* is built on
its working grid so the same code finds the canal, foramina, levels and hiatus and the same
planner plans the needle: bone gets CT-like values from the T1 contrast (fatty marrow about
250 HU, the dark cortex and the dark fused-disc remnants up to 1000 HU), fat -100 HU, other
tissue 40 HU, air outside the body -1000 HU. Outside the MR's field of view the pseudo-CT reads
soft tissue, so no skin is invented where the MR did not look.

Bone margins on MRI are less sharp than on CT (partial volume across thick slices, chemical
shift); every plan made on MRI carries that as a caution (:func:`add_mri_bone_caution`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from planner.anatomy.model import SacralAnatomy
from planner.mri.preprocess import check_modality, preprocess_mr
from planner.mri.sacrum_t1 import MrSacrum, find_sacrum_t1
from planner.sitk_bridge import resample_to_lps_grid
from planner.volume import Volume, VolumeInfo

#: Pseudo-CT values (HU).
MARROW_HU = 250.0
CORTEX_HU = 1000.0
FAT_HU = -100.0
SOFT_HU = 40.0
AIR_HU = -1000.0
#: Bone HU range of the pseudo-CT.
BONE_HU_RANGE = (100.0, 1100.0)
#: Outside the sacrum, "fat" is brighter than this share of the way from the body median
#: (muscle) to the marrow level.
FAT_SHARE = 0.5

#: The caution every MRI-only plan carries.
MRI_BONE_CAUTION = (
    "bone margins come from MRI, not CT: cortex and foramen edges are less certain (thick "
    "slices, partial volume); confirm clearances on fluoroscopy or CT"
)
MRI_ANATOMY_NOTE = "anatomy found on T1-weighted MRI (pseudo-CT); bone margins from MRI"


@dataclass(frozen=True, eq=False)
class MrAnatomy:
    """Anatomy found on MRI alone.

    Attributes
    ----------
    anatomy : SacralAnatomy
        On the pseudo-CT's grid (MR frame); notes and sacrum confidence say it comes from MRI.
    pseudo_ct : Volume
        Modality ``"CT"``: what :func:`planner.plan` takes as its volume.
    sacrum : MrSacrum
    """

    anatomy: SacralAnatomy
    pseudo_ct: Volume
    sacrum: MrSacrum


def pseudo_ct_from_t1(sacrum: MrSacrum, mr: Volume) -> Volume:
    """CT-like volume on the T1 working grid (see the module docstring).

    Parameters
    ----------
    sacrum : MrSacrum
        From :func:`find_sacrum_t1` (its ``image`` is the prepared T1 on the working grid).
    mr : Volume
        The MR it was found on (for its field of view).
    """
    image = sacrum.image
    values = image.array
    marrow, cortex = sacrum.marrow_level, sacrum.cortex_level
    body = np.asarray(sacrum.body.array, bool)
    in_view = resample_to_lps_grid(mr.with_array(np.ones(mr.array.shape, np.uint8)),
                                   float(image.spacing_xyz[0]), "nearest",
                                   default_value=0).array > 0
    median = float(np.median(values[body]))
    pseudo = np.full(values.shape, SOFT_HU, np.float32)
    pseudo[in_view & ~body] = AIR_HU
    pseudo[body & (values > median + FAT_SHARE * (marrow - median))] = FAT_HU
    bone = np.asarray(sacrum.mask.array, bool) | np.asarray(sacrum.other_bone.array, bool)
    darkness = (marrow - values[bone]) / max(marrow - cortex, 1e-6)
    pseudo[bone] = np.clip(MARROW_HU + darkness * (CORTEX_HU - MARROW_HU), *BONE_HU_RANGE)
    info = VolumeInfo(series_description="pseudo-CT from T1-weighted MRI",
                      source_format="pseudo-CT", case_id=mr.info.case_id,
                      notes=(*mr.info.notes, MRI_ANATOMY_NOTE))
    return Volume(pseudo.astype(np.int16), image.origin_lps, image.spacing_xyz, image.direction,
                  "CT", info)


def find_anatomy_mr(t1: Volume, preprocessed: bool = False) -> MrAnatomy:
    """Sacrum, canal, foramina, levels and hiatus on a T1-weighted MRI.

    Parameters
    ----------
    t1 : Volume
        T1-weighted MR (modality ``"MR"``), any grid.
    preprocessed : bool
        True if ``t1`` already went through :func:`preprocess_mr`.

    Returns
    -------
    MrAnatomy
        ``plan(result.pseudo_ct, result.anatomy, ...)`` plans on it; then call
        :func:`add_mri_bone_caution` on the plan.

    Raises
    ------
    AnatomyNotFoundError
        No sacrum on the MRI.
    """
    from planner.anatomy.find import EXTERNAL_MASK_REASON, find_anatomy

    check_modality(t1, "MR", "the T1-weighted MRI")
    prepared = t1 if preprocessed else preprocess_mr(t1)
    sacrum = find_sacrum_t1(prepared, preprocessed=True)
    pseudo_ct = pseudo_ct_from_t1(sacrum, t1)
    anatomy = find_anatomy(pseudo_ct, sacrum_mask=sacrum.mask)
    confidence = dict(anatomy.confidence)
    sacrum_confidence = confidence.get("sacrum")
    if sacrum_confidence is not None:
        confidence["sacrum"] = replace(
            sacrum_confidence,
            score=min(sacrum_confidence.score, sacrum.confidence.score),
            # The mask is the planner's own T1 segmentation, not a caller's.
            reasons=tuple(dict.fromkeys(
                reason for reason in (*sacrum.confidence.reasons, *sacrum_confidence.reasons)
                if reason != EXTERNAL_MASK_REASON
            )),
        )
    anatomy = replace(anatomy, confidence=confidence,
                      notes=(*anatomy.notes, MRI_ANATOMY_NOTE))
    return MrAnatomy(anatomy=anatomy, pseudo_ct=pseudo_ct, sacrum=sacrum)


def add_caution(plan, reasons):
    """A copy of ``plan`` with extra caution reasons: a ``safe`` verdict becomes ``caution``;
    ``caution`` and ``unsafe`` stay; the reasons are appended (duplicates dropped).

    Parameters
    ----------
    plan : planner.planning.Plan
    reasons : iterable of str
    """
    from planner.planning.model import Verdict

    reasons = [reason for reason in reasons if reason and reason not in plan.reasons]
    if not reasons:
        return plan
    verdict = Verdict.CAUTION if plan.verdict is Verdict.SAFE else plan.verdict
    return replace(plan, verdict=verdict, reasons=(*plan.reasons, *reasons))


def add_mri_bone_caution(plan):
    """The plan with :data:`MRI_BONE_CAUTION` added (for plans made on MRI alone)."""
    return add_caution(plan, [MRI_BONE_CAUTION])


def add_registration_caution(plan, registration):
    """The plan with the registration's failed checks as cautions (nothing when quality_ok)."""
    return add_caution(plan, registration.caution_reasons())
