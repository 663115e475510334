"""The sacral frame: pelvis pose in the scanner and the curved sacral axis.

Three coordinate systems are used, all in mm:

* **world** (LPS): the scanner; what a `Volume` maps its voxels to.
* **pelvis**: x patient left, y posterior, z superior, origin at the sacral promontory (the
  anterior-superior corner of S1 on the mid-sagittal plane). ``world = R @ pelvis + t``.
* **sacral** ``(x, s, d)``: x is the pelvis x (signed distance from the mid-sagittal plane,
  + left); s is arc length along the anterior cortex from the promontory (+ caudal); d is the
  depth behind the anterior cortex along its normal (+ posterior, into the bone).

On the mid-sagittal plane the anterior cortex is a circular arc from the promontory (s = 0) to the
tip (s = H), whose tangent starts ``sacral_slope_deg`` from the vertical (caudal and posterior)
and turns anteriorly by ``kyphosis_deg`` in total. Beyond both ends the frame continues along the
end tangents, which is where L5 (above) and the coccyx (below) live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Smallest curvature used (1/mm); a straight sacrum is an arc of radius 10 km.
MIN_CURVATURE_PER_MM = 1e-7


def rotation_matrix_xyz(angles_deg) -> np.ndarray:
    """Rotation about x, then y, then z (angles in degrees): ``Rz @ Ry @ Rx``."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class SacralFrame:
    """Pose of the pelvis and the curved sacral axis (see module docstring)."""

    rotation: np.ndarray  # (3, 3) world_from_pelvis rotation
    translation_mm: np.ndarray  # (3,) world position of the pelvis origin (the promontory)
    height_mm: float  # H, arc length of the anterior cortex
    slope_rad: float  # initial tangent angle from the vertical, posterior positive
    curvature_per_mm: float  # kappa > 0, the tangent turns anteriorly

    @classmethod
    def create(
        cls, rotation_deg, translation_mm, height_mm: float, slope_deg: float, kyphosis_deg: float
    ) -> SacralFrame:
        curvature = max(np.deg2rad(kyphosis_deg) / height_mm, MIN_CURVATURE_PER_MM)
        return cls(
            rotation=rotation_matrix_xyz(rotation_deg),
            translation_mm=np.asarray(translation_mm, dtype=float),
            height_mm=float(height_mm),
            slope_rad=float(np.deg2rad(slope_deg)),
            curvature_per_mm=float(curvature),
        )

    # ---------------------------------------------------------------- world <-> pelvis
    def pelvis_to_world(self, points_pelvis: np.ndarray) -> np.ndarray:
        """(..., 3) pelvis mm -> (..., 3) world LPS mm."""
        return np.asarray(points_pelvis, float) @ self.rotation.T + self.translation_mm

    def world_to_pelvis(self, points_lps: np.ndarray) -> np.ndarray:
        """(..., 3) world LPS mm -> (..., 3) pelvis mm."""
        return (np.asarray(points_lps, float) - self.translation_mm) @ self.rotation

    def pelvis_direction_to_world(self, directions: np.ndarray) -> np.ndarray:
        return np.asarray(directions, float) @ self.rotation.T

    # ---------------------------------------------------------------- the arc
    @property
    def radius_mm(self) -> float:
        return 1.0 / self.curvature_per_mm

    def angle(self, s_mm) -> np.ndarray:
        """Tangent angle theta(s) (rad) from the caudal vertical, posterior positive."""
        s = np.clip(np.asarray(s_mm, float), 0.0, self.height_mm)
        return self.slope_rad - self.curvature_per_mm * s

    def tangent_yz(self, s_mm) -> np.ndarray:
        """(..., 2) unit (y, z) tangent of the anterior cortex, pointing caudally."""
        theta = self.angle(s_mm)
        return np.stack([np.sin(theta), -np.cos(theta)], axis=-1)

    def normal_yz(self, s_mm) -> np.ndarray:
        """(..., 2) unit (y, z) normal of the anterior cortex, pointing posteriorly (into bone)."""
        theta = self.angle(s_mm)
        return np.stack([np.cos(theta), np.sin(theta)], axis=-1)

    def curve_yz(self, s_mm) -> np.ndarray:
        """(..., 2) (y, z) of the anterior cortex (d = 0) at arc length s; straight beyond ends."""
        s = np.asarray(s_mm, float)
        s_in = np.clip(s, 0.0, self.height_mm)
        kappa = self.curvature_per_mm
        theta0 = self.slope_rad
        theta = self.angle(s_in)
        # Integral of (sin t, -cos t) ds with t = theta0 - kappa s.
        y = (np.cos(theta) - np.cos(theta0)) / kappa
        z = (np.sin(theta) - np.sin(theta0)) / kappa
        if kappa <= MIN_CURVATURE_PER_MM * 1.0001:  # numerically straight
            y = s_in * np.sin(theta0)
            z = -s_in * np.cos(theta0)
        point = np.stack([y, z], axis=-1)
        beyond = (s - s_in)[..., None]
        return point + beyond * self.tangent_yz(s_in)

    def sacral_to_pelvis(self, x_mm, s_mm, d_mm) -> np.ndarray:
        """(..., 3) pelvis mm of sacral coordinates (x, s, d)."""
        s = np.asarray(s_mm, float)
        yz = self.curve_yz(s) + np.asarray(d_mm, float)[..., None] * self.normal_yz(s)
        x = np.broadcast_to(np.asarray(x_mm, float), yz.shape[:-1])
        return np.concatenate([x[..., None], yz], axis=-1)

    def sacral_to_world(self, x_mm, s_mm, d_mm) -> np.ndarray:
        return self.pelvis_to_world(self.sacral_to_pelvis(x_mm, s_mm, d_mm))

    def pelvis_to_sacral(self, points_pelvis: np.ndarray) -> tuple[np.ndarray, ...]:
        """Sacral coordinates ``(x, s, d)`` of (..., 3) pelvis points (each (...) arrays).

        Inside the arc's wedge, s and d are polar coordinates about the centre of curvature;
        cranial of S1 and caudal of the tip, they are coordinates along the end tangents.
        """
        points = np.asarray(points_pelvis, float)
        x = points[..., 0]
        y = points[..., 1]
        z = points[..., 2]
        kappa = self.curvature_per_mm
        radius = 1.0 / kappa
        start_yz = self.curve_yz(0.0)
        centre = start_yz - radius * self.normal_yz(0.0)
        vy = y - centre[0]
        vz = z - centre[1]
        distance = np.hypot(vy, vz)
        theta = np.arctan2(vz, vy)
        turn = np.angle(np.exp(1j * (self.slope_rad - theta)))  # wrapped to (-pi, pi]
        s = turn * radius
        d = distance - radius
        # Cranial and caudal extensions along the end tangents.
        for end_s, selector in ((0.0, s < 0.0), (self.height_mm, s > self.height_mm)):
            if not np.any(selector):
                continue
            origin = self.curve_yz(end_s)
            tangent = self.tangent_yz(end_s)
            normal = self.normal_yz(end_s)
            ry = y[selector] - origin[0]
            rz = z[selector] - origin[1]
            s[selector] = end_s + ry * tangent[0] + rz * tangent[1]
            d[selector] = ry * normal[0] + rz * normal[1]
        # Points near or beyond the centre of curvature are far in front of the sacrum.
        d = np.where(distance < 0.3 * radius, -radius, d)
        return x, s, d
