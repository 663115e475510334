"""The sacrum mask: the bone every later anatomy stage stands on.

Pipeline (classical image analysis; no learned weights):

1. Decide whether the CT has soft tissue or is bone-only (outside bone exactly 0 HU).
2. Resample onto an axis-aligned LPS *working grid* (default 2 mm), so the result does not depend
   on how the scan was stored.
3. Bone (:func:`planner.anatomy.bone.filled_bone`): bone-only volumes, the non-zero voxels; CTs
   with soft tissue, dense bone grown into trabecular bone it touches. Then 3D filling of what
   the cortex encloses (the marrow), completed in axial planes for marrow that is denser than
   canal fat and CSF. The canal and foramina are channels open to the outside, so they stay
   empty, as the manual masks draw them.
4. *Joint lines*: thin dark lines between cortical plates (SI joints, facets, fracture lines),
   and, where the scan was resampled, the same lines greyed by interpolation
   (:func:`planner.anatomy.sacrum_split_blur.grey_joint_lines`: a 0 HU joint space reads
   25-50 HU after a linear resampling, its plates 250-400 HU).
   *Cores*: bone deeper than a few mm under its surface or a joint line, so each bone's core is
   separate; cores wider than any one bone are split at their thinnest part, again until none
   is. The sacral core is the large midline core with a hip-bone core close to it on each side;
   the others are labelled hip (by side), spine (L5 across its disc) or other bone, by
   position, or by a first flood where position is ambiguous.
5. A marker-controlled watershed on the depth floods the bone from the cores: fronts meet where
   bone is thin, and joint lines are crossed last, also where a joint is narrow or partly fused.
6. Refinement on the input's own grid, around the sacrum: the working-grid labels, kept away
   from other bones by two working voxels, seed a flood of the full-resolution bone by its depth.
   On a bone-only scan whose bone surface was interpolated (a resampled scan), the one-voxel
   partial-volume shell is trimmed first (:mod:`~planner.anatomy.sacrum_split_blur`).

:func:`sacrum_from_labelmap` takes a mask computed elsewhere (e.g. TotalSegmentator) instead.

Modules: :mod:`~planner.anatomy.sacrum_cores` (step 4: cores and markers, including L5's level),
:mod:`~planner.anatomy.sacrum_split_blur` (joint lines and bone surfaces blurred by
resampling), :mod:`~planner.anatomy.sacrum_flood` (step 5: relief, flood, stray pieces such as
the coccyx), :mod:`~planner.anatomy.sacrum_refine` (step 6 and the SI-fusion reasons),
:mod:`~planner.anatomy.sacrum_labels` (label numbers, re-exported here).

CTs with soft tissue whose marrow reads below 130 HU (fatty, osteoporotic marrow) do not go
through steps 3-6: their SI joints do not show as dark lines and the partial-volume cortex does
not enclose the marrow, so no threshold separates joint from marrow. They take the low-density
route of :mod:`~planner.anatomy.sacrum_lowdensity` (L5/S1 disc plane, ilium markers from each
ilium's marrow row, a watershed on smoothed HU), at lower confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.anatomy.bone import bone_threshold, filled_bone, has_soft_tissue
from planner.anatomy.model import Confidence
from planner.anatomy.sacrum_cores import core_markers
from planner.anatomy.sacrum_flood import drop_stray_sacrum_pieces, flood, unseeded_pieces_to_other
from planner.anatomy.sacrum_labels import (  # noqa: F401  (re-exported: the label numbers)
    BACKGROUND,
    BONE_LABEL_NAMES,
    HIP_LEFT,
    HIP_RIGHT,
    OTHER_BONE,
    SACRUM,
    SPINE,
    no_sacrum_message,
)
from planner.anatomy.sacrum_refine import refine_on_input_grid
from planner.errors import AnatomyNotFoundError, PlannerError
from planner.sitk_bridge import resample_like, resample_to_lps_grid
from planner.volume import Volume

# ---------------------------------------------------------------------------------- constants
#: Default isotropic spacing of the working grid (mm): fine enough to see SI joints, coarse enough
#: to label a whole pelvis in well under a second.
WORKING_SPACING_MM = 2.0
#: Padding value outside the input when resampling a CT with soft tissue (air).
AIR_HU = -1024.0


@dataclass(frozen=True)
class SacrumSegmentation:
    """The sacrum mask and what the sub-structure stage can reuse.

    Attributes
    ----------
    mask : Volume (bool)
        Sacrum on the input volume's own grid: cortex and trabecular interior, canal and foramina
        excluded.
    confidence : Confidence
        Score in [0, 1] and every reason it is lower than 1.
    has_soft_tissue : bool
        False for a bone-only volume (outside bone exactly 0 HU): no skin can be found.
    working : Volume or None
        The CT resampled (linear, float32 HU) onto the axis-aligned LPS working grid.
    bone_labels : Volume or None
        Working-grid label map of the filled bones: :data:`SACRUM`, :data:`HIP_LEFT`,
        :data:`HIP_RIGHT`, :data:`SPINE`, :data:`OTHER_BONE` (0 = not bone).
    source : str
        ``"computed"`` or ``"labelmap"`` (an external segmentation).
    """

    mask: Volume
    confidence: Confidence
    has_soft_tissue: bool
    working: Volume | None = None
    bone_labels: Volume | None = None
    source: str = "computed"

    @property
    def sacrum_working(self) -> Volume | None:
        """Sacrum mask on the working grid (bool), or None for an external segmentation."""
        if self.bone_labels is None:
            return None
        return self.bone_labels.with_array(self.bone_labels.array == SACRUM, "SEG")

    def bone_mask_working(self, label: int) -> Volume | None:
        """Working-grid mask (bool) of one :data:`BONE_LABEL_NAMES` label, e.g. ``HIP_LEFT``."""
        if self.bone_labels is None:
            return None
        return self.bone_labels.with_array(self.bone_labels.array == label, "SEG")


# ---------------------------------------------------------------------------------- public API
def segment_sacrum(
    volume: Volume, working_spacing_mm: float = WORKING_SPACING_MM
) -> SacrumSegmentation:
    """Segment the sacrum of a CT.

    A CT with soft tissue whose marrow reads like soft tissue (fatty, osteoporotic marrow; see
    :func:`planner.anatomy.sacrum_lowdensity.marrow_is_low_density`) goes to the low-density
    route, whose confidence is below the planner's ``confidence_min``: plans on it are a caution.

    Parameters
    ----------
    volume : Volume
        CT in HU, any storage orientation and spacing; full CT or bone-only.
    working_spacing_mm : float
        Isotropic spacing of the working grid used to find and separate the bones.

    Returns
    -------
    SacrumSegmentation

    Raises
    ------
    AnatomyNotFoundError
        If no sacrum is in the field of view.
    ImageContentError
        If the volume is constant or holds NaN/infinite values.
    """
    volume.check_values()
    soft_tissue = has_soft_tissue(volume)
    if soft_tissue:
        # Imported here: the low-density route builds on this module's dataclass.
        from planner.anatomy.sacrum_lowdensity import segment_if_low_density

        low_density = segment_if_low_density(volume)
        if low_density is not None:
            return low_density
    pad_value = AIR_HU if soft_tissue else 0.0
    working = resample_to_lps_grid(volume, working_spacing_mm, "linear", default_value=pad_value)
    working = working.with_array(working.array.astype(np.float32, copy=False))
    spacing = working.spacing_xyz

    bone = bone_threshold(working.array, soft_tissue, working.spacing_xyz)
    if not bone.any():
        raise AnatomyNotFoundError(no_sacrum_message("no bone at all"))
    # Work only where there is bone: every later step costs time per voxel.
    working = working.crop_to_mask(bone, margin_mm=2.0 * working_spacing_mm)
    filled = filled_bone(working, soft_tissue)
    markers, elevation = core_markers(working, filled)
    labels = flood(filled, markers, elevation)
    labels = unseeded_pieces_to_other(labels, filled, markers)
    labels = drop_stray_sacrum_pieces(labels, spacing)
    bone_labels = working.with_array(labels.astype(np.uint8), "SEG")
    if not (labels == SACRUM).any():
        raise AnatomyNotFoundError(no_sacrum_message("the sacral candidate did not hold"))

    mask, reasons = refine_on_input_grid(volume, bone_labels, soft_tissue)
    if not mask.array.any():
        raise AnatomyNotFoundError(no_sacrum_message("the sacrum vanished on the input grid"))
    reasons += border_reasons(mask)
    return SacrumSegmentation(
        mask=mask,
        confidence=_confidence(reasons),
        has_soft_tissue=soft_tissue,
        working=working,
        bone_labels=bone_labels,
    )


def sacrum_from_labelmap(labelmap: Volume, label: int, volume: Volume) -> SacrumSegmentation:
    """Use a sacrum segmented elsewhere (e.g. TotalSegmentator: label 92) instead of computing it.

    Parameters
    ----------
    labelmap : Volume
        Integer label map (or binary mask) in any grid that overlaps the CT.
    label : int
        Label value of the sacrum in ``labelmap``.
    volume : Volume
        The CT the mask belongs to; the mask is resampled onto its grid if the grids differ.

    Raises
    ------
    PlannerError
        If the label is absent from the label map, or the mask does not overlap the CT.
    """
    present = labelmap.array == label
    if not present.any():
        found = np.unique(labelmap.array)[:20].tolist()
        raise PlannerError(
            f"the sacrum label map holds no voxel with label {label} (labels present: {found}); "
            "pass the label number of the sacrum class (TotalSegmentator: 92)"
        )
    mask = labelmap.with_array(present, "SEG")
    if not mask.same_grid(volume):
        mask = resample_like(mask, volume, "nearest", default_value=0)
    if not mask.array.any():
        raise PlannerError(
            "the sacrum label map does not overlap the CT volume (after resampling onto the CT "
            "grid, no sacrum voxel is left); check that the label map belongs to this CT"
        )
    mask = mask.with_array(mask.array.astype(bool), "SEG")
    reasons = ["sacrum from an external segmentation (not checked by the planner)"]
    reasons += border_reasons(mask)
    return SacrumSegmentation(
        mask=mask,
        confidence=_confidence(reasons, base=0.9),
        has_soft_tissue=has_soft_tissue(volume),
        source="labelmap",
    )


def border_reasons(mask: Volume) -> list[str]:
    """One reason per volume face that the mask touches, named by its patient direction."""
    array = mask.array
    reasons = []
    faces = {  # (array axis, end) -> index axis name
        (0, 0): ("k", -1), (0, -1): ("k", 1),
        (1, 0): ("j", -1), (1, -1): ("j", 1),
        (2, 0): ("i", -1), (2, -1): ("i", 1),
    }  # fmt: skip
    names = {
        (0, 1): "left", (0, -1): "right",
        (1, 1): "posterior", (1, -1): "anterior",
        (2, 1): "cranial", (2, -1): "caudal",
    }  # fmt: skip
    for (axis, end), (index_axis, sign) in faces.items():
        face = np.take(array, end, axis=axis)
        if not face.any():
            continue
        outward_lps = sign * mask.axis_lps(index_axis)
        world_axis = int(np.argmax(np.abs(outward_lps)))
        direction = names[(world_axis, int(np.sign(outward_lps[world_axis])))]
        reasons.append(f"sacrum touches the volume border ({direction}): it may be cut off")
    return sorted(set(reasons))


def _confidence(reasons: list[str], base: float = 1.0) -> Confidence:
    penalty = 0.15 * len([r for r in reasons if "border" in r or "fused" in r])
    return Confidence(score=float(np.clip(base - penalty, 0.0, 1.0)), reasons=tuple(reasons))
