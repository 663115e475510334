"""Sacral anatomy from CT: sacrum, canal, foramina, anterior cortex, hiatus and levels."""

from planner.anatomy.find import find_anatomy
from planner.anatomy.model import (
    FORAMEN_LABELS,
    LEVEL_LABELS,
    LEVEL_NAMES,
    Confidence,
    Foramen,
    Hiatus,
    Plane,
    SacralAnatomy,
)
from planner.anatomy.sacrum import SacrumSegmentation, sacrum_from_labelmap, segment_sacrum

__all__ = [
    "find_anatomy",
    "segment_sacrum",
    "sacrum_from_labelmap",
    "SacrumSegmentation",
    "FORAMEN_LABELS",
    "LEVEL_LABELS",
    "LEVEL_NAMES",
    "Confidence",
    "Foramen",
    "Hiatus",
    "Plane",
    "SacralAnatomy",
]
