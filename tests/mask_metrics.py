"""Overlap of masks, shared by the segmentation tests."""

from __future__ import annotations

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two masks (non-zero is inside); 0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return float(2.0 * np.count_nonzero(a & b) / total) if total else 0.0
