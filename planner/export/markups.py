"""3D Slicer Markups JSON (``.mrk.json``) for the planned trajectory.

The file holds two markups, as Slicer's markups schema (v1.0.3) allows: a ``Line`` from the skin
(or bone) entry to the target, and a ``Fiducial`` list of the named points along the path.
Coordinates are LPS millimetres, stated in the file, so Slicer places them without conversion.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SLICER_MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)
#: Slicer's identity orientation for a control point stored in LPS.
_LPS_ORIENTATION = [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0]

#: Two named points closer than this (mm) are one point with both labels (on a plan through
#: the hiatus the bone entry is the canal exit).
SAME_POINT_MM = 0.05

#: Plan-file keys of the named points, with the label shown in Slicer.
NAMED_POINTS = (
    ("skin_entry_lps", "skin entry"),
    ("bone_entry_lps", "bone entry"),
    ("canal_entry_lps", "canal entry (posterior wall)"),
    ("canal_exit_lps", "canal exit (anterior wall)"),
    ("target_lps", "target"),
)


def _control_point(index: int, label: str, position_lps, description: str = "") -> dict:
    return {
        "id": str(index),
        "label": label,
        "description": description,
        "associatedNodeID": "",
        "position": [round(float(v), 3) for v in position_lps],
        "orientation": list(_LPS_ORIENTATION),
        "selected": True,
        "locked": True,
        "visibility": True,
        "positionStatus": "defined",
    }


def _markup(kind: str, name: str, points: list[dict], color) -> dict:
    return {
        "type": kind,
        "name": name,
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "locked": True,
        "fixedNumberOfControlPoints": kind == "Line",
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": len(points),
        "controlPoints": points,
        "measurements": [],
        "display": {
            "visibility": True,
            "opacity": 1.0,
            "color": color,
            "selectedColor": color,
            "pointLabelsVisibility": True,
            "textScale": 3.0,
            "glyphType": "Sphere3D",
            "glyphScale": 2.0,
            "lineThickness": 0.2,
        },
    }


def named_points(plan_dict: dict) -> list[tuple[str, list[float]]]:
    """(label, LPS position) of each known point of the plan, in needle order (from the entry
    side to the target); points at the same place are one, labelled ``"a / b"``."""
    crossing = plan_dict.get("canal_crossing") or {}
    flat = dict(plan_dict)
    flat["canal_entry_lps"] = crossing.get("entry_lps")
    flat["canal_exit_lps"] = crossing.get("exit_lps")
    points = [(label, flat[key]) for key, label in NAMED_POINTS if flat.get(key) is not None]
    target = np.asarray(plan_dict["target_lps"], float)
    direction = plan_dict.get("direction_lps")
    if direction is not None:
        # Distance before the target along the needle: the first point has the largest.
        before_mm = [float((target - np.asarray(p, float)) @ direction) for _, p in points]
        order = sorted(range(len(points)), key=lambda n: -before_mm[n])
        points = [points[n] for n in order]
    merged: list[tuple[str, list[float]]] = []
    for label, position in points:
        if merged and np.linalg.norm(np.subtract(position, merged[-1][1])) < SAME_POINT_MM:
            merged[-1] = (f"{merged[-1][0]} / {label}", merged[-1][1])
        else:
            merged.append((label, position))
    return merged


def trajectory_markups(plan_dict: dict) -> dict:
    """Slicer markups document for a plan given as its plan-file dictionary."""
    points = named_points(plan_dict)
    start_label, start = points[0]
    start_label = start_label.split(" / ")[0]
    target = plan_dict["target_lps"]
    line = _markup(
        "Line",
        "needle",
        [_control_point(1, start_label, start), _control_point(2, "target", target)],
        [1.0, 0.85, 0.1],
    )
    fiducials = _markup(
        "Fiducial",
        "plan points",
        [_control_point(i + 1, label, pos) for i, (label, pos) in enumerate(points)],
        [0.2, 0.8, 1.0],
    )
    return {"@schema": SLICER_MARKUPS_SCHEMA, "markups": [line, fiducials]}


_MARKUP_TYPES = {"Fiducial", "Line", "Angle", "Curve", "ClosedCurve", "Plane", "ROI"}


class MarkupsSchemaError(ValueError):
    """A markups document breaks a constraint of Slicer's markups schema."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise MarkupsSchemaError(message)


def validate_markups(document: dict) -> None:
    """Check the constraints of Slicer's markups schema (v1.0.3) that readers rely on.

    Raises
    ------
    MarkupsSchemaError
        Naming the first broken constraint.
    """
    _require(isinstance(document.get("@schema"), str), "@schema must be a string")
    _require("markups-schema-v1.0" in document["@schema"], "@schema must name markups-schema v1.0")
    markups = document.get("markups")
    _require(isinstance(markups, list) and len(markups) > 0, "markups must be a non-empty list")
    for markup in markups:
        _require(markup.get("type") in _MARKUP_TYPES, f"unknown markup type {markup.get('type')}")
        _require(markup.get("coordinateSystem") in {"LPS", "RAS"}, "coordinateSystem: LPS or RAS")
        _require(markup.get("coordinateUnits") in {"mm", "um"}, "coordinateUnits: mm or um")
        for key in ("locked", "fixedNumberOfControlPoints"):
            _require(isinstance(markup.get(key), bool), f"{key} must be a boolean")
        for point in markup.get("controlPoints", []):
            _require(isinstance(point.get("id"), str), "control point id must be a string")
            _require(isinstance(point.get("label"), str), "control point label must be a string")
            position = point.get("position")
            _require(
                isinstance(position, list)
                and len(position) == 3
                and all(isinstance(v, float) for v in position),
                "control point position must be 3 numbers",
            )
            _require(len(point.get("orientation", [])) == 9, "orientation must have 9 numbers")
            _require(
                point.get("positionStatus") in {"undefined", "preview", "defined"},
                "positionStatus must be undefined, preview or defined",
            )
            for key in ("selected", "locked", "visibility"):
                _require(isinstance(point.get(key), bool), f"control point {key}: boolean")


def write_markups(plan_dict: dict, path: str | Path) -> Path:
    """Write ``trajectory.mrk.json`` for the plan; returns the path."""
    path = Path(path)
    document = trajectory_markups(plan_dict)
    validate_markups(document)
    path.write_text(json.dumps(document, indent=2))
    return path
