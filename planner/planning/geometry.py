"""Distance fields around the sacrum and the anatomical frame the search works in.

Every field is computed once per plan on a crop of the anatomy grid around the sacrum, in
millimetres (``distance_transform_edt(..., sampling=spacing)``), and sampled at LPS points by
trilinear interpolation, so clearances along a needle are sub-voxel rather than voxel counts.

Signed distances are negative inside a structure. A voxel centre next to the boundary lies about
half a voxel from the surface, so distances to a mask are shifted by half the smallest spacing to
put the zero on the surface between inside and outside voxel centres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from planner.anatomy.curve_fit import resample_polyline
from planner.anatomy.model import LEVEL_NAMES, SacralAnatomy
from planner.errors import AnatomyNotFoundError
from planner.sitk_bridge import reorient_to_lps
from planner.volume import Volume

#: Margin (mm) kept around the sacrum when cropping the distance fields.
FIELD_MARGIN_MM = 20.0
#: Outer surfaces facing within this angle (deg) of posterior are where the needle enters the
#: bone, not cortex it must not breach.
POSTERIOR_SURFACE_CONE_DEG = 60.0
#: Distance (mm) reported where a point lies outside the cropped fields (far from everything).
FAR_MM = 1000.0
#: Half-length (mm) of the arc of anterior cortex fitted to get the local tangent.
TANGENT_HALF_WINDOW_MM = 8.0
#: Ridge trimming of the edge fit: points this far (mm) anterior of the fitted line are
#: ridge, not edge; rounds of trimming.
RIDGE_TOLERANCE_MM = 0.3
RIDGE_ROUNDS = 3
#: Shortest half-stretch (mm) used near the ends of the curve.
MIN_HALF_WINDOW_MM = 3.0
#: Arc-length step (mm) when resampling the anterior-cortex curve.
CURVE_STEP_MM = 0.5


def _surface_distance_mm(mask: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """Distance (mm) from voxels outside ``mask`` to its surface.

    The surface lies between the mask's voxel centres and the centres of the voxels just
    outside it. The mean of the distances to those two sets of centres estimates the distance
    to the surface without the bias of subtracting half a voxel from one of them, which
    undershoots on oblique surfaces. Zero on the mask.
    """
    just_outside = ndimage.binary_dilation(mask) & ~mask
    to_mask = ndimage.distance_transform_edt(~mask, sampling=spacing_kji)
    to_rim = ndimage.distance_transform_edt(~just_outside, sampling=spacing_kji)
    return np.where(mask, 0.0, 0.5 * (to_mask + to_rim))


def _distance_mm(mask: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """Distance (mm) from each voxel to the surface of a mask; zero inside it."""
    if not mask.any():
        return np.full(mask.shape, FAR_MM, np.float32)
    return _surface_distance_mm(mask, spacing_kji).astype(np.float32)


def _depth_mm(mask: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """Distance (mm) from voxels of ``mask`` to its surface; 0 outside.

    Sub-voxel, the inside twin of :func:`_surface_distance_mm`: the mean of the distances to
    the nearest voxel centre outside the mask and to the nearest centre of the mask's own rim
    (its voxels next to the outside). The surface lies between those two sets of centres;
    subtracting half a voxel from one distance instead reads up to 0.6 mm shallow on the
    oblique canal wall of a 2 mm grid.
    """
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    rim = mask & ~ndimage.binary_erosion(mask, border_value=1)
    to_outside = ndimage.distance_transform_edt(mask, sampling=spacing_kji)
    to_rim = ndimage.distance_transform_edt(~rim, sampling=spacing_kji)
    return np.where(mask, 0.5 * (to_outside + to_rim), 0.0).astype(np.float32)


def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, stop) ``[k, j, i]`` of a mask's bounding box, by axis projections (no nonzero)."""
    bounds = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        if hit.size == 0:
            return None
        bounds.append((hit[0], hit[-1] + 1))
    start, stop = zip(*bounds, strict=True)
    return np.array(start), np.array(stop)


