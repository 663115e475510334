"""`PhantomTruth`: the exact anatomy of a phantom, as label maps on its grid and LPS landmarks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planner.anatomy.model import (
    FORAMEN_LABELS,
    FORAMEN_LEVELS,
    LEVEL_NAMES,
    SIDES,
    Confidence,
    Foramen,
    Hiatus,
    Plane,
    SacralAnatomy,
)
from planner.phantom.pelvis import PelvisModel
from planner.volume import Volume

#: Step (mm of arc length) between points of the anterior-cortex curve.
CORTEX_CURVE_STEP_MM = 0.5
#: Half-step (mm) of the central difference that gives the anterior-edge tangent.
TANGENT_STEP_MM = 1.0
#: Labels of :meth:`PhantomTruth.pengwin_labels`, as in the PENGWIN ``labels.nii.gz``.
PENGWIN_SACRUM, PENGWIN_HIP_LEFT, PENGWIN_HIP_RIGHT = 1, 2, 3
#: Values of the ``ilia`` label map.
ILIUM_LEFT, ILIUM_RIGHT = 1, 2

#: Samples along each straight piece of a foramen axis for exact distances.
FORAMEN_AXIS_SAMPLES = 200


@dataclass(frozen=True)
class Landmarks:
    """Analytic landmarks in LPS mm; the same whatever grid the phantom is drawn on."""

    promontory_lps: np.ndarray
    hiatus_apex_lps: np.ndarray  # where the laminae stop, on the posterior edge of the canal
    hiatus_opening_lps: np.ndarray  # base of the opening (in S5), posterior edge of the canal
    level_centers_lps: dict[str, np.ndarray]  # "S1".."S5": centre of each body
    level_boundaries_lps: dict[str, np.ndarray]  # "S1/S2".."S4/S5": on the anterior cortex
    anterior_cortex_lps: np.ndarray  # (N, 3), promontory -> tip, every 0.5 mm of arc
    anterior_tangent_s3_lps: np.ndarray  # unit, along the anterior edge at S3, pointing cranially
    foramen_centers_lps: dict[tuple[str, str], np.ndarray]  # (level, side) -> one radius deep
    foramen_radii_mm: dict[tuple[str, str], float]
    midsagittal: Plane  # normal points to patient left
    skin_over_hiatus_lps: np.ndarray | None  # None on bone-only / no-soft-tissue phantoms
    #: Where the anterior-edge line through the S3 centre meets the skin caudally (the skin
    #: entry of a needle parallel to the anterior edge); None without soft tissue.
    skin_on_s3_tangent_lps: np.ndarray | None
    dural_sac_end_lps: np.ndarray
    dural_sac_end_level: str
    lesion_center_lps: np.ndarray | None
    lesion_radius_mm: float | None
    lesion_volume_mm3: float | None


#: Longest search (mm) and final precision (mm) when walking a line out to the skin.
SKIN_SEARCH_MM = 400.0
SKIN_PRECISION_MM = 1e-4


def _skin_along(model: PelvisModel, start_lps: np.ndarray, direction_lps: np.ndarray):
    """First point where the ray from ``start_lps`` leaves the body outline (LPS mm)."""
    frame = model.frame

    def outline(t: np.ndarray) -> np.ndarray:
        points = start_lps + np.asarray(t, float)[..., None] * direction_lps
        return model.body_outline(frame.world_to_pelvis(points))

    steps = np.arange(0.0, SKIN_SEARCH_MM, 1.0)
    outside = np.flatnonzero(outline(steps) > 0)
    if outside.size == 0 or outside[0] == 0:
        return None
    low, high = steps[outside[0] - 1], steps[outside[0]]
    while high - low > SKIN_PRECISION_MM:
        middle = 0.5 * (low + high)
        if outline(np.array([middle]))[0] > 0:
            high = middle
        else:
            low = middle
    return start_lps + high * direction_lps


def compute_landmarks(model: PelvisModel) -> Landmarks:
    """Every landmark of the model in world LPS mm."""
    frame = model.frame
    p = model.params

    def world(x, s, d) -> np.ndarray:
        return frame.sacral_to_world(x, s, d)

    def canal_back(s) -> float:
        sec = model.section(s)
        return float(sec["d_canal"] + sec["ch"])

    centres = {}
    for name, s_c in zip(LEVEL_NAMES, model.centres_s, strict=True):
        sec = model.section(s_c)
        centres[name] = world(0.0, s_c, 0.5 * float(sec["d_ant"] + sec["D"]))
    boundaries = {
        f"{LEVEL_NAMES[j]}/{LEVEL_NAMES[j + 1]}": world(
            0.0, model.boundaries_s[j + 1], float(model.anterior_offset(model.boundaries_s[j + 1]))
        )
        for j in range(4)
    }
    s_curve = np.arange(0.0, p.sacral_height_mm + 1e-9, CORTEX_CURVE_STEP_MM)
    if s_curve[-1] < p.sacral_height_mm:
        s_curve = np.append(s_curve, p.sacral_height_mm)
    curve = world(np.zeros_like(s_curve), s_curve, model.anterior_offset(s_curve))
    s3 = float(model.centres_s[2])
    ahead = world(0.0, s3 - TANGENT_STEP_MM, float(model.anterior_offset(s3 - TANGENT_STEP_MM)))
    behind = world(0.0, s3 + TANGENT_STEP_MM, float(model.anterior_offset(s3 + TANGENT_STEP_MM)))
    tangent = (ahead - behind) / np.linalg.norm(ahead - behind)
    normal = frame.pelvis_direction_to_world(np.array([1.0, 0.0, 0.0]))
    skin = None
    if p.has_soft_tissue:
        x0, s_mid, d0 = model.hiatus_mid_sacral()
        n_yz = frame.normal_yz(s_mid)
        normal_lps = frame.pelvis_direction_to_world(np.array([0.0, n_yz[0], n_yz[1]]))
        skin = _skin_along(model, frame.sacral_to_world(x0, s_mid, d0), normal_lps)
    skin_tangent = None
    if p.has_soft_tissue:
        skin_tangent = _skin_along(model, centres["S3"], -tangent)
    lesion_center = lesion_radius = lesion_volume = None
    if p.lesion:
        lesion_center = frame.pelvis_to_world(model.lesion_center_pelvis)
        lesion_radius = model.lesion_radius
        lesion_volume = 4.0 / 3.0 * np.pi * lesion_radius**3
    return Landmarks(
        promontory_lps=world(0.0, 0.0, float(model.anterior_offset(0.0))),
        hiatus_apex_lps=world(0.0, model.hiatus_apex_s, canal_back(model.hiatus_apex_s)),
        hiatus_opening_lps=world(0.0, model.hiatus_base_s, canal_back(model.hiatus_base_s)),
        level_centers_lps=centres,
        level_boundaries_lps=boundaries,
        anterior_cortex_lps=curve,
        anterior_tangent_s3_lps=tangent,
        foramen_centers_lps={
            (axis.level, axis.side): frame.pelvis_to_world(axis.center_pelvis)
            for axis in model.foramina
        },
        foramen_radii_mm={(axis.level, axis.side): axis.radius_mm for axis in model.foramina},
        midsagittal=Plane(point_lps=world(0.0, 0.0, 0.0), normal_lps=normal),
        skin_over_hiatus_lps=skin,
        skin_on_s3_tangent_lps=skin_tangent,
        dural_sac_end_lps=world(
            0.0, model.dural_end_s, float(model.section(model.dural_end_s)["d_canal"])
        ),
        dural_sac_end_level=p.dural_sac_end_level,
        lesion_center_lps=lesion_center,
        lesion_radius_mm=lesion_radius,
        lesion_volume_mm3=lesion_volume,
    )


@dataclass(frozen=True)
class TangentCorridor:
    """Where the line through the S3 centre, parallel to the anterior edge, goes caudally.

    The interpedicular needle runs along (or near) this line. In a typical sacrum it crosses the
    canal well inside S4; in a strongly kyphotic one it reaches the canal at the S3/S4 junction,
    leaving no room to cross only caudal of S3.
    """

    canal_entry_lps: np.ndarray | None  # first point inside the canal, mm
    canal_entry_level: str | None  # "S1".."S5" of that point
    entry_below_s3_s4_mm: float | None  # arc length of the entry caudal of the S3/S4 junction
    posterior_exit_lps: np.ndarray | None  # where the line leaves the sacrum's outline, mm


@dataclass(frozen=True)
class Feasibility:
    """Which straight needles through the S3 centre the analytic anatomy allows.

    Directions are tilted from the true anterior-edge tangent at S3 as the planner does it (a
    sagittal tilt, + anterior; an out-of-plane tilt, + left), on a grid of ``step_deg``.
    ``broken`` maps each hard constraint to the share of directions that break it.
    """

    feasible: bool  # at least one direction meets every hard constraint
    feasible_share: float
    broken: dict[str, float]  # "canal_cranial", "cortex_breach", "foramen_contact"
    best_tilts_deg: tuple[float, float] | None  # a feasible (sagittal, out-of-plane) tilt


#: Axis sampling step (mm) and length behind the target (mm) of the feasibility check.
FEASIBILITY_STEP_MM = 0.25
FEASIBILITY_LENGTH_MM = 90.0

#: Step (mm) along the tangent line when finding its canal entry.
CORRIDOR_STEP_MM = 0.1
CORRIDOR_LENGTH_MM = 150.0


def _first_true(condition: np.ndarray) -> np.ndarray:
    """Index of the first True of each row (the row length where there is none)."""
    found = condition.any(axis=1)
    return np.where(found, condition.argmax(axis=1), condition.shape[1])


@dataclass(frozen=True, eq=False)
class PhantomTruth:
    """Exact anatomy of a phantom.

    Label maps are `Volume` objects on the phantom's own grid (modality ``"SEG"``): ``sacrum``,
    ``canal`` (S1 to the hiatus base), ``dural_sac``, ``l5``, ``coccyx``, ``lesion`` (bool);
    ``foramina`` (uint8, :data:`FORAMEN_LABELS`), ``levels`` (uint8, bodies labelled by
    :data:`LEVEL_LABELS`), ``ilia`` (uint8, 1 left, 2 right). ``l5`` and ``coccyx`` are empty on
    bone-only phantoms (they are not drawn).
    """

    sacrum: Volume
    canal: Volume
    foramina: Volume
    levels: Volume
    ilia: Volume
    l5: Volume
    coccyx: Volume
    lesion: Volume
    dural_sac: Volume
    landmarks: Landmarks
    model: PelvisModel = field(repr=False)

    def __getattr__(self, name: str):
        # Landmarks read as attributes of the truth too (truth.hiatus_apex_lps).
        landmarks = object.__getattribute__(self, "landmarks")
        if hasattr(landmarks, name):
            return getattr(landmarks, name)
        raise AttributeError(name)

    @property
    def has_soft_tissue(self) -> bool:
        return self.model.params.has_soft_tissue

    @property
    def built_infeasible(self) -> bool:
        """True for phantoms built to leave no interpedicular path (a hooked sacrum); check it
        with :meth:`interpedicular_feasibility`."""
        return bool(self.model.params.built_infeasible)

    def pengwin_labels(self) -> Volume:
        """One uint8 label map as in PENGWIN: 1 sacrum, 2 left hip bone, 3 right hip bone."""
        labels = np.zeros(self.sacrum.array.shape, np.uint8)
        labels[self.ilia.array == ILIUM_LEFT] = PENGWIN_HIP_LEFT
        labels[self.ilia.array == ILIUM_RIGHT] = PENGWIN_HIP_RIGHT
        labels[self.sacrum.array] = PENGWIN_SACRUM
        return self.sacrum.with_array(labels)

    def signed_distance_mm(self, structure: str, points_lps: np.ndarray) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) of LPS points to a structure.

        ``structure`` is a key of :meth:`PelvisModel.evaluate` (``"sacrum"``, ``"canal"``,
        ``"foramen_S2_L"``, ``"body"``, ...). Exact for capsules (foramina); a first-order
        estimate for the curved ellipses, accurate within a few tenths of a mm near a surface.
        """
        points = np.asarray(points_lps, float)
        pelvis = self.model.frame.world_to_pelvis(points.reshape(-1, 3))
        values = self.model.evaluate(pelvis)
        if structure not in values:
            raise KeyError(f"unknown structure {structure!r}; one of {sorted(values)}")
        return values[structure].reshape(points.shape[:-1])

    def foramen_distance_mm(self, points_lps: np.ndarray) -> float:
        """Exact smallest distance (mm) from LPS points to the surface of any foramen.

        Each anterior foramen is two capsules (anterior opening -> turn -> canal) of one radius,
        taken from the model, independently of the label maps. The stretch of a channel inside
        the canal is canal, not foramen (the label maps say so too), so capsule axis points
        inside the canal are left out. Negative inside a foramen.
        """
        points = np.asarray(points_lps, float).reshape(-1, 3)
        frame = self.model.frame
        t = np.linspace(0.0, 1.0, FORAMEN_AXIS_SAMPLES)[:, None]
        best = np.inf
        for axis in self.model.foramina:
            spine = np.vstack(
                [
                    axis.anterior_pelvis + t * (axis.turn_pelvis - axis.anterior_pelvis),
                    axis.turn_pelvis + t * (axis.canal_pelvis - axis.turn_pelvis),
                ]
            )
            spine_lps = frame.pelvis_to_world(spine)
            spine_lps = spine_lps[self.signed_distance_mm("canal", spine_lps) > 0]
            if spine_lps.shape[0] == 0:
                continue
            distance = np.linalg.norm(points[:, None, :] - spine_lps[None, :, :], axis=-1)
            best = min(best, float(distance.min()) - axis.radius_mm)
        return best

    def tangent_corridor(self) -> TangentCorridor:
        """Follow the anterior-edge line from the S3 centre caudally (:class:`TangentCorridor`)."""
        marks = self.landmarks
        model = self.model
        steps = np.arange(0.0, CORRIDOR_LENGTH_MM, CORRIDOR_STEP_MM)
        line_lps = marks.level_centers_lps["S3"] - steps[:, None] * marks.anterior_tangent_s3_lps
        values = model.evaluate(model.frame.world_to_pelvis(line_lps))
        inside_canal = values["canal"] <= 0
        entry = exit_ = level = below = None
        if inside_canal.any():
            first = int(np.argmax(inside_canal))
            entry = line_lps[first]
            s_entry = float(values["s"][first])
            level_index = int(np.searchsorted(model.boundaries_s, s_entry, side="right"))
            level = LEVEL_NAMES[min(max(level_index, 1), 5) - 1]
            below = s_entry - float(model.boundaries_s[3])
        outside = values["sacrum_solid"] > 0
        if outside.any():
            exit_ = line_lps[int(np.argmax(outside))]
        return TangentCorridor(entry, level, below, exit_)

    def interpedicular_feasibility(
        self,
        radius_mm: float = 1.205,
        angle_max_deg: float = 20.0,
        out_of_plane_max_deg: float = 10.0,
        step_deg: float = 1.0,
    ) -> Feasibility:
        """Exact check of the interpedicular route to the S3 centre (:class:`Feasibility`).

        For every direction within ``angle_max_deg`` (sagittal) and ``out_of_plane_max_deg``
        of the true anterior-edge tangent, a needle of outer radius ``radius_mm`` through the
        S3 centre breaks a hard constraint when, walking back from the target:

        * ``canal_cranial``: its surface meets the canal cranial to the S3/S4 junction before
          it leaves the canal through the posterior wall (the canal is crossed at S3 or its
          surface grazes the S3 canal);
        * ``cortex_breach``: its surface leaves the sacrum (canal and foramina filled) before
          the canal is reached;
        * ``foramen_contact``: its surface touches an anterior foramen before it leaves the
          sacrum.

        Skin depth and other bone are not part of it (the phantoms keep them ordinary).
        """
        marks, model = self.landmarks, self.model
        tangent = marks.anterior_tangent_s3_lps / np.linalg.norm(marks.anterior_tangent_s3_lps)
        left = np.asarray(marks.midsagittal.normal_lps, float)
        left = left - (left @ tangent) * tangent
        left /= np.linalg.norm(left)
        anterior = np.cross(left, tangent)
        sagittal = np.arange(-angle_max_deg, angle_max_deg + 1e-9, step_deg)
        lateral = np.arange(-out_of_plane_max_deg, out_of_plane_max_deg + 1e-9, step_deg)
        aa, bb = (np.radians(v).ravel() for v in np.meshgrid(sagittal, lateral, indexing="ij"))
        dirs = (
            np.cos(bb)[:, None] * (np.cos(aa)[:, None] * tangent + np.sin(aa)[:, None] * anterior)
            + np.sin(bb)[:, None] * left
        )
        s_mm = np.arange(0.0, FEASIBILITY_LENGTH_MM, FEASIBILITY_STEP_MM)
        points = marks.level_centers_lps["S3"] - s_mm[None, :, None] * dirs[:, None, :]
        shape = points.shape[:2]
        values = model.evaluate(model.frame.world_to_pelvis(points.reshape(-1, 3)))

        def field(name):
            return values[name].reshape(shape)

        foramen = np.min([field(f"foramen_{a.level}_{a.side}") for a in model.foramina], axis=0)
        canal, solid, arc = field("canal"), field("sacrum_solid"), field("s")
        length = shape[1]
        index = np.arange(length)[None, :]
        out = _first_true(solid > 0)
        canal_front = _first_true(canal <= 0)
        crossing = canal_front < out
        after_front = np.where(index >= canal_front[:, None], canal > 0, False)
        canal_back = np.where(crossing, _first_true(after_front), out)
        s3_s4 = float(model.boundaries_s[3])
        guarded = (canal < radius_mm) & (arc < s3_s4) & (index < canal_back[:, None])
        bone_path = index < np.where(crossing, canal_front, out)[:, None]
        broken = {
            "canal_cranial": guarded.any(axis=1),
            "cortex_breach": (bone_path & (solid > -radius_mm)).any(axis=1),
            "foramen_contact": ((index < out[:, None]) & (foramen < radius_mm)).any(axis=1),
        }
        ok = ~np.any(list(broken.values()), axis=0)
        best = None
        if ok.any():
            tilt = np.degrees(np.stack([aa, bb], axis=1))[ok]
            pick = int(np.argmin(np.hypot(tilt[:, 0], tilt[:, 1])))
            best = (float(tilt[pick, 0]), float(tilt[pick, 1]))
        return Feasibility(
            feasible=bool(ok.any()),
            feasible_share=float(ok.mean()),
            broken={name: float(flags.mean()) for name, flags in broken.items()},
            best_tilts_deg=best,
        )

    def to_anatomy(self) -> SacralAnatomy:
        """The exact :class:`SacralAnatomy` of this phantom, with full confidence."""
        marks = self.landmarks
        foramen_list = [
            Foramen(
                level=level,
                side=side,
                found=True,
                center_lps=marks.foramen_centers_lps[(level, side)].copy(),
                label=FORAMEN_LABELS[(level, side)],
            )
            for level in FORAMEN_LEVELS
            for side in SIDES
        ]
        names = (
            "sacrum",
            "canal",
            "foramina",
            "levels",
            "hiatus",
            "anterior_cortex",
            "midsagittal",
        )
        return SacralAnatomy(
            sacrum=self.sacrum,
            canal=self.canal,
            foramina=self.foramina,
            levels=self.levels,
            level_centers_lps={k: v.copy() for k, v in marks.level_centers_lps.items()},
            midsagittal=marks.midsagittal,
            anterior_cortex_lps=marks.anterior_cortex_lps.copy(),
            hiatus=Hiatus(
                apex_lps=marks.hiatus_apex_lps.copy(), opening_lps=marks.hiatus_opening_lps.copy()
            ),
            foramen_list=foramen_list,
            confidence={name: Confidence(1.0) for name in names},
            has_soft_tissue=self.has_soft_tissue,
            notes=("exact anatomy of a synthetic phantom",),
        )
