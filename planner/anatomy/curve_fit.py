"""Smoothing along the sacrum: Gaussian-weighted local polynomials and polyline resampling.

A local polynomial of degree 2 follows a constant curvature without bias (a local line, or a
Gaussian average, cuts the corners of a bend by about half the curvature times sigma squared: on
a strongly kyphotic sacrum, whose anterior edge turns by 2-3 degrees per mm, that tilts the
tangent by several degrees). Used for the sacral frame and the anterior-cortex curve.
"""

from __future__ import annotations

import numpy as np

#: Smallest total weight (and determinant scale) accepted before falling back to degree 0.
MIN_WEIGHT = 1e-9


def local_polynomial(
    s_mm: np.ndarray,
    values: np.ndarray,
    sigma_mm: float | np.ndarray,
    degree: int = 2,
    weights: np.ndarray | None = None,
    at_mm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Value and slope of a Gaussian-weighted local polynomial fit at each station.

    Parameters
    ----------
    s_mm : (n,) ndarray
        Positions of the samples (mm).
    values : (n,) ndarray
        Sample values.
    sigma_mm : float or (m,) ndarray
        Gaussian weight width (mm), one for all or one per evaluation point.
    degree : int
        0, 1 or 2.
    weights : (n,) ndarray, optional
        Extra per-sample weights (0 drops a sample).
    at_mm : (m,) ndarray, optional
        Where to evaluate (default: at ``s_mm``).

    Returns
    -------
    value, slope : (m,) ndarray
        The fit and its derivative (value per mm) at each evaluation point.
    """
    s = np.asarray(s_mm, float)
    y = np.asarray(values, float)
    at = s if at_mm is None else np.asarray(at_mm, float)
    offset = s[None, :] - at[:, None]  # [point, sample]
    sigma = np.broadcast_to(np.asarray(sigma_mm, float), at.shape)[:, None]
    w = np.exp(-0.5 * (offset / sigma) ** 2)
    if weights is not None:
        w = w * np.asarray(weights, float)[None, :]
    order = degree + 1
    powers = offset[..., None] ** np.arange(2 * order - 1)  # [point, sample, power]
    moments = np.einsum("ps,psk->pk", w, powers)
    normal = np.stack([moments[:, i : i + order] for i in range(order)], axis=1)
    rhs = np.einsum("ps,psk->pk", w * y[None, :], powers[..., :order])
    # Regularise a little: where few samples carry weight the fit degrades towards lower order.
    scale = np.maximum(moments[:, :1], MIN_WEIGHT)[:, :, None]
    ridge = 1e-9 * scale * np.eye(order)[None]
    coefficients = np.linalg.solve(normal + ridge, rhs[..., None])[..., 0]
    slope = coefficients[:, 1] if order > 1 else np.zeros(len(at))
    return coefficients[:, 0], slope


def resample_polyline(points: np.ndarray, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step_mm`` of arc along a polyline (n, k), with their arc length.

    Repeated points (zero-length segments) are dropped first: interpolation needs the arc
    length strictly increasing.
    """
    segment = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = np.concatenate([[True], segment > 1e-9])
    points = points[keep]
    arc = np.concatenate([[0.0], np.cumsum(segment[keep[1:]])])
    arc_out = np.arange(0.0, arc[-1] + 1e-9, step_mm)
    out = np.stack([np.interp(arc_out, arc, points[:, c]) for c in range(points.shape[1])], -1)
    return out, arc_out
