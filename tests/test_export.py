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
from planner.report.sheet import text_fits

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
    names = ("plan.json", "report.pdf", "trajectory.mrk.json", "images/fluoro_ap.png", ".DS_Store")
    for name in names:  # a file browser's .DS_Store does not make it someone else's folder
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


# ------------------------------------------------------------------ plan sheet layout
LONG_REASON = (
    "low anatomy confidence in sacrum (0.45): sacrum from the low-density route (marrow reads "
    "like soft tissue): SI joints and the L5/S1 disc split by a watershed on intensity, boundary "
    "uncertain by about a voxel; check the sacrum mask (--save-masks) or pass one made elsewhere"
)
THRESHOLDS = {
    "foramen_safe_mm": 3.0, "foramen_min_mm": 1.0, "cortex_safe_mm": 2.0, "cortex_min_mm": 0.0,
    "canal_safe_mm": 2.0, "canal_min_mm": 0.0, "bone_margin_safe_radii": 1.0,
    "bone_margin_min_mm": 0.0, "angle_safe_deg": 10.0, "angle_max_deg": 20.0,
    "midline_safe_mm": 5.0, "hiatus_entry_safe_mm": 5.0, "cone_risk_caution": 0.1,
    "cone_risk_max": 0.5,
}
FULL_PLAN = dict(
    PLAN,
    verdict="unsafe",
    target={"source": "level", "level": "S3", "lesion_volume_ml": None},
    target_description="centre of the S3 body",
    reasons=[f"reason {n}: {LONG_REASON}" for n in range(6)],
    warnings=[f"anatomy {s}: voxels up to 3.0 mm: walls not resolved" for s in
              ("canal", "foramina", "levels", "hiatus")]
    + [f"anatomy note {n}: {LONG_REASON[:90]}" for n in range(6)],
    metrics={
        "foramen_clearance_mm": 0.5, "foramen_clearances_mm": {"S3 L": 0.5, "S4 R": 2.0},
        "canal_clearance_mm": 2.4, "anterior_cortex_clearance_mm": 1.5, "bone_margin_mm": 1.5,
        "angle_to_anterior_edge_deg": 9.0, "midline_offset_mm": 0.3,
        "posterior_wall_from_hiatus_mm": 5.2, "skin_to_target_mm": None,
        "intraosseous_length_mm": 27.3, "canal_crossing_level": "S4",
    },
    needle={"gauge": 13, "outer_diameter_mm": 2.41, "required_length_mm": None},
    skin_entry_lps=None,
    safety_cone={"p_any": 0.231, "entry_error_mm": 2.0, "angle_error_deg": 3.0},
    thresholds=THRESHOLDS,
    fluoroscopy={
        "lateral": {"label": "LAO 91.9, CAUD 6.7", "secondary_deg": -6.7},
        "ap": {"label": "RAO 179.7, CRAN 13.9", "secondary_deg": 13.9},
        "bullseye": {"label": "RAO 153.0, CAUD 74.5", "secondary_deg": -74.5},
    },
)


def _extents(plan):
    """Draw the sheet; return the figure's text and axes boxes in display pixels."""
    from planner.report.sheet import sheet_figure

    image = np.full((300, 260, 3), 128, np.uint8)
    figure = sheet_figure(plan, {"lateral": image, "ap": image, "ct_sagittal": image})
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    texts = [(t.get_text(), t.get_window_extent(renderer)) for t in figure.texts]
    axes = {a.get_label(): a.get_window_extent(renderer) for a in figure.axes}
    return figure, renderer, texts, axes


def test_plan_sheet_prints_every_reason_above_the_pictures():
    """Six long reasons used to run over the fluoroscopy views (totalseg): they push them down."""
    import matplotlib.pyplot as plt

    figure, _, texts, axes = _extents(FULL_PLAN)
    try:
        reasons = next(box for text, box in texts if text.startswith("- reason 0"))
        reason_text = next(text for text, _ in texts if text.startswith("- reason 0"))
        flat = " ".join(reason_text.replace("- ", "").split())
        for reason in FULL_PLAN["reasons"]:
            assert " ".join(reason.split()) in flat
        pictures_top = max(box.y1 for box in axes.values())
        captions = [box for text, box in texts if "fluoroscopy" in text.lower()]
        assert reasons.y0 > pictures_top and all(reasons.y0 > box.y1 for box in captions)
        warnings = next(box for text, box in texts if text.startswith("- ") and box is not reasons)
        footer = next(box for text, box in texts if text.startswith("For research use only"))
        assert warnings.y1 < min(box.y0 for box in axes.values())
        assert warnings.y0 > footer.y1
    finally:
        plt.close(figure)


