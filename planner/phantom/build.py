"""`make_phantom`: rasterise the analytic pelvis on any grid, in CT or MR-like contrast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.errors import PlannerError
from planner.phantom import pelvis as P
from planner.phantom.contrast import Tissue, lookup_table
from planner.phantom.grid import direction_for, grid_covering, index_box_of, spacing_for
from planner.phantom.params import CONTRASTS, PhantomParams
from planner.phantom.pelvis import PelvisModel
from planner.phantom.truth import ILIUM_LEFT, ILIUM_RIGHT, PhantomTruth, compute_landmarks
from planner.volume import Volume, VolumeInfo

#: Voxels evaluated at once (bounds the memory of the float64 work arrays to ~1 GB).
CHUNK_VOXELS = 1_500_000
#: CT values are clipped to what 12-bit scanners store.
CT_MIN_HU, CT_MAX_HU = -1024, 3071
#: Number and radius of the sclerotic specks of a "mixed" lesion.
MIXED_SPECKS = 8
MIXED_SPECK_RADIUS_MM = 1.2
#: Margin (mm) around the bones inside which their shapes are evaluated.
BONE_BOX_MARGIN_MM = 4.0


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic pelvis: the image and its exact anatomy."""

    volume: Volume
    truth: PhantomTruth
    params: PhantomParams
    contrast: str


# ---------------------------------------------------------------------- regions (world boxes)
def _box(points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points_world, float).reshape(-1, 3)
    return points.min(axis=0), points.max(axis=0)


def _sacrum_hull_pelvis(model: PelvisModel, s_low: float, s_high: float) -> np.ndarray:
    """Pelvis points enclosing the sacral-frame structures between two arc lengths."""
    s = np.linspace(s_low, s_high, 40)
    sec = model.section(np.clip(s, 0.0, model.params.sacral_height_mm))
    width = np.maximum(sec["W"], P.L5_TRANSVERSE_HALF_WIDTH_MM * (s < 0))
    d_low = np.minimum(sec["d_ant"], 0.0) - 8.0  # the foramen channels start 6 mm in front
    d_high = sec["d_post"] + max(P.CREST_HEIGHT_MM) + np.where(s < 0, P.L5_SPINOUS_LENGTH_MM, 2.0)
    points = [
        model.frame.sacral_to_pelvis(sign * width, s, depth)
        for sign in (-1.0, 1.0)
        for depth in (d_low, d_high)
    ]
    return np.concatenate(points)


def _ilium_hull_pelvis(model: PelvisModel) -> np.ndarray:
    points = []
    for ilium in model.ilia.values():
        cu, cv = P.ILIUM_WING_CENTRE_UV_MM
        hu, hv = P.ILIUM_WING_HALF_UV_MM
        for su in (-1, 1):
            for sv in (-1, 1):
                for sw in (-1, 1):
                    points.append(
                        ilium["joint"]
                        + (cu + su * hu) * ilium["u"]
                        + (cv + sv * hv) * ilium["v"]
                        + sw * P.ILIUM_WING_THICKNESS_MM * ilium["w"]
                    )
        for end in ilium["column"]:
            for offset in np.vstack([np.eye(3), -np.eye(3)]):
                points.append(end + P.ILIUM_COLUMN_RADIUS_MM * offset)
        for offset in np.vstack([np.eye(3), -np.eye(3)]):
            points.append(ilium["joint"] + 40.0 * offset)
    return np.asarray(points)


def _bone_box_world(model: PelvisModel) -> tuple[np.ndarray, np.ndarray]:
    height = model.params.sacral_height_mm
    s_top = -(P.DISC_L5_S1_MM + P.L5_HEIGHT_MM) - 2.0
    s_bottom = height + P.COCCYX_GAP_MM + P.COCCYX_LENGTH_MM + 2.0
    hull = np.concatenate([_sacrum_hull_pelvis(model, s_top, s_bottom), _ilium_hull_pelvis(model)])
    low, high = _box(model.frame.pelvis_to_world(hull))
    return low - BONE_BOX_MARGIN_MM, high + BONE_BOX_MARGIN_MM


