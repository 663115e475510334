"""Fluoroscopy as the physician sees it: C-arm geometry, DRRs and views with the plan drawn on.

Typical use with a plan::

    pictures = fluoro.plan_fluoroscopy(volume, plan, anatomy)
    pictures.save(outdir / "images"); plan_json["fluoroscopy"] = pictures.summary()

or piece by piece::

    from planner import fluoro
    needle = fluoro.needle_from_plan(plan)            # or fluoro.NeedlePath(entry, target)
    structures = fluoro.Structures.from_anatomy(anatomy)
    views = fluoro.plan_views(volume, needle, structures)   # lateral, ap, bullseye
    views["lateral"].save("lateral.png"); views["ap"].pose.as_dict()
    checkpoints = fluoro.checkpoint_views(None, needle, lateral=views["lateral"])
"""

from planner.fluoro.carm import (
    Camera,
    CArm,
    CArmPose,
    angles_from_beam,
    beam_from_angles,
    camera_from_angles,
    camera_from_beam,
    project,
)
from planner.fluoro.drr import (
    MU_WATER_PER_MM,
    mu_from_hu,
    radiograph,
    render_drr,
    suggested_min_hu,
)
from planner.fluoro.for_plan import PlanFluoroscopy, plan_fluoroscopy
from planner.fluoro.needle import Milestone, NeedlePath, complete_from_masks, needle_from_plan
from planner.fluoro.views import (
    FluoroView,
    Structures,
    ap_view,
    bullseye_view,
    checkpoint_views,
    lateral_view,
    plan_views,
)

__all__ = [
    "MU_WATER_PER_MM",
    "CArm",
    "CArmPose",
    "Camera",
    "FluoroView",
    "Milestone",
    "NeedlePath",
    "PlanFluoroscopy",
    "Structures",
    "angles_from_beam",
    "ap_view",
    "beam_from_angles",
    "bullseye_view",
    "camera_from_angles",
    "camera_from_beam",
    "checkpoint_views",
    "complete_from_masks",
    "lateral_view",
    "mu_from_hu",
    "needle_from_plan",
    "plan_fluoroscopy",
    "plan_views",
    "project",
    "radiograph",
    "render_drr",
    "suggested_min_hu",
]
