"""Label numbers of the sacrum stage's working-grid bone map, and its "no sacrum" message."""

from __future__ import annotations

#: Labels of :attr:`SacrumSegmentation.bone_labels` (working grid).
BACKGROUND, SACRUM, HIP_LEFT, HIP_RIGHT, SPINE, OTHER_BONE = 0, 1, 2, 3, 4, 5
BONE_LABEL_NAMES = {
    SACRUM: "sacrum",
    HIP_LEFT: "left hip bone",
    HIP_RIGHT: "right hip bone",
    SPINE: "spine above the sacrum",
    OTHER_BONE: "other bone",
}


def no_sacrum_message(detail: str) -> str:
    """The message of every :class:`~planner.errors.AnatomyNotFoundError` of the sacrum stage."""
    return (
        f"no sacrum found in the field of view ({detail}); the CT must cover the pelvis from L5 "
        "to the coccyx"
    )
