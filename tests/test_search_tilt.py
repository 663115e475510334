"""The search keeps the needle parallel to the anterior edge unless a tilt changes the verdict."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from planner.planning.search import soft_score
from planner.planning.thresholds import Thresholds


def _lines(foramen_mm):
    """Two candidate paths alike in everything but their foramen clearance (a LineSet stand-in)."""
    count = len(foramen_mm)
    same = np.full(count, 10.0)
    return SimpleNamespace(
        foramen_clearance=np.asarray(foramen_mm, float), cortex_clearance=same,
        canal_clearance=same, bone_margin=same, midline_offset=np.zeros(count),
        s_skin=np.full(count, 80.0), crossing=np.ones(count, bool),
    )


def test_clearance_that_leaves_the_verdict_class_does_not_buy_a_large_tilt():
    """Seed 10 tilted 2.24 deg from its tangent for clearance that stayed below 3 mm."""
    thresholds = Thresholds()
    # 1.4 mm more clearance for a 2.5 deg tilt outscored the parallel path before the tolerance.
    parallel, tilted = soft_score(_lines([1.5, 2.9]), np.array([0.0, 2.5]), thresholds)
    assert thresholds.foramen_min_mm < 1.5 < 2.9 < thresholds.foramen_safe_mm  # both caution
    assert parallel > tilted


def test_a_tilt_within_the_tolerance_still_buys_clearance():
    thresholds = Thresholds()
    parallel, tilted = soft_score(_lines([2.0, 2.6]), np.array([0.0, 1.0]), thresholds)
    assert tilted > parallel