SHORT_PLAN = dict(
    FULL_PLAN, reasons=[], warnings=[], safety_cone={},
    metrics={"canal_crossing_level": "S4", "skin_to_target_mm": 85.3},
)


@pytest.mark.parametrize("plan", [FULL_PLAN, SHORT_PLAN], ids=["many_rows", "few_rows"])
def test_plan_sheet_table_text_fits_its_cells(plan):
    """'Clearance to canal above crossing' was cut off by the value column, and so was a
    C-arm label with its steep-tilt note when the rows were few (largest font)."""
    import matplotlib.pyplot as plt

    figure, renderer, _, _ = _extents(plan)
    try:
        table = next(a for a in figure.axes if a.get_label() == "numbers").tables[0]
        for cell in table.get_celld().values():
            assert text_fits(cell, renderer), cell.get_text().get_text()
    finally:
        plt.close(figure)


def test_plan_sheet_table_shades_the_numbers_beyond_a_limit():
    from planner.report.rows import sheet_table

    rows = {row.name: row for row in sheet_table(FULL_PLAN)}
    assert rows["Clearance to foramina (nearest)"].value == "0.5 mm (S3 L)"
    assert rows["Clearance to foramina (nearest)"].status == "unsafe"  # < 1 mm
    assert rows["Canal clearance above crossing"].status is None  # 2.4 >= 2
    assert rows["Clearance to anterior cortex"].status == "caution"  # 0 <= 1.5 < 2
    assert rows["Bone around the needle"].status is None  # 1.5 >= one radius, 1.205 mm
    assert rows["Canal entry above hiatus apex"].status == "caution"  # 5.2 > 5
    assert rows["Angle to anterior sacral edge"].status is None  # 9 <= 10
    assert rows["Safety cone: P(contact)"].value.startswith("23 %")  # as the reason rounds
    assert rows["Safety cone: P(contact)"].status == "caution"
    assert rows["Skin to target depth"].value.startswith("not in the scan")
    assert "check reach" in rows["C-arm, bull's-eye"].value
    assert "check reach" not in rows["C-arm, AP"].value


def test_plan_sheet_subtitle_and_crossing_follow_the_plan():
    from planner.report.rows import sheet_table
    from planner.report.sheet import _subtitle

    assert "S4 canal -> S3 body" in _subtitle(FULL_PLAN)
    uncrossed = dict(FULL_PLAN, metrics=dict(FULL_PLAN["metrics"], canal_crossing_level=None),
                     target={"source": "level", "level": "S2"})
    assert "canal NOT crossed -> S2 body" in _subtitle(uncrossed)
    row = next(r for r in sheet_table(uncrossed) if r.name == "Canal crossing level")
    assert (row.value, row.status) == ("not crossed", "caution")


def test_plan_sheet_warnings_merge_repeats_and_skip_what_a_reason_says():
    from planner.report.sheet import sheet_warnings

    plan = {
        "reasons": ["skin entry and depth unknown: bone-only volume: the skin is not visible"],
        "warnings": [
            "anatomy canal: voxels up to 3.0 mm: walls not resolved",
            "anatomy hiatus: voxels up to 3.0 mm: walls not resolved",
            "skin entry unknown: bone-only volume: the skin is not visible",
        ],
    }
    merged = "anatomy canal, hiatus: voxels up to 3.0 mm: walls not resolved"
    assert sheet_warnings(plan) == [merged]


