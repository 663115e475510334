"""`make_phantom`: rasterise the analytic pelvis on any grid, in CT or MR-like contrast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from planner.errors import PlannerError
from planner.phantom import pelvis as P
from planner.phantom.contrast import Tissue, lookup_table
from planner.phantom.grid import direction_for, grid_covering, spacing_for
from planner.phantom.params import CONTRASTS, SACRAL_REGION_ILIUM_MM, PhantomParams
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
#: Edge (mm) of the blocks used to skip voxels far from every surface, and the safety factor
#: on a block's half-diagonal (the signed distances are estimates, not exact distances).
BLOCK_MM = 4.0
BLOCK_SAFETY = 1.5
#: Trabecular texture: number of plane waves, their wavelengths (mm), a seed offset.
TEXTURE_WAVES = 24
TEXTURE_WAVELENGTH_MM = (2.0, 6.0)
TEXTURE_SEED_OFFSET = 104729
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
    landmarks = compute_landmarks(model)
    if p.fov == "sacral_region":
        s_top = -(P.DISC_L5_S1_MM + 15.0)
        s_bottom = p.sacral_height_mm + P.COCCYX_GAP_MM + P.COCCYX_LENGTH_MM
        hull = [_sacrum_hull_pelvis(model, s_top, s_bottom)]
        s_joint = np.linspace(*model.auricular_s, 5)
        reach = model.section(s_joint)["W"] + p.si_joint_gap_mm + SACRAL_REGION_ILIUM_MM
        for sign in (-1.0, 1.0):
            hull.append(model.frame.sacral_to_pelvis(sign * reach, s_joint, np.zeros(5)))
        points = [model.frame.pelvis_to_world(np.concatenate(hull))]
        for skin in (landmarks.skin_over_hiatus_lps, landmarks.skin_on_s3_tangent_lps):
            if skin is not None:
                points.append(skin[None])
        low, high = _box(np.concatenate(points))
        return low - margin, high + margin
    low, high = _bone_box_world(model)
    for skin in (landmarks.skin_over_hiatus_lps, landmarks.skin_on_s3_tangent_lps):
        if skin is not None:
            low = np.minimum(low, skin)
            high = np.maximum(high, skin)
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
    # The canal runs up through L5 and stops at its top (no L4 is drawn).
    in_spine = (s < 0) & (s >= -(P.DISC_L5_S1_MM + P.L5_HEIGHT_MM))
    in_envelope = (sdf["sacrum_solid"] <= 0) | in_spine
    tissue[canal_space & in_envelope] = Tissue.EPIDURAL_FAT
    foramina = np.zeros(n, np.uint8)
    for (level, side), label in FORAMEN_LABELS.items():
        inside = (sdf[f"foramen_{level}_{side}"] <= 0) & (sdf["sacrum_solid"] <= 0) & ~canal_space
        foramina[inside] = label
    tissue[(foramina > 0) | ((sdf["foramina_posterior"] <= 0) & (sdf["sacrum_solid"] <= 0))] = (
        Tissue.EPIDURAL_FAT
    )
    dural = (sdf["dural_sac"] <= 0) & ((s >= 0) | in_spine)
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


def _block_layout(grid: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Blocks of about :data:`BLOCK_MM` tiling the grid.

    Returns the block size in voxels (i, j, k), the (M, 3) block indices, the (M, 3) continuous
    voxel index of each block's centre, and the block's half-diagonal in mm.
    """
    shape = np.asarray(grid.shape_ijk)
    size = np.maximum(1, np.round(BLOCK_MM / grid.spacing_xyz)).astype(int)
    counts = -(-shape // size)
    blocks = np.stack(np.meshgrid(*(np.arange(c) for c in counts), indexing="ij"), axis=-1).reshape(
        -1, 3
    )
    first = blocks * size
    last = np.minimum(first + size, shape) - 1
    centres = 0.5 * (first + last)
    half_diagonal = 0.5 * float(np.linalg.norm(size * grid.spacing_xyz))
    return size, blocks, centres, half_diagonal


def _pelvis_of_voxels(model: PelvisModel, grid: Volume, ijk: np.ndarray) -> np.ndarray:
    """(N, 3) pelvis mm of voxel indices (i, j, k): one fused affine, column by column."""
    rotation = model.frame.rotation
    linear = rotation.T @ (grid.direction * grid.spacing_xyz[np.newaxis, :])
    offset = rotation.T @ (grid.origin_lps - model.frame.translation_mm)
    ijk = np.asarray(ijk, float)
    out = np.empty(ijk.shape, float)
    for axis in range(3):
        out[:, axis] = (
            offset[axis]
            + ijk[:, 0] * linear[axis, 0]
            + ijk[:, 1] * linear[axis, 1]
            + ijk[:, 2] * linear[axis, 2]
        )
    return out


def _block_voxels(blocks: np.ndarray, size: np.ndarray, shape_ijk) -> np.ndarray:
    """(N, 3) voxel indices (i, j, k) of all voxels of the given blocks inside the grid."""
    offsets = np.stack(np.meshgrid(*(np.arange(n) for n in size), indexing="ij"), axis=-1).reshape(
        -1, 3
    )
    ijk = (blocks[:, None, :] * size + offsets[None]).reshape(-1, 3)
    return ijk[np.all(ijk < np.asarray(shape_ijk), axis=1)]


def _fill_outline(model: PelvisModel, grid: Volume, raster: _Raster, layout) -> None:
    """Skin, fat, soft tissue and air: blocks far from the skin layers take their centre's class."""
    size, blocks, centres, half_diagonal = layout
    p = model.params
    centre_pelvis = _pelvis_of_voxels(model, grid, centres)
    block_class = _outline_tissue(model, centre_pelvis)
    if p.has_soft_tissue:
        outline = model.body_outline(centre_pelvis)
        levels = np.array([0.0, -P.SKIN_MM, -(P.SKIN_MM + p.fat_mm)])
        near = np.min(np.abs(outline[:, None] - levels[None]), axis=1)
        mixed = near <= BLOCK_SAFETY * half_diagonal
    else:
        mixed = np.zeros(len(blocks), bool)
    counts = blocks.max(axis=0) + 1
    by_block = np.zeros(counts[::-1], np.uint8)
    by_block[blocks[:, 2], blocks[:, 1], blocks[:, 0]] = block_class
    expanded = by_block.repeat(size[2], 0).repeat(size[1], 1).repeat(size[0], 2)
    n_k, n_j, n_i = raster.tissue.shape
    raster.tissue[:] = expanded[:n_k, :n_j, :n_i]
    for chunk in np.array_split(np.flatnonzero(mixed), max(1, int(mixed.sum()) // 4000 + 1)):
        if chunk.size == 0:
            continue
        ijk = _block_voxels(blocks[chunk], size, grid.shape_ijk)
        pelvis = _pelvis_of_voxels(model, grid, ijk)
        raster.tissue[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = _outline_tissue(model, pelvis)


#: Structures whose inside changes a voxel's class or labels (the others lie within these).
_STRUCTURES = ("sacrum_solid", "canal", "l5", "disc", "coccyx", "ilium_L", "ilium_R")


def _rasterise(model: PelvisModel, grid: Volume) -> _Raster:
    raster = _Raster(grid.array.shape)
    layout = _block_layout(grid)
    size, blocks, centres, half_diagonal = layout
    _fill_outline(model, grid, raster, layout)
    # Bones, canal and their contents: only blocks that may touch one of them are evaluated.
    centre_pelvis = _pelvis_of_voxels(model, grid, centres)
    candidate = np.flatnonzero(model.near_bone(centre_pelvis))
    sdf = model.evaluate(centre_pelvis[candidate])
    nearest = np.min(np.stack([sdf[name] for name in _STRUCTURES]), axis=0)
    active = candidate[nearest <= BLOCK_SAFETY * half_diagonal + 1.0]
    blocks_per_chunk = max(1, CHUNK_VOXELS // int(np.prod(size)))
    for first in range(0, active.size, blocks_per_chunk):
        ijk = _block_voxels(blocks[active[first : first + blocks_per_chunk]], size, grid.shape_ijk)
        pelvis = _pelvis_of_voxels(model, grid, ijk)
        result = _classify_bone_points(model, model.evaluate(pelvis))
        index = (ijk[:, 2], ijk[:, 1], ijk[:, 0])
        new_tissue = result.pop("tissue")
        if not model.params.has_soft_tissue:
            bone = np.isin(
                new_tissue, [Tissue.CORTEX, Tissue.MARROW, Tissue.DISC_REMNANT, Tissue.LESION]
            )
            new_tissue[~bone] = 255
        keep = new_tissue != 255
        raster.tissue[index[0][keep], index[1][keep], index[2][keep]] = new_tissue[keep]
        for name, values in result.items():
            getattr(raster, name)[index] = values
    return raster


def _add_texture(image: np.ndarray, marrow: np.ndarray, grid: Volume, model: PelvisModel) -> None:
    """Trabecular texture inside the marrow, SD ``trabecular_texture_hu``.

    A sum of seeded plane waves evaluated at the voxels' pelvis positions, so the texture is a
    property of the anatomy: every grid sampling the same points sees the same values.
    """
    p = model.params
    if not marrow.any():
        return
    rng = np.random.default_rng(p.seed + TEXTURE_SEED_OFFSET)
    directions = rng.normal(size=(TEXTURE_WAVES, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelengths = rng.uniform(*TEXTURE_WAVELENGTH_MM, size=TEXTURE_WAVES)
    wave_vectors = 2.0 * np.pi * directions / wavelengths[:, None]
    phases = rng.uniform(0.0, 2.0 * np.pi, size=TEXTURE_WAVES)
    kji = np.argwhere(marrow)
    pelvis = _pelvis_of_voxels(model, grid, kji[:, ::-1])
    field = np.cos(pelvis @ wave_vectors.T + phases).sum(axis=1)
    field *= p.trabecular_texture_hu / np.sqrt(TEXTURE_WAVES / 2.0)  # unit variance per wave/2
    image[kji[:, 0], kji[:, 1], kji[:, 2]] += field.astype(image.dtype)


def _intensity(model: PelvisModel, raster: _Raster, grid: Volume, contrast: str) -> np.ndarray:
    p = model.params
    image = lookup_table(contrast, p)[raster.tissue]
    if contrast == "CT" and p.trabecular_texture_hu > 0:
        _add_texture(image, raster.tissue == Tissue.MARROW, grid, model)
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
        One of :data:`CONTRASTS`: ``"CT"`` (int16 HU), or an MR weighting ``"T1"``, ``"T2"``
        or ``"STIR"`` (fat suppressed) (float32, arbitrary units 0-1000).

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