@dataclass
class SacrumCrop:
    """The anatomy's masks cropped to the bone envelope (sacrum, canal and foramina).

    ``mouths`` labels the canal voxels at each foramen channel's mouth
    (:func:`foramen_mouths`); their centres count as foramen points.

    Cheap to build; answers "inside the bone?" and "which level?" at any LPS point, and holds
    the voxel centres of each foramen for exact per-foramen distances.
    """

    grid: Volume
    sacrum: np.ndarray
    canal: np.ndarray
    foramina: np.ndarray
    levels: np.ndarray
    mouths: np.ndarray
    _level_tree: cKDTree | None = None
    _level_values: np.ndarray | None = None
    _foramen_voxels: dict[int, np.ndarray] | None = None
    _solid_u8: np.ndarray | None = None

    @property
    def solid(self) -> np.ndarray:
        return self.sacrum | self.canal | (self.foramina > 0)

    def in_solid(self, points_lps: np.ndarray) -> np.ndarray:
        """True where (..., 3) points fall in a voxel of the bone envelope."""
        if self._solid_u8 is None:
            self._solid_u8 = self.solid.astype(np.uint8)
        return self.grid.with_array(self._solid_u8).sample(points_lps, order=0) > 0

    def level_at(self, points_lps: np.ndarray) -> np.ndarray:
        """Level index 1..5 of the nearest sacral-body voxel to each (..., 3) point (0: none)."""
        points = np.asarray(points_lps, float)
        if self._level_tree is None:
            k, j, i = np.nonzero(self.levels)
            if k.size == 0:
                return np.zeros(points.shape[:-1], int)
            voxels = self.grid.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
            self._level_tree = cKDTree(voxels)
            self._level_values = self.levels[k, j, i].astype(int)
        _, nearest = self._level_tree.query(points.reshape(-1, 3))
        return self._level_values[nearest].reshape(points.shape[:-1])

    def foramen_voxels_lps(self, label: int, mouths: bool = False) -> np.ndarray:
        """(m, 3) LPS centres of the voxels of one foramen label, or of its mouth (cached)."""
        if self._foramen_voxels is None:
            self._foramen_voxels = {}
            for name, array in (("channel", self.foramina), ("mouth", self.mouths)):
                k, j, i = np.nonzero(array)
                points = self.grid.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
                labels = array[k, j, i]
                for v in np.unique(labels):
                    self._foramen_voxels[(name, int(v))] = points[labels == v]
        key = ("mouth" if mouths else "channel", label)
        return self._foramen_voxels.get(key, np.zeros((0, 3)))


#: A canal voxel is a channel's mouth when the step from the face-adjacent foramen voxel to
#: it heads towards the mid-sagittal plane within this angle (deg): the channel continues
#: medially into the canal; voxels beside the channel are not its mouth.
MOUTH_MEDIAL_CONE_DEG = 60.0


def foramen_mouths(foramina: np.ndarray, canal: np.ndarray, grid: Volume,
                   midsagittal) -> np.ndarray:
    """Labels of the canal voxels at the mouth of each foramen channel (0 elsewhere).

    A foramen channel runs on medially into the canal (its root comes from there). Labelled
    on a grid, the channel stops at the last voxel centre outside the canal, and where it
    meets the canal wall obliquely the sliver of channel beside the wall holds no voxel centre
    at all: the labels lose the mouth (clearances up to 1.45 mm optimistic on 2 mm phantoms).
    A canal voxel sharing a face with a foramen voxel, in the medial direction (within
    :data:`MOUTH_MEDIAL_CONE_DEG`), takes its label; its centre counts as a foramen point.
    """
    mouths = np.zeros(foramina.shape, np.uint8)
    channel = foramina > 0
    face = ndimage.generate_binary_structure(3, 1)
    candidates = np.argwhere(canal & ~channel & ndimage.binary_dilation(channel, face))
    if candidates.shape[0] == 0:
        return mouths
    ijk = candidates[:, ::-1].astype(float)
    side = np.sign(midsagittal.signed_distance(grid.index_to_lps(ijk)))
    medial_lps = -side[:, None] * np.asarray(midsagittal.normal_lps, float)[None, :]
    cos_limit = np.cos(np.radians(MOUTH_MEDIAL_CONE_DEG))
    labels = np.zeros(candidates.shape[0], np.uint8)
    upper = np.asarray(foramina.shape) - 1
    for axis in range(3):  # array axes k, j, i
        for step in (-1, 1):
            offset = np.zeros(3, int)
            offset[axis] = step
            source = candidates - offset  # the foramen voxel one step back
            inside = np.all((source >= 0) & (source <= upper), axis=1)
            source = np.clip(source, 0, upper)
            label = np.where(inside, foramina[tuple(source.T)], 0)
            # World direction of the step from that foramen voxel to the candidate.
            step_ijk = offset[::-1] * grid.spacing_xyz
            step_lps = grid.direction @ step_ijk
            step_lps /= np.linalg.norm(step_lps)
            take = (label > 0) & (medial_lps @ step_lps >= cos_limit) & (labels == 0)
            labels[take] = label[take]
    keep = labels > 0
    mouths[tuple(candidates[keep].T)] = labels[keep]
    return mouths


