"""All fluoroscopy pictures of a plan, and the ``fluoroscopy`` block of ``plan.json``.

Adapter between the planner (``planner.planning.Plan``, ``planner.anatomy.SacralAnatomy``) and
the views; both are used duck-typed, so this module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planner.errors import PlannerError
from planner.fluoro.carm import CArm
from planner.fluoro.needle import NeedlePath, complete_from_masks, needle_from_plan
from planner.fluoro.views import FluoroView, Structures, checkpoint_views, plan_views
from planner.volume import Volume

#: ``levels.nii.gz`` labels (planner.anatomy.model.LEVEL_LABELS), repeated to avoid the import.
_LEVEL_LABELS = {"S1": 1, "S2": 2, "S3": 3, "S4": 4, "S5": 5}
ANGLE_CONVENTION = (
    "DICOM Positioner Primary/Secondary Angle, patient-relative: primary LAO+ / RAO-, secondary "
    "CRAN+ / CAUD-; the angles give the detector position seen from the isocentre (the "
    "target), 0/0 = detector anterior (PA beam). Prone patient, source under the table: "
    "detector over the back = primary 180."
)


@dataclass(frozen=True, eq=False)
class PlanFluoroscopy:
    """The views a physician sets up for a plan, and the lateral checkpoints."""

    needle: NeedlePath
    views: dict[str, FluoroView]
    checkpoints: list[FluoroView] = field(default_factory=list)

    def summary(self) -> dict:
        """Plain-JSON block for ``plan.json["fluoroscopy"]``.

        One entry per view (``"lateral"``, ``"ap"``, ``"bullseye"``: angles, ``"label"`` and the
        prone set-up in words), ``"checkpoints"`` (milestone and remaining mm), the C-arm, the
        isocentre and the angle convention.
        """
        carm = next(iter(self.views.values())).camera.carm
        result = {name: view.summary() for name, view in self.views.items()}
        result.update(
            {
                "checkpoints": [view.summary() for view in self.checkpoints],
                "angle_convention": ANGLE_CONVENTION,
                "isocenter_lps": [round(float(v), 2) for v in self.needle.target_lps],
                "c_arm": {
                    "sdd_mm": carm.sdd_mm,
                    "sad_mm": carm.sad_mm,
                    "detector_shape": list(carm.detector_shape),
                    "detector_size_mm": list(carm.detector_size_mm),
                },
            }
        )
        return result

    def save(self, folder: str | Path, prefix: str = "fluoro_") -> list[Path]:
        """Write every view and checkpoint as PNG into ``folder``; returns the paths."""
        folder = Path(folder)
        paths = [view.save(folder / f"{prefix}{name}.png") for name, view in self.views.items()]
        paths += [
            view.save(folder / f"{prefix}checkpoint_{number}.png")
            for number, view in enumerate(self.checkpoints, start=1)
        ]
        return paths


def needle_for_plan(plan, anatomy=None) -> NeedlePath:
    """The plan's needle, with the target's body entry found in the anatomy's level labels."""
    needle = needle_from_plan(plan)
    if anatomy is None:
        return needle
    return complete_from_masks(
        needle,
        canal=getattr(anatomy, "canal", None),
        levels=getattr(anatomy, "levels", None),
        target_label=_LEVEL_LABELS.get(needle.target_level),
    )


def structures_for(anatomy=None, extra_outlines: dict[str, Volume] | None = None) -> Structures:
    """Outlines from a ``SacralAnatomy`` (foramina, anterior cortex, canal, sacrum) if given."""
    if anatomy is None:
        return Structures(outlines=dict(extra_outlines or {}))
    outlines = {"sacrum": anatomy.sacrum}
    outlines.update(extra_outlines or {})
    return Structures.from_anatomy(anatomy, outlines)