def test_plan_sheet_banner_text_stays_inside_the_banner():
    """'Verdict: UNSAFE (no feasible path: ...)' ran past the banner over the case id."""
    import matplotlib.pyplot as plt

    plan = dict(FULL_PLAN, feasible=False, case_id="442baeae8a24")
    figure, _, texts, _ = _extents(plan)
    try:
        banner = next(p for p in figure.patches).get_window_extent()
        inside = [(text, box) for text, box in texts if box.y0 >= banner.y0 - 1]
        assert any("NO FEASIBLE PATH" in text for text, _ in inside)
        for text, box in inside:
            assert banner.x0 <= box.x0 and box.x1 <= banner.x1, text
        boxes = [box for _, box in inside if box.width > 0]
        for n, first in enumerate(boxes):
            assert not any(first.overlaps(other) for other in boxes[n + 1:])
    finally:
        plt.close(figure)


def test_plan_sheet_rounds_like_the_reasons_and_flags_a_high_crossing():
    from planner.report.rows import fmt, sheet_table

    assert fmt(-0.04, "mm") == "0.0 mm" and fmt(-0.06, "mm") == "-0.1 mm"
    high = dict(FULL_PLAN, metrics=dict(FULL_PLAN["metrics"], canal_crossing_level="S3"))
    row = next(r for r in sheet_table(high) if r.name == "Canal crossing level")
    assert (row.value, row.status) == ("S3", "unsafe")
    row = next(r for r in sheet_table(FULL_PLAN) if r.name == "Canal crossing level")
    assert (row.value, row.status) == ("S4", None)


def test_markups_follow_the_needle_when_the_skin_is_unknown():
    """Bone-only scan through the hiatus (pengwin-001): the bone entry is the anterior canal
    wall, after the canal entry; the line must start at the canal entry, not skip the canal."""
    direction = np.array([-0.13, -0.7, 0.7])
    direction /= np.linalg.norm(direction)
    target = np.array([30.0, 82.0, -75.0])
    exit_lps = (target - 22.0 * direction).round(3).tolist()
    entry_lps = (target - 25.5 * direction).round(3).tolist()
    plan = dict(
        PLAN, skin_entry_lps=None, target_lps=target.tolist(), direction_lps=direction.tolist(),
        bone_entry_lps=exit_lps,
        canal_crossing={"level": "S4", "entry_lps": entry_lps, "exit_lps": exit_lps},
    )
    document = trajectory_markups(plan)
    validate_markups(document)
    line, points = document["markups"]
    assert line["controlPoints"][0]["position"] == entry_lps
    assert [p["label"] for p in points["controlPoints"]] == [
        "canal entry (posterior wall)",
        "bone entry / canal exit (anterior wall)",
        "target",
    ]


# ------------------------------------------------------------------ examples
def _example(name: str):
    """Import ``examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_show_anatomy_example_reads_the_bundled_dicom_sample(tmp_path, capsys):
    """It read with SimpleITK directly and died with a traceback on a DICOM folder."""
    from planner.sample import sample_case_path

    show_anatomy = _example("show_anatomy")
    assert show_anatomy.main([str(sample_case_path()), "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["phantom-ct_coronal.png", "phantom-ct_sagittal.png"]
    assert show_anatomy.main([str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_plan_sheet_says_when_the_pictures_come_from_an_mri():
    """A plan on an MRI alone is drawn on a pseudo-CT: its captions must not say 'CT'."""
    import matplotlib.pyplot as plt

    captions = {}
    for modality in ("CT", "MR"):
        figure, _, texts, _ = _extents(dict(FULL_PLAN, source_modality=modality))
        captions[modality] = [text for text, _ in texts if "plane of the needle" in text
                              or "fluoroscopy" in text]
        plt.close(figure)
    assert "CT in the plane of the needle" in captions["CT"]
    assert "Pseudo-CT from the MRI in the plane of the needle" in captions["MR"]
    assert sum("simulated from MRI" in text for text in captions["MR"]) == 2


def test_plan_sheet_never_rounds_a_breach_onto_its_limit():
    """Canal clearance 1.99 mm against 2 mm printed as '2.0 mm' looked within the limit."""
    from planner.report.rows import sheet_table

    plan = dict(FULL_PLAN, metrics=dict(FULL_PLAN["metrics"], canal_clearance_mm=1.99,
                                        anterior_cortex_clearance_mm=2.3))
    rows = {row.name: row for row in sheet_table(plan)}
    assert (rows["Canal clearance above crossing"].value, rows["Canal clearance above crossing"]
            .status) == ("1.99 mm", "caution")
    assert rows["Clearance to anterior cortex"].value == "2.3 mm"