def crop_sacrum(anatomy: SacralAnatomy, margin_mm: float = FIELD_MARGIN_MM) -> SacrumCrop:
    """Crop the anatomy's masks to the bone envelope plus ``margin_mm``, stored in LPS order.

    The crop's grid has its axes permuted and flipped towards L, P, S (exact, no resampling;
    an oblique grid keeps its residual rotation), so that every tie among equidistant voxels
    later on resolves the same way whatever the input's storage order.

    Raises
    ------
    AnatomyNotFoundError
        If the sacrum mask is empty.
    """
    sacrum = np.asarray(anatomy.sacrum.array)
    envelope = sacrum.astype(bool) | np.asarray(anatomy.canal.array).astype(bool)
    envelope |= np.asarray(anatomy.foramina.array) > 0
    box = _bounding_box(envelope)
    if box is None:
        raise AnatomyNotFoundError("the anatomy's sacrum mask is empty: nothing to plan in")
    margin = np.ceil(margin_mm / anatomy.sacrum.spacing_xyz[::-1]).astype(int)
    start = np.maximum(box[0] - margin, 0)
    stop = np.minimum(box[1] + margin, envelope.shape)
    window = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    stored = anatomy.sacrum.crop(start[::-1], stop[::-1])

    def canonical(array: np.ndarray) -> np.ndarray:
        # Axes permuted and flipped to point as near as possible to L, P, S (no interpolation):
        # distance transforms, nearest-voxel look-ups and axis loops below break their ties
        # by array order, which then is an order in LPS, the same however the scan was stored.
        return reorient_to_lps(stored.with_array(np.ascontiguousarray(array[window]))).array

    grid = reorient_to_lps(stored.with_array(np.zeros(stored.array.shape, np.uint8), "SEG"))
    canal = canonical(np.asarray(anatomy.canal.array).astype(np.uint8)).astype(bool)
    foramina = canonical(np.asarray(anatomy.foramina.array).astype(np.uint8))
    return SacrumCrop(
        grid=grid,
        sacrum=canonical(sacrum.astype(np.uint8)).astype(bool),
        canal=canal,
        foramina=foramina,
        mouths=foramen_mouths(foramina, canal, grid, anatomy.midsagittal),
        levels=canonical(np.asarray(anatomy.levels.array).astype(np.uint8)),
    )


