"""Exports: Slicer markups, the all-or-nothing output folder, the plan sheet."""

from __future__ import annotations

import errno
import json
import os
import re
import stat

import numpy as np
import pytest

from planner.errors import PlannerError
from planner.export import outdir
from planner.export.markups import (
    MarkupsSchemaError,
    trajectory_markups,
    validate_markups,
    write_markups,
)
from planner.export.outdir import check_destination, staged_output
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


def test_markups_follow_slicer_schema_and_keep_lps(tmp_path):
    path = write_markups(PLAN, tmp_path / "trajectory.mrk.json")
    document = json.loads(path.read_text())
    validate_markups(document)
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


def test_markups_validator_rejects_broken_documents():
    document = trajectory_markups(PLAN)
    document["markups"][0]["coordinateSystem"] = "XYZ"
    with pytest.raises(MarkupsSchemaError, match="coordinateSystem"):
        validate_markups(document)
    document = trajectory_markups(PLAN)
    document["markups"][1]["controlPoints"][0]["position"] = [1, 2]
    with pytest.raises(MarkupsSchemaError, match="position"):
        validate_markups(document)


def test_staged_output_refuses_a_folder_holding_other_files(tmp_path):
    """`-o ~/Documents` must be refused, never emptied (the folder is replaced whole)."""
    destination = tmp_path / "documents"
    destination.mkdir()
    (destination / "thesis.txt").write_text("years of work")
    with pytest.raises(PlannerError, match="thesis.txt"):
        with staged_output(destination) as staging:
            (staging / "plan.json").write_text("{}")
    assert (destination / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents"]


def test_staged_output_replaces_a_previous_plan(tmp_path):
    destination = tmp_path / "out"
    (destination / "images").mkdir(parents=True)
    for name in ("plan.json", "report.pdf", "trajectory.mrk.json", "images/fluoro_ap.png"):
        (destination / name).write_text("old")
    with staged_output(destination) as staging:
        (staging / "plan.json").write_text("new")
    assert sorted(p.name for p in destination.iterdir()) == ["plan.json"]
    assert (destination / "plan.json").read_text() == "new"


def test_staged_output_folder_has_ordinary_permissions(tmp_path):
    """A temporary folder is private (0700); the plan folder must follow the umask."""
    destination = tmp_path / "out"
    previous = os.umask(0o022)
    try:
        with staged_output(destination) as staging:
            (staging / "plan.json").write_text("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(destination.stat().st_mode) == 0o755


def test_staged_output_under_a_file_is_a_planner_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(PlannerError, match="cannot be created"):
        with staged_output(blocker / "out"):
            pass
    with pytest.raises(PlannerError, match="is not a folder"):
        check_destination(blocker)


def test_unwritable_file_system_is_a_planner_error(tmp_path, monkeypatch):
    """Permission denied while making the staging folder (root ignores chmod, so simulate)."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(outdir.tempfile, "mkdtemp", refuse)
    with pytest.raises(PlannerError, match="Permission denied"):
        with staged_output(tmp_path / "out"):
            pass
    assert not (tmp_path / "out").exists()


def test_full_disk_while_writing_is_a_planner_error_and_leaves_nothing(tmp_path):
    with pytest.raises(PlannerError, match="No space left"):
        with staged_output(tmp_path / "out") as staging:
            (staging / "plan.json").write_text("{")
            raise OSError(errno.ENOSPC, "No space left on device", str(staging / "report.pdf"))
    assert list(tmp_path.iterdir()) == []
