"""Data types that the anatomy stage hands to planning, fluoroscopy and reporting.

Masks are `Volume` objects on one grid (geometry travels with them); landmarks are LPS mm.
The label numbering below is part of the mask contract in DESIGN.md (``foramina.nii.gz``,
``levels.nii.gz``): keep it stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planner.volume import Volume

LEVEL_NAMES: tuple[str, ...] = ("S1", "S2", "S3", "S4", "S5")
#: ``levels.nii.gz`` label of each sacral body (0 = not a sacral body).
LEVEL_LABELS: dict[str, int] = {name: index + 1 for index, name in enumerate(LEVEL_NAMES)}

FORAMEN_LEVELS: tuple[str, ...] = ("S1", "S2", "S3", "S4")
SIDES: tuple[str, ...] = ("L", "R")
#: ``foramina.nii.gz`` label of each anterior foramen: S1 L = 1, S1 R = 2, ... S4 R = 8.
FORAMEN_LABELS: dict[tuple[str, str], int] = {
    (level, side): 2 * index + (1 if side == "L" else 2)
    for index, level in enumerate(FORAMEN_LEVELS)
    for side in SIDES
}


@dataclass(frozen=True)
class Confidence:
    """How far a structure can be trusted: ``score`` in [0, 1] and why it is not 1."""

    score: float = 1.0
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plane:
    """A plane through ``point_lps`` with unit ``normal_lps`` (mm, LPS)."""

    point_lps: np.ndarray
    normal_lps: np.ndarray

    def signed_distance(self, points_lps: np.ndarray) -> np.ndarray:
        """Signed distance in mm of (..., 3) points from the plane (positive along the normal)."""
        return (np.asarray(points_lps, float) - self.point_lps) @ self.normal_lps


@dataclass(frozen=True)
class Foramen:
    """One anterior sacral foramen (the nerve-root exit) at a junction between two bodies."""

    level: str  # "S1".."S4": the foramen between this body and the next one caudally
    side: str  # "L" or "R" (patient left/right)
    found: bool
    center_lps: np.ndarray | None = None  # centre of its anterior opening region, mm
    label: int = 0  # FORAMEN_LABELS[(level, side)]


@dataclass(frozen=True)
class Hiatus:
    """The sacral hiatus: the caudal opening of the canal's posterior wall."""

    apex_lps: np.ndarray  # cranial end of the opening (where the laminae stop), mm
    opening_lps: np.ndarray  # centre of the opening at its base, mm


@dataclass(frozen=True)
class SacralAnatomy:
    """Everything the planner knows about one sacrum, on the grid of ``sacrum``.

    Attributes
    ----------
    sacrum, canal : Volume (bool)
        Sacrum bone (canal and foramina excluded) and sacral canal (S1 to the hiatus).
    foramina : Volume (uint8)
        Anterior foramina labelled by :data:`FORAMEN_LABELS`.
    levels : Volume (uint8)
        Sacral bodies labelled by :data:`LEVEL_LABELS`.
    level_centers_lps : dict
        ``"S1".."S5"`` -> (3,) centre of each body, mm.
    midsagittal : Plane
        Fitted mid-sagittal plane; the normal points to patient left.
    anterior_cortex_lps : (N, 3) ndarray
        The anterior cortex on the mid-sagittal plane, ordered from the promontory to the tip.
    hiatus : Hiatus
    foramen_list : list of Foramen
        All eight S1-S4 foramina, found or not.
    confidence : dict
        Structure name (``"sacrum"``, ``"canal"``, ``"foramina"``, ``"levels"``, ``"hiatus"``,
        ``"anterior_cortex"``, ``"midsagittal"``) -> :class:`Confidence`.
    has_soft_tissue : bool
        False on bone-only volumes, where no skin surface can be found.
    """

    sacrum: Volume
    canal: Volume
    foramina: Volume
    levels: Volume
    level_centers_lps: dict[str, np.ndarray]
    midsagittal: Plane
    anterior_cortex_lps: np.ndarray
    hiatus: Hiatus
    foramen_list: list[Foramen]
    confidence: dict[str, Confidence] = field(default_factory=dict)
    has_soft_tissue: bool = True
    notes: tuple[str, ...] = ()

    def foramen(self, level: str, side: str) -> Foramen:
        for foramen in self.foramen_list:
            if foramen.level == level and foramen.side == side:
                return foramen
        raise KeyError(f"no foramen {level} {side}")

    def low_confidence_reasons(self) -> list[str]:
        """Every reason any structure is less than fully trusted, prefixed by the structure."""
        return [
            f"{name}: {reason}" for name, conf in self.confidence.items() for reason in conf.reasons
        ]
