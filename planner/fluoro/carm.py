"""C-arm geometry in physical units: angles, camera matrix, projection of LPS points.

Angle convention (DICOM PS3.3 C.8.7.5, *Positioner Primary/Secondary Angle*, patient-relative)
------------------------------------------------------------------------------------------------
Angles describe where the **detector** sits around the patient, measured from the isocentre, in
the patient's own LPS frame (so they do not depend on how the patient lies on the table):

* ``primary_deg`` (LAO positive, RAO negative): rotation in the patient's transverse plane.
  0 = detector perpendicular to the chest, i.e. **anterior** of the patient; +90 = detector on the
  patient's **left** (LAO 90, a left lateral); -90 = detector on the patient's right (RAO 90);
  +/-180 = detector **posterior** (on the patient's back).
* ``secondary_deg`` (CRAN positive, CAUD negative): tilt of the detector towards the patient's head
  (+) or feet (-), range -90..+90.

The unit vector from the isocentre to the detector, which is also the beam direction
(source -> detector), is in LPS::

    beam_lps = (sin(primary) cos(secondary), -cos(primary) cos(secondary), sin(secondary))

So at 0/0 the beam runs posterior -> anterior (a PA beam: source behind the patient's back,
detector in front of the chest), beam_lps = (0, -1, 0).

**Prone sacroplasty.** The patient lies prone and a standard C-arm has its source under the table
and its detector above the patient's back. The source is then *anterior* (under the belly) and the
detector *posterior*: the beam runs anterior -> posterior, beam_lps = (0, +1, 0), which is
**primary 180 (equivalently -180), secondary 0** in the patient-relative convention above. A tilt
of that AP-beam detector towards the head is CRAN (secondary > 0) as for any patient. A lateral
with the detector on the patient's left is primary +90 (LAO 90), on the right -90 (RAO 90).

Detector and image convention
-----------------------------
The image is displayed as seen from the detector looking back towards the source (the usual
radiograph convention: a PA chest film shows the patient's right on the viewer's left). Pixel
``(u, v) = (column, row)``; ``(0, 0)`` is the *centre* of the top-left pixel; the principal point
(foot of the perpendicular from the source) is the detector centre ``((W-1)/2, (H-1)/2)``.
The image "up" direction is the patient's head (superior) projected onto the detector. That is
what a C-arm shows as it tilts: the projected head is the direction in which the tilt moves the
beam, so "up" turns continuously with the tilt, even a steep one (a bull's-eye down an
interpedicular needle is often 70-75 deg). Only for a beam within :data:`AXIAL_BEAM_LIMIT_DEG` of
the head-foot axis itself, where the head projects to a point, is "up" the patient's anterior.

A :class:`Camera` holds the one 3x4 matrix ``P = K [R | -R s]`` that maps homogeneous LPS points to
homogeneous pixels; the DRR and every overlay use it, so the plan lands on the image exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from planner.errors import GeometryError

#: Default source-to-detector distance, mm (a typical mobile/fixed C-arm: 1000-1200 mm).
DEFAULT_SDD_MM = 1020.0
#: Default source-to-isocentre distance, mm.
DEFAULT_SAD_MM = 600.0
#: Default detector: 512 x 512 pixels over a 300 mm square flat panel (0.586 mm pitch).
DEFAULT_DETECTOR_SHAPE = (512, 512)
DEFAULT_DETECTOR_SIZE_MM = (300.0, 300.0)
#: Beam within this angle of the head-foot axis: the head projects to (nearly) a point, so image
#: "up" falls back to the patient's anterior. Kept tiny: a wider fallback flipped the picture
#: upside down as a steep bull's-eye beam crossed it (a 15 deg limit did, at 16 vs 14 deg).
AXIAL_BEAM_LIMIT_DEG = 0.01

_SUPERIOR_LPS = np.array([0.0, 0.0, 1.0])
_ANTERIOR_LPS = np.array([0.0, -1.0, 0.0])


@dataclass(frozen=True)
class CArm:
    """Physical C-arm: distances in mm, detector ``(rows, columns)`` in pixels and in mm.

    Parameters
    ----------
    sdd_mm : float
        Source-to-detector distance.
    sad_mm : float
        Source-to-isocentre distance (the isocentre is placed at the target).
    detector_shape : (2,) int
        Detector ``(rows, columns)``.
    detector_size_mm : (2,) float
        Physical detector ``(height, width)``.
    """

    sdd_mm: float = DEFAULT_SDD_MM
    sad_mm: float = DEFAULT_SAD_MM
    detector_shape: tuple[int, int] = DEFAULT_DETECTOR_SHAPE
    detector_size_mm: tuple[float, float] = DEFAULT_DETECTOR_SIZE_MM

    def __post_init__(self) -> None:
        if not (0 < self.sad_mm < self.sdd_mm):
            raise GeometryError(
                f"C-arm distances must satisfy 0 < sad_mm < sdd_mm, got sad_mm={self.sad_mm}, "
                f"sdd_mm={self.sdd_mm}"
            )
        rows, cols = (int(n) for n in self.detector_shape)
        if rows < 2 or cols < 2:
            raise GeometryError(f"detector_shape must be at least 2 x 2, got {self.detector_shape}")
        if min(self.detector_size_mm) <= 0:
            raise GeometryError(f"detector_size_mm must be positive, got {self.detector_size_mm}")
        object.__setattr__(self, "detector_shape", (rows, cols))
        object.__setattr__(self, "detector_size_mm", tuple(float(s) for s in self.detector_size_mm))

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """Detector pixel pitch ``(row, column)`` in mm."""
        return (
            self.detector_size_mm[0] / self.detector_shape[0],
            self.detector_size_mm[1] / self.detector_shape[1],
        )

    @property
    def magnification(self) -> float:
        """Magnification of an object at the isocentre: SDD / SAD."""
        return self.sdd_mm / self.sad_mm


@dataclass(frozen=True)
class CArmPose:
    """C-arm angles (degrees, DICOM patient-relative convention; see the module docstring)."""

    primary_deg: float
    secondary_deg: float

    def label(self) -> str:
        """Readable form, e.g. ``"LAO 90.0, CRAN 0.0"`` or ``"RAO 180.0, CAUD 12.5"``."""
        side = "LAO" if self.primary_deg >= 0 else "RAO"
        tilt = "CRAN" if self.secondary_deg >= 0 else "CAUD"
        return f"{side} {abs(self.primary_deg):.1f}, {tilt} {abs(self.secondary_deg):.1f}"

    def as_dict(self) -> dict[str, float | str]:
        """Plain-JSON form: both angles and the table-side description for a prone patient."""
        return {
            "primary_deg": round(float(self.primary_deg), 2),
            "secondary_deg": round(float(self.secondary_deg), 2),
            "label": self.label(),
            "prone_description": self.prone_description(),
        }

    def prone_description(self) -> str:
        """Where to put the detector, in words, for a prone patient (source under the table).

        Example: ``"detector over the patient's back, tilted 12.0 deg towards the head"``.
        """
        beam = beam_from_angles(self.primary_deg, self.secondary_deg)
        lateral, posterior, cranial = beam
        parts = []
        if abs(lateral) > abs(posterior):
            side = "left" if lateral > 0 else "right"
            parts.append(f"detector at the patient's {side} (lateral beam)")
            tilt_side = np.degrees(np.arctan2(posterior, abs(lateral)))
            if abs(tilt_side) >= 0.05:
                toward = "back" if tilt_side > 0 else "table"
                parts.append(f"rotated {abs(tilt_side):.1f} deg towards the {toward}")
        else:
            where = "over the patient's back" if posterior > 0 else "under the table"
            parts.append(f"detector {where}")
            tilt_side = np.degrees(np.arctan2(lateral, abs(posterior)))
            if abs(tilt_side) >= 0.05:
                side = "left" if tilt_side > 0 else "right"
                parts.append(f"rotated {abs(tilt_side):.1f} deg towards the patient's {side}")
        if abs(self.secondary_deg) >= 0.05:
            toward = "head" if cranial > 0 else "feet"
            parts.append(f"tilted {abs(self.secondary_deg):.1f} deg towards the {toward}")
        return ", ".join(parts)


def beam_from_angles(primary_deg: float, secondary_deg: float) -> np.ndarray:
    """Unit beam direction (source -> detector = isocentre -> detector), LPS, shape (3,)."""
    a = np.radians(primary_deg)
    b = np.radians(secondary_deg)
    return np.array([np.sin(a) * np.cos(b), -np.cos(a) * np.cos(b), np.sin(b)])


def angles_from_beam(beam_lps: np.ndarray) -> CArmPose:
    """Inverse of :func:`beam_from_angles`: primary in (-180, 180], secondary in [-90, 90].

    For a beam along the head-foot axis the primary angle is undefined and returned as 0.
    """
    beam = _unit(beam_lps, "beam_lps")
    secondary = np.degrees(np.arcsin(np.clip(beam[2], -1.0, 1.0)))
    if np.hypot(beam[0], beam[1]) < 1e-12:
        return CArmPose(0.0, float(secondary))
    primary = np.degrees(np.arctan2(beam[0], -beam[1]))
    if primary <= -180.0 + 1e-9:
        primary = 180.0
    return CArmPose(float(primary), float(secondary))


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera built from a C-arm pose: one 3x4 matrix, LPS mm -> detector pixels.

    Attributes
    ----------
    matrix : (3, 4) ndarray
        ``P = K [R | -R s]``; ``P @ [x, y, z, 1]`` is ``w * [u, v, 1]`` with ``w`` the depth (mm)
        of the point along the beam from the source.
    shape : (2,) int
        Detector ``(rows, columns)``.
    source_lps, isocenter_lps : (3,) ndarray
        Focal spot and isocentre, LPS mm.
    beam_lps : (3,) ndarray
        Unit beam direction (source -> detector).
    right_lps, down_lps : (3,) ndarray
        LPS unit vectors along increasing column and increasing row on the detector.
    carm : CArm
    pose : CArmPose
    """

    matrix: np.ndarray
    shape: tuple[int, int]
    source_lps: np.ndarray
    isocenter_lps: np.ndarray
    beam_lps: np.ndarray
    right_lps: np.ndarray
    down_lps: np.ndarray
    carm: CArm = field(default_factory=CArm)
    pose: CArmPose | None = None

    def project(self, points_lps: np.ndarray) -> np.ndarray:
        """Project (N, 3) LPS points to (N, 2) pixels ``(column, row)``; see :func:`project`."""
        return project(self.matrix, points_lps)

    def depth_mm(self, points_lps: np.ndarray) -> np.ndarray:
        """Distance (mm) of (N, 3) points from the source along the beam, shape (N,)."""
        points = _points(points_lps)
        return (points - self.source_lps) @ self.beam_lps

    def magnification_at(self, points_lps: np.ndarray) -> np.ndarray:
        """Magnification SDD / source-to-object distance for (N, 3) points, shape (N,)."""
        return self.carm.sdd_mm / self.depth_mm(points_lps)

    @property
    def pixels_per_mm_at_isocenter(self) -> tuple[float, float]:
        """Detector pixels per mm of an object in the isocentre plane ``(row, column)``."""
        mag = self.carm.magnification
        pitch = self.carm.pixel_spacing_mm
        return (mag / pitch[0], mag / pitch[1])


