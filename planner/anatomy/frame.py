"""The curved sacral frame: arc length along the anterior cortex, depth behind it, and offset.

Coordinates ``(x, s, d)`` in mm:

* ``x``: signed distance from the mid-sagittal plane (+ patient left);
* ``s``: arc length along the smoothed anterior cortex on the mid-sagittal plane, 0 at the
  promontory (anterior-superior corner of S1), increasing caudally to the tip at ``height_mm``;
* ``d``: depth behind the cortex along its in-plane normal (+ posterior, into the bone).

The frame is found from the sacrum mask alone: the anterior edge of the first bone run on lines
across the mid-sagittal slab is fitted with a cubic, twice (the second pass measures along the
normals of the first fit). Beyond both ends the curve continues along its end tangents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from planner.anatomy.curve_fit import local_polynomial, resample_polyline
from planner.anatomy.model import Plane
from planner.errors import AnatomyNotFoundError
from planner.volume import Volume

#: Half thickness of the mid-sagittal slab whose mask is averaged for the profiles (mm).
SLAB_HALF_MM = 1.5
#: Step along each profile and between stations (mm).
PROFILE_STEP_MM = 0.5
STATION_STEP_MM = 1.0
#: Gaps in a bone run shorter than this are bridged (fracture lines, unfused disc clefts) (mm).
RUN_GAP_MM = 2.5
#: Shortest body run that counts as a vertebral body on a profile (mm).
MIN_BODY_RUN_MM = 3.0
#: Largest jump of the anterior edge between neighbouring stations inside one body (mm).
MAX_EDGE_JUMP_MM = 8.0
#: Cranially the body column ends where its run is thinner than this fraction of the thickest.
CRANIAL_RUN_FRACTION = 0.5
#: Largest posterior drift of the anterior edge per mm going cranially (1 = 45 degrees from the
#: station's axis): steeper means the line has passed the promontory onto the S1 endplate.
MAX_CRANIAL_SLOPE = 1.0
#: Stations without a body that the column may bridge (disc clefts, fracture gaps).
MAX_GAP_STATIONS = 3
#: Degree of the polynomial fitted to the anterior edge (mm -> mm).
CURVE_DEGREE = 3
#: Refinement of the cubic (see :func:`_refine`): passes, how far past the tip each pass looks
#: (mm), the depth range of its profiles around the curve (mm) and the Gaussian sigma of the
#: local quadratic that smooths the edge (mm; longer than the fused-disc ridges, shorter than
#: the bend of a kyphotic sacrum).
REFINE_PASSES = 2
TIP_SEARCH_MM = 20.0
REFINE_DEPTH_MM = 40.0
FRAME_SMOOTHING_MM = 8.0
#: How far beyond both ends the lookup of (s, d) extends the curve (mm).
EXTENSION_MM = 80.0
#: Pixel of the in-plane lookup table of (s, d) (mm).
LOOKUP_STEP_MM = 0.5


@dataclass(frozen=True)
class SacralFrame:
    """Mid-sagittal plane plus the anterior-cortex curve on it (see module docstring).

    Attributes
    ----------
    plane : Plane
        Mid-sagittal plane, normal to patient left.
    superior_lps, posterior_lps : (3,) ndarray
        In-plane unit axes (``u`` and ``w``); ``left, posterior, superior`` is right-handed.
    stations_uw : (N, 2) ndarray
        Curve points (u, w) in mm every ``STATION_STEP_MM`` of arc, from ``s_mm[0]`` < 0 to
        ``s_mm[-1]`` > ``height_mm`` (the ends are straight extensions).
    tangent_uw, normal_uw : (N, 2) ndarray
        Unit tangent (caudal) and normal (posterior) at each station.
    s_mm : (N,) ndarray
        Arc length of each station.
    height_mm : float
        Arc length from the promontory to the tip.
    """

    plane: Plane
    superior_lps: np.ndarray
    posterior_lps: np.ndarray
    stations_uw: np.ndarray
    tangent_uw: np.ndarray
    normal_uw: np.ndarray
    s_mm: np.ndarray
    height_mm: float

    # ------------------------------------------------------------------ mapping
    def plane_uw(self, points_lps: np.ndarray) -> np.ndarray:
        """(..., 2) in-plane coordinates (u superior, w posterior) of LPS points."""
        rel = np.asarray(points_lps, float) - self.plane.point_lps
        return np.stack([rel @ self.superior_lps, rel @ self.posterior_lps], axis=-1)

    def uw_to_lps(self, uw: np.ndarray, x_mm=0.0) -> np.ndarray:
        uw = np.asarray(uw, float)
        x = np.asarray(x_mm, float)[..., None]
        return (
            self.plane.point_lps
            + uw[..., :1] * self.superior_lps
            + uw[..., 1:] * self.posterior_lps
            + x * self.plane.normal_lps
        )

    def curve_uw(self, s_mm) -> np.ndarray:
        """(..., 2) point of the curve at arc length s (interpolated between stations)."""
        s = np.asarray(s_mm, float)
        return np.stack(
            [np.interp(s, self.s_mm, self.stations_uw[:, c]) for c in range(2)], axis=-1
        )

    def normal_at(self, s_mm) -> np.ndarray:
        s = np.asarray(s_mm, float)
        normal = np.stack([np.interp(s, self.s_mm, self.normal_uw[:, c]) for c in range(2)], -1)
        return normal / np.linalg.norm(normal, axis=-1, keepdims=True)

    def to_lps(self, x_mm, s_mm, d_mm) -> np.ndarray:
        """(..., 3) LPS points of frame coordinates (broadcast arrays, mm)."""
        x, s, d = np.broadcast_arrays(*(np.asarray(v, float) for v in (x_mm, s_mm, d_mm)))
        uw = self.curve_uw(s) + d[..., None] * self.normal_at(s)
        return self.uw_to_lps(uw, x)

    def from_lps(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame coordinates ``(x, s, d)`` of (..., 3) LPS points (nearest curve station)."""
        points = np.asarray(points_lps, float)
        x = self.plane.signed_distance(points)
        s, d = self.sd_from_uw(self.plane_uw(points))
        return x, s, d

    def sd_from_uw(self, uw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arc length and depth (mm) of in-plane points (..., 2), exact nearest station."""
        index = _nearest_station(self.stations_uw, uw)
        rel = uw - self.stations_uw[index]
        s = self.s_mm[index] + np.sum(rel * self.tangent_uw[index], axis=-1)
        d = np.sum(rel * self.normal_uw[index], axis=-1)
        return s, d

    def _sd_table(self, uw_low: np.ndarray, uw_high: np.ndarray):
        """Tables of s and d (mm) on an in-plane grid covering ``uw_low..uw_high``."""
        low = uw_low - LOOKUP_STEP_MM
        axes = [
            np.arange(low[c], uw_high[c] + 2 * LOOKUP_STEP_MM, LOOKUP_STEP_MM) for c in range(2)
        ]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        s_table, d_table = self.sd_from_uw(grid)
        return low, s_table, d_table

    def grid_coordinates(self, volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame coordinates ``(x, s, d)`` (float32 arrays ``[k, j, i]``) of every voxel.

        ``x`` is exact; ``s`` and ``d`` are interpolated bilinearly from a table over the
        volume's in-plane footprint (``LOOKUP_STEP_MM``), which is exact to well under 0.1 mm
        away from the curve's centre of curvature.
        """
        # LPS is affine in (i, j, k): sum three 1D terms instead of a (N, 3) matrix product.
        shape_kji = volume.array.shape
        axes_vectors = volume.direction * volume.spacing_xyz[None, :]
        origin = volume.origin_lps - self.plane.point_lps
        basis = np.stack([self.plane.normal_lps, self.superior_lps, self.posterior_lps])
        terms = []
        for row in basis:
            per_axis = row @ axes_vectors  # change per unit i, j, k
            value = (
                np.float32(row @ origin)
                + (per_axis[2] * np.arange(shape_kji[0], dtype=np.float32))[:, None, None]
                + (per_axis[1] * np.arange(shape_kji[1], dtype=np.float32))[None, :, None]
                + (per_axis[0] * np.arange(shape_kji[2], dtype=np.float32))[None, None, :]
            )
            terms.append(value.astype(np.float32))
        x, u, w = terms
        uw_low = np.array([u.min(), w.min()], float)
        uw_high = np.array([u.max(), w.max()], float)
        low, s_table, d_table = self._sd_table(uw_low, uw_high)
        coordinates = np.stack([(u - low[0]) / LOOKUP_STEP_MM, (w - low[1]) / LOOKUP_STEP_MM])
        s = ndimage.map_coordinates(
            s_table, coordinates, order=1, mode="nearest", output=np.float32
        )
        d = ndimage.map_coordinates(
            d_table, coordinates, order=1, mode="nearest", output=np.float32
        )
        return x, s, d


def _nearest_station(stations_uw: np.ndarray, uw: np.ndarray) -> np.ndarray:
    tree = cKDTree(stations_uw)
    _, index = tree.query(uw.reshape(-1, 2), workers=1)
    return index.reshape(uw.shape[:-1])


# ---------------------------------------------------------------------- construction
def _in_plane_axes(plane: Plane) -> tuple[np.ndarray, np.ndarray]:
    left = plane.normal_lps
    superior = np.array([0.0, 0.0, 1.0]) - left[2] * left
    superior /= np.linalg.norm(superior)
    posterior = np.cross(superior, left)
    return superior, posterior


def _slab_profiles(
    mask: Volume, plane: Plane, sup: np.ndarray, post: np.ndarray, centres_uw, normals_uw, d_mm
) -> np.ndarray:
    """Slab-averaged mask values (n_stations, n_d) along the normals (0..1)."""
    offsets = np.arange(-SLAB_HALF_MM, SLAB_HALF_MM + 1e-6, 0.75)
    uw = centres_uw[:, None, :] + d_mm[None, :, None] * normals_uw[:, None, :]
    base = plane.point_lps + uw[..., :1] * sup + uw[..., 1:] * post
    total = np.zeros(uw.shape[:2])
    for offset in offsets:
        total += mask.sample(base + offset * plane.normal_lps, order=1)
    return total / len(offsets)


def _first_run(profile_inside: np.ndarray, gap_steps: int) -> tuple[int, int] | None:
    """(first, last) index of the first bone run from the anterior end, bridging short gaps."""
    inside = np.flatnonzero(profile_inside)
    if inside.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(inside) > gap_steps + 1)
    last = inside[breaks[0]] if breaks.size else inside[-1]
    return int(inside[0]), int(last)


