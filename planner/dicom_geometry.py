"""Stack the frames of one DICOM series into a volume geometry, from headers alone.

Slices are ordered by their position along the slice normal (``row x column`` of
ImageOrientationPatient), never by file name or InstanceNumber. The stack then reports what a
regular grid needs: the median step between slices, steps that are more than
:data:`MAX_STEP_DEVIATION` off it (missing slices, uneven spacing), and gantry tilt (slices
whose origins drift sideways in their own plane, i.e. not stacked along the normal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.dicom import LOCALIZER_IMAGE_TYPES, DicomSeries, DicomSlice
from planner.errors import GeometryError, UnsupportedInputError

#: Fewest slices that make a volume.
MIN_SLICES = 3
#: A step between slices more than this fraction off the median is a gap or uneven spacing.
MAX_STEP_DEVIATION = 0.10
#: Two slices closer than this along the normal share a position (mm).
DUPLICATE_POSITION_MM = 1e-3
#: ImageOrientationPatient vectors must be unit and perpendicular within this (DICOM stores
#: them as decimal strings, typically rounded to 6 digits).
ORIENTATION_TOLERANCE = 1e-3
#: Orientation vectors equal within this belong to the same stack (dimensionless).
SAME_ORIENTATION_TOLERANCE = 1e-3
#: Pixel spacings equal within this belong to the same stack (mm).
SAME_SPACING_TOLERANCE_MM = 1e-4
#: In-plane drift of slice origins (as a fraction of a pixel) beyond which slices are tilted.
TILT_TOLERANCE_PIXELS = 0.1


@dataclass(frozen=True)
class SliceStack:
    """Frames of one series ordered along the slice normal.

    Attributes
    ----------
    slices : tuple of DicomSlice
        Ordered by ``normal_mm`` (ascending), so k grows along ``direction[:, 2]``.
    direction : (3, 3) ndarray
        Columns: LPS unit vectors of i (along a row), j (down a column) and k (slice normal).
    pixel_spacing_ij : (2,) ndarray
        Pixel size in mm along i and j.
    normal_mm : (n,) ndarray
        Position of each slice along the normal, mm (relative to the LPS origin).
    inplane_mm : (n, 2) ndarray
        Offset of each slice's first pixel from the first slice's, along i and j, mm. Zero for
        a stack built along its normal; growing linearly with gantry tilt.
    excluded : tuple of (DicomSlice, str)
        Frames of the series left out (localizers, other orientations) and why.
    """

    slices: tuple[DicomSlice, ...]
    direction: np.ndarray
    pixel_spacing_ij: np.ndarray
    normal_mm: np.ndarray
    inplane_mm: np.ndarray
    excluded: tuple[tuple[DicomSlice, str], ...] = ()

    @property
    def origin_lps(self) -> np.ndarray:
        """LPS position (mm) of the first pixel of the first slice."""
        return np.asarray(self.slices[0].position_lps, dtype=float)

    @property
    def steps_mm(self) -> np.ndarray:
        """(n-1,) distances between neighbouring slices along the normal, mm."""
        return np.diff(self.normal_mm)

    @property
    def median_step_mm(self) -> float:
        return float(np.median(self.steps_mm))

    @property
    def tilt_deg(self) -> float:
        """Angle between the line through the slice origins and the slice normal, degrees."""
        drift_mm = np.linalg.norm(self.inplane_mm[-1] - self.inplane_mm[0])
        height_mm = self.normal_mm[-1] - self.normal_mm[0]
        return float(np.degrees(np.arctan2(drift_mm, height_mm)))

    @property
    def is_tilted(self) -> bool:
        drift_pixels = np.abs(self.inplane_mm) / self.pixel_spacing_ij[np.newaxis, :]
        return bool(drift_pixels.max() > TILT_TOLERANCE_PIXELS)

    def irregular_steps(self) -> list[int]:
        """Indices ``s`` whose step from slice s to s+1 is more than 10 % off the median."""
        median = self.median_step_mm
        deviation = np.abs(self.steps_mm - median) / median
        return [int(s) for s in np.flatnonzero(deviation > MAX_STEP_DEVIATION)]

    @property
    def is_regular(self) -> bool:
        return not self.irregular_steps()

    def regular_step_mm(self) -> float:
        """Slice spacing of a regular stack: the mean step (first to last over n-1), mm."""
        return float((self.normal_mm[-1] - self.normal_mm[0]) / (len(self.slices) - 1))

    def describe_step(self, s: int) -> str:
        """Where the step after slice ``s`` is, for messages."""
        a, b = self.slices[s], self.slices[s + 1]
        numbers = ""
        if a.instance_number is not None and b.instance_number is not None:
            numbers = f", instances {a.instance_number} and {b.instance_number}"
        return (
            f"{self.steps_mm[s]:.2f} mm between slices at {self.normal_mm[s]:.2f} and "
            f"{self.normal_mm[s + 1]:.2f} mm along the slice normal "
            f"(files {a.label} and {b.label}{numbers})"
        )


def _unit(vector: np.ndarray, what: str, where: str) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if abs(norm - 1.0) > ORIENTATION_TOLERANCE:
        raise GeometryError(
            f"{where}: ImageOrientationPatient {what} vector has length {norm:.4f}, not 1; "
            "the direction matrix is invalid"
        )
    return vector / norm


def direction_from_orientation(orientation, where: str) -> np.ndarray:
    """(3, 3) direction (columns i, j, k) from ImageOrientationPatient, validated.

    Raises
    ------
    GeometryError
        If the row and column vectors are not unit length or not perpendicular.
    """
    values = np.asarray(orientation, dtype=float)
    row = _unit(values[:3], "row", where)
    column = _unit(values[3:], "column", where)
    cosine = float(row @ column)
    if abs(cosine) > ORIENTATION_TOLERANCE:
        angle = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
        raise GeometryError(
            f"{where}: ImageOrientationPatient row and column vectors are not perpendicular "
            f"({angle:.2f} degrees apart): the direction matrix is not orthogonal"
        )
    column = column - cosine * row  # remove the rounding left in the stored decimals
    column /= np.linalg.norm(column)
    return np.column_stack([row, column, np.cross(row, column)])


def _same_stack(a: DicomSlice, b: DicomSlice) -> bool:
    """Same image size, pixel spacing and (within tolerance) orientation."""
    return (
        (a.rows, a.columns) == (b.rows, b.columns)
        and np.allclose(a.pixel_spacing, b.pixel_spacing, atol=SAME_SPACING_TOLERANCE_MM)
        and np.allclose(a.orientation, b.orientation, atol=SAME_ORIENTATION_TOLERANCE)
    )


def _group_stacks(slices: list[DicomSlice]) -> list[list[DicomSlice]]:
    """Slices grouped by stack (compared with each group's first slice), largest group first."""
    groups: list[list[DicomSlice]] = []
    for piece in slices:
        for group in groups:
            if _same_stack(group[0], piece):
                group.append(piece)
                break
        else:
            groups.append([piece])
    return sorted(groups, key=len, reverse=True)  # stable: ties keep file order


def _split_localizers(slices) -> tuple[list[DicomSlice], list[tuple[DicomSlice, str]]]:
    kept, excluded = [], []
    for piece in slices:
        if LOCALIZER_IMAGE_TYPES & set(piece.image_type):
            excluded.append((piece, "localizer"))
        else:
            kept.append(piece)
    return kept, excluded


def build_stack(series: DicomSeries, where: str) -> SliceStack:
    """Order the frames of a volume series along its normal and measure its geometry.

    Parameters
    ----------
    series : DicomSeries
        A series whose ``skip_reason`` is empty.
    where : str
        The folder or file, for messages.

    Raises
    ------
    GeometryError
        Too few slices (a 2D image), invalid orientation, zero or negative pixel spacing, or
        slices sharing a position.
    """
    kept, excluded = _split_localizers(series.slices)
    groups = _group_stacks(kept)
    if not groups:
        raise UnsupportedInputError(f"{where}: series {series.series_uid} holds only localizers")
    chosen = groups[0]
    for others in groups[1:]:
        excluded.extend((piece, "other orientation or size (localizer?)") for piece in others)
    first = chosen[0]
    if len(chosen) < MIN_SLICES:
        raise GeometryError(
            f"{where}: series {series.series_uid} has {len(chosen)} image(s) of "
            f"{first.rows}x{first.columns} pixels: a 2D image, not a volume (at least "
            f"{MIN_SLICES} parallel slices are needed)"
        )
    direction = direction_from_orientation(first.orientation, f"{where} ({first.label})")
    row_spacing, column_spacing = first.pixel_spacing
    if min(row_spacing, column_spacing) <= 0:
        raise GeometryError(
            f"{where} ({first.label}): PixelSpacing {list(first.pixel_spacing)} mm: spacing "
            "must be positive"
        )
    positions = np.array([piece.position_lps for piece in chosen], dtype=float)
    normal_mm = positions @ direction[:, 2]
    order = np.argsort(normal_mm, kind="stable")
    ordered = tuple(chosen[o] for o in order)
    normal_mm = normal_mm[order]
    inplane_mm = (positions[order] - positions[order[0]]) @ direction[:, :2]
    stack = SliceStack(
        slices=ordered,
        direction=direction,
        pixel_spacing_ij=np.array([column_spacing, row_spacing], dtype=float),
        normal_mm=normal_mm,
        inplane_mm=inplane_mm,
        excluded=tuple(excluded),
    )
    _check_duplicates(stack, where)
    return stack


def _check_duplicates(stack: SliceStack, where: str) -> None:
    same = np.flatnonzero(stack.steps_mm < DUPLICATE_POSITION_MM)
    if same.size:
        s = int(same[0])
        raise GeometryError(
            f"{where}: {same.size + 1} or more slices share a position: {stack.slices[s].label} "
            f"and {stack.slices[s + 1].label} both lie at {stack.normal_mm[s]:.2f} mm along the "
            "slice normal (several echoes, phases or acquisitions in one series?); export one "
            "of them as its own series"
        )