def _unit(vector, name: str) -> np.ndarray:
    vector = np.asarray(vector, dtype=float).reshape(-1)
    norm = float(np.linalg.norm(vector)) if vector.shape == (3,) else 0.0
    if vector.shape != (3,) or not np.isfinite(norm) or norm < 1e-12:
        raise GeometryError(f"{name} must be a finite non-zero 3-vector, got {vector.tolist()}")
    return vector / norm


def _points(points_lps) -> np.ndarray:
    points = np.asarray(points_lps, dtype=float)
    if points.ndim == 1:
        points = points[np.newaxis, :]
    if points.ndim != 2 or points.shape[1] != 3:
        raise GeometryError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    return points


def default_up(beam_lps: np.ndarray) -> np.ndarray:
    """Image "up" for a beam: the head, or anterior for a beam along the head-foot axis."""
    beam = _unit(beam_lps, "beam_lps")
    if abs(beam @ _SUPERIOR_LPS) > np.cos(np.radians(AXIAL_BEAM_LIMIT_DEG)):
        return _ANTERIOR_LPS.copy()
    return _SUPERIOR_LPS.copy()


def camera_from_beam(
    isocenter_lps: np.ndarray,
    beam_lps: np.ndarray,
    carm: CArm | None = None,
    up_lps: np.ndarray | None = None,
) -> Camera:
    """Camera for a beam direction (source -> detector), isocentre at ``isocenter_lps``.

    Parameters
    ----------
    isocenter_lps : (3,) array-like
        Isocentre (the planned target), LPS mm; it projects to the detector centre.
    beam_lps : (3,) array-like
        Beam direction, need not be normalised.
    carm : CArm, optional
        Distances and detector; default :class:`CArm()`.
    up_lps : (3,) array-like, optional
        World direction that should point up on the image; default :func:`default_up`.
    """
    carm = carm or CArm()
    iso = np.asarray(isocenter_lps, dtype=float).reshape(3)
    beam = _unit(beam_lps, "beam_lps")
    up = _unit(default_up(beam) if up_lps is None else up_lps, "up_lps")
    up_on_detector = up - (up @ beam) * beam
    if np.linalg.norm(up_on_detector) < 1e-6:
        raise GeometryError("up_lps is parallel to the beam; pick an up direction across the beam")
    up_on_detector /= np.linalg.norm(up_on_detector)
    # Seen from the detector looking back at the source (view direction -beam), "right" is
    # (-beam) x up; rows grow downwards.
    right = np.cross(-beam, up_on_detector)
    down = -up_on_detector
    source = iso - carm.sad_mm * beam
    rows, cols = carm.detector_shape
    pitch_row, pitch_col = carm.pixel_spacing_mm
    intrinsic = np.array(
        [
            [carm.sdd_mm / pitch_col, 0.0, (cols - 1) / 2.0],
            [0.0, carm.sdd_mm / pitch_row, (rows - 1) / 2.0],
            [0.0, 0.0, 1.0],
        ]
    )
    rotation = np.vstack([right, down, beam])
    extrinsic = np.hstack([rotation, -(rotation @ source)[:, np.newaxis]])
    return Camera(
        matrix=intrinsic @ extrinsic,
        shape=(rows, cols),
        source_lps=source,
        isocenter_lps=iso,
        beam_lps=beam,
        right_lps=right,
        down_lps=down,
        carm=carm,
        pose=angles_from_beam(beam),
    )


