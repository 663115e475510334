"""The sacral frame: pelvis pose in the scanner and the curved sacral axis.

Three coordinate systems are used, all in mm:

* **world** (LPS): the scanner; what a `Volume` maps its voxels to.
* **pelvis**: x patient left, y posterior, z superior, origin at the sacral promontory (the
  anterior-superior corner of S1 on the mid-sagittal plane). ``world = R @ pelvis + t``.
* **sacral** ``(x, s, d)``: x is the pelvis x (signed distance from the mid-sagittal plane,
  + left); s is arc length along the anterior cortex from the promontory (+ caudal); d is the
  depth behind the anterior cortex along its normal (+ posterior, into the bone).

On the mid-sagittal plane the anterior cortex runs from the promontory (s = 0) to the tip (s = H)
as two circular arcs joined at the centre of S3; its tangent starts ``sacral_slope_deg`` from
the vertical (caudal and posterior) and turns anteriorly by ``kyphosis_deg`` in total, a share
``kyphosis_caudal_share`` of it caudal of the S3 centre (strongly kyphotic sacra bend there).
Beyond both ends the frame continues along the end tangents, which is where L5 (above) and the
coccyx (below) live.
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


def _add_bend(breaks: np.ndarray, curvatures: np.ndarray, centre_s_mm: float,
              length_mm: float, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Arcs with an extra turn of ``angle_deg`` spread over ``length_mm`` around ``centre_s_mm``.

    The bend's ends become arc joints; each arc keeps its base curvature plus the bend's
    (angle / length) where it lies inside the bend.
    """
    low = max(centre_s_mm - 0.5 * length_mm, breaks[0])
    high = min(centre_s_mm + 0.5 * length_mm, breaks[-1])
    merged = np.unique(np.concatenate([breaks, [low, high]]))
    middles = 0.5 * (merged[:-1] + merged[1:])
    base = curvatures[np.clip(np.searchsorted(breaks, middles, side="right") - 1, 0,
                              len(curvatures) - 1)]
    extra = np.where((middles > low) & (middles < high),
                     np.deg2rad(angle_deg) / max(high - low, 1e-9), 0.0)
    return merged, base + extra


