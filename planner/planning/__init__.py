"""Planning: the interpedicular needle path, its clearances, verdict and safety cone.

Public API::

    result = plan(volume, anatomy)          # -> Plan
    result.to_dict()                        # the plan.json contract (DESIGN.md)
    validate_plan_dict(result.to_dict())    # raises PlanSchemaError on a broken contract
"""

from planner.planning.model import (
    NEEDLE_OUTER_DIAMETER_MM,
    CanalCrossing,
    CanalLimit,
    Metrics,
    Needle,
    Plan,
    SafetyCone,
    TargetInfo,
    Verdict,
)
from planner.planning.pipeline import plan
from planner.planning.schema import PlanSchemaError, validate_plan_dict
from planner.planning.thresholds import (
    THRESHOLD_DOCS,
    PlanningConfig,
    Thresholds,
    threshold_table_markdown,
)

__all__ = [
    "NEEDLE_OUTER_DIAMETER_MM",
    "THRESHOLD_DOCS",
    "CanalCrossing",
    "CanalLimit",
    "Metrics",
    "Needle",
    "Plan",
    "PlanSchemaError",
    "PlanningConfig",
    "SafetyCone",
    "TargetInfo",
    "Thresholds",
    "Verdict",
    "plan",
    "threshold_table_markdown",
    "validate_plan_dict",
]