def camera_from_angles(
    isocenter_lps: np.ndarray,
    primary_deg: float,
    secondary_deg: float,
    carm: CArm | None = None,
    up_lps: np.ndarray | None = None,
) -> Camera:
    """Camera for C-arm angles (DICOM patient-relative; LAO +, CRAN +), isocentre at a point.

    Example: a prone patient's AP view with the detector over the back is
    ``camera_from_angles(target_lps, 180, 0)``; a left lateral is ``(target_lps, 90, 0)``.
    """
    camera = camera_from_beam(
        isocenter_lps, beam_from_angles(primary_deg, secondary_deg), carm, up_lps
    )
    return _with_pose(camera, CArmPose(float(primary_deg), float(secondary_deg)))


def _with_pose(camera: Camera, pose: CArmPose) -> Camera:
    return replace(camera, pose=pose)


def project(matrix: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
    """Project LPS points with a 3x4 camera matrix.

    Parameters
    ----------
    matrix : (3, 4) array-like
        Camera matrix (LPS mm -> homogeneous pixels).
    points_lps : (N, 3) or (3,) array-like
        Points in LPS mm.

    Returns
    -------
    (N, 2) ndarray
        Pixel coordinates ``(column, row)``; ``(0, 0)`` is the centre of the top-left pixel.
        Points at the source plane (depth 0) give non-finite values.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (3, 4):
        raise GeometryError(f"camera matrix must have shape (3, 4), got {matrix.shape}")
    points = _points(points_lps)
    homogeneous = points @ matrix[:, :3].T + matrix[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return homogeneous[:, :2] / homogeneous[:, 2:3]


def source_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """The camera centre (X-ray source), LPS mm: the point that ``matrix`` maps to zero."""
    matrix = np.asarray(matrix, dtype=float)
    return -np.linalg.solve(matrix[:, :3], matrix[:, 3])


def pixel_rays(matrix: np.ndarray, pixels_uv: np.ndarray) -> np.ndarray:
    """Ray directions (LPS, not normalised, positive depth) through (N, 2) pixels ``(u, v)``.

    The direction of pixel ``(u, v)`` is ``M^-1 [u, v, 1]`` with ``M = P[:, :3]``, scaled so its
    component along the beam is 1 mm (a step of one unit is one mm of depth).
    """
    matrix = np.asarray(matrix, dtype=float)
    pixels = np.asarray(pixels_uv, dtype=float).reshape(-1, 2)
    homogeneous = np.hstack([pixels, np.ones((pixels.shape[0], 1))])
    return np.linalg.solve(matrix[:, :3], homogeneous.T).T
