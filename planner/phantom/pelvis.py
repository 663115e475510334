"""The analytic pelvis: implicit shapes of every structure in the sacral frame.

`PelvisModel.evaluate` returns signed distances (mm, negative inside) of each structure at any
set of pelvis points, so a phantom can be rasterised on any grid with no resampling, and every
landmark is a closed-form point. See :mod:`planner.phantom.frame` for the coordinate systems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.anatomy.model import FORAMEN_LEVELS, LEVEL_NAMES, SIDES
from planner.phantom import shapes
from planner.phantom.frame import SacralFrame
from planner.phantom.params import PhantomParams

# Adult proportions at the centre of S1..S5 (mm), before the per-case scale factors.
BODY_HALF_WIDTH_MM = (24.0, 19.0, 15.0, 11.0, 7.5)
BODY_DEPTH_MM = (31.0, 24.0, 18.0, 13.0, 9.0)  # antero-posterior, across the cortex normal
CANAL_HALF_WIDTH_MM = (14.0, 11.5, 9.5, 8.0, 6.5)
CANAL_HALF_DEPTH_MM = (6.5, 5.0, 4.0, 3.5, 3.0)
LATERAL_HALF_WIDTH_MM = (54.0, 46.0, 35.0, 24.0, 14.0)  # alae / lateral masses
LAMINA_MM = (6.0, 5.0, 4.0, 3.5, 3.0)
#: Body size at the very tip of S5 (half-width, depth), mm.
TIP_HALF_WIDTH_MM = 4.5
TIP_DEPTH_MM = 5.5
#: Anterior foramen radius at the S1/S2 ... S4/S5 junctions (mm), shrinking caudally.
FORAMEN_RADIUS_MM = (5.0, 4.0, 3.2, 2.4)
#: Bone kept between a foramen and the body / the lateral edge of the ala (mm).
FORAMEN_BODY_GAP_MM = 1.0
FORAMEN_LATERAL_BONE_MM = 5.0
#: Depth (fraction of the body depth) where the anterior foramen turns medially to the canal.
FORAMEN_TURN_DEPTH_FRACTION = 0.85
POSTERIOR_FORAMEN_RADIUS_FRACTION = 0.75
#: The lateral masses start this far behind the body's anterior cortex (fraction of its depth).
LATERAL_ANTERIOR_FRACTION = 0.18
LATERAL_ROUNDING_MM = 4.0
ALA_TOP_S_MM = 2.0  # the alae start slightly caudal of the S1 endplate
#: The alae's anterior surface recedes posteriorly, and their top caudally, lateral of the body.
ALA_SWEEP_DEG = 25.0
ALA_TOP_SLOPE_DEG = 15.0
#: The dorsal surface slopes anteriorly lateral of the laminae (a convex back), degrees.
DORSAL_SLOPE_DEG = 25.0
#: Superior articular processes of S1 (facets for L5): half-width, height above S1 (mm).
S1_FACET_HALF_WIDTH_MM = 5.0
S1_FACET_HEIGHT_MM = 12.0
CREST_HEIGHT_MM = (7.0, 5.5, 4.0)  # median sacral crest at S1..S3
CREST_HALF_WIDTH_MM = 3.5
RIDGE_HALF_WIDTH_MM = 2.5  # anterior transverse ridge at each fused disc (Gaussian width)
DISC_REMNANT_HALF_THICKNESS_MM = 0.75
# L5, the L5/S1 disc and the coccyx.
DISC_L5_S1_MM = 10.0
L5_HEIGHT_MM = 27.0
L5_SPINOUS_LENGTH_MM = 28.0
L5_TRANSVERSE_HALF_WIDTH_MM = 42.0
COCCYX_GAP_MM = 2.0
COCCYX_LENGTH_MM = 28.0
# Ilium: joint block beside the auricular surface, wing plate, column toward the acetabulum.
ILIUM_JOINT_THICKNESS_MM = 20.0
ILIUM_WING_ANGLE_DEG = 45.0  # from the antero-posterior axis, opening anteriorly
ILIUM_WING_FLARE_DEG = 25.0  # lateral tilt of the wing from the vertical
ILIUM_WING_THICKNESS_MM = 7.0
ILIUM_WING_CENTRE_UV_MM = (40.0, 15.0)
ILIUM_WING_HALF_UV_MM = (60.0, 55.0)
ILIUM_COLUMN_RADIUS_MM = 15.0
SKIN_MM = 2.0
#: Soft tissue over the coccyx tip, as a fraction of its depth at the hiatus (natal cleft).
NATAL_CLEFT_FRACTION = 0.4
DURAL_SAC_WIDTH_FRACTION = 0.55
DURAL_SAC_DEPTH_FRACTION = 0.6
DURAL_SAC_TAPER_MM = 8.0
LESION_BODY_MARGIN_MM = 1.5  # bone kept between the lesion and the body's cortex
#: Arc length (mm of anterior cortex) over which the angulation of a hooked sacrum turns.
HOOK_LENGTH_MM = 8.0


@dataclass(frozen=True)
class ForamenAxis:
    """An anterior foramen as two capsules: antero-posterior part, then medially to the canal."""

    level: str
    side: str
    radius_mm: float
    anterior_pelvis: np.ndarray  # (3,) outside the anterior surface
    turn_pelvis: np.ndarray  # (3,) where the channel turns medially
    canal_pelvis: np.ndarray  # (3,) inside the canal
    posterior_pelvis: np.ndarray  # (3,) outside the posterior surface (posterior foramen)
    center_pelvis: np.ndarray  # (3,) landmark: one radius behind the anterior surface


class PelvisModel:
    """All structures of one phantom, built from :class:`PhantomParams`."""

    def __init__(self, params: PhantomParams) -> None:
        self.params = params
        height = params.sacral_height_mm
        fractions = np.asarray(params.level_fractions, float)
        fractions = fractions / fractions.sum()
        #: s of the level boundaries: 0 (S1 top), S1/S2, ..., S4/S5, H (tip).
        self.boundaries_s = np.concatenate([[0.0], np.cumsum(fractions) * height])
        self.boundaries_s[-1] = height
        self.centres_s = 0.5 * (self.boundaries_s[:-1] + self.boundaries_s[1:])
        self.frame = SacralFrame.create(
            params.pose_rotation_deg,
            params.pose_translation_mm,
            params.sacral_height_mm,
            params.sacral_slope_deg,
            params.kyphosis_deg,
            split_s_mm=float(self.centres_s[2]),
            caudal_share=params.kyphosis_caudal_share,
            bend=self._hook(),
        )
        s4_top, s5_top = self.boundaries_s[3], self.boundaries_s[4]
        self.hiatus_apex_s = s4_top + params.hiatus_apex_fraction * (s5_top - s4_top)
        self.hiatus_base_s = s5_top + params.hiatus_base_fraction * (height - s5_top)
        end_level = LEVEL_NAMES.index(params.dural_sac_end_level)
        self.dural_end_s = self.boundaries_s[end_level] + params.dural_sac_end_fraction * (
            self.boundaries_s[end_level + 1] - self.boundaries_s[end_level]
        )
        self._build_profiles()
        self.foramina = self._build_foramina()
        self._build_ilia()
        self._build_lesion()
        self._box_frame = self._frame_box()

    def _hook(self) -> tuple[float, float, float] | None:
        """(centre s, length, angle) of the sharp angulation of a hooked sacrum, or None."""
        p = self.params
        if p.hook_deg <= 0:
            return None
        s3_centre, s3_s4 = float(self.centres_s[2]), float(self.boundaries_s[3])
        centre = s3_centre + p.hook_position_fraction * (s3_s4 - s3_centre)
        return centre, HOOK_LENGTH_MM, p.hook_deg

    # ------------------------------------------------------------------ profiles along s
    def _build_profiles(self) -> None:
        p = self.params
        knots = np.concatenate([self.centres_s, [p.sacral_height_mm]])
        body = p.body_scale
        self._knots = knots
        self._table = {
            "a": np.array([*np.multiply(BODY_HALF_WIDTH_MM, body), TIP_HALF_WIDTH_MM]),
            "D": np.array([*np.multiply(BODY_DEPTH_MM, body), TIP_DEPTH_MM]),
            "cw": np.array([*np.multiply(CANAL_HALF_WIDTH_MM, p.canal_scale)])[[0, 1, 2, 3, 4, 4]],
            "ch": np.array([*np.multiply(CANAL_HALF_DEPTH_MM, p.canal_scale)])[[0, 1, 2, 3, 4, 4]],
            "lam": np.array(LAMINA_MM)[[0, 1, 2, 3, 4, 4]],
        }
        self.foramen_radius = np.multiply(FORAMEN_RADIUS_MM, p.foramen_scale)
        # Lateral masses wide enough to hold the foramina with bone around them.
        lateral = np.multiply(LATERAL_HALF_WIDTH_MM, p.width_scale * body)
        for j in range(4):
            s_j = self.boundaries_s[j + 1]
            need = (
                self.profile("a", s_j)
                + 2 * self.foramen_radius[j]
                + FORAMEN_BODY_GAP_MM
                + FORAMEN_LATERAL_BONE_MM
            )
            lateral[j] = max(lateral[j], need)
            lateral[j + 1] = max(lateral[j + 1], need)
        self._table["W"] = np.array([*lateral, lateral[-1]])

    def profile(self, name: str, s_mm) -> np.ndarray:
        """Interpolated profile value (mm) at arc length s (clamped at both ends)."""
        return np.interp(s_mm, self._knots, self._table[name])

    def anterior_offset(self, s_mm) -> np.ndarray:
        """d of the anterior cortex on the mid-sagittal plane: <= 0 at the transverse ridges."""
        s = np.asarray(s_mm, float)
        bump = np.zeros_like(s)
        for s_j in self.boundaries_s[1:5]:
            bump = bump + np.exp(-(((s - s_j) / RIDGE_HALF_WIDTH_MM) ** 2))
        inside = (s >= 0) & (s <= self.params.sacral_height_mm)
        return np.where(inside, -self.params.ridge_mm * bump, 0.0)

    @staticmethod
    def ala_front(sec: dict[str, np.ndarray], abs_x_mm) -> np.ndarray:
        """d of the anterior surface of the lateral masses at lateral distance |x| (mm)."""
        excess = np.maximum(np.asarray(abs_x_mm, float) - sec["a"], 0.0)
        return sec["d_lat0"] + np.tan(np.deg2rad(ALA_SWEEP_DEG)) * excess

    def section(self, s_mm) -> dict[str, np.ndarray]:
        """All cross-section sizes at arc length s (mm)."""
        s = np.asarray(s_mm, float)
        out = {name: self.profile(name, s) for name in ("a", "D", "cw", "ch", "lam", "W")}
        out["d_ant"] = self.anterior_offset(s)
        out["d_canal"] = out["D"] + out["ch"]  # canal centre: its anterior edge is the body back
        out["d_lat0"] = LATERAL_ANTERIOR_FRACTION * out["D"] + 1.0
        out["d_post"] = out["D"] + 2 * out["ch"] + out["lam"]
        return out

    # ------------------------------------------------------------------ foramina
    def _build_foramina(self) -> list[ForamenAxis]:
        frame = self.frame
        axes = []
        for j, level in enumerate(FORAMEN_LEVELS):
            s_j = float(self.boundaries_s[j + 1])
            sec = {k: float(v) for k, v in self.section(s_j).items()}
            radius = float(self.foramen_radius[j])
            x_lateral = sec["a"] + radius + FORAMEN_BODY_GAP_MM
            front = float(self.ala_front(sec, x_lateral))
            for side in SIDES:
                sign = 1.0 if side == "L" else -1.0

                def at(x, d, s_j=s_j):
                    return frame.sacral_to_pelvis(x, s_j, d)

                axes.append(
                    ForamenAxis(
                        level=level,
                        side=side,
                        radius_mm=radius,
                        anterior_pelvis=at(sign * x_lateral, front - 6.0),
                        turn_pelvis=at(sign * x_lateral, FORAMEN_TURN_DEPTH_FRACTION * sec["D"]),
                        canal_pelvis=at(sign * (sec["cw"] - 1.0), sec["d_canal"]),
                        posterior_pelvis=at(sign * (x_lateral + 2.0), sec["d_post"] + 6.0),
                        center_pelvis=at(sign * x_lateral, front + radius),
                    )
                )
        return axes

    # ------------------------------------------------------------------ ilia, lesion
    def _build_ilia(self) -> None:
        self.auricular_s = (
            ALA_TOP_S_MM + 1.0,
            float(self.boundaries_s[2] + 0.5 * (self.boundaries_s[3] - self.boundaries_s[2])),
        )
        s_mid = 0.5 * sum(self.auricular_s)
        sec = {k: float(v) for k, v in self.section(s_mid).items()}
        gap = self.params.si_joint_gap_mm
        self.ilia = {}
        alpha = np.deg2rad(ILIUM_WING_ANGLE_DEG)
        beta = np.deg2rad(ILIUM_WING_FLARE_DEG)
        for side in SIDES:
            sign = 1.0 if side == "L" else -1.0
            x_joint = sign * (sec["W"] + gap + 0.5 * ILIUM_JOINT_THICKNESS_MM)
            front = float(self.ala_front(sec, sec["W"]))
            joint = self.frame.sacral_to_pelvis(x_joint, s_mid, 0.5 * (front + sec["d_post"]))
            u = np.array([sign * np.sin(alpha), -np.cos(alpha), 0.0])
            v = np.array([sign * np.sin(beta), 0.0, np.cos(beta)])
            v = v - (v @ u) * u
            v /= np.linalg.norm(v)
            w = np.cross(u, v)
            column_top = joint + np.array([sign * 8.0, -5.0, 0.0])
            column_bottom = joint + np.array([sign * 35.0, -45.0, -85.0])
            self.ilia[side] = {
                "joint": joint,
                "u": u,
                "v": v,
                "w": w,
                "column": (column_top, column_bottom),
            }
        self._ilium_box = {side: self._ilium_hull_box(side) for side in SIDES}

    def _ilium_hull_box(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Pelvis box (low, high) that holds one ilium."""
        ilium = self.ilia[side]
        cu, cv = ILIUM_WING_CENTRE_UV_MM
        hu, hv = ILIUM_WING_HALF_UV_MM
        corners = [
            ilium["joint"]
            + (cu + su * hu) * ilium["u"]
            + (cv + sv * hv) * ilium["v"]
            + sw * ILIUM_WING_THICKNESS_MM * ilium["w"]
            for su in (-1, 1)
            for sv in (-1, 1)
            for sw in (-1, 1)
        ]
        for end in ilium["column"]:
            corners += [end - ILIUM_COLUMN_RADIUS_MM, end + ILIUM_COLUMN_RADIUS_MM]
        # The joint block beside the auricular surface.
        s_lo, s_hi = self.auricular_s
        for s_value in np.linspace(s_lo, s_hi, 6):
            sec = self.section(s_value)
            sign = 1.0 if side == "L" else -1.0
            for x_value in (sec["W"], sec["W"] + ILIUM_JOINT_THICKNESS_MM + 4.0):
                for d_value in (sec["d_lat0"] - 3.0, sec["d_post"] + 13.0):
                    corners.append(self.frame.sacral_to_pelvis(sign * x_value, s_value, d_value))
        corners = np.asarray(corners, float)
        return corners.min(axis=0) - 2.0, corners.max(axis=0) + 2.0

    def _build_lesion(self) -> None:
        """A sphere in the S3 body: the radius is kept, the offset shrunk, to stay inside it."""
        p = self.params
        s3 = float(self.centres_s[2])
        height3 = float(self.boundaries_s[3] - self.boundaries_s[2])
        sec = {k: float(v) for k, v in self.section(s3).items()}
        room = min(sec["a"], 0.5 * sec["D"], 0.5 * height3) - p.cortex_mm - LESION_BODY_MARGIN_MM
        self.lesion_radius = float(np.clip(p.lesion_radius_mm, 1.0, max(room, 1.0)))
        slack = max(room - self.lesion_radius, 0.0)
        offset = np.clip(np.asarray(p.lesion_offset_mm, float), -slack, slack)
        self.lesion_center_pelvis = self.frame.sacral_to_pelvis(
            offset[0], s3 + offset[1], 0.5 * (sec["d_ant"] + sec["D"]) + offset[2]
        )

    # ------------------------------------------------------------------ evaluation
    def _frame_limits(self) -> tuple[float, float, float, float, float]:
        """(s_low, s_high, half_width, d_low, d_high) enclosing L5, sacrum and coccyx (mm)."""
        height = self.params.sacral_height_mm
        s_low = -(DISC_L5_S1_MM + L5_HEIGHT_MM) - 40.0  # the canal and dural sac go on up
        s_high = height + COCCYX_GAP_MM + COCCYX_LENGTH_MM + 8.0
        top = self.section(0.0)
        half_width = max(float(self._table["W"].max()), L5_TRANSVERSE_HALF_WIDTH_MM) + (
            self.params.si_joint_gap_mm + ILIUM_JOINT_THICKNESS_MM + 8.0
        )
        d_low = -12.0
        d_high = float(top["d_post"]) + L5_SPINOUS_LENGTH_MM + max(CREST_HEIGHT_MM) + 12.0
        return s_low, s_high, half_width, d_low, d_high

    def _frame_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Pelvis box (low, high) holding everything drawn in the sacral frame."""
        s_low, s_high, half_width, d_low, d_high = self._frame_limits()
        s_values = np.linspace(s_low, s_high, 60)
        corners = [
            self.frame.sacral_to_pelvis(
                np.full_like(s_values, sx * half_width), s_values, np.full_like(s_values, dv)
            )
            for sx in (-1, 1)
            for dv in (d_low, d_high)
        ]
        corners = np.concatenate(corners)
        return corners.min(axis=0) - 1.0, corners.max(axis=0) + 1.0

    def near_bone(self, points_pelvis: np.ndarray) -> np.ndarray:
        """True for (N, 3) pelvis points inside a box of any bone (where evaluate is needed)."""
        points = np.asarray(points_pelvis, float)
        near = np.zeros(points.shape[0], bool)
        for low, high in (self._box_frame, *self._ilium_box.values()):
            near |= np.all((points > low) & (points < high), axis=1)
        return near

    def evaluate(self, points_pelvis: np.ndarray) -> dict[str, np.ndarray]:
        """Signed distances (mm, negative inside) of every structure at (N, 3) pelvis points.

        Keys: ``sacrum`` (bone, holes cut), ``sacrum_solid`` (before the canal and foramina are
        cut), ``body`` (the S1-S5 bodies), ``canal``, ``foramen_<level>_<side>`` (anterior),
        ``foramina_posterior``, ``l5``, ``disc``, ``coccyx``, ``ilium_L``, ``ilium_R``,
        ``dural_sac``, ``lesion``; and the sacral coordinates ``x``, ``s``, ``d`` (NaN far from
        the sacrum). Far from a structure its value is ``+inf`` (only points near it are
        evaluated).
        """
        points = np.asarray(points_pelvis, float).reshape(-1, 3)
        n = points.shape[0]
        low, high = self._box_frame
        frame_index = np.flatnonzero(np.all((points > low) & (points < high), axis=1))
        x = np.full(n, np.nan)
        s = np.full(n, np.nan)
        d = np.full(n, np.nan)
        x[frame_index], s[frame_index], d[frame_index] = self.frame.pelvis_to_sacral(
            points[frame_index]
        )
        out: dict[str, np.ndarray] = {"x": x, "s": s, "d": d}
        names = [
            "sacrum",
            "sacrum_solid",
            "body",
            "canal",
            "holes",
            "foramina_posterior",
            "l5",
            "disc",
            "coccyx",
            "ilium_L",
            "ilium_R",
            "dural_sac",
            "lesion",
        ]
        names += [f"foramen_{a.level}_{a.side}" for a in self.foramina]
        for name in names:
            out[name] = np.full(n, np.inf)
        s_low, s_high, half_width, d_low, d_high = self._frame_limits()
        with np.errstate(invalid="ignore"):
            near = (
                (s > s_low) & (s < s_high) & (np.abs(x) < half_width) & (d > d_low) & (d < d_high)
            )
        index = np.flatnonzero(near)
        if index.size:
            part = self._evaluate_frame(points[index], x[index], s[index], d[index])
            for name, values in part.items():
                out[name][index] = values
        for side in SIDES:
            box_low, box_high = self._ilium_box[side]
            index = np.flatnonzero(np.all((points > box_low) & (points < box_high), axis=1))
            if index.size:
                out[f"ilium_{side}"][index] = self._evaluate_ilium(
                    side, points[index], x[index], s[index], d[index], out["sacrum_solid"][index]
                )
        if self.params.lesion:
            out["lesion"] = np.linalg.norm(points - self.lesion_center_pelvis, axis=-1) - (
                self.lesion_radius
            )
        return out

    def _evaluate_frame(self, points, x, s, d) -> dict[str, np.ndarray]:
        """Sacrum, canal, foramina, dural sac, L5, disc and coccyx at points near the sacrum."""
        height = self.params.sacral_height_mm
        sec = self.section(s)
        inside_arc = (s >= 0) & (s <= height)
        # Arc length at depth d is stretched by (1 + d kappa): scale s-distances to mm.
        s_scale = np.where(inside_arc, np.clip(1 + d * self.frame.curvature_at(s), 0.1, None), 1.0)

        def s_range(low, high):
            return shapes.slab(s, low, high) * s_scale

        out: dict[str, np.ndarray] = {}
        # Bodies S1-S5: an ellipse from the anterior cortex (ridges included) to the canal.
        half_depth = 0.5 * (sec["D"] - sec["d_ant"])
        body = shapes.intersect(
            shapes.ellipse(x, d - (sec["d_ant"] + half_depth), sec["a"], half_depth),
            s_range(0.0, height),
        )
        # Lateral masses and alae: a slab whose front recedes and whose top drops laterally.
        front = self.ala_front(sec, np.abs(x))
        back = sec["d_post"] - np.tan(np.deg2rad(DORSAL_SLOPE_DEG)) * np.maximum(
            np.abs(x) - (sec["cw"] + sec["lam"] + 6.0), 0.0
        )
        excess = np.maximum(np.abs(x) - sec["a"], 0.0)
        lateral = shapes.intersect(
            shapes.box2(
                x,
                d - 0.5 * (front + back),
                sec["W"],
                0.5 * (back - front),
                LATERAL_ROUNDING_MM,
            ),
            shapes.slab(s, ALA_TOP_S_MM + np.tan(np.deg2rad(ALA_TOP_SLOPE_DEG)) * excess, height)
            * s_scale,
        )
        # Superior articular processes of S1, above the canal's posterolateral corners.
        top = self.section(0.0)
        facet_x = float(top["cw"]) + S1_FACET_HALF_WIDTH_MM
        facets = shapes.intersect(
            shapes.box2(
                np.abs(x) - facet_x,
                d - 0.5 * float(top["d_canal"] + top["d_post"]),
                S1_FACET_HALF_WIDTH_MM,
                0.5 * float(top["d_post"] - top["d_canal"]),
                2.0,
            ),
            shapes.slab(s, -S1_FACET_HEIGHT_MM, 4.0) * np.where(s < 0, 1.0, s_scale),
        )
        crest_height = np.interp(s, self.centres_s[:3], CREST_HEIGHT_MM)
        crest = shapes.intersect(
            shapes.box2(
                x,
                d - (sec["d_post"] + 0.5 * crest_height - 1.0),
                CREST_HALF_WIDTH_MM,
                0.5 * crest_height + 1.0,
                1.5,
            ),
            s_range(3.0, self.hiatus_apex_s - 5.0),
        )
        solid = shapes.union(body, lateral, crest, facets)
        canal = np.maximum(
            shapes.ellipse(x, d - sec["d_canal"], sec["cw"], sec["ch"]), s - (height + 5.0)
        )
        # Hiatus: no laminae behind the canal caudal of the apex (an inverted U).
        notch_top = self.hiatus_apex_s + 4.0 * (x / np.maximum(sec["cw"], 1.0)) ** 2
        hiatus = shapes.intersect(
            np.abs(x) - sec["cw"], sec["d_canal"] - d, (notch_top - s) * s_scale
        )
        holes = shapes.union(canal, hiatus)
        posterior = np.full(x.shape, np.inf)
        for axis in self.foramina:
            anterior = np.full(x.shape, np.inf)
            ends = np.array(
                [axis.anterior_pelvis, axis.turn_pelvis, axis.canal_pelvis, axis.posterior_pelvis]
            )
            reach = axis.radius_mm + 1.0
            box = np.all(
                (points > ends.min(axis=0) - reach) & (points < ends.max(axis=0) + reach), axis=1
            )
            index = np.flatnonzero(box)
            if index.size:
                sub = points[index]
                anterior[index] = shapes.union(
                    shapes.capsule(sub, axis.anterior_pelvis, axis.turn_pelvis, axis.radius_mm),
                    shapes.capsule(sub, axis.turn_pelvis, axis.canal_pelvis, axis.radius_mm),
                )
                posterior[index] = np.minimum(
                    posterior[index],
                    shapes.capsule(
                        sub,
                        axis.canal_pelvis,
                        axis.posterior_pelvis,
                        POSTERIOR_FORAMEN_RADIUS_FRACTION * axis.radius_mm,
                    ),
                )
            out[f"foramen_{axis.level}_{axis.side}"] = anterior
            holes = np.minimum(holes, anterior)
        holes = np.minimum(holes, posterior)
        out["foramina_posterior"] = posterior
        out["sacrum_solid"] = solid
        out["sacrum"] = shapes.subtract(solid, holes)
        out["body"] = body
        out["canal"] = canal
        out["holes"] = holes
        out.update(self._evaluate_neighbours(x, s, d, canal))
        # Dural sac: a tube inside the canal tapering to its end.
        taper = np.sqrt(np.clip((self.dural_end_s - s) / DURAL_SAC_TAPER_MM, 0.0, 1.0))
        out["dural_sac"] = shapes.intersect(
            shapes.ellipse(
                x,
                d - sec["d_canal"],
                DURAL_SAC_WIDTH_FRACTION * sec["cw"] * taper,
                DURAL_SAC_DEPTH_FRACTION * sec["ch"] * taper,
            ),
            (s - self.dural_end_s) * s_scale,
            canal,
        )
        return out

    def _evaluate_neighbours(self, x, s, d, canal) -> dict[str, np.ndarray]:
        """L5 with its arch above a disc, and the coccyx below the tip (line coordinates)."""
        n = x.shape[0]
        out = {name: np.full(n, np.inf) for name in ("l5", "disc", "coccyx")}
        top = self.section(0.0)
        a0, depth0, cw0, ch0 = (float(top[k]) for k in ("a", "D", "cw", "ch"))
        l5_low, l5_high = -(DISC_L5_S1_MM + L5_HEIGHT_MM), -DISC_L5_S1_MM
        index = np.flatnonzero(s < 1.0)
        if index.size:
            xs, ss, ds = x[index], s[index], d[index]
            l5_body = shapes.intersect(
                shapes.ellipse(xs, ds - 0.5 * depth0, 1.05 * a0, 0.5 * depth0),
                shapes.slab(ss, l5_low, l5_high),
            )
            arch_back = depth0 + 2 * ch0 + 7.0
            arch = shapes.intersect(
                shapes.box2(
                    xs,
                    ds - 0.5 * (depth0 - 2 + arch_back),
                    cw0 + 7.0,
                    0.5 * (arch_back - depth0 + 2),
                    2.0,
                ),
                shapes.slab(ss, l5_low + 4.0, l5_high - 4.0),
            )
            spinous = shapes.intersect(
                shapes.box2(
                    xs,
                    ds - (arch_back + 0.5 * L5_SPINOUS_LENGTH_MM - 3),
                    3.5,
                    0.5 * L5_SPINOUS_LENGTH_MM,
                    1.5,
                ),
                shapes.slab(ss, l5_low + 6.0, l5_high - 8.0),
            )
            transverse = shapes.intersect(
                shapes.box2(xs, ds - (depth0 + 7.0), L5_TRANSVERSE_HALF_WIDTH_MM, 5.0, 3.0),
                shapes.slab(ss, l5_low + 8.0, l5_high - 8.0),
            )
            out["l5"][index] = shapes.subtract(
                shapes.union(l5_body, arch, spinous, transverse), canal[index]
            )
            out["disc"][index] = shapes.intersect(
                shapes.ellipse(xs, ds - 0.5 * depth0, 0.98 * a0, 0.49 * depth0),
                shapes.slab(ss, l5_high - 0.5, 0.0),
            )
        height = self.params.sacral_height_mm
        start = height + COCCYX_GAP_MM
        index = np.flatnonzero(s > height)
        if index.size:
            xs, ss, ds = x[index], s[index], d[index]
            t = np.clip((ss - start) / COCCYX_LENGTH_MM, 0.0, 1.0)
            half_width = (1 - t) * 0.9 * TIP_HALF_WIDTH_MM + t * 2.5
            depth = (1 - t) * 0.9 * TIP_DEPTH_MM + t * 3.0
            out["coccyx"][index] = shapes.intersect(
                shapes.ellipse(xs, ds - 0.5 * depth, half_width, 0.5 * depth),
                shapes.slab(ss, start, start + COCCYX_LENGTH_MM),
            )
        return out

    def _evaluate_ilium(self, side, points, x, s, d, sacrum_solid) -> np.ndarray:
        gap = self.params.si_joint_gap_mm
        ilium = self.ilia[side]
        sign = 1.0 if side == "L" else -1.0
        sec = self.section(s)
        front = self.ala_front(sec, sec["W"]) + 2.0
        s_scale = np.where(
            (s >= 0) & (s <= self.params.sacral_height_mm),
            np.clip(1 + d * self.frame.curvature_at(s), 0.1, None),
            1.0,
        )
        joint = shapes.intersect(
            shapes.box2(
                sign * x - (sec["W"] + gap + 0.5 * ILIUM_JOINT_THICKNESS_MM),
                d - 0.5 * (front + sec["d_post"] + 10.0),
                0.5 * ILIUM_JOINT_THICKNESS_MM,
                0.5 * (sec["d_post"] + 10.0 - front),
                3.0,
            ),
            shapes.slab(s, *self.auricular_s) * s_scale,
        )
        joint = np.where(np.isnan(joint), np.inf, joint)  # far from the sacral frame
        rel = points - ilium["joint"]
        u = rel @ ilium["u"] - ILIUM_WING_CENTRE_UV_MM[0]
        v = rel @ ilium["v"] - ILIUM_WING_CENTRE_UV_MM[1]
        w = rel @ ilium["w"]
        wing = shapes.intersect(
            np.abs(w) - 0.5 * ILIUM_WING_THICKNESS_MM,
            shapes.ellipse(u, v, *ILIUM_WING_HALF_UV_MM),
        )
        column = shapes.capsule(points, *ilium["column"], ILIUM_COLUMN_RADIUS_MM)
        raw = shapes.smooth_union(shapes.union(joint, wing), column, 6.0)
        # Keep the sacroiliac joint space open: no ilium within the gap of the sacrum.
        return np.maximum(raw, gap - sacrum_solid)

    # ------------------------------------------------------------------ body outline
    def body_outline(self, points_pelvis: np.ndarray) -> np.ndarray:
        """Signed distance (approx., mm) to the skin surface.

        An elliptic cylinder along the pelvis z axis; caudal of the hiatus apex the back of the
        body follows the sacrum, coccyx and their tangent at ``posterior_soft_tissue_mm`` behind
        the dorsal surface (buttocks and natal cleft curving forward to the perineum).
        """
        p = self.params
        centre_y = self.skin_posterior_y() - p.body_half_depth_mm
        points = np.asarray(points_pelvis, float)
        cylinder = shapes.ellipse(
            points[..., 0], points[..., 1] - centre_y, p.body_half_width_mm, p.body_half_depth_mm
        )
        _, s, d = self.frame.pelvis_to_sacral(points)
        back = self.section(np.clip(s, 0.0, p.sacral_height_mm))["d_post"]
        caudal = np.where(s > self.hiatus_apex_s, d - (back + self.soft_tissue_depth(s)), -np.inf)
        return np.maximum(cylinder, caudal)

    def soft_tissue_depth(self, s_mm) -> np.ndarray:
        """Skin depth behind the dorsal surface (mm): thinning from the hiatus to the coccyx."""
        p = self.params
        end = p.sacral_height_mm + COCCYX_GAP_MM + COCCYX_LENGTH_MM
        t = np.clip(
            (np.asarray(s_mm, float) - self.hiatus_apex_s) / (end - self.hiatus_apex_s), 0.0, 1.0
        )
        return p.posterior_soft_tissue_mm * (1.0 - (1.0 - NATAL_CLEFT_FRACTION) * t)

    def hiatus_mid_sacral(self) -> tuple[float, float, float]:
        """(x, s, d) of the middle of the hiatus opening at the posterior edge of the canal."""
        s_mid = 0.5 * (self.hiatus_apex_s + self.hiatus_base_s)
        sec = self.section(s_mid)
        return 0.0, s_mid, float(sec["d_canal"] + sec["ch"])

    def skin_posterior_y(self) -> float:
        """Pelvis y of the posterior skin: ``posterior_soft_tissue_mm`` behind the hiatus apex."""
        s_apex = self.hiatus_apex_s
        sec = self.section(s_apex)
        back = self.frame.sacral_to_pelvis(0.0, s_apex, float(sec["d_post"]))
        return float(back[1] + self.params.posterior_soft_tissue_mm)
