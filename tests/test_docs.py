"""The README stays true to the code: its threshold table and the plan metrics it explains."""

from __future__ import annotations

from pathlib import Path

from planner.planning import threshold_table_markdown
from planner.planning.schema import METRIC_KEYS

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_threshold_table_is_the_generated_one():
    assert threshold_table_markdown().strip() in README.read_text()


def test_readme_explains_every_plan_metric():
    text = README.read_text()
    missing = [key for key in METRIC_KEYS if f"`{key}`" not in text]
    assert not missing, f"plan metrics not explained in README.md: {missing}"
