"""Verdict thresholds and search settings, with their documentation and config loading.

Settable three ways, later ones winning: the documented defaults, a config (a dict or a TOML
file with ``[thresholds]`` and ``[planning]`` tables), and the ``thresholds=`` argument of
:func:`planner.planning.plan`.

Example TOML::

    [thresholds]
    foramen_safe_mm = 4.0
    angle_safe_deg = 8.0

    [planning]
    cone_samples = 1000
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from planner.anatomy.find import COARSE_FACTOR, COARSE_VOXEL_MM
from planner.errors import PlanningError


@dataclass(frozen=True)
class Thresholds:
    """Limits that turn the metrics into a verdict (mm, degrees, probabilities).

    A metric below a ``*_min_*`` limit (or above a ``*_max_*`` limit) makes the plan
    ``unsafe``; between that and the ``*_safe_*`` limit it is ``caution``. See
    :data:`THRESHOLD_DOCS` for the text of each.
    """

    foramen_safe_mm: float = 3.0
    foramen_min_mm: float = 1.0
    cortex_safe_mm: float = 2.0
    cortex_min_mm: float = 0.0
    canal_safe_mm: float = 2.0
    canal_min_mm: float = 0.0
    bone_margin_safe_radii: float = 1.0
    bone_margin_min_mm: float = 0.0
    wall_pierce_angle_deg: float = 20.0
    angle_safe_deg: float = 10.0
    angle_max_deg: float = 20.0
    midline_safe_mm: float = 5.0
    hiatus_entry_safe_mm: float = 5.0
    cone_risk_caution: float = 0.10
    cone_risk_max: float = 0.50
    confidence_min: float = 0.5


#: Documentation of every threshold (the README table is generated from this).
THRESHOLD_DOCS: dict[str, str] = {
    "foramen_safe_mm": "Clearance (needle outer surface to the nearest anterior foramen) at or "
    "above which the foramina do not limit the verdict.",
    "foramen_min_mm": "Below this foramen clearance the plan is unsafe (contact, < 0 mm, always "
    "is); between this and foramen_safe_mm it is caution.",
    "cortex_safe_mm": "Clearance to the outer surface of the sacral bodies (anterior cortex, and "
    "the lateral and caudal surfaces; not the posterior surface where the needle enters), between "
    "the anterior canal wall and the target, at or above which the cortex does not limit the "
    "verdict.",
    "cortex_min_mm": "Below this cortex clearance the plan is unsafe (negative = breach).",
    "canal_safe_mm": "Clearance to the sacral canal at and above the target's level (the canal "
    "cranial to a crossing caudal of the target), from the target to the posterior canal wall, "
    "at or above which the canal does not limit the verdict.",
    "canal_min_mm": "Below this canal clearance the plan is unsafe (negative = the needle enters "
    "the canal at or above the target's level).",
    "bone_margin_safe_radii": "Bone wanted around the needle's outer surface from the anterior "
    "canal wall to the target, in needle radii (1 = a full radius: 1.2 mm for 13 G, 1.7 mm for "
    "10 G): the distance from the axis to anything that is not sacral bone (canal, foramina, "
    "outside; sub-voxel), less the radius. Below it, caution. Over the wall pierce (see "
    "wall_pierce_angle_deg) the back of the body the needle has just pierced is left out and "
    "the margin there is to the anterior, lateral and caudal cortex, the foramina and the canal "
    "at and above the target's level.",
    "bone_margin_min_mm": "Below this bone margin the plan is unsafe (a hard constraint of the "
    "search: < 0 means the needle's surface leaves the bone between the canal wall and the "
    "target).",
    "wall_pierce_angle_deg": "Shallowest crossing of the anterior canal wall the bone margin "
    "allows. A straight needle crossing a wall at angle a is only t sin(a) deep t mm past it, so "
    "no needle has bone around it at the wall itself; the canal it has just left (and the "
    "hiatus) therefore count in the bone margin only from (1 + bone_margin_safe_radii) radius / "
    "sin(a) mm past the wall (7.0 mm for 13 G at 20 deg), where a needle crossing at this angle "
    "has its full margin. A shallower crossing, skiving along the back of the bodies, falls "
    "short of it.",
    "angle_safe_deg": "Largest angle between the needle and the anterior sacral edge near the "
    "target that is still safe; above it, caution.",
    "angle_max_deg": "Largest angle searched and accepted; above it the path is not the "
    "interpedicular route (unsafe). Also the half-angle of the search cone.",
    "midline_safe_mm": "Largest distance of the needle axis from the mid-sagittal plane inside "
    "bone that is still safe; above it, caution.",
    "hiatus_entry_safe_mm": "Largest distance, along the canal, between the point where the "
    "needle pierces the posterior canal wall and the sacral hiatus (from its apex, where the "
    "laminae stop, to the base of the opening) that is still safe; above it, caution. The "
    "interpedicular needle enters over the hiatus and pierces the posterior wall there; 5 mm "
    "allows the thin lowest lamina just above the apex, more means the needle goes through the "
    "laminae higher up (the skin entry is not over the hiatus) or below the opening.",
    "cone_risk_caution": "Safety-cone probability (of touching a foramen or the cranial canal, or "
    "breaching the cortex, under placement errors) above which the plan is caution.",
    "cone_risk_max": "Safety-cone probability above which the plan is unsafe.",
    "confidence_min": "Anatomy confidence score below which the plan is caution, with the "
    f"anatomy's reasons. Voxels coarser than {COARSE_VOXEL_MM:g} mm (any axis) multiply the "
    f"canal, foramina, levels and hiatus confidences by {COARSE_FACTOR:g}, so a plan on such a "
    "scan is at least a caution that names the resolution.",
}


@dataclass(frozen=True)
class PlanningConfig:
    """How the search and the safety cone run (not part of the verdict)."""

    #: Half-range (deg) of the out-of-plane tilt searched around the anterior-edge tangent.
    out_of_plane_max_deg: float = 10.0
    #: Coarse search step (deg), then a fine step around the best candidates.
    coarse_step_deg: float = 2.0
    fine_step_deg: float = 0.5
    #: Axis sampling step (mm) during the search and for the reported metrics.
    search_step_mm: float = 0.5
    metric_step_mm: float = 0.25
    #: Shaft kept outside the skin to hold and steer the needle (mm), added to the depth.
    working_margin_mm: float = 20.0
    #: Standard needle lengths available (mm).
    standard_lengths_mm: tuple[float, ...] = (100.0, 125.0, 150.0)
    #: Minimum angle (deg) between two reported alternatives.
    alternative_separation_deg: float = 5.0
    max_alternatives: int = 3
    #: Safety cone: standard deviation of the entry error (mm, each axis across the needle)
    #: and of the angular error (deg, each axis across the needle); samples; seed.
    entry_error_mm: float = 2.0
    angle_error_deg: float = 3.0
    cone_samples: int = 500
    cone_seed: int = 0


def _apply(obj, values: dict, where: str):
    names = {f.name for f in fields(obj)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise PlanningError(
            f"{where}: unknown setting(s) {unknown}; known settings are {sorted(names)}"
        )
    converted = {}
    for key, value in values.items():
        default = getattr(obj, key)
        try:
            if isinstance(default, tuple):
                converted[key] = tuple(float(v) for v in value)
            elif isinstance(default, int) and not isinstance(default, bool):
                converted[key] = int(value)
            else:
                converted[key] = float(value)
        except (TypeError, ValueError) as error:
            raise PlanningError(
                f"{where}: setting {key!r} must be a number (got {value!r})"
            ) from error
    return replace(obj, **converted)


def read_config(config) -> dict:
    """A config as a dict: None, a dict, or the path of a TOML file."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return config
    path = Path(config)
    if not path.is_file():
        raise PlanningError(f"config file {path} not found; give the path of a TOML file")
    import tomllib

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise PlanningError(f"config file {path} is not valid TOML: {error}") from error


