"""`RigidTransform`: a rotation and translation between two patient frames, in LPS mm.

The registration convention is ITK's: the transform maps points of the *fixed* image (the CT)
to points of the *moving* image (the MRI), ``mr_lps = rotation @ (ct_lps - centre) + centre +
translation``. Name instances by the direction they map (``mr_from_ct``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.errors import GeometryError
from planner.volume import Volume


def rotation_about_axes_deg(angles_deg) -> np.ndarray:
    """Rotation ``Rz @ Ry @ Rx`` from angles (deg) about the LPS x, y and z axes."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float).reshape(3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class RigidTransform:
    """``y = rotation @ (x - centre_lps) + centre_lps + translation_mm`` (all LPS mm).

    Attributes
    ----------
    rotation : (3, 3) ndarray
        Proper rotation matrix.
    translation_mm : (3,) ndarray
    centre_lps : (3,) ndarray
        Centre of rotation; it changes the parameters, not the mapping's meaning.
    """

    rotation: np.ndarray
    translation_mm: np.ndarray
    centre_lps: np.ndarray

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, float).reshape(3, 3)
        if np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-6 or np.linalg.det(rotation) < 0:
            raise GeometryError("a rigid transform needs a proper rotation matrix")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation_mm", np.asarray(self.translation_mm, float))
        object.__setattr__(self, "centre_lps", np.asarray(self.centre_lps, float))

    @classmethod
    def identity(cls) -> RigidTransform:
        return cls(np.eye(3), np.zeros(3), np.zeros(3))

    @classmethod
    def from_angles(cls, angles_deg, translation_mm, centre_lps=(0.0, 0.0, 0.0)) -> RigidTransform:
        """From rotation angles about x, y, z (deg, see :func:`rotation_about_axes_deg`)."""
        return cls(rotation_about_axes_deg(angles_deg), translation_mm, centre_lps)

    @property
    def offset_mm(self) -> np.ndarray:
        """``t`` in the plain form ``y = rotation @ x + t``."""
        return self.centre_lps + self.translation_mm - self.rotation @ self.centre_lps

    def apply(self, points_lps: np.ndarray) -> np.ndarray:
        """Map (..., 3) LPS points."""
        points = np.asarray(points_lps, float)
        return points @ self.rotation.T + self.offset_mm

    def apply_direction(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate (..., 3) direction vectors (no translation)."""
        return np.asarray(vectors, float) @ self.rotation.T

    def inverse(self) -> RigidTransform:
        rotation = self.rotation.T
        return RigidTransform(rotation, -rotation @ self.offset_mm, np.zeros(3))

    def compose(self, first: RigidTransform) -> RigidTransform:
        """The transform applying ``first`` and then ``self``."""
        rotation = self.rotation @ first.rotation
        return RigidTransform(rotation, self.rotation @ first.offset_mm + self.offset_mm,
                              np.zeros(3))

    @property
    def angle_deg(self) -> float:
        """Rotation angle (deg) of the transform, whatever its axis."""
        cosine = np.clip((np.trace(self.rotation) - 1.0) / 2.0, -1.0, 1.0)
        return float(np.rad2deg(np.arccos(cosine)))

    def error_to(self, truth: RigidTransform, points_lps: np.ndarray) -> tuple[float, float]:
        """(largest point distance in mm over ``points_lps``, rotation difference in deg)."""
        points = np.asarray(points_lps, float).reshape(-1, 3)
        distance = np.linalg.norm(self.apply(points) - truth.apply(points), axis=1).max()
        return float(distance), self.compose(truth.inverse()).angle_deg


def moved_volume(volume: Volume, transform: RigidTransform) -> Volume:
    """The same voxels relabelled into another frame: every voxel centre ``x`` moves to
    ``transform.apply(x)``. Exact (no resampling): a rigid move changes only the origin and the
    direction. E.g. ``moved_volume(ct_sacrum, registration.mr_from_ct)`` is the CT's sacrum in
    the MR frame.
    """
    return Volume(
        array=volume.array,
        origin_lps=transform.apply(volume.origin_lps),
        spacing_xyz=volume.spacing_xyz,
        direction=transform.rotation @ volume.direction,
        modality=volume.modality,
        info=volume.info,
    )
