"""Pictures shared by the report: CT reformats along the plan and common annotations."""

from planner.render.annotate import edge_letters, figure_to_rgb, save_png
from planner.render.ct_views import (
    BONE_WINDOW_HU,
    CTView,
    PlaneGrid,
    needle_cross_sections,
    needle_plane_views,
    plan_ct_views,
    plane_grid,
    reformat,
    target_slices,
)
from planner.render.structures import Structures

__all__ = [
    "BONE_WINDOW_HU",
    "CTView",
    "PlaneGrid",
    "Structures",
    "edge_letters",
    "figure_to_rgb",
    "needle_cross_sections",
    "needle_plane_views",
    "plan_ct_views",
    "plane_grid",
    "reformat",
    "save_png",
    "target_slices",
]