def _anterior_edges(profiles: np.ndarray, d_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample anterior edge depth and body run length per station (NaN where none)."""
    gap_steps = int(round(RUN_GAP_MM / PROFILE_STEP_MM))
    edge = np.full(len(profiles), np.nan)
    length = np.zeros(len(profiles))
    for index, profile in enumerate(profiles):
        run = _first_run(profile >= 0.5, gap_steps)
        if run is None:
            continue
        first, last = run
        if first > 0:  # interpolate the 0.5 crossing between the two samples
            low, high = profile[first - 1], profile[first]
            fraction = (0.5 - low) / max(high - low, 1e-6)
            edge[index] = d_mm[first - 1] + fraction * PROFILE_STEP_MM
        else:
            edge[index] = d_mm[0]
        length[index] = (last - first + 1) * PROFILE_STEP_MM
    return edge, length


def _columns(edge: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    """Runs of consistent stations (short gaps bridged, no large edge jumps), as index arrays."""
    columns: list[list[int]] = []
    previous = None
    for index in np.flatnonzero(valid):
        if (
            previous is None
            or index - previous > MAX_GAP_STATIONS + 1
            or abs(edge[index] - edge[previous]) > MAX_EDGE_JUMP_MM
        ):
            columns.append([])
        columns[-1].append(int(index))
        previous = index
    return [np.asarray(column) for column in columns]


def _valid_segment(edge: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Boolean stations of the sacral body column.

    The longest consistent column is the sacrum (a piece of L5 or the coccyx left in the mask is
    shorter and separated by a disc). Cranially it is trimmed from its thickest body (S1) where
    the run thins below ``CRANIAL_RUN_FRACTION`` of it or the edge runs back steeply (the line
    has left the S1 endplate and meets only the posterior elements).
    """
    valid = np.isfinite(edge) & (length >= MIN_BODY_RUN_MM)
    keep = np.zeros(len(edge), bool)
    columns = _columns(edge, valid)
    if not columns:
        return keep
    column = max(columns, key=len)
    thickest = column[int(np.argmax(length[column]))]
    keep[column[column >= thickest]] = True
    previous = thickest
    for index in column[column < thickest][::-1]:  # cranially, stations ordered cranial first
        steps = previous - index
        if length[index] < CRANIAL_RUN_FRACTION * length[thickest] or (
            edge[index] - edge[previous] > MAX_CRANIAL_SLOPE * STATION_STEP_MM * steps
        ):
            break
        keep[index] = True
        previous = index
    return keep


def _curve_from_polynomial(coefficients, a_min, a_max, axis_a, axis_b, origin_uw):
    """Stations every STATION_STEP_MM along b = p(a), plus straight extensions."""
    a_dense = np.linspace(a_min, a_max, 2000)
    b_dense = np.polyval(coefficients, a_dense)
    points = origin_uw + a_dense[:, None] * axis_a + b_dense[:, None] * axis_b
    core, _ = resample_polyline(points, STATION_STEP_MM)
    return _with_extensions(core)


def _with_extensions(core: np.ndarray):
    """Stations (the core every STATION_STEP_MM of arc from s = 0) plus straight extensions.

    Returns stations (N, 2), unit caudal tangents (N, 2) and arc lengths (N,).
    """
    tangent = np.gradient(core, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    s_core = np.arange(len(core)) * STATION_STEP_MM
    head = np.arange(-EXTENSION_MM, 0.0, STATION_STEP_MM)
    tail = np.arange(1, int(EXTENSION_MM / STATION_STEP_MM) + 1) * STATION_STEP_MM
    stations = np.concatenate(
        [core[0] + head[:, None] * tangent[0], core, core[-1] + tail[:, None] * tangent[-1]]
    )
    tangents = np.concatenate(
        [np.repeat(tangent[:1], len(head), 0), tangent, np.repeat(tangent[-1:], len(tail), 0)]
    )
    s_all = np.concatenate([head, s_core, s_core[-1] + tail])
    return stations, tangents, s_all


def _refine(mask, plane, superior, posterior, stations, tangents, s_all, height):
    """Make the curve follow the mask's anterior edge where a cubic cannot (REFINE_PASSES).

    A cubic over the whole sacrum cuts the bend of a strongly kyphotic sacrum and misses its
    tip (which then reads as the end of the body column): each pass measures the anterior edge
    along the current normals, from the promontory to ``TIP_SEARCH_MM`` past the current tip,
    keeps the body column, smooths the edge's offset with a local quadratic (which follows a
    constant curvature without bias) and moves the curve onto it.
    """
    d_mm = np.arange(-REFINE_DEPTH_MM, REFINE_DEPTH_MM + 1e-9, PROFILE_STEP_MM)
    normals_all = _oriented_normals(tangents)
    for _ in range(REFINE_PASSES):
        s_st = np.arange(0.0, height + TIP_SEARCH_MM + 1e-9, STATION_STEP_MM)
        centres = np.stack([np.interp(s_st, s_all, stations[:, c]) for c in range(2)], -1)
        normals = np.stack([np.interp(s_st, s_all, normals_all[:, c]) for c in range(2)], -1)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        profiles = _slab_profiles(mask, plane, superior, posterior, centres, normals, d_mm)
        edge, length = _anterior_edges(profiles, d_mm)
        valid = np.flatnonzero(_valid_segment(edge, length))
        if valid.size < 10:
            break
        offset, _ = local_polynomial(s_st[valid], edge[valid], FRAME_SMOOTHING_MM, degree=2)
        points = centres[valid] + offset[:, None] * normals[valid]
        core, arc = resample_polyline(points, STATION_STEP_MM)
        if len(core) < 10:
            break
        stations, tangents, s_all = _with_extensions(core)
        normals_all = _oriented_normals(tangents)
        height = float(arc[-1])
    return stations, tangents, s_all, height


def _oriented_normals(tangent_uw: np.ndarray) -> np.ndarray:
    """In-plane normals pointing posteriorly (+w side of the caudal tangent)."""
    normal = np.stack([-tangent_uw[:, 1], tangent_uw[:, 0]], axis=-1)
    # The sacrum's concavity faces anterior: orient so the normal's w component is positive
    # on average (posterior), which holds for any pelvic tilt within +/-90 degrees.
    if normal[:, 1].mean() < 0:
        normal = -normal
    return normal


def build_frame(mask: Volume, plane: Plane) -> SacralFrame:
    """Fit the curved sacral frame to a sacrum mask.

    Parameters
    ----------
    mask : Volume (bool)
        Sacrum mask (ideally cropped to the sacrum for speed).
    plane : Plane
        Mid-sagittal plane (normal to patient left).

    Raises
    ------
    AnatomyNotFoundError
        If no vertebral body column is found on the mid-sagittal plane.
    """
    superior, posterior = _in_plane_axes(plane)
    # All mask voxels (no subsampling, whose choice would depend on the storage order).
    points_lps = mask.index_to_lps(np.argwhere(mask.array)[:, ::-1].astype(float))
    x = plane.signed_distance(points_lps)
    rel = points_lps - plane.point_lps
    uw = np.stack([rel @ superior, rel @ posterior], axis=-1)[np.abs(x) <= 3.0]
    if len(uw) < 20:
        raise AnatomyNotFoundError(
            "the sacrum mask has almost no bone on its mid-sagittal plane; "
            "check that the mask is a sacrum"
        )
    origin_uw = uw.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((uw - origin_uw).T))
    axis_a = vectors[:, -1] if vectors[0, -1] < 0 else -vectors[:, -1]  # pointing caudally
    axis_b = np.array([-axis_a[1], axis_a[0]])
    if axis_b[1] < 0:
        axis_b = -axis_b  # posterior
    proj_a = (uw - origin_uw) @ axis_a
    a_min, a_max = proj_a.min() - 5.0, proj_a.max() + 5.0
    d_mm = np.arange(-60.0, 60.0 + 1e-9, PROFILE_STEP_MM)

    # Pass 1: lines across the principal axis; pass 2: along the normals of the first fit.
    a_st = np.arange(a_min, a_max, STATION_STEP_MM)
    centres = origin_uw + a_st[:, None] * axis_a
    normals = np.repeat(axis_b[None], len(a_st), 0)
    for _ in range(2):
        profiles = _slab_profiles(mask, plane, superior, posterior, centres, normals, d_mm)
        edge, length = _anterior_edges(profiles, d_mm)
        valid = _valid_segment(edge, length)
        if valid.sum() < 10:
            raise AnatomyNotFoundError(
                "no sacral body column found on the mid-sagittal plane of the sacrum mask"
            )
        edge_uw = centres[valid] + edge[valid, None] * normals[valid]
        a_edge = (edge_uw - origin_uw) @ axis_a
        b_edge = (edge_uw - origin_uw) @ axis_b
        degree = min(CURVE_DEGREE, max(1, len(a_edge) // 8))
        coefficients = np.polyfit(a_edge, b_edge, degree)
        stations, tangents, s_all = _curve_from_polynomial(
            coefficients, a_edge.min(), a_edge.max(), axis_a, axis_b, origin_uw
        )
        normals_all = _oriented_normals(tangents)
        core = (s_all >= 0) & (s_all <= s_all[s_all >= 0].max() - EXTENSION_MM + 1e-6)
        centres, normals = stations[core], normals_all[core]
    height = float(s_all[core].max())
    stations, tangents, s_all, height = _refine(
        mask, plane, superior, posterior, stations, tangents, s_all, height
    )
    normals_all = _oriented_normals(tangents)
    return SacralFrame(
        plane=plane,
        superior_lps=superior,
        posterior_lps=posterior,
        stations_uw=stations,
        tangent_uw=tangents,
        normal_uw=normals_all,
        s_mm=s_all,
        height_mm=height,
    )


def straighten(
    volumes: list[Volume], frame: SacralFrame, x_range, s_range, d_range, step_mm: float
) -> list[np.ndarray]:
    """Sample volumes that share one grid on the straightened grid (trilinear), ``[s, d, x]``.

    Parameters
    ----------
    volumes : list of Volume
        On the same grid (e.g. a CT crop and its mask); bool arrays give occupancy in 0..1.
    x_range, s_range, d_range : (2,) float
        Inclusive coordinate ranges (mm); grid points every ``step_mm`` from the low end.
    """
    s_axis, d_axis, x_axis = frame_grid_axes(x_range, s_range, d_range, step_mm)
    # Index coordinates are affine in LPS: map the (s, d) plane points once, then add x times
    # the index step of the left normal (no (N, 3) matrix product over millions of points).
    base_uw = frame.curve_uw(s_axis)
    normal_uw = frame.normal_at(s_axis)
    uw = base_uw[:, None, :] + d_axis[None, :, None] * normal_uw[:, None, :]
    reference = volumes[0]
    base_ijk = reference.lps_to_index(frame.uw_to_lps(uw))  # (n_s, n_d, 3)
    left_ijk = (reference.direction.T @ frame.plane.normal_lps) / reference.spacing_xyz
    shape = (len(s_axis), len(d_axis), len(x_axis))
    coordinates_kji = np.empty((3, *shape), np.float32)
    for axis in range(3):
        coordinates_kji[2 - axis] = (
            base_ijk[:, :, None, axis] + x_axis[None, None, :] * left_ijk[axis]
        )
    coordinates_kji = coordinates_kji.reshape(3, -1)
    results = []
    for volume in volumes:
        array = volume.array
        if array.dtype == bool:
            array = array.astype(np.float32)
        values = ndimage.map_coordinates(
            array,
            coordinates_kji,
            order=1,
            mode="constant",
            cval=0.0,
            prefilter=False,
            output=np.float32,
        )
        results.append(values.reshape(shape))
    return results


def frame_grid_axes(x_range, s_range, d_range, step_mm: float):
    """The 1D coordinates (s, d, x) of the straightened grid (mm)."""
    return tuple(np.arange(low, high + 1e-9, step_mm) for low, high in (s_range, d_range, x_range))

