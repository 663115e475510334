"""Exports: Slicer markups, the all-or-nothing output folder, the plan sheet."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from planner.export.markups import trajectory_markups, write_markups
from planner.export.outdir import staged_output
from planner.report import render_plan_sheet

PLAN = {
    "format": "sacroplasty-plan",
    "version": 1,
    "target_lps": [1.0, 20.0, -100.0],
    "skin_entry_lps": [1.5, 95.0, -160.0],
    "bone_entry_lps": [1.4, 70.0, -150.0],
    "canal_crossing": {
        "level": "S4",
        "entry_lps": [1.3, 60.0, -140.0],
        "exit_lps": [1.2, 52.0, -135.0],
    },
    "verdict": "caution",
    "reasons": ["foramen clearance 2.1 mm (< 3 mm)"],
    "metrics": {"foramen_clearance_mm": 2.1, "canal_crossing_level": "S4"},
    "needle": {"gauge": 13, "outer_diameter_mm": 2.41},
}

LINE_TYPES = {"Fiducial", "Line", "Angle", "Curve", "ClosedCurve", "Plane", "ROI"}


def check_against_slicer_schema(document: dict) -> None:
    """The constraints of Slicer's markups-schema-v1.0.3 that a reader relies on."""
    assert isinstance(document["@schema"], str) and "markups-schema-v1.0" in document["@schema"]
    assert isinstance(document["markups"], list) and document["markups"]
    for markup in document["markups"]:
        assert markup["type"] in LINE_TYPES
        assert markup["coordinateSystem"] in {"LPS", "RAS"}
        assert markup["coordinateUnits"] in {"mm", "um"}
        for key in ("locked", "fixedNumberOfControlPoints"):
            assert isinstance(markup[key], bool)
        for point in markup["controlPoints"]:
            assert isinstance(point["id"], str) and isinstance(point["label"], str)
            assert len(point["position"]) == 3
            assert all(isinstance(v, float) for v in point["position"])
            assert len(point["orientation"]) == 9
            assert point["positionStatus"] in {"undefined", "preview", "defined"}
            for key in ("selected", "locked", "visibility"):
                assert isinstance(point[key], bool)


def test_markups_follow_slicer_schema_and_keep_lps(tmp_path):
    path = write_markups(PLAN, tmp_path / "trajectory.mrk.json")
    document = json.loads(path.read_text())
    check_against_slicer_schema(document)
    line, points = document["markups"]
    assert line["type"] == "Line"
    assert [p["position"] for p in line["controlPoints"]] == [
        PLAN["skin_entry_lps"],
        PLAN["target_lps"],
    ]
    labels = [p["label"] for p in points["controlPoints"]]
    assert labels == [
        "skin entry",
        "bone entry",
        "canal entry (posterior wall)",
        "canal exit (anterior wall)",
        "target",
    ]


def test_markups_start_at_bone_entry_when_skin_unknown():
    plan = dict(PLAN, skin_entry_lps=None)
    line = trajectory_markups(plan)["markups"][0]
    assert line["controlPoints"][0]["label"] == "bone entry"
    assert line["controlPoints"][0]["position"] == PLAN["bone_entry_lps"]


def test_staged_output_is_all_or_nothing(tmp_path):
    destination = tmp_path / "out"
    with staged_output(destination) as staging:
        (staging / "plan.json").write_text("{}")
    assert (destination / "plan.json").exists()
    with pytest.raises(RuntimeError):
        with staged_output(destination) as staging:
            (staging / "half.json").write_text("{")
            raise RuntimeError("stage failed")
    assert sorted(p.name for p in destination.iterdir()) == ["plan.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging debris
    with staged_output(destination) as staging:
        (staging / "new.json").write_text("{}")
    assert sorted(p.name for p in destination.iterdir()) == ["new.json"]


def test_plan_sheet_is_a_one_page_pdf(tmp_path):
    image = np.zeros((64, 64, 3))
    path = render_plan_sheet(PLAN, {"lateral": image}, tmp_path / "report.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", data)) == 1