def field_of_view_lps(model: PelvisModel) -> tuple[np.ndarray, np.ndarray]:
    """World LPS box (low, high corners, mm) that the phantom's grid covers."""
    p = model.params
    margin = p.fov_margin_mm
    sacrum_low, sacrum_high = _box(
        model.frame.pelvis_to_world(_sacrum_hull_pelvis(model, 0.0, p.sacral_height_mm))
    )
    if p.fov == "sacrum":
        return sacrum_low - margin, sacrum_high + margin
    low, high = _bone_box_world(model)
    landmarks = compute_landmarks(model)
    if landmarks.skin_over_hiatus_lps is not None:
        low = np.minimum(low, landmarks.skin_over_hiatus_lps)
        high = np.maximum(high, landmarks.skin_over_hiatus_lps)
    low, high = low - margin, high + margin
    if p.fov == "above_sacrum":
        low[2] = sacrum_high[2] + 5.0
        high[2] = max(high[2], low[2] + 40.0)
    return low, high


# ---------------------------------------------------------------------- rasterisation
class _Raster:
    """Label and tissue arrays being filled chunk by chunk."""

    def __init__(self, shape_kji: tuple[int, int, int]) -> None:
        self.tissue = np.zeros(shape_kji, np.uint8)
        self.sacrum = np.zeros(shape_kji, bool)
        self.canal = np.zeros(shape_kji, bool)
        self.dural_sac = np.zeros(shape_kji, bool)
        self.l5 = np.zeros(shape_kji, bool)
        self.coccyx = np.zeros(shape_kji, bool)
        self.lesion = np.zeros(shape_kji, bool)
        self.foramina = np.zeros(shape_kji, np.uint8)
        self.levels = np.zeros(shape_kji, np.uint8)
        self.ilia = np.zeros(shape_kji, np.uint8)