@dataclass
class Fields:
    """Distance fields on a crop of the anatomy grid (``grid``; arrays are ``[k, j, i]``).

    Attributes
    ----------
    solid_sdf : distance (mm) outside the bone envelope (the sacrum with its canal and
        foramina filled) to its surface; minus half a voxel inside (only the sign is used there).
    cortex_sdf : distance (mm) from inside the bone envelope to the outside beyond the cortex of
        the sacral bodies (every outer surface except the posterior one and the laminae,
        through which the needle enters); negative outside beyond that cortex.
    sacrum, canal : float masks (1 inside), for trilinear sampling.
    foramen_distance : distance (mm) to the nearest anterior foramen (0 inside one), its
        channel's mouth in the canal included (:func:`foramen_mouths`).
    bone_depth : distance (mm) from inside the sacral bone to anything that is not (canal,
        foramina, outside); 0 outside the bone.
    canal_level : level index of each canal voxel (0 outside the canal).
    crop : the :class:`SacrumCrop` the fields were cut from (level look-ups, foramina).
    """

    grid: Volume
    solid_sdf: np.ndarray
    cortex_sdf: np.ndarray
    sacrum: np.ndarray
    canal: np.ndarray
    foramen_distance: np.ndarray
    bone_depth: np.ndarray
    canal_level: np.ndarray
    crop: SacrumCrop
    _cranial_canal: dict[int, np.ndarray] = field(default_factory=dict)

    def sample(self, array: np.ndarray, points_lps: np.ndarray, order: int = 1,
               fill_value: float = 0.0) -> np.ndarray:
        """Interpolate one of the field arrays at (..., 3) LPS points."""
        return self.grid.with_array(array).sample(points_lps, order=order, fill_value=fill_value)

    def cranial_canal_distance(self, crossing_level: int) -> np.ndarray:
        """Distance (mm) to the canal at the levels cranial to ``crossing_level`` (1..6).

        Cached per level.
        """
        if crossing_level not in self._cranial_canal:
            cranial = (self.canal_level > 0) & (self.canal_level < crossing_level)
            spacing_kji = self.grid.spacing_xyz[::-1]
            self._cranial_canal[crossing_level] = _distance_mm(cranial, spacing_kji)
        return self._cranial_canal[crossing_level]


def build_fields(crop: SacrumCrop, region_lps: np.ndarray, anatomy: SacralAnatomy,
                 margin_mm: float = FIELD_MARGIN_MM) -> Fields:
    """Compute the distance fields where needles can go.

    Parameters
    ----------
    crop : SacrumCrop
    region_lps : (m, 3) float
        Points whose bounding box (plus ``margin_mm``) needs the fields: the target and the
        ends of the longest candidate needles' bone parts. The fields are cut to it, which
        keeps the distance transforms small on fine scans.
    """
    index = crop.grid.lps_to_index(np.asarray(region_lps, float).reshape(-1, 3))
    margin = margin_mm / crop.grid.spacing_xyz
    start = np.maximum(np.floor(index.min(axis=0) - margin).astype(int), 0)
    stop = np.minimum(np.ceil(index.max(axis=0) + margin).astype(int) + 1, crop.grid.shape_ijk)
    if np.any(stop <= start):
        start, stop = np.zeros(3, int), np.asarray(crop.grid.shape_ijk)
    window = tuple(slice(a, b) for a, b in zip(start[::-1], stop[::-1], strict=True))
    grid = crop.grid.crop(start, stop)
    sacrum, canal = crop.sacrum[window], crop.canal[window]
    foramina, levels = crop.foramina[window], crop.levels[window]
    mouths = crop.mouths[window] > 0
    solid = sacrum | canal | (foramina > 0)
    spacing_kji = grid.spacing_xyz[::-1]

    solid_sdf, cortex_sdf = _envelope_fields(solid, levels > 0, grid, _posterior_lps(anatomy))
    canal_level = np.zeros(canal.shape, np.uint8)
    k, j, i = np.nonzero(canal)
    if k.size:
        canal_lps = grid.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
        canal_level[k, j, i] = crop.level_at(canal_lps)
    return Fields(
        grid=grid,
        solid_sdf=solid_sdf,
        cortex_sdf=cortex_sdf,
        sacrum=sacrum.astype(np.float32),
        canal=canal.astype(np.float32),
        foramen_distance=_foramen_distance_mm(foramina > 0, mouths, spacing_kji),
        bone_depth=_depth_mm(sacrum, spacing_kji),
        canal_level=canal_level,
        crop=crop,
    )


def _foramen_distance_mm(channels: np.ndarray, mouths: np.ndarray,
                         spacing_kji: np.ndarray) -> np.ndarray:
    """Distance (mm) to the foramina: to the channels' surface, or to a mouth voxel centre."""
    distance = _distance_mm(channels, spacing_kji)
    if mouths.any():
        to_mouth = ndimage.distance_transform_edt(~mouths, sampling=spacing_kji)
        distance = np.minimum(distance, to_mouth.astype(np.float32))
    return distance


