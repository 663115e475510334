"""planner: needle-path planning for fluoroscopy-guided interpedicular sacroplasty.

Research use only; not a medical device.

Public API (imported lazily so ``import planner`` stays fast)::

    volume = planner.load("ct_dir_or_file")
    anatomy = planner.find_anatomy(volume)
    result = planner.plan(volume, anatomy)
"""

from __future__ import annotations

import importlib

from planner.errors import PlannerError
from planner.volume import Volume, VolumeInfo

__version__ = "0.1.0"

#: Public name -> module that defines it. Loaded on first access.
_LAZY_EXPORTS = {
    "load": "planner.loading",
    "list_series": "planner.loading",
    "find_anatomy": "planner.anatomy",
    "SacralAnatomy": "planner.anatomy",
    "plan": "planner.planning",
    "Plan": "planner.planning",
    "phantom": "planner.phantom",
    "fluoro": "planner.fluoro",
    "mri": "planner.mri",
    "render": "planner.render",
    "plan_with_mri": "planner.mri",
}

__all__ = ["PlannerError", "Volume", "VolumeInfo", "__version__", *_LAZY_EXPORTS]


def __getattr__(name: str):
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'planner' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    if module_name.rsplit(".", 1)[-1] == name:
        return module
    return getattr(module, name)
