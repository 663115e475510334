"""Fluoroscopy as the physician sees it: C-arm geometry, DRRs and views with the plan drawn on."""

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
from planner.fluoro.drr import MU_WATER_PER_MM, mu_from_hu, radiograph, render_drr

__all__ = [
    "CArm",
    "CArmPose",
    "Camera",
    "angles_from_beam",
    "beam_from_angles",
    "camera_from_angles",
    "camera_from_beam",
    "project",
    "MU_WATER_PER_MM",
    "mu_from_hu",
    "radiograph",
    "render_drr",
]
