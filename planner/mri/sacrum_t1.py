"""The sacrum on a T1-weighted MRI: bright fatty marrow enclosed by dark cortex.

On T1 the marrow is bright (fatty), the cortex, ligaments, air and CSF are dark and muscle is
intermediate. Bone is therefore found as bright regions that are *not* subcutaneous fat (cut off
by intensity when it is brighter than the marrow, with its partial-volume rim: see
:mod:`~planner.mri.sacrum_t1_fat`): the dark cortical shell keeps each bone's marrow apart from
its neighbours (an opening cuts thin partial-volume bridges; a one-voxel erosion cuts L5 off
where the facet joints' blur joins it), and the sacrum is the largest one in the mid-sagittal
slab. Its holes (a lesion, the fused-disc
remnants, all dark on T1) are filled and the mask is grown by the cortical thickness, since the
dark cortex belongs to the bone; thin cortex with no marrow inside (the laminae closing the canal
behind) is added where it lies on the outer surface (dark, just inside each axial section's
convex hull).

Works on an isotropic LPS working grid (thick sagittal slices are interpolated), so the result
does not depend on how the MR was stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, Delaunay, QhullError

from planner.anatomy.model import Confidence
from planner.errors import AnatomyNotFoundError
from planner.mri.preprocess import body_mask, preprocess_mr
from planner.mri.sacrum_t1_fat import fat_rim, hole_rim
from planner.mri.sacrum_t1_wall import T1Levels, posterior_wall
from planner.sitk_bridge import resample_like, resample_to_lps_grid
from planner.volume import Volume

#: Isotropic spacing (mm) of the working grid.
MR_WORKING_SPACING_MM = 1.5
#: Bright (marrow or fat) = above ``median + BRIGHT_SHARE * (p99 - median)`` of the body: the
#: body's median is muscle, its 99th percentile fat; fatty marrow lies well above the middle.
BRIGHT_SHARE = 0.4
#: Half-width (mm) of the slab about the volume's mid-sagittal line where the sacrum is chosen.
CENTRAL_SLAB_MM = 25.0
#: Smallest difference (normalised units) between the means of the two bright classes for them
#: to count as fat and marrow rather than one class.
FAT_MARROW_MIN_GAP = 0.1
#: Opening radius (mm) that cuts thin partial-volume bridges between bright regions.
BRIDGE_OPENING_MM = 1.5
#: Thickness (mm) added around the marrow for the dark cortex: typical sacral cortex 1-2 mm, plus
#: about 1 mm because the bright threshold sits inside the blurred marrow-cortex edge (4 mm
#: slices). This is the growth for a thin cortex (no dark dip outside the marrow); a thicker
#: cortex shows as a dip of the median intensity in the shells just outside the marrow, and the
#: growth gains :data:`CORTEX_DIP_GAIN_MM` per unit of dip depth (relative to the marrow-to-
#: surroundings contrast), up to :data:`CORTEX_GROWTH_MAX_MM`. Calibrated on phantoms with
#: 1.0-2.0 mm cortex and 4 mm slices (best fixed growth 2.5 mm at 1.1 mm cortex, 3.0-3.5 mm at
#: 1.9 mm); not yet on real MR.
CORTEX_GROWTH_MM = 2.5
CORTEX_DIP_GAIN_MM = 2.5
CORTEX_GROWTH_MAX_MM = 3.5
#: Shells (mm from the marrow) where the dip is looked for, and where the surroundings are.
DIP_SHELLS_MM = (1.5, 3.75)
SURROUNDINGS_MM = (4.5, 7.5)
#: Outer cortex without marrow (laminae, crest): dark voxels (see
#: :data:`~planner.mri.sacrum_t1_wall.DARK_SHARE`) this deep (mm) inside the section's convex
#: hull.
HULL_SHELL_MM = 3.0
#: Smallest plausible sacral marrow volume (mm^3) inside the field of view.
MIN_SACRUM_MM3 = 20_000.0
#: Below S3 the sacral bodies have no lateral masses joining them, so a dark fused-disc remnant
#: (a plate about 1.5 mm thick, across the whole body) cuts the lower segments' marrow off. A
#: bright region is such a segment when its centre lies in the central slab and *caudal* of the
#: sacral marrow's centre (L5, cranial across its disc, never joins), it comes within
#: :data:`SEGMENT_GAP_MM` of the sacral marrow, and it holds at least :data:`SEGMENT_MIN_MM3` of
#: marrow (a lower sacral body's: S5 alone about 1 cm^3). On the phantoms (50 cases, 4 mm
#: slices) every region within the gap is either a marrow speck of at most 450 mm^3 (around the
#: foramina and joints) or a split segment of 4200-4800 mm^3 caudally, or L5 (4500-28500
#: mm^3) cranially; a facing-area criterion used before missed split segments that touch the
#: sacrum over 80-125 mm^2 and let L5 in when its disc is wedge-shaped (facing 218 mm^2).
SEGMENT_GAP_MM = 4.0
SEGMENT_MIN_MM3 = 1000.0
#: Small parts of the sacrum with a thick cortex (the S5 tip, the S1 facets, the crest) show only
#: a little marrow, cut off from the rest by their cortex: a bright region of
#: :data:`PIECE_MIN_MM3` up to :data:`SEGMENT_MIN_MM3` within :data:`PIECE_GAP_MM` of the sacral
#: marrow (two 2 mm cortices and a voxel of blur between the marrows) is such a part, wherever
#: it lies. On the phantoms (4 mm slices, seeds 205-209 and 220-235) the regions near the sacral
#: marrow are pieces of 80-430 mm^3 (all sacrum), specks of noise and partial volume of
#: 23-54 mm^3 and, once, 94 mm^3 (not sacrum), or large (L5, ilium: > 1500 mm^3).
PIECE_MIN_MM3 = 100.0
PIECE_GAP_MM = 5.5
#: Widest gap (mm, closing radius) through which a lesion touching the cortex may open to the
#: outside and still be filled as bone (:func:`_lesion_holes`).
LESION_GAP_MM = 3.0
LESION_DEPTH_MM = 4.5


@dataclass(frozen=True, eq=False)
class MrSacrum:
    """The sacrum found on a T1 MRI.

    Attributes
    ----------
    mask : Volume (bool)
        On the isotropic LPS working grid (:data:`MR_WORKING_SPACING_MM`).
    image : Volume
        The prepared (bias-corrected, normalised) MR on the working grid.
    other_bone : Volume (bool)
        Other deep bright regions (ilia, L5, coccyx marrow), grown by the cortex, same grid.
    body : Volume (bool)
        The body on the working grid.
    marrow_level, cortex_level : float
        Normalised intensities of the sacral marrow and of the darkest tissue inside the body.
    confidence : Confidence
    """

    mask: Volume
    image: Volume
    other_bone: Volume
    body: Volume
    marrow_level: float
    cortex_level: float
    confidence: Confidence

    def mask_on(self, grid: Volume) -> Volume:
        """The sacrum mask resampled (nearest) onto another grid."""
        return resample_like(self.mask, grid, "nearest", default_value=0)


def _ball(radius_mm: float, spacing_mm: float) -> np.ndarray:
    r = max(1, int(round(radius_mm / spacing_mm)))
    grid = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (grid**2).sum(axis=0) <= (radius_mm / spacing_mm) ** 2 + 1e-9


def find_sacrum_t1(mr: Volume, preprocessed: bool = False) -> MrSacrum:
    """Segment the sacrum on a T1-weighted MRI (see the module docstring).

    Parameters
    ----------
    mr : Volume
        T1-weighted MR, any grid.
    preprocessed : bool
        True if ``mr`` already went through :func:`planner.mri.preprocess.preprocess_mr`.

    Returns
    -------
    MrSacrum

    Raises
    ------
    AnatomyNotFoundError
        No bright deep region large enough to be sacral marrow.
    """
    prepared = mr if preprocessed else preprocess_mr(mr)
    work = resample_to_lps_grid(prepared, MR_WORKING_SPACING_MM, "linear", default_value=0.0)
    spacing = MR_WORKING_SPACING_MM
    inside = resample_to_lps_grid(mr.with_array(np.ones(mr.array.shape, np.uint8)),
                                  MR_WORKING_SPACING_MM, "nearest", default_value=0).array > 0
    body = body_mask(work) & inside
    values = work.array
    median, bright_end = np.percentile(values[body], [50.0, 99.0])
    bright = (values > median + BRIGHT_SHARE * (bright_end - median)) & body
    fat_cut = _fat_cut(values[bright])
    cortex_level = float(np.percentile(values[body], 2.0))
    edge_level = 0.5 * (bright_end + cortex_level)
    bright &= values < fat_cut
    if np.isfinite(fat_cut):  # fat told apart from marrow: its bright rim is not marrow either
        bright &= ~fat_rim(values, fat_cut, edge_level)
    bright = ndimage.binary_opening(bright, _ball(BRIDGE_OPENING_MM, spacing))
    labels, count = ndimage.label(bright)
    if count == 0:
        raise AnatomyNotFoundError(_not_found("nothing bright enough for fatty marrow"))
    index = np.arange(1, count + 1)
    large = ndimage.sum(np.ones_like(bright), labels, index) * spacing**3 >= MIN_SACRUM_MM3
    centre_x = work.center_lps()[0]
    x_lps = work.origin_lps[0] + spacing * np.arange(values.shape[2])
    central = np.broadcast_to(np.abs(x_lps - centre_x) <= CENTRAL_SLAB_MM, values.shape)
    central_voxels = ndimage.sum(central, labels, index)
    bone = large
    if not np.any(bone):
        raise AnatomyNotFoundError(_not_found("no bright region large enough for sacral marrow"))
    chosen = int(index[bone][np.argmax(central_voxels[bone])])
    labels, cut_off = _cut_cranial_neighbour(labels, chosen)
    members = _sacral_segments(labels, chosen, work, centre_x)
    marrow = ndimage.binary_fill_holes(np.isin(labels, members))
    marrow_level = float(np.median(values[marrow]))
    growth_mm = _cortex_growth_mm(values, marrow, body, marrow_level, spacing)
    grow = _ball(growth_mm, spacing)
    levels = T1Levels.measure(values, body, marrow_level, cortex_level)
    # The growth stops at fat (the canal's epidural fat, subcutaneous fat behind a thin back):
    # fat is brighter than any bone.
    sacrum = ndimage.binary_dilation(marrow, grow) & body & (values <= levels.fat)
    sacrum |= _lesion_holes(sacrum, values, levels, spacing)
    others = np.isin(labels, [*index[large & ~np.isin(index, members)], *cut_off])
    # Neighbours' marrow grown by their cortex is theirs: cortex without marrow is added to the
    # sacrum only outside it (L5's arch lies behind the canal's cranial end).
    other_bone = ndimage.binary_dilation(others, grow) & body & ~sacrum
    hull = _hull_sections(sacrum)
    sacrum |= _outer_cortex(sacrum, hull, values, levels.dark) & ~other_bone
    sacrum |= posterior_wall(sacrum, hull, values, body, levels, spacing) & ~other_bone
    sacrum &= ~fat_rim(values, levels.fat, edge_level)
    sacrum &= ~hole_rim(sacrum, values, edge_level)
    other_bone &= ~sacrum
    reasons = ["sacrum from T1-weighted MRI: bone margins are those of the dark cortex on MRI"]
    if _touches_border(sacrum):
        reasons.append("sacrum touches the MR field of view border")
    return MrSacrum(
        mask=work.with_array(sacrum, "SEG"),
        image=work,
        other_bone=work.with_array(other_bone, "SEG"),
        body=work.with_array(body, "SEG"),
        marrow_level=marrow_level,
        cortex_level=cortex_level,
        confidence=Confidence(0.8 if len(reasons) == 1 else 0.6, tuple(reasons)),
    )


def _sacral_segments(labels: np.ndarray, chosen: int, work: Volume,
                     centre_x_lps: float) -> list[int]:
    """Labels of the sacral marrow: the chosen region, repeatedly the lower segments cut off by
    fused-disc remnants (see :data:`SEGMENT_MIN_MM3`), then the small parts cut off by a thick
    cortex (see :data:`PIECE_MIN_MM3`)."""
    spacing = MR_WORKING_SPACING_MM
    count = int(labels.max())
    index = np.arange(1, count + 1)
    centres_kji = np.asarray(ndimage.center_of_mass(labels > 0, labels, index))
    centres_lps = work.index_to_lps(centres_kji[:, ::-1])
    central = np.abs(centres_lps[:, 0] - centre_x_lps) <= CENTRAL_SLAB_MM
    caudal = centres_lps[:, 2] < centres_lps[chosen - 1, 2]
    large = ndimage.sum(labels > 0, labels, index) * spacing**3 >= SEGMENT_MIN_MM3
    candidate = central & caudal & large
    members = [chosen]
    while True:
        distance = ndimage.distance_transform_edt(~np.isin(labels, members), sampling=spacing)
        near = (distance <= SEGMENT_GAP_MM) & (labels > 0) & ~np.isin(labels, members)
        added = [int(label) for label in np.unique(labels[near]) if candidate[label - 1]]
        if not added:
            break
        members.extend(added)
    piece = ~large & (ndimage.sum(labels > 0, labels, index) * spacing**3 >= PIECE_MIN_MM3)
    near = (distance <= PIECE_GAP_MM) & (labels > 0) & ~np.isin(labels, members)
    return members + [int(label) for label in np.unique(labels[near]) if piece[label - 1]]


def _cut_cranial_neighbour(labels: np.ndarray, chosen: int) -> tuple[np.ndarray, list[int]]:
    """Labels with L5's marrow cut off the sacral marrow where a partial-volume neck joins them.

    L5's arch and the S1 facets meet at the facet joints; slices a few millimetres thick, oblique
    to the joint, blur the 2 mm joint and its cortex into a thin bright bridge that the opening
    keeps. Eroding the chosen region by one voxel cuts such necks; a piece that then stands
    apart, holds at least :data:`SEGMENT_MIN_MM3` and whose centre lies cranial of the main
    piece's cranial end is L5 (the sacrum's own parts, alae and facets, lie below that end or
    are small). Its voxels (each given to the nearest eroded piece) get a new label, returned
    with the labels (an empty list: nothing cut).
    """
    component = labels == chosen
    box = ndimage.find_objects(component.astype(np.int8))[0]
    region = component[box]
    core = ndimage.binary_erosion(region, ndimage.generate_binary_structure(3, 1))
    pieces, count = ndimage.label(core)
    if count < 2:
        return labels, []
    index = np.arange(1, count + 1)
    sizes = ndimage.sum(core, pieces, index) * MR_WORKING_SPACING_MM**3
    main = int(index[np.argmax(sizes)])
    main_top = np.flatnonzero((pieces == main).any(axis=(1, 2))).max()  # axis 0: superior
    centres = np.asarray(ndimage.center_of_mass(core, pieces, index))
    cranial = index[(sizes >= SEGMENT_MIN_MM3) & (centres[:, 0] > main_top)]
    if cranial.size == 0:
        return labels, []
    nearest = ndimage.distance_transform_edt(pieces == 0, return_distances=False,
                                             return_indices=True)
    owner = pieces[tuple(nearest)]
    cut, cut_label = labels.copy(), int(labels.max()) + 1
    cut[box][region & np.isin(owner, cranial)] = cut_label
    return cut, [cut_label]


def _cortex_growth_mm(values: np.ndarray, marrow: np.ndarray, body: np.ndarray,
                      marrow_level: float, spacing: float) -> float:
    """Growth (mm) from the marrow to the outer cortex surface, from the depth of the dark dip
    in the median intensity of the shells outside the marrow (see :data:`CORTEX_GROWTH_MM`)."""
    distance = ndimage.distance_transform_edt(~marrow, sampling=spacing)
    shells = np.unique(distance[body & (distance >= DIP_SHELLS_MM[0])
                                & (distance <= DIP_SHELLS_MM[1])])
    if shells.size == 0:
        return CORTEX_GROWTH_MM
    dip = min(float(np.median(values[body & (distance == shell)])) for shell in shells)
    around = body & (distance >= SURROUNDINGS_MM[0]) & (distance <= SURROUNDINGS_MM[1])
    if not around.any():
        return CORTEX_GROWTH_MM
    surroundings = float(np.median(values[around]))
    contrast = marrow_level - surroundings
    if contrast <= 0:
        return CORTEX_GROWTH_MM
    depth = max(surroundings - dip, 0.0) / contrast
    return float(min(CORTEX_GROWTH_MM + CORTEX_DIP_GAIN_MM * depth, CORTEX_GROWTH_MAX_MM))


def _lesion_holes(sacrum: np.ndarray, values: np.ndarray, levels: T1Levels,
                  spacing: float) -> np.ndarray:
    """Dark regions inside the bone that open to the outside only through a thin gap.

    A lesion (or a sclerotic focus) that touches the cortex is dark like it, so neither the
    marrow nor the sacrum grown from it encloses it: it opens to the outside where the cortex
    reads as thin as a voxel or two. Closing the sacrum by :data:`LESION_GAP_MM` shuts such
    gaps; what the closing adds is bone where it reaches :data:`LESION_DEPTH_MM` inside the
    closed sacrum (the lesion; concavities of the surface are shallow) and reads darker than
    halfway from muscle to marrow (the canal and foramina hold fat, as bright as marrow).
    """
    closed = ndimage.binary_closing(sacrum, _ball(LESION_GAP_MM, spacing), border_value=0)
    closed = ndimage.binary_fill_holes(closed)
    candidates, count = ndimage.label(closed & ~sacrum)
    if count == 0:
        return np.zeros(sacrum.shape, bool)
    index = np.arange(1, count + 1)
    depth = ndimage.distance_transform_edt(closed, sampling=spacing)
    deep = ndimage.maximum(depth, candidates, index) >= LESION_DEPTH_MM
    dark = (ndimage.median(values, candidates, index)
            < levels.muscle + 0.5 * (levels.marrow - levels.muscle))
    return np.isin(candidates, index[deep & dark])


def _hull_sections(mask: np.ndarray) -> np.ndarray:
    """The filled 2D convex hull of each axial section of ``mask`` (K, J, I)."""
    hull = np.zeros(mask.shape, bool)
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        hull[k] = _hull_section(mask[k])
    return hull


def _outer_cortex(sacrum: np.ndarray, hull: np.ndarray, values: np.ndarray,
                  dark_level: float) -> np.ndarray:
    """Dark cortex on the sacrum's outer surface that holds no marrow (thin laminae and crest,
    where :mod:`~planner.mri.sacrum_t1_wall` finds no canal in front): in each axial plane, the
    voxels darker than ``dark_level`` within :data:`HULL_SHELL_MM` inside the convex hull of the
    sacrum's section (``hull``).
    """
    added = np.zeros(sacrum.shape, bool)
    for k in np.flatnonzero(hull.any(axis=(1, 2))):
        depth = ndimage.distance_transform_edt(hull[k], sampling=MR_WORKING_SPACING_MM)
        added[k] = hull[k] & ~sacrum[k] & (depth <= HULL_SHELL_MM) & (values[k] < dark_level)
    return added


def _hull_section(section: np.ndarray) -> np.ndarray:
    """The filled 2D convex hull of a boolean section."""
    points = np.argwhere(section)
    try:
        corners = points[ConvexHull(points).vertices]
        inside = Delaunay(corners).find_simplex(np.argwhere(np.ones(section.shape, bool))) >= 0
    except (QhullError, ValueError):
        return section.copy()  # too few or collinear points: nothing to close
    return inside.reshape(section.shape) | section


def _fat_cut(bright_values: np.ndarray) -> float:
    """Upper intensity limit of marrow: splits subcutaneous fat off when it is brighter.

    Bright voxels are marrow and fat. When they form two modes (Otsu classes whose means differ
    by more than :data:`FAT_MARROW_MIN_GAP`, as with red-marrow admixture), the brighter one is
    fat and is cut; otherwise fat and marrow look alike and only the structure separates them.
    """
    if bright_values.size < 100:
        return np.inf
    histogram, edges = np.histogram(bright_values, bins=128)
    centres = 0.5 * (edges[1:] + edges[:-1])
    weight = np.cumsum(histogram).astype(float)
    total = weight[-1]
    cumulative = np.cumsum(histogram * centres)
    low_mean = cumulative / np.maximum(weight, 1)
    high_mean = (cumulative[-1] - cumulative) / np.maximum(total - weight, 1)
    between = weight * (total - weight) * (high_mean - low_mean) ** 2
    best = int(np.argmax(between[:-1]))
    if high_mean[best] - low_mean[best] < FAT_MARROW_MIN_GAP:
        return np.inf
    return float(edges[best + 1])


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
                or mask[:, :, 0].any() or mask[:, :, -1].any())


def _not_found(detail: str) -> str:
    return (f"no sacrum found on the T1-weighted MRI ({detail}); check that the series is a "
            "T1-weighted image of the sacrum (fatty marrow bright), or plan on a CT")
