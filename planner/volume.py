"""`Volume`: a voxel array whose geometry travels with it.

Conventions (the same as ITK/SimpleITK and DICOM):

* World space is LPS millimetres: +x patient Left, +y Posterior, +z Superior.
* ``array`` is indexed ``[k, j, i]`` (slice, row, column), as ``sitk.GetArrayFromImage`` returns
  it. Index triples handed to or returned by the mapping methods are ordered ``(i, j, k)``.
* ``spacing_xyz`` is the voxel size in mm along i, j and k.
* ``direction`` is the 3x3 matrix whose *columns* are the LPS unit vectors of the i, j and k axes.
* Pixel-centre convention: index ``(0, 0, 0)`` is the *centre* of the first voxel, so
  ``lps = origin_lps + direction @ (spacing_xyz * ijk)`` and a voxel spans ``ijk +/- 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from planner.errors import GeometryError, ImageContentError

#: Largest deviation of ``direction.T @ direction`` from identity that still counts as orthonormal.
ORTHONORMAL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class VolumeInfo:
    """Non-identifying facts about where a volume came from.

    Never holds patient name, ID, birth date, accession number or institution.
    """

    series_description: str = ""
    kernel: str = ""
    source_format: str = ""
    #: Short hash of the StudyInstanceUID (or of the file path): names a case, identifies no one.
    case_id: str = ""
    series_uid: str = ""
    #: Free-form notes the loader wants downstream stages to know (e.g. "gantry tilt corrected").
    notes: tuple[str, ...] = ()


def _as_vector3(value, name: str) -> np.ndarray:
    vector = np.asarray(value, dtype=float).reshape(-1)
    if vector.shape != (3,):
        raise GeometryError(f"{name} must have 3 values, got {vector.shape[0]}")
    if not np.all(np.isfinite(vector)):
        raise GeometryError(f"{name} must be finite, got {vector.tolist()}")
    return vector


def check_direction(direction: np.ndarray) -> np.ndarray:
    """Validate a 3x3 direction matrix and return it as float array.

    Raises
    ------
    GeometryError
        If the matrix is not 3x3, not finite, or its columns are not orthonormal.
    """
    matrix = np.asarray(direction, dtype=float)
    if matrix.size == 9:
        matrix = matrix.reshape(3, 3)
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise GeometryError(f"direction must be a finite 3x3 matrix, got shape {matrix.shape}")
    error = np.abs(matrix.T @ matrix - np.eye(3)).max()
    if error > ORTHONORMAL_TOLERANCE:
        raise GeometryError(
            "direction matrix is not orthonormal (columns must be perpendicular unit vectors; "
            f"largest error {error:.2g}); sheared or skewed volumes are not supported"
        )
    return matrix


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image in LPS millimetres.

    Parameters
    ----------
    array : (K, J, I) ndarray
        Voxel values, indexed ``[k, j, i]``. HU for CT, arbitrary units for MR, bool or int for
        masks and label maps.
    origin_lps : (3,) array-like
        LPS position (mm) of the centre of voxel ``(i, j, k) = (0, 0, 0)``.
    spacing_xyz : (3,) array-like
        Voxel size in mm along i, j, k. Must be positive.
    direction : (3, 3) array-like
        Columns are the LPS unit vectors of the i, j and k axes.
    modality : str
        ``"CT"``, ``"MR"`` or ``"SEG"`` (masks and label maps).
    info : VolumeInfo
        Non-identifying provenance.
    """

    array: np.ndarray
    origin_lps: np.ndarray
    spacing_xyz: np.ndarray
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = "CT"
    info: VolumeInfo = field(default_factory=VolumeInfo)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise GeometryError(f"a volume must be 3D, got an array with {array.ndim} dimensions")
        if min(array.shape) < 1:
            raise GeometryError(f"a volume must not be empty, got shape {array.shape}")
        spacing = _as_vector3(self.spacing_xyz, "spacing_xyz")
        if np.any(spacing <= 0):
            raise GeometryError(f"spacing must be positive, got {spacing.tolist()} mm")
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "origin_lps", _as_vector3(self.origin_lps, "origin_lps"))
        object.__setattr__(self, "spacing_xyz", spacing)
        object.__setattr__(self, "direction", check_direction(self.direction))

    # ------------------------------------------------------------------ geometry
    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k (the reverse of ``array.shape``)."""
        k, j, i = self.array.shape
        return (i, j, k)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_xyz))

    @property
    def world_from_index(self) -> np.ndarray:
        """(4, 4) affine mapping homogeneous ``(i, j, k, 1)`` to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * self.spacing_xyz[np.newaxis, :]
        affine[:3, 3] = self.origin_lps
        return affine

    @property
    def index_from_world(self) -> np.ndarray:
        """(4, 4) affine mapping homogeneous LPS mm to continuous ``(i, j, k, 1)``."""
        affine = np.eye(4)
        affine[:3, :3] = (self.direction.T) / self.spacing_xyz[:, np.newaxis]
        affine[:3, 3] = -affine[:3, :3] @ self.origin_lps
        return affine

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map continuous indices to LPS mm.

        Parameters
        ----------
        ijk : (..., 3) array-like
            Indices ordered (i, j, k); integer or fractional.

        Returns
        -------
        (..., 3) ndarray
            LPS positions in mm.
        """
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction * self.spacing_xyz[np.newaxis, :]).T + self.origin_lps

    def lps_to_index(self, points_lps: np.ndarray, round_output: bool = False) -> np.ndarray:
        """Map LPS mm to continuous (i, j, k) indices; optionally rounded to the nearest voxel.

        Parameters
        ----------
        points_lps : (..., 3) array-like
            LPS positions in mm.
        round_output : bool
            Return the integer index of the voxel that contains each point.
        """
        points = np.asarray(points_lps, dtype=float)
        ijk = ((points - self.origin_lps) @ self.direction) / self.spacing_xyz
        if round_output:
            return np.rint(ijk).astype(np.int64)
        return ijk

    def contains_index(self, ijk: np.ndarray) -> np.ndarray:
        """True where continuous indices lie inside the voxel grid (within half a voxel)."""
        ijk = np.asarray(ijk, dtype=float)
        upper = np.asarray(self.shape_ijk, dtype=float) - 0.5
        return np.all((ijk >= -0.5) & (ijk <= upper), axis=-1)

    def axis_lps(self, axis: str) -> np.ndarray:
        """LPS unit vector of index axis ``"i"``, ``"j"`` or ``"k"``."""
        return self.direction[:, "ijk".index(axis)].copy()

    def corners_lps(self) -> np.ndarray:
        """(8, 3) LPS positions of the centres of the eight corner voxels."""
        last = np.asarray(self.shape_ijk) - 1
        corners = np.array(
            [[a, b, c] for a in (0, last[0]) for b in (0, last[1]) for c in (0, last[2])],
            dtype=float,
        )
        return self.index_to_lps(corners)

    def center_lps(self) -> np.ndarray:
        """LPS position of the geometric centre of the grid."""
        return self.index_to_lps((np.asarray(self.shape_ijk) - 1) / 2.0)

    def same_grid(self, other: Volume, tolerance_mm: float = 1e-3) -> bool:
        """True if ``other`` has the same shape, origin, spacing and direction."""
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.origin_lps, other.origin_lps, atol=tolerance_mm)
            and np.allclose(self.spacing_xyz, other.spacing_xyz, atol=tolerance_mm)
            and np.allclose(self.direction, other.direction, atol=ORTHONORMAL_TOLERANCE)
        )

    # ------------------------------------------------------------------ derived volumes
    def with_array(self, array: np.ndarray, modality: str | None = None) -> Volume:
        """A volume on the same grid with other voxel values (e.g. a mask)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise GeometryError(
                f"array shape {array.shape} does not match the grid {self.array.shape}"
            )
        return replace(self, array=array, modality=modality or self.modality)

    def crop(self, start_ijk, stop_ijk) -> Volume:
        """Sub-volume of voxels ``start_ijk <= ijk < stop_ijk`` (clipped to the grid).

        The origin moves to the first kept voxel, so every voxel keeps its LPS position.
        """
        shape = np.asarray(self.shape_ijk)
        start = np.clip(np.asarray(start_ijk, dtype=int), 0, shape)
        stop = np.clip(np.asarray(stop_ijk, dtype=int), 0, shape)
        if np.any(stop <= start):
            raise GeometryError(f"empty crop: start {start.tolist()}, stop {stop.tolist()}")
        array = self.array[start[2] : stop[2], start[1] : stop[1], start[0] : stop[0]]
        return replace(self, array=array, origin_lps=self.index_to_lps(start.astype(float)))

    def crop_to_mask(self, mask: np.ndarray, margin_mm: float = 0.0) -> Volume:
        """Crop to the bounding box of a boolean ``[k, j, i]`` mask, plus a margin in mm."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.array.shape:
            raise GeometryError(f"mask shape {mask.shape} does not match {self.array.shape}")
        if not mask.any():
            raise GeometryError("cannot crop to an empty mask")
        nonzero_kji = np.argwhere(mask)
        margin_ijk = np.ceil(margin_mm / self.spacing_xyz).astype(int)
        start_ijk = nonzero_kji.min(axis=0)[::-1] - margin_ijk
        stop_ijk = nonzero_kji.max(axis=0)[::-1] + 1 + margin_ijk
        return self.crop(start_ijk, stop_ijk)

    def sample(self, points_lps: np.ndarray, order: int = 1, fill_value: float = 0.0) -> np.ndarray:
        """Interpolate voxel values at LPS points.

        Parameters
        ----------
        points_lps : (..., 3) array-like
            LPS positions in mm.
        order : int
            Spline order: 0 nearest voxel, 1 trilinear.
        fill_value : float
            Value returned outside the grid.

        Returns
        -------
        (...) ndarray of float
        """
        points = np.asarray(points_lps, dtype=float)
        ijk = self.lps_to_index(points.reshape(-1, 3))
        coordinates_kji = ijk[:, ::-1].T
        values = ndimage.map_coordinates(
            self.array.astype(np.float32, copy=False) if self.array.dtype == bool else self.array,
            coordinates_kji,
            order=order,
            mode="constant",
            cval=fill_value,
            prefilter=False,
        )
        return values.reshape(points.shape[:-1])

    def resample(
        self, spacing_xyz, interpolator: str = "linear", default_value: float | None = None
    ) -> Volume:
        """Resample onto a grid with the same origin and direction and a new spacing (mm)."""
        from planner.sitk_bridge import resample_to_spacing

        return resample_to_spacing(self, spacing_xyz, interpolator, default_value)

    def check_values(self) -> None:
        """Raise :class:`ImageContentError` for NaN/infinite or constant voxel values."""
        array = self.array
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            bad = int(np.count_nonzero(~np.isfinite(array)))
            raise ImageContentError(f"volume holds {bad} NaN or infinite voxel values")
        if array.size > 1 and array.min() == array.max():
            raise ImageContentError(
                f"volume is constant (every voxel is {array.flat[0]}); no anatomy can be found"
            )

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing_xyz)
        origin = ", ".join(f"{o:.1f}" for o in self.origin_lps)
        return (
            f"Volume({self.modality}, shape_ijk={self.shape_ijk}, spacing_xyz=({spacing}) mm, "
            f"origin_lps=({origin}), orientation={orientation_code(self.direction)}, "
            f"dtype={self.array.dtype})"
        )


def orientation_code(direction: np.ndarray) -> str:
    """Three-letter code of the LPS direction each index axis points to most (e.g. ``"LPS"``).

    An ``"*"`` suffix marks an oblique direction (any axis more than 1 degree off a world axis).
    """
    direction = np.asarray(direction, dtype=float)
    letters = (("R", "L"), ("A", "P"), ("I", "S"))
    code = ""
    for axis in range(3):
        column = direction[:, axis]
        dominant = int(np.argmax(np.abs(column)))
        code += letters[dominant][int(column[dominant] > 0)]
    if np.abs(np.abs(direction).max(axis=0) - 1.0).max() > 1.5e-4:
        code += "*"
    return code
