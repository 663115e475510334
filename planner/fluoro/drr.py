"""Digitally reconstructed radiographs: perspective line integrals of attenuation through a CT.

Method (perspective shear-warp, Joseph-style sampling)
------------------------------------------------------
Every ray from the source crosses the slices of the volume along the index axis most parallel to
the beam exactly once. Seen from the source, each slice maps onto a fixed *intermediate plane*
parallel to the slices by a pure scale and shift (a central projection between parallel planes),
so resampling a slice there is separable: one 1D linear interpolation along rows, one along
columns (two gathers, no 2D interpolation kernel). The slices are summed in the intermediate
image, which one 2D homography then maps to the detector; each detector pixel is finally weighted
by the length (mm) of its ray between two consecutive slices. The result equals the sum over
slices of bilinearly interpolated attenuation times the step length, the classic Joseph
projector, with one extra bilinear resampling at the end.

Cost: one pass over the voxels inside the view cone (the volume is cropped to it first), with two
gathers per slice; independent of detector resolution except for the final warp. The slice loop
runs in threads (numpy releases the GIL in gathers and arithmetic).

Units: attenuation ``mu`` in 1/mm, from HU as ``mu = mu_water * (1 + HU / 1000)`` clipped at 0
(air and anything below it attenuate nothing); the DRR value of a pixel is the dimensionless line
integral of ``mu`` (mm * 1/mm). :func:`radiograph` turns it into a radiograph-like picture.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from planner.errors import GeometryError
from planner.fluoro.carm import Camera, source_from_matrix
from planner.volume import Volume

#: Linear attenuation of water, 1/mm, at an effective energy of about 60 keV (NIST XCOM).
MU_WATER_PER_MM = 0.0206
#: HU of air; attenuation is proportional to ``HU - AIR_HU`` above it and zero below.
AIR_HU = -1000.0
#: HU difference between air and water (the 1000 in ``mu_water * (1 + HU / 1000)``).
HU_PER_WATER_STEP = 1000.0
#: Number of worker threads for the slice loop (the machine has two cores).
DEFAULT_THREADS = 2
#: A volume counts as having air when at least this fraction of its voxels is below
#: AIR_SEARCH_HU; otherwise :func:`suggested_min_hu` treats it as bone-only.
AIR_SEARCH_HU = -500.0
AIR_FRACTION_MIN = 0.01
#: Lowest HU kept in a DRR of a bone-only scan (0 HU, the filler around the bones, is dropped).
BONE_ONLY_MIN_HU = 1.0
#: Display window: percentiles of the line integrals in the central half of the detector.
DISPLAY_WINDOW_PERCENTILES = (1.0, 99.7)
#: Exponent of the radiograph-like display (larger: more contrast in the dense end).
DISPLAY_CONTRAST = 1.5
#: Dynamic-range compression of whole-body DRRs: width (detector pixels; 25 px is about 9 mm at
#: the isocentre with the default C-arm) and weight of the subtracted blur.
BACKGROUND_SIGMA_PX = 35.0
BACKGROUND_WEIGHT = 0.65
#: Slices copied (and transposed) at a time by each worker thread; 32 int16 values fill one
#: 64-byte cache line when the slices run along the fastest-varying array axis.
SLICE_BLOCK = 32
#: Rows per tile of the transposing copy.
TRANSPOSE_TILE_ROWS = 16
#: Intermediate-image samples per voxel along each slice axis (1 = voxel resolution).
DEFAULT_OVERSAMPLE = 2


def mu_from_hu(hu: np.ndarray, mu_water: float = MU_WATER_PER_MM, min_hu: float | None = None):
    """Linear attenuation (1/mm, float32) from Hounsfield units, air and below clipped to 0.

    Parameters
    ----------
    hu : ndarray
        Hounsfield units.
    mu_water : float
        Attenuation of water, 1/mm.
    min_hu : float, optional
        Treat every voxel below this HU as attenuating nothing (e.g. 150 for a bone-only DRR).
    """
    mu = np.asarray(hu, dtype=np.float32) * np.float32(mu_water / 1000.0) + np.float32(mu_water)
    np.maximum(mu, 0.0, out=mu)
    if min_hu is not None:
        mu[np.asarray(hu) < min_hu] = 0.0
    return mu


def suggested_min_hu(volume: Volume) -> float | None:
    """``BONE_ONLY_MIN_HU`` for a volume without air (a bone-only scan), else None.

    Scans that keep only the bones (every other voxel set to 0 HU) have no air at all; rendered
    as they are, their box of "water" hides the bone. Dropping everything at or below water
    leaves a bone-only DRR. A real CT always holds air around the body, so it is left alone.
    """
    array = volume.array
    step = max(1, int(round((array.size / 2_000_000) ** (1 / 3))))
    sample = array[::step, ::step, ::step]
    if np.count_nonzero(sample <= AIR_SEARCH_HU) / sample.size < AIR_FRACTION_MIN:
        return BONE_ONLY_MIN_HU
    return None


def render_drr(
    volume: Volume,
    camera: Camera,
    mu_water: float = MU_WATER_PER_MM,
    min_hu: float | None = None,
    oversample: int = DEFAULT_OVERSAMPLE,
    threads: int = DEFAULT_THREADS,
) -> np.ndarray:
    """Line integral of attenuation for every detector pixel.

    Parameters
    ----------
    volume : Volume
        CT in HU; any direction matrix and spacing.
    camera : Camera
        Only ``camera.matrix`` (3x4, LPS mm -> pixels) and ``camera.shape`` are used, so the image
        agrees with every overlay projected by the same matrix.
    mu_water, min_hu
        See :func:`mu_from_hu`.
    oversample : int
        Intermediate-image samples per voxel along each slice axis (higher: sharper, slower).
    threads : int
        Worker threads for the slice loop.

    Returns
    -------
    (rows, columns) float32 ndarray
        Dimensionless line integrals ``integral mu ds`` (0 where a ray misses the volume).
    """
    rows, cols = camera.shape
    if int(oversample) != oversample or oversample < 1:
        raise GeometryError(f"oversample must be a positive integer, got {oversample}")
    geometry = _SliceGeometry(volume, np.asarray(camera.matrix, float), rows, cols, oversample)
    if geometry.empty:
        return np.zeros((rows, cols), np.float32)
    if not np.issubdtype(volume.array.dtype, np.number) or volume.array.dtype == bool:
        raise GeometryError(f"a DRR needs a CT volume in HU, got dtype {volume.array.dtype}")
    floor = AIR_HU if min_hu is None else max(AIR_HU, float(min_hu))
    view = geometry.cropped_view(volume.array)
    intermediate = _accumulate_slices(view, geometry, max(1, int(threads)), floor)
    # The slices were summed as HU + 1000, which is mu / (mu_water / 1000).
    return geometry.warp_to_detector(intermediate) * np.float32(mu_water / HU_PER_WATER_STEP)


def radiograph(
    line_integral: np.ndarray,
    window_percentiles: tuple[float, float] = DISPLAY_WINDOW_PERCENTILES,
    contrast: float = DISPLAY_CONTRAST,
    region: np.ndarray | None = None,
    background_sigma_px: float | None = None,
) -> np.ndarray:
    """Radiograph-like display in [0, 1] with the fluoroscopy polarity (dense = dark).

    The transmitted intensity ``exp(-integral)`` is shown after windowing: the line integrals
    between two percentiles are mapped to ``exp(-contrast * t)``, ``t`` in [0, 1], rescaled to
    [0, 1]. Bone and metal are dark and the background light, as on a C-arm monitor.

    Parameters
    ----------
    region : (rows, cols) bool ndarray, optional
        Pixels the window is tuned for (e.g. the projected sacrum); default the central half of
        the detector, where the isocentre (the target) sits.
    background_sigma_px : float, optional
        Dynamic-range compression for a DRR through the whole body: a Gaussian blur of this
        width (detector pixels) is subtracted, weighted by :data:`BACKGROUND_WEIGHT`, before
        windowing. The body's thickness changes slowly across the image and would otherwise
        take the whole window, leaving the bone a faint shade (a lateral through 35 cm of
        pelvis); C-arms compress it the same way. None (bone-only DRRs): no compression.
    """
    values = np.asarray(line_integral, dtype=np.float64)
    attenuated = values > 0  # rays that met anything
    if background_sigma_px is not None:
        background = ndimage.gaussian_filter(values, background_sigma_px, mode="nearest")
        values = values - BACKGROUND_WEIGHT * background
    rows, cols = values.shape
    if region is None or not np.any(region):
        region = np.zeros(values.shape, bool)
        region[rows // 4 : rows - rows // 4, cols // 4 : cols - cols // 4] = True
    inside = values[np.asarray(region, bool) & attenuated]
    if inside.size == 0:
        return np.ones(values.shape, np.float32)
    low, high = np.percentile(inside, window_percentiles)
    fraction = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    darkest = np.exp(-contrast)
    return ((np.exp(-contrast * fraction) - darkest) / (1.0 - darkest)).astype(np.float32)


class _SliceGeometry:
    """Where each slice lands on the intermediate plane, and how that plane maps to pixels.

    Index axes are renamed: ``m`` the marching axis (most parallel to the beam), ``p`` and ``q``
    the row and column axes of a slice; ``stack[m, p, q]`` holds the cropped attenuation.
    """

    def __init__(self, volume: Volume, matrix: np.ndarray, rows: int, cols: int, oversample):
        self.rows, self.cols = rows, cols
        self.matrix = matrix
        source_lps = source_from_matrix(matrix)
        beam = matrix[2, :3] / np.linalg.norm(matrix[2, :3])
        # Most parallel index axis in *world* terms, so the ray crosses each slice at the
        # steepest possible angle (at most 54.7 degrees off the slice normal).
        march = int(np.argmax(np.abs(volume.direction.T @ beam)))
        # Array axes are [k, j, i] = index axes (2, 1, 0); keep the other two in array order.
        others = [axis for axis in (2, 1, 0) if axis != march]
        self.axes_mpq = (march, others[0], others[1])  # index axis numbers (0=i, 1=j, 2=k)
        self.shape_mpq = tuple(volume.shape_ijk[a] for a in self.axes_mpq)
        order = list(self.axes_mpq)
        # world_from_index columns reordered to (m, p, q).
        self.world_from_mpq = (volume.direction * volume.spacing_xyz[np.newaxis, :])[:, order]
        self.origin_lps = volume.origin_lps
        self.source_mpq = np.linalg.solve(self.world_from_mpq, source_lps - self.origin_lps)
        self.mpq_from_pixel = np.linalg.solve(self.world_from_mpq, np.linalg.inv(matrix[:, :3]))
        self._plan(oversample)

    # ---------------------------------------------------------------- set-up
    def _plan(self, oversample: float) -> None:
        n_m, n_p, n_q = self.shape_mpq
        s_m, s_p, s_q = self.source_mpq
        direction_m = self.mpq_from_pixel[0] @ [(self.cols - 1) / 2, (self.rows - 1) / 2, 1.0]
        # Slices in front of the source only (a source inside the slab sees half of it).
        slices = np.arange(n_m, dtype=float)
        ahead = (slices - s_m) * np.sign(direction_m) > 1e-6
        if not ahead.any():
            self.empty = True
            return
        front = slices[ahead]
        # Reference plane: the volume's middle slice plane (a world-defined choice, so the same
        # for any storage order), or the farthest slice if the middle is behind the source.
        middle = (n_m - 1) / 2.0
        if (middle - s_m) * np.sign(direction_m) > 1e-6:
            self.m_ref = float(middle)
        else:
            self.m_ref = float(front[np.argmax(np.abs(front - s_m))])
        # Detector footprint on the reference plane (corners of the outer pixels).
        corners_uv = np.array(
            [
                [-0.5, -0.5],
                [self.cols - 0.5, -0.5],
                [-0.5, self.rows - 0.5],
                [self.cols - 0.5, self.rows - 0.5],
            ]
        )
        corner_pq = self._on_reference_plane(corners_uv)
        # Union of the slice footprints on the reference plane (with the zero border at -1, n).
        extent_pq = []
        for slice_m in (front.min(), front.max()):
            scale = (self.m_ref - s_m) / (slice_m - s_m)
            for p_edge in (-1.0, n_p):
                for q_edge in (-1.0, n_q):
                    extent_pq.append([s_p + scale * (p_edge - s_p), s_q + scale * (q_edge - s_q)])
        extent_pq = np.array(extent_pq)
        low = np.maximum(corner_pq.min(axis=0), extent_pq.min(axis=0))
        high = np.minimum(corner_pq.max(axis=0), extent_pq.max(axis=0))
        if np.any(high <= low):
            self.empty = True
            return
        self.empty = False
        # A step of 1/oversample voxel on the reference plane is (depth / reference depth) /
        # oversample voxel in a slice at another depth: finer than a voxel in every slice up to
        # `oversample` times deeper than the middle one.
        # The lattice is anchored on voxel centres (multiples of 1/oversample in index units), so
        # it is the same set of world points however the volume is stored (flips, axis order).
        step = np.full(2, 1.0 / oversample)
        self.step_pq = step
        self.low_pq = np.floor(low / step) * step
        self.n_pq = np.maximum(2, np.ceil((high - self.low_pq) / step).astype(int) + 1)
        self.m_range = (int(front.min()), int(front.max()) + 1)
        self._crop_box()

    def _on_reference_plane(self, pixels_uv: np.ndarray) -> np.ndarray:
        """(N, 2) ``(p, q)`` where the rays through pixels cross the plane ``m = m_ref``."""
        rays = self._rays_mpq(pixels_uv)
        t = (self.m_ref - self.source_mpq[0]) / rays[:, 0]
        return self.source_mpq[1:] + t[:, np.newaxis] * rays[:, 1:]

    def _rays_mpq(self, pixels_uv: np.ndarray) -> np.ndarray:
        homogeneous = np.hstack([pixels_uv, np.ones((pixels_uv.shape[0], 1))])
        return homogeneous @ self.mpq_from_pixel.T

    def _slice_coordinates(self, slice_m: float):
        """Continuous slice coordinates (p, q) of the intermediate grid's rows and columns."""
        s_m, s_p, s_q = self.source_mpq
        inverse_scale = (slice_m - s_m) / (self.m_ref - s_m)
        grid_p = self.low_pq[0] + self.step_pq[0] * np.arange(self.n_pq[0])
        grid_q = self.low_pq[1] + self.step_pq[1] * np.arange(self.n_pq[1])
        return s_p + inverse_scale * (grid_p - s_p), s_q + inverse_scale * (grid_q - s_q)

    def _crop_box(self) -> None:
        """Voxel box (m, p, q) that any ray reaching the detector can touch."""
        n_m, n_p, n_q = self.shape_mpq
        lows, highs = [], []
        for slice_m in self.m_range[0], self.m_range[1] - 1:
            coord_p, coord_q = self._slice_coordinates(slice_m)
            lows.append([coord_p.min(), coord_q.min()])
            highs.append([coord_p.max(), coord_q.max()])
        low = np.floor(np.min(lows, axis=0)).astype(int)
        high = np.ceil(np.max(highs, axis=0)).astype(int) + 1
        self.crop_p = (max(0, low[0]), min(n_p, high[0]))
        self.crop_q = (max(0, low[1]), min(n_q, high[1]))
        if self.crop_p[1] <= self.crop_p[0] or self.crop_q[1] <= self.crop_q[0]:
            self.empty = True

    # ---------------------------------------------------------------- data
    def cropped_view(self, array_kji: np.ndarray) -> np.ndarray:
        """View of the array (still ``[k, j, i]``) restricted to the crop box; no copy."""
        bounds = {
            self.axes_mpq[0]: self.m_range,
            self.axes_mpq[1]: self.crop_p,
            self.axes_mpq[2]: self.crop_q,
        }
        # Array axis a holds index axis 2 - a.
        return array_kji[tuple(slice(*bounds[2 - a]) for a in range(3))]

    def slice_block(self, view_kji: np.ndarray, start: int, stop: int, floor: float):
        """Slices ``start:stop`` (relative to the crop) as a C-ordered ``[m, p, q]`` copy.

        Every value below ``floor`` becomes air (-1000 HU), so that ``HU + 1000`` is
        proportional to attenuation. Copying in blocks of a few slices keeps the transposition
        cache-friendly and lets each worker thread transpose its own part of the volume.
        """
        march_array_axis = 2 - self.axes_mpq[0]
        index = [slice(None)] * 3
        index[march_array_axis] = slice(start, stop)
        source = np.transpose(view_kji[tuple(index)], [2 - axis for axis in self.axes_mpq])
        block = np.empty(source.shape, source.dtype)
        # Tiles of a few rows keep a transposing copy inside the cache (about 5x faster than
        # one strided copy when the slices run along the fastest-varying array axis).
        for row in range(0, source.shape[1], TRANSPOSE_TILE_ROWS):
            block[:, row : row + TRANSPOSE_TILE_ROWS] = source[:, row : row + TRANSPOSE_TILE_ROWS]
        if block.min() < floor:
            block[block < floor] = AIR_HU
        return block

    def slice_weights(self, slice_m: int):
        """Gather indices and weights of one slice on the intermediate grid.

        Returns ``None`` when the slice misses the grid, else
        ``(rows, cols, index_p, weight_p, index_q, weight_q)``: intermediate row/column ranges
        and, for each, the first of the two neighbouring voxels (in the zero-bordered crop) and
        the weight of the second.
        """
        coord_p, coord_q = self._slice_coordinates(float(slice_m))
        # Shift into the crop with a one-voxel zero border on each side.
        coord_p = coord_p - self.crop_p[0] + 1.0
        coord_q = coord_q - self.crop_q[0] + 1.0
        size_p = self.crop_p[1] - self.crop_p[0] + 2
        size_q = self.crop_q[1] - self.crop_q[0] + 2
        span_p = _inside(coord_p, size_p)
        span_q = _inside(coord_q, size_q)
        if span_p is None or span_q is None:
            return None
        coord_p = coord_p[span_p[0] : span_p[1]]
        coord_q = coord_q[span_q[0] : span_q[1]]
        index_p = np.clip(np.floor(coord_p).astype(np.intp), 0, size_p - 2)
        index_q = np.clip(np.floor(coord_q).astype(np.intp), 0, size_q - 2)
        weight_p = (coord_p - index_p).astype(np.float32)
        weight_q = (coord_q - index_q).astype(np.float32)
        return span_p, span_q, index_p, weight_p, index_q, weight_q

    def warp_to_detector(self, intermediate: np.ndarray) -> np.ndarray:
        """Map the summed slices to detector pixels and weight by the step length per slice."""
        # Ray direction (m, p, q) of pixel (u, v) is affine in u and v: build it by broadcasting
        # a column of rows and a row of columns (no (N, 3) matrix products).
        u = np.arange(self.cols, dtype=np.float64)[np.newaxis, :]
        v = np.arange(self.rows, dtype=np.float64)[:, np.newaxis]
        a = self.mpq_from_pixel
        ray_m, ray_p, ray_q = (a[d, 0] * u + (a[d, 1] * v + a[d, 2]) for d in range(3))
        t = (self.m_ref - self.source_mpq[0]) / ray_m
        coord_p = (self.source_mpq[1] + t * ray_p - self.low_pq[0]) / self.step_pq[0]
        coord_q = (self.source_mpq[2] + t * ray_q - self.low_pq[1]) / self.step_pq[1]
        image = ndimage.map_coordinates(
            intermediate, [coord_p, coord_q], order=1, mode="constant", cval=0.0, prefilter=False
        )
        # World length of the ray between slices m and m+1 (one index unit along m).
        w = self.world_from_mpq
        world = [w[d, 0] * ray_m + w[d, 1] * ray_p + w[d, 2] * ray_q for d in range(3)]
        step_mm = np.sqrt(world[0] ** 2 + world[1] ** 2 + world[2] ** 2) / np.abs(ray_m)
        return (image * step_mm).astype(np.float32)


