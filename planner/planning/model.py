"""Plan data types and their JSON form (the ``plan.json`` contract in DESIGN.md)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field

import numpy as np

from planner.errors import PlanningError

PLAN_FORMAT = "sacroplasty-plan"
PLAN_VERSION = 1
#: Decimal places in the JSON: positions/lengths (mm), unit vectors, angles (deg), probabilities.
MM_DECIMALS = 2
UNIT_DECIMALS = 5
DEG_DECIMALS = 2
PROBABILITY_DECIMALS = 3

#: Outer diameter (mm) of the bone needles the planner knows, by gauge.
NEEDLE_OUTER_DIAMETER_MM: dict[int, float] = {13: 2.41, 11: 3.05, 10: 3.40}


class Verdict(enum.Enum):
    SAFE = "safe"
    CAUTION = "caution"
    UNSAFE = "unsafe"


@dataclass(frozen=True)
class Needle:
    """A straight bone needle: gauge and outer diameter (mm)."""

    gauge: int = 13
    outer_diameter_mm: float = NEEDLE_OUTER_DIAMETER_MM[13]

    @property
    def radius_mm(self) -> float:
        return self.outer_diameter_mm / 2.0

    @classmethod
    def parse(cls, needle) -> Needle:
        """A Needle from ``"13G"``, ``"11g"``, ``13`` or a Needle."""
        if isinstance(needle, Needle):
            return needle
        text = str(needle).strip().upper().removesuffix("G")
        if not text.isdigit() or int(text) not in NEEDLE_OUTER_DIAMETER_MM:
            known = ", ".join(f"{g}G" for g in NEEDLE_OUTER_DIAMETER_MM)
            raise PlanningError(f"needle {needle!r} is not a known gauge; use one of {known}")
        gauge = int(text)
        return cls(gauge, NEEDLE_OUTER_DIAMETER_MM[gauge])


@dataclass(frozen=True)
class TargetInfo:
    """Where the target came from."""

    target_lps: np.ndarray
    source: str  # "level", "point" or "lesion"
    description: str  # e.g. "centre of the S3 body"
    level: str | None  # sacral body containing the target
    lesion_volume_ml: float | None = None
    cement_volume_ml: float | None = None


@dataclass(frozen=True)
class CanalCrossing:
    """Where the needle crosses the sacral canal (LPS mm), and the level of the anterior wall."""

    level: str | None
    entry_lps: np.ndarray  # through the posterior wall, into the canal
    exit_lps: np.ndarray  # through the anterior wall, into the bodies


@dataclass(frozen=True)
class CanalLimit:
    """A point in the canal that the crossing must stay caudal of, by ``margin_mm``.

    Used for the end of the dural sac found on MRI (in the CT frame): crossing the canal close
    below it risks a dural puncture.
    """

    end_lps: np.ndarray  # (3,) CT LPS mm
    caudal_lps: np.ndarray  # (3,) unit vector along the canal, pointing caudally
    margin_mm: float = 10.0
    description: str = "the end of the dural sac"


@dataclass(frozen=True)
class SafetyCone:
    """Probabilities of harm under random placement errors (see PlanningConfig)."""

    p_any: float
    p_foramen: float
    p_canal: float
    p_cortex: float
    samples: int
    entry_error_mm: float
    angle_error_deg: float
    seed: int
    pivot: str  # where the errors are applied: "bone entry" (the docking point)


@dataclass(frozen=True)
class Metrics:
    """Numbers measured on one needle (mm and degrees; None where unknown)."""

    foramen_clearance_mm: float
    foramen_clearances_mm: dict[str, float]
    canal_clearance_mm: float
    #: Bone around the needle's outer surface from the anterior canal wall to the target
    #: (see :func:`planner.planning.lines.bone_margins`).
    bone_margin_mm: float
    anterior_cortex_clearance_mm: float
    angle_to_anterior_edge_deg: float
    sagittal_tilt_deg: float
    out_of_plane_tilt_deg: float
    midline_offset_mm: float
    skin_to_target_mm: float | None
    bone_entry_to_target_mm: float | None
    intraosseous_length_mm: float
    canal_crossing_level: str | None
    other_bone_contact: bool
    #: Where the needle pierces the posterior canal wall, along the canal, relative to the
    #: sacral hiatus: > 0 cranial to the hiatus apex (through the laminae), < 0 caudal to the
    #: opening's base, 0 inside the opening; None without a canal crossing.
    posterior_wall_from_hiatus_mm: float | None = None
    #: Where ``bone_margin_mm`` is smallest: distance (mm) from the target along the needle.
    bone_margin_from_target_mm: float | None = None
    #: Angle (deg) between the needle and the anterior canal wall where it pierces it (None
    #: without a crossing): the steeper, the sooner the needle has bone around it.
    canal_wall_angle_deg: float | None = None


def _round(value, decimals: int):
    if value is None:
        return None
    if isinstance(value, np.ndarray | list | tuple):
        return [round(float(v), decimals) for v in np.asarray(value, float).reshape(-1)]
    return round(float(value), decimals)


@dataclass(frozen=True, eq=False)
class Plan:
    """A planned straight needle from skin entry to target, scored.

    Positions are LPS mm; ``direction_lps`` is the unit vector from the skin entry to the
    target. ``skin_entry_lps`` and the lengths that depend on it are None where the skin
    cannot be seen (bone-only volumes), with the reason in ``warnings``.
    """

    target: TargetInfo
    direction_lps: np.ndarray
    skin_entry_lps: np.ndarray | None
    bone_entry_lps: np.ndarray | None
    canal_crossing: CanalCrossing | None
    needle: Needle
    required_length_mm: float | None
    standard_length_mm: float | None
    levels_lps: dict[str, np.ndarray]
    metrics: Metrics
    verdict: Verdict
    reasons: tuple[str, ...]
    feasible: bool
    safety_cone: SafetyCone | None
    warnings: tuple[str, ...] = ()
    rank: int = 1
    alternatives: tuple[Plan, ...] = ()
    fluoroscopy: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)

    @property
    def target_lps(self) -> np.ndarray:
        return self.target.target_lps

    def save(
        self, output_dir, volume, anatomy, config: dict | None = None, save_masks: bool = False
    ) -> dict:
        """Write ``plan.json``, ``report.pdf``, ``images/``, ``trajectory.mrk.json`` (and masks).

        Parameters
        ----------
        output_dir : path
            Replaced whole on success; untouched if anything fails.
        volume : Volume
            The CT the plan was made on (for the pictures and the masks' grid).
        anatomy : SacralAnatomy
            The anatomy the plan was made on.
        config : dict, optional
            A ``[carm]`` table sets the C-arm of the fluoroscopy views.

        Returns
        -------
        dict
            The plan-file dictionary as written, with its ``fluoroscopy`` block.
        """
        from planner.pipeline import save_plan

        return save_plan(self, output_dir, volume, anatomy, config=config, save_masks=save_masks)

    def to_dict(self) -> dict:
        """The plan-file structure (plain JSON types) described in DESIGN.md."""
        result = {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "coordinate_system": "LPS",
            "units": "mm",
        }
        result.update(self._body())
        result["alternatives"] = [alt._body() for alt in self.alternatives]
        return result

    def _body(self) -> dict:
        m = self.metrics
        crossing = self.canal_crossing
        cone = self.safety_cone
        return {
            "rank": self.rank,
            "target_lps": _round(self.target.target_lps, MM_DECIMALS),
            "target_description": self.target.description,
            "target": {
                "source": self.target.source,
                "description": self.target.description,
                "level": self.target.level,
                "lesion_volume_ml": _round(self.target.lesion_volume_ml, MM_DECIMALS),
                "cement_volume_ml": _round(self.target.cement_volume_ml, MM_DECIMALS),
            },
            "skin_entry_lps": _round(self.skin_entry_lps, MM_DECIMALS),
            "direction_lps": _round(self.direction_lps, UNIT_DECIMALS),
            "bone_entry_lps": _round(self.bone_entry_lps, MM_DECIMALS),
            "canal_crossing": None
            if crossing is None
            else {
                "level": crossing.level,
                "entry_lps": _round(crossing.entry_lps, MM_DECIMALS),
                "exit_lps": _round(crossing.exit_lps, MM_DECIMALS),
            },
            "needle": {
                "gauge": self.needle.gauge,
                "outer_diameter_mm": self.needle.outer_diameter_mm,
                "required_length_mm": _round(self.required_length_mm, MM_DECIMALS),
                "standard_length_mm": _round(self.standard_length_mm, MM_DECIMALS),
            },
            "levels": {
                name: {"center_lps": _round(center, MM_DECIMALS)}
                for name, center in self.levels_lps.items()
            },
            "metrics": {
                "foramen_clearance_mm": _round(m.foramen_clearance_mm, MM_DECIMALS),
                "foramen_clearances_mm": {
                    name: _round(value, MM_DECIMALS)
                    for name, value in m.foramen_clearances_mm.items()
                },
                "canal_clearance_mm": _round(m.canal_clearance_mm, MM_DECIMALS),
                "bone_margin_mm": _round(m.bone_margin_mm, MM_DECIMALS),
                "bone_margin_from_target_mm": _round(m.bone_margin_from_target_mm, MM_DECIMALS),
                "canal_wall_angle_deg": _round(m.canal_wall_angle_deg, DEG_DECIMALS),
                "anterior_cortex_clearance_mm": _round(m.anterior_cortex_clearance_mm, MM_DECIMALS),
                "angle_to_anterior_edge_deg": _round(m.angle_to_anterior_edge_deg, DEG_DECIMALS),
                "sagittal_tilt_deg": _round(m.sagittal_tilt_deg, DEG_DECIMALS),
                "out_of_plane_tilt_deg": _round(m.out_of_plane_tilt_deg, DEG_DECIMALS),
                "midline_offset_mm": _round(m.midline_offset_mm, MM_DECIMALS),
                "skin_to_target_mm": _round(m.skin_to_target_mm, MM_DECIMALS),
                "bone_entry_to_target_mm": _round(m.bone_entry_to_target_mm, MM_DECIMALS),
                "intraosseous_length_mm": _round(m.intraosseous_length_mm, MM_DECIMALS),
                "canal_crossing_level": m.canal_crossing_level,
                "other_bone_contact": bool(m.other_bone_contact),
                "posterior_wall_from_hiatus_mm": _round(m.posterior_wall_from_hiatus_mm,
                                                        MM_DECIMALS),
                "needle_length_required_mm": _round(self.required_length_mm, MM_DECIMALS),
            },
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "feasible": bool(self.feasible),
            "safety_cone": None
            if cone is None
            else {
                key: (_round(value, PROBABILITY_DECIMALS) if key.startswith("p_") else value)
                for key, value in asdict(cone).items()
            },
            "warnings": list(self.warnings),
            "fluoroscopy": dict(self.fluoroscopy),
            "thresholds": dict(self.thresholds),
            "search": dict(self.search),
        }
