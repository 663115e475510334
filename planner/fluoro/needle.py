"""The needle as the pictures need it: a straight path with named points (LPS mm).

:class:`NeedlePath` is deliberately small so the views work before (and without) the planner; the
planner's ``Plan`` converts with :func:`needle_from_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from planner.errors import PlanningError

#: Outer diameter of a 13-gauge bone needle, mm (the default needle of the procedure).
NEEDLE_13G_OUTER_DIAMETER_MM = 2.41
#: Sampling step along the needle axis when locating milestones in label masks, mm.
MILESTONE_STEP_MM = 0.25


@dataclass(frozen=True)
class Milestone:
    """A named point on the needle and the distance left from it to the target (mm)."""

    name: str
    point_lps: np.ndarray
    remaining_mm: float


@dataclass(frozen=True, eq=False)
class NeedlePath:
    """A straight needle from ``entry_lps`` to ``target_lps`` (LPS mm).

    Attributes
    ----------
    entry_lps : (3,) ndarray
        Where the drawn needle starts: the skin entry, or the bone entry on a bone-only scan.
    target_lps : (3,) ndarray
        Needle tip at the target.
    outer_diameter_mm : float
        Needle outer diameter (13 G: 2.41 mm).
    bone_entry_lps, canal_entry_lps, canal_exit_lps, body_entry_lps : (3,) ndarray or None
        Where the needle enters bone, enters the canal (posterior wall), leaves it (anterior
        wall), and enters the target's vertebral body.
    canal_level : str or None
        Sacral level of the anterior canal wall crossing (e.g. ``"S4"``).
    target_level : str
        Body that holds the target (e.g. ``"S3"``).
    entry_is_skin : bool
        False when ``entry_lps`` is a bone entry (no skin in the scan).
    """

    entry_lps: np.ndarray
    target_lps: np.ndarray
    outer_diameter_mm: float = NEEDLE_13G_OUTER_DIAMETER_MM
    bone_entry_lps: np.ndarray | None = None
    canal_entry_lps: np.ndarray | None = None
    canal_exit_lps: np.ndarray | None = None
    body_entry_lps: np.ndarray | None = None
    canal_level: str | None = None
    target_level: str = "S3"
    entry_is_skin: bool = True

    def __post_init__(self) -> None:
        for name in (
            "entry_lps",
            "target_lps",
            "bone_entry_lps",
            "canal_entry_lps",
            "canal_exit_lps",
            "body_entry_lps",
        ):
            value = getattr(self, name)
            if value is None:
                continue
            point = np.asarray(value, dtype=float).reshape(-1)
            if point.shape != (3,) or not np.all(np.isfinite(point)):
                raise PlanningError(
                    f"NeedlePath.{name} must be 3 finite LPS mm values, got {value}"
                )
            object.__setattr__(self, name, point)
        if self.length_mm < 1.0:
            raise PlanningError(
                f"NeedlePath entry and target are {self.length_mm:.2f} mm apart; a needle needs "
                "at least 1 mm between them"
            )
        if self.outer_diameter_mm <= 0:
            raise PlanningError(
                f"NeedlePath.outer_diameter_mm must be positive, got {self.outer_diameter_mm}"
            )

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.target_lps - self.entry_lps))

    @property
    def direction_lps(self) -> np.ndarray:
        """Unit vector from the entry to the target."""
        return (self.target_lps - self.entry_lps) / self.length_mm

    def remaining_mm(self, point_lps: np.ndarray) -> float:
        """Distance (mm) still to go from a point on the path to the target, along the axis."""
        return float((self.target_lps - np.asarray(point_lps, float)) @ self.direction_lps)

    def milestones(self) -> list[Milestone]:
        """The checkpoints the physician verifies, in order, ending at the target.

        Posterior canal wall, anterior canal wall, entry into the target's body, target; the ones
        that are unknown are left out.
        """
        level = f" ({self.canal_level})" if self.canal_level else ""
        named = [
            ("posterior canal wall", self.canal_entry_lps),
            (f"anterior canal wall{level}", self.canal_exit_lps),
            (f"{self.target_level} body entry", self.body_entry_lps),
            ("target", self.target_lps),
        ]
        return [
            Milestone(name, point, max(0.0, self.remaining_mm(point)))
            for name, point in named
            if point is not None
        ]

    def axis_points(self, step_mm: float = MILESTONE_STEP_MM) -> tuple[np.ndarray, np.ndarray]:
        """Points along the axis, entry to target: ``(distances_mm (N,), points_lps (N, 3))``."""
        count = max(2, int(np.ceil(self.length_mm / step_mm)) + 1)
        distances = np.linspace(0.0, self.length_mm, count)
        return distances, self.entry_lps + distances[:, np.newaxis] * self.direction_lps


def complete_from_masks(
    needle: NeedlePath,
    canal=None,
    levels=None,
    target_label: int | None = None,
    canal_level: str | None = None,
) -> NeedlePath:
    """Fill the unknown canal crossing and body entry by sampling masks along the needle axis.

    Parameters
    ----------
    canal : Volume (bool), optional
        Sacral canal mask; its first run along the needle gives the canal entry and exit.
    levels : Volume (int), optional
        Level labels; the first sample labelled ``target_label`` gives the body entry.
    """
    _, points = needle.axis_points()
    updates: dict = {}
    if canal is not None and needle.canal_entry_lps is None:
        inside = canal.sample(points, order=0) > 0.5
        run = _first_run(inside)
        if run is not None:
            updates["canal_entry_lps"] = points[run[0]]
            updates["canal_exit_lps"] = points[run[1]]
            if canal_level and needle.canal_level is None:
                updates["canal_level"] = canal_level
    if levels is not None and target_label is not None and needle.body_entry_lps is None:
        hits = np.flatnonzero(np.rint(levels.sample(points, order=0)) == target_label)
        if hits.size:
            updates["body_entry_lps"] = points[hits[0]]
    return replace(needle, **updates) if updates else needle


def _first_run(flags: np.ndarray):
    """(first, last) index of the first run of True values, or None."""
    hits = np.flatnonzero(flags)
    if hits.size == 0:
        return None
    start = hits[0]
    gaps = np.flatnonzero(~flags[start:])
    stop = start + (gaps[0] - 1 if gaps.size else flags.size - 1 - start)
    return int(start), int(stop)


def needle_from_plan(plan) -> NeedlePath:
    """A :class:`NeedlePath` from a planner ``Plan`` (duck-typed: no import of the planner).

    Uses ``target_lps``, ``skin_entry_lps``, ``bone_entry_lps``,
    ``canal_crossing.entry_lps/exit_lps/level``, ``needle.outer_diameter_mm`` and, if present,
    ``target.level``. The drawn needle starts at the skin entry; on a scan without skin it starts
    at the first known point of the path (the canal entry when the needle enters the canal
    through the hiatus before meeting bone, else the bone entry), and ``entry_is_skin`` is False.
    """
    target = np.asarray(plan.target_lps, float)
    skin = getattr(plan, "skin_entry_lps", None)
    bone = getattr(plan, "bone_entry_lps", None)
    crossing = getattr(plan, "canal_crossing", None)
    canal_entry = getattr(crossing, "entry_lps", None)
    if skin is not None:
        entry = skin
    else:
        known = [np.asarray(p, float) for p in (bone, canal_entry) if p is not None]
        if not known:
            raise PlanningError("the plan has neither a skin entry nor a bone entry to draw from")
        entry = max(known, key=lambda point: float(np.linalg.norm(point - target)))
    target_info = getattr(plan, "target", None)
    level = getattr(target_info, "level", None) or "S3"
    needle = getattr(plan, "needle", None)
    return NeedlePath(
        entry_lps=entry,
        target_lps=target,
        outer_diameter_mm=getattr(needle, "outer_diameter_mm", NEEDLE_13G_OUTER_DIAMETER_MM),
        bone_entry_lps=bone,
        canal_entry_lps=canal_entry,
        canal_exit_lps=getattr(crossing, "exit_lps", None),
        canal_level=getattr(crossing, "level", None),
        target_level=level,
        entry_is_skin=skin is not None,
    )
