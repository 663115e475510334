"""Approximate signed distance functions (mm; negative inside) on arrays of coordinates.

Exact where cheap (boxes, capsules, planes); ellipses use the gradient-normalised estimate, which
is accurate near the surface, where the cortex and partial-volume edges are drawn.
"""

from __future__ import annotations

import numpy as np


def ellipse(u: np.ndarray, v: np.ndarray, half_u, half_v) -> np.ndarray:
    """Signed distance (approx.) to the ellipse ``(u/a)^2 + (v/b)^2 = 1``."""
    a = np.maximum(half_u, 1e-3)
    b = np.maximum(half_v, 1e-3)
    k0 = np.hypot(u / a, v / b)
    k1 = np.hypot(u / (a * a), v / (b * b))
    return np.where(k1 > 1e-12, k0 * (k0 - 1.0) / np.maximum(k1, 1e-12), -np.minimum(a, b))


def box2(u: np.ndarray, v: np.ndarray, half_u, half_v, rounding=0.0) -> np.ndarray:
    """Signed distance to a centred rectangle with rounded corners (radius ``rounding``)."""
    qu = np.abs(u) - (half_u - rounding)
    qv = np.abs(v) - (half_v - rounding)
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    inside = np.minimum(np.maximum(qu, qv), 0.0)
    return outside + inside - rounding


def slab(value: np.ndarray, low, high) -> np.ndarray:
    """Signed distance to ``low <= value <= high`` along one coordinate."""
    return np.maximum(low - value, value - high)


def capsule(points: np.ndarray, start: np.ndarray, end: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance to a capsule (cylinder with round caps) from ``start`` to ``end``.

    ``points`` is (..., n); ``start``/``end`` are (n,).
    """
    axis = np.asarray(end, float) - np.asarray(start, float)
    rel = points - start
    t = np.clip((rel @ axis) / float(axis @ axis), 0.0, 1.0)
    closest = t[..., None] * axis
    return np.linalg.norm(rel - closest, axis=-1) - radius


def intersect(*sdfs: np.ndarray) -> np.ndarray:
    result = sdfs[0]
    for other in sdfs[1:]:
        result = np.maximum(result, other)
    return result


def union(*sdfs: np.ndarray) -> np.ndarray:
    result = sdfs[0]
    for other in sdfs[1:]:
        result = np.minimum(result, other)
    return result


def subtract(base: np.ndarray, hole: np.ndarray) -> np.ndarray:
    return np.maximum(base, -hole)


def smooth_union(a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """Union with a fillet of ``radius`` mm where the two shapes meet."""
    h = np.clip(0.5 + 0.5 * (b - a) / radius, 0.0, 1.0)
    return b * (1 - h) + a * h - radius * h * (1 - h)
