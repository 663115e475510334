"""What `sacroplan plan` tells the user, and when it refuses an output folder."""

from __future__ import annotations

import csv
import json

from cli_helpers import run

from planner.sample import sample_case_path


def test_a_folder_of_other_files_is_refused_before_any_work(tmp_path, capfd, monkeypatch):
    """The output check ran after the whole plan (seconds to minutes); now before loading."""
    import planner.loading as loading

    def no_loading(*args, **kwargs):
        raise AssertionError("the input was loaded before the output folder was checked")

    monkeypatch.setattr(loading, "load", no_loading)
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.txt").write_text("keep me")
    code, _, stderr = run(["plan", str(sample_case_path()), "-o", str(out), "-q"], capfd)
    assert code == 2
    assert "chapter1.txt" in stderr and "Traceback" not in stderr
    assert (out / "chapter1.txt").read_text() == "keep me"


def test_plan_prints_verdict_every_reason_and_the_report(tmp_path, capfd):
    out = tmp_path / "out"
    code, stdout, stderr = run(["plan", str(sample_case_path()), "-o", str(out)], capfd)
    plan = json.loads((out / "plan.json").read_text())
    assert code in (0, 3)
    assert f"verdict: {plan['verdict']}" in stderr
    for reason in plan["reasons"]:
        assert f"  - {reason}" in stderr
    assert f"report: {out / 'report.pdf'}" in stdout


def test_batch_summary_has_the_reasons(tmp_path, capfd):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "sample").symlink_to(sample_case_path(), target_is_directory=True)
    run(["batch", str(cases), "-o", str(tmp_path / "out"), "-q", "--workers", "1"], capfd)
    plan = json.loads((tmp_path / "out" / "sample" / "plan.json").read_text())
    with (tmp_path / "out" / "summary.csv").open() as handle:
        row = next(csv.DictReader(handle))
    assert row["reasons"] == "; ".join(plan["reasons"])