@dataclass(frozen=True)
class SacralFrame:
    """Pose of the pelvis and the curved sacral axis (see module docstring).

    The anterior cortex is made of circular arcs joined with a common tangent: arc ``n`` runs
    from ``breaks_s[n]`` to ``breaks_s[n + 1]`` with curvature ``curvatures_per_mm[n]``.
    """

    rotation: np.ndarray  # (3, 3) world_from_pelvis rotation
    translation_mm: np.ndarray  # (3,) world position of the pelvis origin (the promontory)
    height_mm: float  # H, arc length of the anterior cortex
    slope_rad: float  # initial tangent angle from the vertical, posterior positive
    breaks_s: np.ndarray  # (n + 1,) arc lengths where the arcs start and end, 0 ... H
    curvatures_per_mm: np.ndarray  # (n,) curvature of each arc, > 0: turning anteriorly

    @classmethod
    def create(
        cls,
        rotation_deg,
        translation_mm,
        height_mm: float,
        slope_deg: float,
        kyphosis_deg: float,
        split_s_mm: float | None = None,
        caudal_share: float | None = None,
        bend: tuple[float, float, float] | None = None,
    ) -> SacralFrame:
        """A frame whose tangent turns by ``kyphosis_deg`` in total.

        With ``split_s_mm`` and ``caudal_share``, the fraction ``caudal_share`` of the turn
        happens caudal of ``split_s_mm`` (two arcs); otherwise the curvature is uniform.
        ``bend = (centre_s_mm, length_mm, angle_deg)`` adds a sharp angulation: an extra turn of
        ``angle_deg`` spread evenly over ``length_mm`` of arc centred on ``centre_s_mm`` (a
        hooked sacrum). The total turn is then ``kyphosis_deg + angle_deg``.
        """
        total = np.deg2rad(kyphosis_deg)
        if split_s_mm is None or caudal_share is None:
            breaks = np.array([0.0, height_mm])
            turns = np.array([total])
        else:
            breaks = np.array([0.0, split_s_mm, height_mm])
            turns = np.array([(1.0 - caudal_share) * total, caudal_share * total])
        curvatures = turns / np.diff(breaks)
        if bend is not None:
            breaks, curvatures = _add_bend(breaks, curvatures, *bend)
        curvatures = np.maximum(curvatures, MIN_CURVATURE_PER_MM)
        return cls(
            rotation=rotation_matrix_xyz(rotation_deg),
            translation_mm=np.asarray(translation_mm, dtype=float),
            height_mm=float(height_mm),
            slope_rad=float(np.deg2rad(slope_deg)),
            breaks_s=breaks.astype(float),
            curvatures_per_mm=curvatures.astype(float),
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

    # ---------------------------------------------------------------- the arcs
    def _piece(self, s_mm) -> np.ndarray:
        """Index of the arc that holds arc length s (clamped to the first and last arc)."""
        inner = self.breaks_s[1:-1]
        return np.searchsorted(inner, np.asarray(s_mm, float), side="right")

    def _piece_starts(self) -> tuple[np.ndarray, np.ndarray]:
        """Tangent angle and (y, z) at the start of every arc."""
        angles = [self.slope_rad]
        points = [np.zeros(2)]
        for n, kappa in enumerate(self.curvatures_per_mm[:-1]):
            length = self.breaks_s[n + 1] - self.breaks_s[n]
            theta0 = angles[-1]
            theta1 = theta0 - kappa * length
            step = np.array([np.cos(theta1) - np.cos(theta0), np.sin(theta1) - np.sin(theta0)])
            points.append(points[-1] + step / kappa)
            angles.append(theta1)
        return np.array(angles), np.array(points)

    def curvature_at(self, s_mm) -> np.ndarray:
        """Curvature (1/mm) of the anterior cortex at arc length s."""
        return self.curvatures_per_mm[self._piece(s_mm)]

    def angle(self, s_mm) -> np.ndarray:
        """Tangent angle theta(s) (rad) from the caudal vertical, posterior positive."""
        s = np.clip(np.asarray(s_mm, float), 0.0, self.height_mm)
        piece = self._piece(s)
        angles, _ = self._piece_starts()
        return angles[piece] - self.curvatures_per_mm[piece] * (s - self.breaks_s[piece])

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
        piece = self._piece(s_in)
        angles, starts = self._piece_starts()
        kappa = self.curvatures_per_mm[piece]
        theta0 = angles[piece]
        length = s_in - self.breaks_s[piece]
        theta = theta0 - kappa * length
        # Integral of (sin t, -cos t) ds with t = theta0 - kappa s; a chord when nearly straight.
        straight = kappa * np.maximum(length, 1.0) < 1e-9
        safe = np.where(straight, 1.0, kappa)
        y = np.where(straight, length * np.sin(theta0), (np.cos(theta) - np.cos(theta0)) / safe)
        z = np.where(straight, -length * np.cos(theta0), (np.sin(theta) - np.sin(theta0)) / safe)
        point = starts[piece] + np.stack([y, z], axis=-1)
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

        Along each arc, s and d are polar coordinates about the arc's centre of curvature; the
        normal lines at the arc joints split the plane between arcs. Cranial of S1 and caudal of
        the tip, s and d are coordinates along the end tangents.
        """
        points = np.asarray(points_pelvis, float)
        x = points[..., 0]
        y = points[..., 1]
        z = points[..., 2]
        angles, starts = self._piece_starts()
        # Which arc: count the joints the point lies caudal of (side of the joint's normal line).
        piece = np.zeros(y.shape, dtype=int)
        for joint_s in self.breaks_s[1:-1]:
            origin = self.curve_yz(joint_s)
            tangent = self.tangent_yz(joint_s)
            piece += ((y - origin[0]) * tangent[0] + (z - origin[1]) * tangent[1]) > 0
        s = np.empty(y.shape)
        d = np.empty(y.shape)
        far = np.zeros(y.shape, bool)
        for n, kappa in enumerate(self.curvatures_per_mm):
            sel = piece == n
            if not np.any(sel):
                continue
            radius = 1.0 / kappa
            theta0 = angles[n]
            normal0 = np.array([np.cos(theta0), np.sin(theta0)])
            centre = starts[n] - radius * normal0
            vy = y[sel] - centre[0]
            vz = z[sel] - centre[1]
            distance = np.hypot(vy, vz)
            turn = np.angle(np.exp(1j * (theta0 - np.arctan2(vz, vy))))  # wrapped to (-pi, pi]
            s[sel] = self.breaks_s[n] + turn * radius
            d[sel] = distance - radius
            # Points near or beyond the centre of curvature are far in front of the sacrum.
            far[sel] = distance < 0.3 * radius
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
        d = np.where(far, -1.0 / self.curvatures_per_mm.min(), d)
        return x, s, d
