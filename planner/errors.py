"""Exception family for inputs the planner cannot use.

Every error that a user can cause (a missing file, a broken DICOM series, a volume without a
sacrum) is a :class:`PlannerError`. The CLI prints its message as one line and exits with code 2,
so messages must name the file or argument, the problem, and, where possible, the fix.
"""

from __future__ import annotations


class PlannerError(ValueError):
    """Base class of every error caused by the input rather than by a bug."""


class InputNotFoundError(PlannerError):
    """The path does not exist, or a folder holds nothing the planner can read."""


class UnsupportedInputError(PlannerError):
    """The file exists but its format, dimension or encoding is not supported."""


class WrongModalityError(UnsupportedInputError):
    """A DICOM input holds volumes, but none of the modality asked for.

    ``found`` lists the modalities it does hold (e.g. ``["CT"]``), so a caller can name its own
    argument in the message (``--mri`` given a CT).
    """

    def __init__(self, message: str, found: list[str]):
        super().__init__(message)
        self.found = found


class CorruptInputError(PlannerError):
    """The file is truncated, unreadable, or its header contradicts its data."""


class GeometryError(PlannerError):
    """Spacing, direction or slice layout is invalid (zero spacing, gaps, tilt, skew)."""


class ImageContentError(PlannerError):
    """The voxel values cannot be planned on (constant, NaN or infinite values)."""


class VolumeTooLargeError(PlannerError):
    """The volume would not fit in memory; detected before allocating it."""


class AnatomyNotFoundError(PlannerError):
    """The structure the planner needs (e.g. the sacrum) is not in the field of view."""


class PlanningError(PlannerError):
    """The planning request itself is invalid (e.g. a target outside the volume)."""
