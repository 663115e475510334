"""Voxel grids for phantoms: orientation presets and a field of view that any grid covers."""

from __future__ import annotations

import numpy as np

from planner.errors import GeometryError, PlannerError
from planner.phantom.frame import rotation_matrix_xyz
from planner.phantom.params import ORIENTATIONS
from planner.volume import Volume, check_direction

#: Rotation (deg about x, y, z) of the "oblique" preset: clearly oblique on every axis.
OBLIQUE_ANGLES_DEG = (12.0, -17.0, 23.0)

#: Columns are the LPS unit vectors of the i, j, k axes.
_PRESETS: dict[str, np.ndarray] = {
    "LPS": np.eye(3),
    "RAS": np.diag([-1.0, -1.0, 1.0]),
    # Axial, but rows run anterior and slices go down the body.
    "flipped": np.diag([1.0, -1.0, -1.0]),
    # A sagittal stack: i -> P, j -> S, k -> L.
    "permuted": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    # Sagittal and flipped, left-handed: i -> A, j -> I, k -> R.
    "permuted_flipped": np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    # Coronal slices as a scanner writes them: i -> L, j -> I, k -> A.
    "coronal": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]]),
    "oblique": rotation_matrix_xyz(OBLIQUE_ANGLES_DEG),
}


def direction_for(orientation: str | np.ndarray) -> np.ndarray:
    """The 3x3 direction matrix of a preset name (see :data:`ORIENTATIONS`) or an explicit one."""
    if isinstance(orientation, str):
        if orientation not in _PRESETS:
            raise PlannerError(
                f"orientation must be one of {ORIENTATIONS} or a 3x3 direction matrix, "
                f"got {orientation!r}"
            )
        return _PRESETS[orientation].copy()
    return check_direction(np.asarray(orientation, float))


def spacing_for(spacing_mm: float | tuple[float, float, float]) -> np.ndarray:
    """Voxel size along i, j, k (mm) from a number or a triple."""
    spacing = np.asarray(spacing_mm, float).reshape(-1)
    if spacing.size == 1:
        spacing = np.repeat(spacing, 3)
    if spacing.shape != (3,) or np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise GeometryError(f"spacing_mm must be a positive number or three, got {spacing_mm!r}")
    return spacing


def grid_covering(
    box_low_lps: np.ndarray,
    box_high_lps: np.ndarray,
    spacing_xyz: np.ndarray,
    direction: np.ndarray,
) -> Volume:
    """An empty (uint8) grid with this direction and spacing covering an LPS box.

    Voxel centres are placed symmetrically about the box centre, so axis-aligned grids with the
    same spacing per world axis share their voxel centres whatever the axis order or flips.
    """
    low = np.asarray(box_low_lps, float)
    high = np.asarray(box_high_lps, float)
    centre = 0.5 * (low + high)
    corners = np.array(
        [[a, b, c] for a in (low[0], high[0]) for b in (low[1], high[1]) for c in (low[2], high[2])]
    )
    along_axes = (corners - centre) @ direction  # (8, 3) coordinates along i, j, k
    extent = along_axes.max(axis=0) - along_axes.min(axis=0)
    shape_ijk = np.ceil(extent / spacing_xyz - 1e-6).astype(int) + 1
    origin = centre - direction @ (0.5 * (shape_ijk - 1) * spacing_xyz)
    array = np.zeros(tuple(shape_ijk[::-1]), dtype=np.uint8)
    return Volume(array=array, origin_lps=origin, spacing_xyz=spacing_xyz, direction=direction)


def index_box_of(grid: Volume, low_lps: np.ndarray, high_lps: np.ndarray, margin_vox: int = 2):
    """Index ranges ``(start_ijk, stop_ijk)`` of the voxels of ``grid`` inside an LPS box."""
    corners = np.array(
        [
            [a, b, c]
            for a in (low_lps[0], high_lps[0])
            for b in (low_lps[1], high_lps[1])
            for c in (low_lps[2], high_lps[2])
        ]
    )
    ijk = grid.lps_to_index(corners)
    start = np.floor(ijk.min(axis=0)).astype(int) - margin_vox
    stop = np.ceil(ijk.max(axis=0)).astype(int) + 1 + margin_vox
    shape = np.asarray(grid.shape_ijk)
    return np.clip(start, 0, shape), np.clip(stop, 0, shape)