def resolve_settings(thresholds=None, config=None) -> tuple[Thresholds, PlanningConfig]:
    """Combine defaults, a config (dict or TOML path) and a ``thresholds`` argument.

    ``thresholds`` may be a :class:`Thresholds` or a dict of threshold names to values.
    A config dict may hold ``thresholds`` and ``planning`` tables; other top-level tables
    (e.g. the C-arm settings read by the fluoroscopy stage) are ignored here.
    """
    values = read_config(config)
    result = _apply(Thresholds(), dict(values.get("thresholds", {})), "config [thresholds]")
    settings = _apply(PlanningConfig(), dict(values.get("planning", {})), "config [planning]")
    if isinstance(thresholds, Thresholds):
        result = thresholds
    elif isinstance(thresholds, dict):
        result = _apply(result, thresholds, "thresholds argument")
    elif thresholds is not None:
        raise PlanningError(
            f"thresholds must be a Thresholds or a dict, got {type(thresholds).__name__}"
        )
    return result, settings


def threshold_table_markdown() -> str:
    """The README table of thresholds: name, default, meaning."""
    lines = ["| threshold | default | meaning |", "|---|---|---|"]
    for name, default in asdict(Thresholds()).items():
        lines.append(f"| `{name}` | {default:g} | {THRESHOLD_DOCS[name]} |")
    return "\n".join(lines)
