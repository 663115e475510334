"""The one-page plan sheet a physician prints (``report.pdf``)."""

from planner.report.sheet import render_plan_sheet

__all__ = ["render_plan_sheet"]