def _posterior_lps(anatomy: SacralAnatomy) -> np.ndarray:
    """Unit vector pointing posteriorly for this sacrum: superior (S5 -> S1) x left."""
    centers = anatomy.level_centers_lps
    left = np.asarray(anatomy.midsagittal.normal_lps, float)
    if "S1" in centers and "S5" in centers:
        superior = np.asarray(centers["S1"], float) - np.asarray(centers["S5"], float)
    else:
        superior = np.array([0.0, 0.0, 1.0])
    posterior = np.cross(superior, left)
    norm = np.linalg.norm(posterior)
    return posterior / norm if norm > 0 else np.array([0.0, 1.0, 0.0])


def _envelope_fields(
    solid: np.ndarray, bodies: np.ndarray, grid: Volume, posterior_lps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the bone envelope, and to the outside beyond the bodies' cortex.

    An outside voxel lies beyond the cortex the needle must not breach when its nearest
    envelope voxel belongs to a sacral body (not the canal, laminae or alae: the hiatus notch
    and the posterior surface are where the needle enters) and the vector from that voxel to it
    does not point within POSTERIOR_SURFACE_CONE_DEG of posterior. Without body labels, the
    direction rule alone decides.
    """
    spacing_kji = grid.spacing_xyz[::-1]
    half_voxel_mm = 0.5 * float(spacing_kji.min())
    outside, indices = ndimage.distance_transform_edt(
        ~solid, sampling=spacing_kji, return_indices=True
    )
    # Only the sign inside matters (where a needle leaves the envelope; other bone is looked
    # for outside it): a constant half voxel inside puts the zero between voxel centres.
    solid_sdf = np.where(solid, -half_voxel_mm, outside - half_voxel_mm)

    offset_kji = (np.indices(solid.shape) - indices).astype(np.float32)
    offset_kji *= spacing_kji.reshape(3, 1, 1, 1).astype(np.float32)
    posterior_ijk = grid.direction.T @ posterior_lps  # world direction in index-axis terms
    along_posterior = np.tensordot(posterior_ijk[::-1].astype(np.float32), offset_kji, axes=1)
    cos_limit = np.cos(np.radians(POSTERIOR_SURFACE_CONE_DEG))
    beyond_cortex = ~solid & (along_posterior < cos_limit * outside)
    if bodies.any():
        beyond_cortex &= bodies[tuple(indices)]
    if beyond_cortex.any():
        to_beyond = _surface_distance_mm(beyond_cortex, spacing_kji)
    else:
        to_beyond = np.full(solid.shape, FAR_MM)
    cortex_sdf = np.where(beyond_cortex, -(outside - half_voxel_mm), to_beyond)
    return solid_sdf.astype(np.float32), cortex_sdf.astype(np.float32)


# ---------------------------------------------------------------------- anatomical frame
@dataclass(frozen=True)
class Frame:
    """The directions the search is parametrised in (LPS unit vectors).

    ``tangent_lps`` is the anterior-edge tangent near the target, pointing cranially (the way
    the needle advances); ``left_lps`` the mid-sagittal normal (patient left);
    ``anterior_lps`` = left x tangent, the in-plane normal pointing anteriorly.
    """

    tangent_lps: np.ndarray
    left_lps: np.ndarray
    anterior_lps: np.ndarray
    edge_point_lps: np.ndarray  # point of the anterior cortex curve nearest the target

    def direction(self, sagittal_deg, out_of_plane_deg) -> np.ndarray:
        """(..., 3) needle directions (skin -> target) for tilts in degrees.

        ``sagittal_deg`` > 0 tilts the direction anteriorly within the mid-sagittal plane;
        ``out_of_plane_deg`` > 0 tilts it towards patient left.
        """
        alpha = np.radians(np.asarray(sagittal_deg, float))[..., None]
        beta = np.radians(np.asarray(out_of_plane_deg, float))[..., None]
        in_plane = np.cos(alpha) * self.tangent_lps + np.sin(alpha) * self.anterior_lps
        return np.cos(beta) * in_plane + np.sin(beta) * self.left_lps

    def angles(self, directions_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(total angle to the tangent, sagittal tilt, out-of-plane tilt) in degrees."""
        d = np.asarray(directions_lps, float)
        total = np.degrees(np.arccos(np.clip(d @ self.tangent_lps, -1.0, 1.0)))
        out_of_plane = np.degrees(np.arcsin(np.clip(d @ self.left_lps, -1.0, 1.0)))
        sagittal = np.degrees(np.arctan2(d @ self.anterior_lps, d @ self.tangent_lps))
        return total, sagittal, out_of_plane


def anterior_edge_frame(anatomy: SacralAnatomy, target_lps: np.ndarray) -> Frame:
    """The local anterior-edge tangent near the target and the mid-sagittal directions.

    The tangent is the direction of the anterior-cortex curve over a stretch of
    +/- :data:`TANGENT_HALF_WINDOW_MM` of arc length centred on the curve point nearest the
    target (the transverse ridges trimmed, see :func:`_edge_line`), in the mid-sagittal plane,
    oriented from the tip towards the promontory.
    """
    curve = np.asarray(anatomy.anterior_cortex_lps, float)
    if curve.ndim != 2 or curve.shape[0] < 2:
        raise AnatomyNotFoundError(
            "the anatomy has no anterior-cortex curve (need at least 2 points); "
            "the needle direction cannot be referred to the anterior edge"
        )
    left = np.asarray(anatomy.midsagittal.normal_lps, float)
    left = left / np.linalg.norm(left)
    points, arc = resample_polyline(curve, CURVE_STEP_MM)
    nearest = int(np.argmin(np.linalg.norm(points - target_lps, axis=1)))
    # A window symmetric about the foot: on a smooth arc the chord of a symmetric stretch is
    # parallel to the tangent at its middle, whatever the voxelisation.
    half = min(TANGENT_HALF_WINDOW_MM, arc[nearest] - arc[0], arc[-1] - arc[nearest])
    half = max(half, MIN_HALF_WINDOW_MM)
    local = points[np.abs(arc - arc[nearest]) <= half]
    if local.shape[0] < 3:
        local = points[max(nearest - 1, 0) : nearest + 2]
    tangent = _edge_line(local, left)
    toward_promontory = points[0] - points[-1]
    if tangent @ toward_promontory < 0:
        tangent = -tangent
    tangent = tangent - (tangent @ left) * left
    tangent /= np.linalg.norm(tangent)
    anterior = np.cross(left, tangent)
    return Frame(tangent, left, anterior / np.linalg.norm(anterior), points[nearest])


def _edge_line(local_lps: np.ndarray, left_lps: np.ndarray) -> np.ndarray:
    """Direction of the anterior edge over a stretch, ignoring the transverse ridges.

    The fused-disc ridges bulge anteriorly from the edge; a line fitted to every point leans
    towards them. Fit, drop the points lying anterior of the line by more than
    RIDGE_TOLERANCE_MM, refit (a few rounds).
    """
    toward_promontory = local_lps[0] - local_lps[-1]  # the curve runs promontory -> tip

    def fit(points: np.ndarray) -> np.ndarray:
        direction = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)[2][0]
        return direction if direction @ toward_promontory >= 0 else -direction

    kept = local_lps
    direction = fit(kept)
    for _ in range(RIDGE_ROUNDS):
        anterior = np.cross(left_lps, direction)  # direction points cranially
        residual = (local_lps - kept.mean(axis=0)) @ anterior
        low = residual <= np.median(residual) + RIDGE_TOLERANCE_MM
        if low.sum() < 3:
            break
        kept = local_lps[low]
        direction = fit(kept)
    return direction


def level_name(index: int) -> str | None:
    """``"S1".."S5"`` for a level index 1..5, None for 0."""
    return LEVEL_NAMES[index - 1] if 1 <= index <= len(LEVEL_NAMES) else None