def _speck_centres(model: PelvisModel) -> np.ndarray:
    """Pelvis centres of the sclerotic specks of a mixed lesion (seeded, inside the lesion)."""
    rng = np.random.default_rng(model.params.seed + 7919)
    directions = rng.normal(size=(MIXED_SPECKS, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = model.lesion_radius * 0.7 * rng.uniform(0.0, 1.0, MIXED_SPECKS) ** (1 / 3)
    return model.lesion_center_pelvis + directions * radii[:, None]


def _classify_bone_points(model: PelvisModel, sdf: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Tissue class and labels of points inside the bone box (1D arrays)."""
    from planner.anatomy.model import FORAMEN_LABELS

    p = model.params
    s = sdf["s"]
    n = s.shape[0]
    tissue = np.full(n, 255, np.uint8)  # 255 = leave the soft-tissue class
    sacrum = sdf["sacrum"] <= 0
    canal_space = sdf["canal"] <= 0
    # Canal, foramina and dural sac contents inside the body (they are spaces, not bone).
    in_envelope = (sdf["sacrum_solid"] <= 0) | (s < 0)
    tissue[canal_space & in_envelope] = Tissue.EPIDURAL_FAT
    foramina = np.zeros(n, np.uint8)
    for (level, side), label in FORAMEN_LABELS.items():
        inside = (sdf[f"foramen_{level}_{side}"] <= 0) & (sdf["sacrum_solid"] <= 0) & ~canal_space
        foramina[inside] = label
    tissue[(foramina > 0) | ((sdf["foramina_posterior"] <= 0) & (sdf["sacrum_solid"] <= 0))] = (
        Tissue.EPIDURAL_FAT
    )
    dural = sdf["dural_sac"] <= 0
    tissue[dural] = Tissue.CSF
    draw_neighbours = not p.bone_only
    disc = (sdf["disc"] <= 0) & draw_neighbours
    tissue[disc] = Tissue.DISC
    l5 = (sdf["l5"] <= 0) & draw_neighbours
    coccyx = (sdf["coccyx"] <= 0) & draw_neighbours
    ilium_left = sdf["ilium_L"] <= 0
    ilium_right = (sdf["ilium_R"] <= 0) & ~ilium_left
    for name, mask in (
        ("sacrum", sacrum),
        ("l5", l5),
        ("coccyx", coccyx),
        ("ilium_L", ilium_left),
        ("ilium_R", ilium_right),
    ):
        cortex = mask & (sdf[name] > -p.cortex_mm)
        tissue[mask] = Tissue.MARROW
        tissue[cortex] = Tissue.CORTEX
    # Fused-disc remnants: thin sclerotic plates across the bodies at the level junctions.
    body = (sdf["body"] <= -p.cortex_mm) & sacrum
    junction_distance = np.min(np.abs(s[:, None] - model.boundaries_s[None, 1:5]), axis=1)
    tissue[body & (junction_distance <= P.DISC_REMNANT_HALF_THICKNESS_MM)] = Tissue.DISC_REMNANT
    lesion = (sdf["lesion"] <= 0) & sacrum
    tissue[lesion] = Tissue.LESION
    if p.lesion and p.lesion_kind == "mixed" and np.any(lesion):
        points = model.frame.sacral_to_pelvis(sdf["x"][lesion], s[lesion], sdf["d"][lesion])
        centres = _speck_centres(model)
        near = np.min(np.linalg.norm(points[:, None, :] - centres[None], axis=-1), axis=1)
        lesion_tissue = tissue[lesion]
        lesion_tissue[near <= MIXED_SPECK_RADIUS_MM] = Tissue.CORTEX
        tissue[lesion] = lesion_tissue
    levels = np.zeros(n, np.uint8)
    in_body = (sdf["body"] <= 0) & sacrum
    levels[in_body] = np.clip(np.searchsorted(model.boundaries_s, s[in_body], side="right"), 1, 5)
    ilia = np.zeros(n, np.uint8)
    ilia[ilium_left] = ILIUM_LEFT
    ilia[ilium_right] = ILIUM_RIGHT
    return {
        "tissue": tissue,
        "sacrum": sacrum,
        "canal": canal_space & (s >= 0) & (s <= model.hiatus_base_s),
        "dural_sac": dural,
        "l5": l5,
        "coccyx": coccyx,
        "lesion": lesion,
        "foramina": foramina,
        "levels": levels,
        "ilia": ilia,
    }


def _outline_tissue(model: PelvisModel, points_pelvis: np.ndarray) -> np.ndarray:
    p = model.params
    if not p.has_soft_tissue:
        return np.full(points_pelvis.shape[0], Tissue.AIR, np.uint8)
    outline = model.body_outline(points_pelvis)
    tissue = np.full(points_pelvis.shape[0], Tissue.AIR, np.uint8)
    tissue[outline <= 0] = Tissue.SKIN
    tissue[outline <= -P.SKIN_MM] = Tissue.FAT
    tissue[outline <= -(P.SKIN_MM + p.fat_mm)] = Tissue.SOFT
    return tissue


def _rasterise(model: PelvisModel, grid: Volume) -> _Raster:
    raster = _Raster(grid.array.shape)
    bone_low, bone_high = _bone_box_world(model)
    start, stop = index_box_of(grid, bone_low, bone_high)
    n_i, n_j, n_k = grid.shape_ijk
    slices_per_chunk = max(1, CHUNK_VOXELS // (n_i * n_j))
    jj, ii = np.meshgrid(np.arange(n_j), np.arange(n_i), indexing="ij")
    for k0 in range(0, n_k, slices_per_chunk):
        k1 = min(n_k, k0 + slices_per_chunk)
        kk = np.arange(k0, k1)[:, None, None]
        ijk = np.stack(np.broadcast_arrays(ii[None], jj[None], kk), axis=-1).reshape(-1, 3)
        pelvis = model.frame.world_to_pelvis(grid.index_to_lps(ijk))
        tissue = _outline_tissue(model, pelvis)
        shape = (k1 - k0, n_j, n_i)
        raster.tissue[k0:k1] = tissue.reshape(shape)
        in_box = np.all((ijk >= start) & (ijk < stop), axis=1)
        in_box[in_box] = model.near_bone(pelvis[in_box])
        if not np.any(in_box):
            continue
        # Only voxels in the bone box are evaluated; the rest is soft tissue or air.
        pelvis_box = pelvis[in_box]
        sdf = model.evaluate(pelvis_box)
        result = _classify_bone_points(model, sdf)
        flat_index = np.flatnonzero(in_box)
        new_tissue = result.pop("tissue")
        if not model.params.has_soft_tissue:
            bone = np.isin(
                new_tissue, [Tissue.CORTEX, Tissue.MARROW, Tissue.DISC_REMNANT, Tissue.LESION]
            )
            new_tissue[~bone] = 255
        keep = new_tissue != 255
        chunk_tissue = raster.tissue[k0:k1].reshape(-1)
        chunk_tissue[flat_index[keep]] = new_tissue[keep]
        raster.tissue[k0:k1] = chunk_tissue.reshape(shape)
        for name, values in result.items():
            target = getattr(raster, name)
            chunk = target[k0:k1].reshape(-1)
            chunk[flat_index] = values
            target[k0:k1] = chunk.reshape(shape)
    return raster


def _intensity(model: PelvisModel, raster: _Raster, grid: Volume, contrast: str) -> np.ndarray:
    p = model.params
    image = lookup_table(contrast, p)[raster.tissue]
    if p.blur_mm > 0:
        sigma_kji = (p.blur_mm / grid.spacing_xyz)[::-1]
        image = ndimage.gaussian_filter(image, sigma_kji, mode="nearest")
    rng = np.random.default_rng(p.seed)
    if p.noise_hu > 0:
        image = image + rng.normal(0.0, p.noise_hu, image.shape).astype(np.float32)
    if contrast == "CT":
        if p.bone_only:
            bone = raster.sacrum | (raster.ilia > 0)
            image = np.where(bone, image, 0.0)
        return np.clip(np.rint(image), CT_MIN_HU, CT_MAX_HU).astype(np.int16)
    if p.bone_only:
        image = np.where(raster.sacrum | (raster.ilia > 0), image, 0.0)
    return np.abs(image).astype(np.float32)


def make_phantom(
    params: PhantomParams | None = None,
    spacing_mm: float | tuple[float, float, float] = 1.0,
    orientation: str | np.ndarray = "LPS",
    contrast: str = "CT",
) -> Phantom:
    """Draw a phantom on a grid of the given spacing and orientation.

    Parameters
    ----------
    params : PhantomParams, optional
        Anatomy, pose and appearance; default ``PhantomParams()``.
    spacing_mm : float or (3,) floats
        Voxel size in mm along the grid's i, j, k axes.
    orientation : str or (3, 3) array
        ``"LPS"``, ``"RAS"``, ``"flipped"``, ``"permuted"``, ``"permuted_flipped"``,
        ``"coronal"``, ``"oblique"``, or a direction matrix whose columns are the LPS unit vectors
        of i, j, k. Every orientation shows the same anatomy at the same LPS positions.
    contrast : str
        ``"CT"`` (int16 HU), ``"T1"`` or ``"T2"`` (float32, arbitrary units 0-1000).

    Returns
    -------
    Phantom
        ``.volume`` (a `Volume`) and ``.truth`` (:class:`PhantomTruth`).
    """
    params = params or PhantomParams()
    if contrast not in CONTRASTS:
        raise PlannerError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    model = PelvisModel(params)
    low, high = field_of_view_lps(model)
    grid = grid_covering(low, high, spacing_for(spacing_mm), direction_for(orientation))
    raster = _rasterise(model, grid)
    image = _intensity(model, raster, grid, contrast)
    modality = "CT" if contrast == "CT" else "MR"
    description = f"sacroplan phantom seed {params.seed} {contrast}"
    volume = Volume(
        array=image,
        origin_lps=grid.origin_lps,
        spacing_xyz=grid.spacing_xyz,
        direction=grid.direction,
        modality=modality,
        info=VolumeInfo(
            series_description=description,
            source_format="phantom",
            case_id=f"phantom-{params.seed}",
        ),
    )

    def label(array: np.ndarray) -> Volume:
        return grid.with_array(array, modality="SEG")

    truth = PhantomTruth(
        sacrum=label(raster.sacrum),
        canal=label(raster.canal),
        foramina=label(raster.foramina),
        levels=label(raster.levels),
        ilia=label(raster.ilia),
        l5=label(raster.l5),
        coccyx=label(raster.coccyx),
        lesion=label(raster.lesion),
        dural_sac=label(raster.dural_sac),
        landmarks=compute_landmarks(model),
        model=model,
    )
    return Phantom(volume=volume, truth=truth, params=params, contrast=contrast)