def carm_from_config(config: dict | None) -> CArm:
    """A :class:`CArm` from a config table (e.g. TOML ``[carm]``); unknown keys are an error.

    Keys: ``sdd_mm``, ``sad_mm`` (mm), ``detector_shape`` ([rows, cols]),
    ``detector_size_mm`` ([height, width]).
    """
    config = dict(config or {})
    allowed = {"sdd_mm", "sad_mm", "detector_shape", "detector_size_mm"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise PlannerError(
            f"unknown C-arm setting(s) {', '.join(unknown)} in the [carm] table; "
            f"use {', '.join(sorted(allowed))}"
        )
    for key in ("detector_shape", "detector_size_mm"):
        if key in config:
            config[key] = tuple(config[key])
    return CArm(**config)


def plan_fluoroscopy(
    volume: Volume,
    plan,
    anatomy=None,
    carm: CArm | None = None,
    min_hu: float | str | None = "auto",
    lesion: Volume | None = None,
) -> PlanFluoroscopy:
    """Lateral, AP and bull's-eye views of a plan and the lateral checkpoints.

    Parameters
    ----------
    volume : Volume
        The planning CT (HU).
    plan : planner.planning.Plan
        Any object with the Plan's attributes (see :func:`needle_from_plan`).
    anatomy : planner.anatomy.SacralAnatomy, optional
        For outlines, the true lateral (mid-sagittal normal) and the body-entry milestone.
    lesion : Volume (bool), optional
        The lesion the plan targets, outlined on every view.
    """
    needle = needle_for_plan(plan, anatomy)
    structures = structures_for(anatomy, lesion_outline(lesion))
    views = plan_views(volume, needle, structures, carm, min_hu)
    checkpoints = checkpoint_views(None, needle, lateral=views["lateral"])
    return PlanFluoroscopy(needle, views, checkpoints)


def lesion_outline(lesion: Volume | None) -> dict[str, Volume]:
    """``{"lesion": mask}`` for :func:`structures_for`, or nothing without a (non-empty) lesion."""
    if lesion is None or not np.asarray(lesion.array).any():
        return {}
    return {"lesion": lesion.with_array(np.asarray(lesion.array) > 0, "SEG")}


def render_plan_views(
    volume: Volume, anatomy, plan, carm_config: dict | None = None, lesion: Volume | None = None
):
    """Every picture of a plan as RGB arrays, and the ``plan.json`` fluoroscopy block.

    The keys are the file stems of ``OUT/images/`` (a contract the README documents). A
    ``lesion`` mask (the one the plan targets, on any grid) is outlined on every picture.

    Returns
    -------
    pictures : dict of str -> (H, W, 3) uint8 ndarray
        ``fluoro_lateral``, ``fluoro_ap``, ``fluoro_bullseye``, ``fluoro_checkpoint_1``..; and
        one ``ct_*`` per CT view, named by :func:`ct_picture_stem` (for instance
        ``ct_needle_plane_sagittal_oblique``, the needle's own plane against the anterior
        cortex, and ``ct_cross_section_at_target``).
    fluoroscopy : dict
        :meth:`PlanFluoroscopy.summary`.
    """
    from planner.render.ct_views import plan_ct_views

    fluoroscopy = plan_fluoroscopy(
        volume, plan, anatomy, carm_from_config(carm_config), lesion=lesion
    )
    pictures = {f"fluoro_{name}": view.rgb() for name, view in fluoroscopy.views.items()}
    for number, view in enumerate(fluoroscopy.checkpoints, start=1):
        pictures[f"fluoro_checkpoint_{number}"] = view.rgb()
    structures = structures_for(anatomy, lesion_outline(lesion))
    for view in plan_ct_views(volume, fluoroscopy.needle, structures):
        pictures[ct_picture_stem(view.name)] = view.rgb()
    return pictures, fluoroscopy.summary()


def ct_picture_stem(view_name: str) -> str:
    """File stem of a CT view: ``"needle plane (sagittal oblique)"`` ->
    ``"ct_needle_plane_sagittal_oblique"``."""
    words = "".join(c if c.isalnum() else " " for c in view_name).split()
    return "_".join(["ct", *words])
