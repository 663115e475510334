"""`PhantomParams`: every number that shapes a synthetic pelvis, with realistic ranges.

Lengths are millimetres, angles degrees, intensities Hounsfield units. The ranges below are what
:meth:`PhantomParams.random` draws from; they are also what the tests check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from planner.errors import PlannerError
from planner.phantom.contrast import CONTRASTS, MR_CONTRASTS  # noqa: F401  (re-exported)

#: (low, high) of each parameter drawn by :meth:`PhantomParams.random`.
RANGES: dict[str, tuple[float, float]] = {
    # Arc length of the anterior cortex on the mid-sagittal plane, promontory to S5 tip (mm).
    "sacral_height_mm": (90.0, 120.0),
    # Total turn of the anterior-cortex tangent from S1 to the tip (deg): the sacral kyphosis.
    "kyphosis_deg": (20.0, 65.0),
    # Angle of the S1 anterior cortex from the scanner's vertical, tilted posteriorly (deg).
    "sacral_slope_deg": (35.0, 55.0),
    "body_scale": (0.85, 1.15),  # multiplies the S1-S5 body widths and depths
    "width_scale": (0.9, 1.1),  # multiplies the lateral masses (alae) widths
    "canal_scale": (0.8, 1.2),  # multiplies the canal width and depth
    "foramen_scale": (0.8, 1.2),  # multiplies the anterior foramen radii
    "hiatus_apex_fraction": (0.15, 0.7),  # apex position inside the S4 body, cranial -> caudal
    "hiatus_base_fraction": (0.3, 0.8),  # base of the opening inside S5, cranial -> caudal
    "dural_sac_end_fraction": (0.2, 0.8),  # end of the dural sac inside its level
    "si_joint_gap_mm": (1.0, 3.0),
    "cortex_mm": (1.0, 2.0),
    "cortical_hu": (700.0, 1200.0),
    "trabecular_hu": (150.0, 350.0),
    "disc_remnant_hu": (450.0, 700.0),
    "ridge_mm": (0.5, 2.0),  # anterior bulge of the transverse ridges at the fused discs
    "pose_rotation_deg": (-8.0, 8.0),  # each of the three rotation angles of the pelvis
    "pose_translation_mm": (-20.0, 20.0),  # each of the three translations
    # Skin to the dorsal sacral surface at the hiatus apex; it thins to 40 % over the coccyx.
    "posterior_soft_tissue_mm": (20.0, 50.0),
    "fat_mm": (8.0, 30.0),  # subcutaneous fat thickness
    "body_half_width_mm": (150.0, 190.0),
    "body_half_depth_mm": (105.0, 135.0),
    "noise_hu": (0.0, 25.0),
    "lesion_radius_mm": (4.0, 7.0),  # capped so the lesion stays inside the S3 body
    "lesion_hu": (20.0, 40.0),
    # Share of the kyphosis turned caudal of the S3 centre (about 0.4: uniform curvature).
    "kyphosis_caudal_share": (0.35, 0.6),
}

#: Kyphosis range of "strongly kyphotic" sacra (``PhantomParams.random(seed, kyphotic=True)``):
#: the line through the S3 centre parallel to the anterior edge reaches the canal within about
#: 5 mm below the S3/S4 junction (about 14 mm below it in a typical sacrum). Little room, but
#: a path still exists (slightly tilted); see :data:`INFEASIBLE_HOOK_DEG` for sacra with none.
KYPHOTIC_RANGE_DEG: tuple[float, float] = (100.0, 130.0)
#: Strongly kyphotic sacra bend mostly caudal of S3: the share of the turn caudal of its centre.
KYPHOTIC_CAUDAL_SHARE: tuple[float, float] = (0.85, 0.95)

#: Hooked sacra built so that no interpedicular path exists
#: (``PhantomParams.random(seed, infeasible=True)``): an ordinary kyphosis plus a sharp forward
#: angulation of the lower sacrum inside the lower S3 body (deg), and where its centre lies
#: (0: S3 centre, 1: S3/S4 junction). Every line through the S3 centre within 20 deg of the
#: anterior edge then meets the canal cranial to S3/S4 (checked against the analytic truth
#: by ``PhantomTruth.interpedicular_feasibility``); 60 deg or a hook at the junction leave a
#: path open.
INFEASIBLE_HOOK_DEG: tuple[float, float] = (75.0, 90.0)
INFEASIBLE_HOOK_POSITION: tuple[float, float] = (0.4, 0.6)

#: Levels where the dural sac may end, and how often :meth:`PhantomParams.random` picks each.
DURAL_SAC_END_LEVELS: tuple[tuple[str, float], ...] = (("S1", 0.1), ("S2", 0.75), ("S3", 0.15))

ORIENTATIONS: tuple[str, ...] = (
    "LPS",
    "RAS",
    "flipped",
    "permuted",
    "permuted_flipped",
    "coronal",
    "oblique",
)
#: Field-of-view presets: the whole pelvis region (ilia, L5 to coccyx, skin behind the sacrum);
#: the sacral region (sacrum, SI joints and 60 mm of each ilium, L5/S1 disc to coccyx, and the
#: skin behind the hiatus: small bundled cases); the sacrum with a small margin (fast tests); a
#: volume that stops above S1 (no sacrum in it).
FIELDS_OF_VIEW: tuple[str, ...] = ("pelvis", "sacral_region", "sacrum", "above_sacrum")
#: Lateral reach of the "sacral_region" field of view beyond the sacroiliac joints (mm).
SACRAL_REGION_ILIUM_MM = 60.0


@dataclass(frozen=True)
class PhantomParams:
    """Shape, pose and appearance of one synthetic pelvis (mm, degrees, HU).

    The defaults are a typical adult sacrum lying almost straight in the scanner. Use
    :meth:`random` to draw a case within :data:`RANGES`, and :func:`dataclasses.replace` (or
    ``random(seed, name=value)``) to set single values.
    """

    sacral_height_mm: float = 105.0
    kyphosis_deg: float = 45.0
    sacral_slope_deg: float = 45.0
    #: Share of the kyphosis turned caudal of the S3 body centre; None: uniform curvature.
    kyphosis_caudal_share: float | None = None
    #: Sharp extra angulation (deg) of a hooked sacrum, turned over
    #: :data:`~planner.phantom.pelvis.HOOK_LENGTH_MM` of anterior cortex in the lower S3 body;
    #: 0: none. Adds to ``kyphosis_deg``.
    hook_deg: float = 0.0
    #: Where the hook's centre lies: 0 at the S3 body centre, 1 at the S3/S4 junction.
    hook_position_fraction: float = 0.5
    #: True when the phantom was built so that no interpedicular path to the S3 centre exists
    #: (``PhantomParams.random(seed, infeasible=True)``); the truth says so too.
    built_infeasible: bool = False
    body_scale: float = 1.0
    width_scale: float = 1.0
    canal_scale: float = 1.0
    foramen_scale: float = 1.0
    #: Relative heights of S1..S5 along the anterior cortex (normalised to sum to 1).
    level_fractions: tuple[float, float, float, float, float] = (0.28, 0.23, 0.19, 0.16, 0.14)
    hiatus_apex_fraction: float = 0.4
    hiatus_base_fraction: float = 0.5
    dural_sac_end_level: str = "S2"
    dural_sac_end_fraction: float = 0.5
    si_joint_gap_mm: float = 2.0
    cortex_mm: float = 1.5
    cortical_hu: float = 950.0
    trabecular_hu: float = 250.0
    disc_remnant_hu: float = 550.0
    ridge_mm: float = 1.0
    #: Rotation of the pelvis in the scanner about the L-R, A-P and S-I axes (deg, applied in
    #: that order). Non-zero values make the mid-sagittal plane differ from ``x = const``.
    pose_rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pose_translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    soft_tissue: bool = True
    #: Mimic the PENGWIN scans: every voxel outside the sacrum and hip bones is exactly 0 HU,
    #: no L5, no coccyx, no soft tissue.
    bone_only: bool = False
    posterior_soft_tissue_mm: float = 35.0
    fat_mm: float = 15.0
    body_half_width_mm: float = 170.0
    body_half_depth_mm: float = 120.0
    lesion: bool = False
    lesion_kind: str = "lytic"  # "lytic" or "mixed" (lytic with sclerotic specks)
    lesion_radius_mm: float = 7.0
    #: Lesion centre offset from the S3 body centre in the sacral frame (lateral, cranio-caudal
    #: along the cortex, antero-posterior), mm; kept inside the body.
    lesion_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lesion_hu: float = 30.0
    noise_hu: float = 10.0
    #: Standard deviation (HU) of the smoothed texture added to trabecular bone (CT only).
    trabecular_texture_hu: float = 40.0
    #: Point-spread of the scanner, a Gaussian of this standard deviation in mm (0: none).
    blur_mm: float = 0.5
    seed: int = 0
    fov: str = "pelvis"
    fov_margin_mm: float = 10.0

    def __post_init__(self) -> None:
        if self.fov not in FIELDS_OF_VIEW:
            raise PlannerError(f"fov must be one of {FIELDS_OF_VIEW}, got {self.fov!r}")
        if self.lesion_kind not in ("lytic", "mixed"):
            raise PlannerError(f"lesion_kind must be 'lytic' or 'mixed', got {self.lesion_kind!r}")
        if self.dural_sac_end_level not in ("S1", "S2", "S3", "S4"):
            raise PlannerError(
                f"dural_sac_end_level must be S1..S4, got {self.dural_sac_end_level!r}"
            )
        if self.sacral_height_mm <= 0 or self.si_joint_gap_mm <= 0 or self.cortex_mm <= 0:
            raise PlannerError("sacral_height_mm, si_joint_gap_mm and cortex_mm must be positive")
        if len(self.level_fractions) != 5 or min(self.level_fractions) <= 0:
            raise PlannerError("level_fractions must be five positive numbers (S1..S5)")

    @property
    def has_soft_tissue(self) -> bool:
        """True if skin, fat and muscle are rendered (``soft_tissue`` and not ``bone_only``)."""
        return self.soft_tissue and not self.bone_only

    @classmethod
    def random(cls, seed: int, kyphotic: bool = False, infeasible: bool = False,
               **overrides) -> PhantomParams:
        """Draw a realistic case from :data:`RANGES` with a fixed seed.

        Parameters
        ----------
        seed : int
            Same seed, same parameters.
        kyphotic : bool
            Draw the kyphosis from :data:`KYPHOTIC_RANGE_DEG` (strongly curved sacrum).
        infeasible : bool
            A hooked sacrum with no interpedicular path to the S3 centre: an ordinary
            kyphosis plus a sharp angulation in the lower S3 body
            (:data:`INFEASIBLE_HOOK_DEG`, :data:`INFEASIBLE_HOOK_POSITION`);
            ``built_infeasible`` is set. Not combined with ``kyphotic``.
        **overrides
            Any field of :class:`PhantomParams`, set after drawing (e.g. ``lesion=True``).
        """
        rng = np.random.default_rng(seed)

        def draw(name: str) -> float:
            low, high = RANGES[name]
            return float(rng.uniform(low, high))

        values: dict = {
            name: draw(name)
            for name in RANGES
            if name not in ("pose_rotation_deg", "pose_translation_mm")
        }
        if kyphotic:
            values["kyphosis_deg"] = float(rng.uniform(*KYPHOTIC_RANGE_DEG))
            values["kyphosis_caudal_share"] = float(rng.uniform(*KYPHOTIC_CAUDAL_SHARE))
        else:
            rng.uniform(size=2)  # keep the stream aligned between kyphotic and normal draws
        if infeasible:
            if kyphotic:
                raise PlannerError("choose kyphotic=True or infeasible=True, not both")
            values["hook_deg"] = float(rng.uniform(*INFEASIBLE_HOOK_DEG))
            values["hook_position_fraction"] = float(rng.uniform(*INFEASIBLE_HOOK_POSITION))
            values["built_infeasible"] = True
        values["pose_rotation_deg"] = tuple(
            float(v) for v in rng.uniform(*RANGES["pose_rotation_deg"], size=3)
        )
        values["pose_translation_mm"] = tuple(
            float(v) for v in rng.uniform(*RANGES["pose_translation_mm"], size=3)
        )
        base = np.array(cls.level_fractions)
        jitter = rng.uniform(0.9, 1.1, size=5)
        fractions = base * jitter / float(np.sum(base * jitter))
        values["level_fractions"] = tuple(float(f) for f in fractions)
        levels, weights = zip(*DURAL_SAC_END_LEVELS, strict=True)
        values["dural_sac_end_level"] = str(rng.choice(levels, p=np.array(weights)))
        offset = rng.uniform(-1.0, 1.0, size=3) * np.array([3.0, 2.0, 2.0])
        values["lesion_offset_mm"] = tuple(float(v) for v in offset)
        values["seed"] = int(seed)
        valid = {f.name for f in fields(cls)}
        unknown = set(overrides) - valid
        if unknown:
            raise PlannerError(f"unknown phantom parameter(s): {sorted(unknown)}")
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes) -> PhantomParams:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)
