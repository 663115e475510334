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

__all__ = [
    "find_anatomy",
    "FORAMEN_LABELS",
    "LEVEL_LABELS",
    "LEVEL_NAMES",
    "Confidence",
    "Foramen",
    "Hiatus",
    "Plane",
    "SacralAnatomy",
]