def _inside(coords: np.ndarray, size: int):
    """Contiguous index range of monotone ``coords`` lying in ``[0, size - 1]``, or None."""
    inside = np.flatnonzero((coords >= 0.0) & (coords <= size - 1))
    if inside.size == 0:
        return None
    return int(inside[0]), int(inside[-1]) + 1


def _accumulate_slices(
    view_kji: np.ndarray, geometry: _SliceGeometry, threads: int, floor: float
) -> np.ndarray:
    """Sum of all slices resampled onto the intermediate grid, shape ``n_pq``."""
    first_m = geometry.m_range[0]
    n_m = geometry.m_range[1] - geometry.m_range[0]
    bordered_shape = (
        geometry.crop_p[1] - geometry.crop_p[0] + 2,
        geometry.crop_q[1] - geometry.crop_q[0] + 2,
    )

    def run(chunk: range) -> np.ndarray:
        total = np.zeros(tuple(geometry.n_pq), np.float32)
        bordered = np.zeros(bordered_shape, np.float32)
        interior = bordered[1:-1, 1:-1]
        slope_p = np.empty((bordered_shape[0] - 1, bordered_shape[1]), np.float32)
        for start in range(chunk.start, chunk.stop, SLICE_BLOCK):
            stop = min(start + SLICE_BLOCK, chunk.stop)
            block = geometry.slice_block(view_kji, start, stop, floor)
            for offset in range(stop - start):
                weights = geometry.slice_weights(first_m + start + offset)
                if weights is None:
                    continue
                (p0, p1), (q0, q1), index_p, weight_p, index_q, weight_q = weights
                # HU + 1000 (proportional to mu) with a zero border: rays leaving the grid see
                # air.
                np.subtract(block[offset], AIR_HU, out=interior, casting="unsafe")
                # Linear interpolation as value + slope * weight, with the slopes taken on the
                # (smaller) voxel grid before gathering onto the intermediate grid.
                np.subtract(bordered[1:], bordered[:-1], out=slope_p)
                rows = np.take(bordered, index_p, axis=0)
                step = np.take(slope_p, index_p, axis=0)
                step *= weight_p[:, np.newaxis]
                rows += step
                slope_q = rows[:, 1:] - rows[:, :-1]
                values = np.take(rows, index_q, axis=1)
                step = np.take(slope_q, index_q, axis=1)
                step *= weight_q
                values += step
                total[p0:p1, q0:q1] += values
        return total

    bounds = np.linspace(0, n_m, threads + 1).astype(int)
    chunks = [range(bounds[i], bounds[i + 1]) for i in range(threads)]
    if threads == 1:
        return run(chunks[0])
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(run, chunks))


__all__ = [
    "BONE_ONLY_MIN_HU",
    "MU_WATER_PER_MM",
    "mu_from_hu",
    "radiograph",
    "render_drr",
    "suggested_min_hu",
]
