"""A sacrum route for CTs whose marrow reads like soft tissue (fatty, osteoporotic; thick slices).

Why a second route: :func:`planner.anatomy.sacrum.segment_sacrum` builds the filled bone from
dense bone and its enclosed marrow, then splits bones at their joint lines. On a 3 mm CT of an
elderly patient the sacral marrow (median about 80 HU, a quarter below 15 HU) is no denser than
muscle, the partial-volume cortex does not enclose it, and the SI joints are one voxel wide.

Route (all on an axis-aligned LPS grid of :data:`WORKING_SPACING_MM`, so the storage order of the
input does not matter):

1. *Midline*: the median left-right position of dense bone (the pelvis is nearly symmetric).
2. *Pelvic ring slices*: axial slices where one piece of bone-like tissue (lightly smoothed HU of
   at least :data:`RING_HU_MIN`) crosses the midline and reaches :data:`RING_REACH_MM` to both
   sides: the sacrum joined to both ilia at the SI joints. Of the runs of such slices (the pubic
   ring is another) the most posterior one is the sacral one; its top is about the sacral base.
3. *Domain*: the cortex (at least :data:`CORTEX_HU_MIN`) closed over :data:`DOMAIN_CLOSING_MM`
   and filled: every bone with its fatty marrow, joints and disc bridged.
4. *L5/S1 disc* (:mod:`planner.anatomy.lumbosacral`): the dark band between two endplates,
   tilted 30-50 degrees in the sagittal plane, near the top ring slice; the height above its
   plane separates L5 from S1 (without a disc, the height above the top ring slice).
5. *Markers*: the sacrum (the midline column of the domain that holds the ring slices' midline
   bone, eroded, below the disc and the top ring slice), the spine (the same column above the
   disc), each ilium (dense bone lateral of :data:`HIP_MARKER_OFFSET_MM`, all the domain beyond
   :data:`HIP_DOMAIN_OFFSET_MM`, and the iliac marrow between the lateral and the medial cortex,
   :mod:`planner.anatomy.sacrum_lowdensity_ilium`) and everything outside the domain.
6. A marker watershed inside the domain on smoothed HU: fronts meet on the bright plates (the
   cortex, subchondral bone and endplates on both sides of a joint). No dark-line term: at 3 mm
   the marrow of a thin iliac plate or an ala between two cortices reads as a dark line too, and
   adding the line depth (grey closing minus CT) let the sacral front into the ilia (fatty
   phantoms seeds 0-3: Dice 0.81-0.86 with it, 0.85-0.90 without; totalseg 0.794 -> 0.798).
7. Canal and foramina, filled in by the domain, are cut out: dark voxels closely walled by
   brighter bone in their axial plane that reach the outside of the bone (dark pockets of fatty
   marrow are enclosed in it), and the canal's dark continuation above the sacral base (open
   between the laminae); so is anything above the disc plane.
8. The sacrum label goes back to the input grid by linear interpolation of its 0/1 map
   (threshold one half: a sub-voxel boundary on finer input grids).

:func:`marrow_is_low_density` measures when this route is needed.

Measured (``python benchmarks/bench_sacrum_lowdensity.py --seeds 0 1 2 3 4 5 6 7``): Dice 0.853
against the network's sacrum on the 3 mm totalseg-example CT (about 1 s CPU); 0.881-0.922 (mean
0.896) on fatty-marrow, thin-cortex phantoms (seeds 0-7, truth known; seeds 8-15: 0.820-0.916).
Steps from 0.778 and 0.78-0.83: the oblique disc plane (a horizontal cut at the top ring slice
gave the top of S1 to the spine: totalseg 490 voxels, phantoms 640-930), no dark-line term in
the elevation (it let the sacral front into the ilia of the phantoms), the iliac marrow markers
(totalseg: the sacral front took the medial half of the left ilium, 820 voxels; now 80), the
spinal marker kept to the L5 body near the disc, the canal's dark continuation above the base
cut out, enclosed dark marrow no longer cut as canal (phantoms 0.877 -> 0.896 mean, totalseg
0.850 -> 0.853), and ring runs bridged over a one-slice gap (seed 8, strongly kyphotic: 0.24 ->
0.88). Known limits, from the error census (phantoms seeds 0-5): the outer boundary is a voxel
too wide (250-400 partial-volume voxels with a bone fraction below one half and 250-320
soft-tissue voxels in the closing's concavities; their HU overlaps that of the true surface
voxels, and an HU peel of the outer layer costs the totalseg Dice 0.006-0.01); the canal's
lining stays in the sacrum (240-250 voxels: adding a hole's unsmoothed dark face neighbours to
it gave phantoms +0.010 and totalseg +0.0004, but changed which foramina find_anatomy finds on
totalseg: S3 lost); the posterior top of S1 goes to the spine in part (phantoms 160-250 voxels;
a sacral marker reaching it hands the sacrum the interlaminar soft tissue instead); the SI
fronts meet a voxel off (phantoms 140-250 iliac voxels taken, 75-230 given). Seed 9: the disc
line is found inside L5 (its anchor, the column front at the top ring slice, is L5's front), L5
goes to the sacrum (Dice 0.82).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from planner.anatomy.bone import has_soft_tissue
from planner.anatomy.lumbosacral import find_lumbosacral_disc
from planner.anatomy.model import Confidence
from planner.anatomy.sacrum import AIR_HU, SacrumSegmentation, border_reasons
from planner.anatomy.sacrum_labels import (
    BACKGROUND,
    HIP_LEFT,
    HIP_RIGHT,
    SACRUM,
    SPINE,
    no_sacrum_message,
)
from planner.anatomy.sacrum_lowdensity_ilium import iliac_marrow
from planner.errors import AnatomyNotFoundError
from planner.sitk_bridge import resample_like, resample_to_lps_grid
from planner.volume import Volume

# ---------------------------------------------------------------------------------- constants
#: Isotropic working spacing (mm): the coarse scans this route is for are about 3 mm; finer
#: scans are brought down to it so every voxel-sized operation below has the same size in mm.
WORKING_SPACING_MM = 3.0
#: Dense bone (HU): cortex of every bone, well above any soft tissue (muscle 40-60 HU, blood
#: 40-70 HU). Used for the midline and the iliac markers.
DENSE_HU_MIN = 200.0
#: Cortex (HU) that the domain closes over: the partial-volume cortex of a 3 mm scan reads a
#: median of about 180 HU, its lower quartile about 100 HU.
CORTEX_HU_MIN = 150.0
#: Gaussian sigma (mm) and threshold (HU) of "bone-like" tissue for the ring slices: just above
#: muscle (40-60 HU), below fatty marrow with its partial-volume cortex, so fatty alae still join
#: the sacrum to the ilia. Measured knife edge: 60 HU lets muscle join L5 to the ilia on the
#: totalseg CT (Dice 0.21), 80 HU loses the ring on a dim-cortex phantom (seed 0: 0.48).
RING_SMOOTHING_MM = 2.1
RING_HU_MIN = 70.0
#: Half-width (mm) of the midline strip a ring piece must cross, and how far (mm) to both sides
#: it must reach: beyond the sacral alae (half-width of the sacrum at most about 60 mm).
RING_MIDLINE_MM = 10.0
RING_REACH_MM = 70.0
#: Gap (mm) of ring slices bridged within one run: fatty phantom seed 8 (64 deg kyphosis) lost
#: its ring at one slice 57 mm below the sacral base, and the single slice below the gap, more
#: posterior than the run above it, was taken as the sacral ring (Dice 0.24).
RING_GAP_MM = 6.0
#: Half-width (mm) of the midline column the sacral and spinal markers are taken from: the
#: vertebral bodies and the medial sacral alae, medial to the SI joints.
COLUMN_HALF_WIDTH_MM = 30.0
#: Half-width (mm) of the seed strip within the ring slices (the S1-S2 bodies).
SEED_HALF_WIDTH_MM = 25.0
#: Closing radius (mm) of the domain: seals a cortex broken by partial volume over the fatty
#: marrow (a 9 mm closing covers about 99 % of the sacrum on a 3 mm grid, less misses the
#: marrow's leaks). It bridges joints and discs; the watershed splits them again.
DOMAIN_CLOSING_MM = 9.0
#: Ilium markers: dense bone at least HIP_MARKER_OFFSET_MM from the midline (lateral to the
#: sacrum's body and most of its alae), and all of the domain beyond HIP_DOMAIN_OFFSET_MM (the
#: sacrum's half-width is at most about 60 mm), so the ilia's own fatty marrow is theirs from
#: the start (totalseg: Dice 0.737 -> 0.768).
HIP_MARKER_OFFSET_MM = 50.0
HIP_DOMAIN_OFFSET_MM = 60.0
#: The sacral marker stops this far (mm) below the L5/S1 disc plane (and below the top ring
#: slice), the spinal marker starts SPINE_MARGIN_MM above the disc plane: the disc and the
#: endplates between are left to the watershed.
BASE_MARGIN_MM = 3.0
SPINE_MARGIN_MM = 3.0
#: The spinal marker near the disc stays within the L5 body's half-width (mm; L5 is 40-50 mm
#: wide); lateral of it, it starts SPINE_LATERAL_MARGIN_MM above the disc plane: the sacrum's
#: superior articular processes and alae rise up to 7-13 mm above the plane (fatty phantoms,
#: seeds 0-7, truth).
SPINE_BODY_HALF_WIDTH_MM = 20.0
SPINE_LATERAL_MARGIN_MM = 15.0
#: Gaussian sigma (mm) of the elevation: damps the trabecular texture (single voxels of
#: 200-300 HU in the marrow) that would otherwise wall off pieces of the marrow.
ELEVATION_SMOOTHING_MM = 2.1
#: Canal and foramina: darker than this (smoothed HU) ...
HOLE_HU_MAX = 40.0
#: ... and at least this much (HU) below the grey closing over HOLE_CLOSING_MM (mm) in the
#: axial plane (the canal of S2-S4 and the foramina are 5-15 mm wide). On the sacrum's
#: interior this depth has a median of about 20 HU; inside the canal and foramina about 80 HU.
HOLE_DEPTH_HU = 100.0
HOLE_CLOSING_MM = 9.0
#: Criterion: the deep interior of the bones (at least :data:`DEEP_INTERIOR_MM` inside the
#: closed-cortex domain) is marrow. Its median reads 150-300 HU on dense phantoms and 140-150 HU
#: on the bone-only pengwin scans, 88-114 HU on the fatty-marrow phantoms and the 3 mm
#: totalseg-example CT; the threshold lies between.
DEEP_INTERIOR_MM = 7.5
MARROW_LOW_HU = 130.0
#: Confidence of this route: a fallback on coarse, low-contrast scans whose sacrum Dice measured
#: 0.82-0.92 (bench_sacrum_lowdensity.py: totalseg 0.853, phantoms seeds 0-15), short of the
#: dense route's (0.9996-0.9999 on the pengwin scans, bench_sacrum.py); kept below the default
#: ``confidence_min`` (0.5) so every plan built on it is a caution.
ROUTE_CONFIDENCE = 0.45


@dataclass(frozen=True)
class MarrowDensity:
    """What :func:`marrow_is_low_density` measured.

    Attributes
    ----------
    deep_median_hu : float
        Median HU of the voxels at least :data:`DEEP_INTERIOR_MM` inside the closed-cortex
        domain (the bones' marrow); NaN when no bone is that thick.
    cortex_median_hu : float
        Median HU of the dense bone (at least :data:`DENSE_HU_MIN`); NaN without dense bone.
    voxel_mm : float
        Largest voxel edge of the input (mm), for the report: at 3 mm the cortex is one
        partial-volume voxel and does not enclose fatty marrow.
    soft_tissue : bool
        False for a bone-only volume: the default route handles those (outside bone is 0 HU).
    low_density : bool
        The decision: a CT with soft tissue whose deep marrow is below :data:`MARROW_LOW_HU`.
    """

    deep_median_hu: float
    cortex_median_hu: float
    voxel_mm: float
    soft_tissue: bool
    low_density: bool


# ---------------------------------------------------------------------------------- criterion
def marrow_is_low_density(volume: Volume) -> MarrowDensity:
    """Measure whether the bones' marrow reads like soft tissue (this route is then needed).

    The marrow is taken as the deep interior of the closed-cortex domain (see
    :func:`segment_sacrum_low_density`, step 3) on the 3 mm working grid: a closing does not
    need the cortex to enclose the marrow, so the measure works where the default route's
    filling fails, and the pelvic cavity (wider than the closing) stays out.
    """
    _, ct, domain = _working_ct(volume)
    return _marrow_density(volume, ct, domain)


def segment_if_low_density(volume: Volume) -> SacrumSegmentation | None:
    """This route's segmentation when :func:`marrow_is_low_density` says so, else None.

    The working grid and the closed-cortex domain are built once for the decision and the
    segmentation both.
    """
    working, ct, domain = _working_ct(volume)
    if not _marrow_density(volume, ct, domain).low_density:
        return None
    return _segment(volume, working, ct, domain)


def _working_ct(volume: Volume) -> tuple[Volume, np.ndarray, np.ndarray]:
    """The 3 mm LPS working grid, its HU as float32, and the closed-cortex domain on it."""
    working = resample_to_lps_grid(volume, WORKING_SPACING_MM, "linear", default_value=AIR_HU)
    ct = working.array.astype(np.float32)
    return working, ct, _domain(ct, WORKING_SPACING_MM)


def _marrow_density(volume: Volume, ct: np.ndarray, domain: np.ndarray) -> MarrowDensity:
    dense = ct >= DENSE_HU_MIN
    deep = ndimage.distance_transform_edt(domain) * WORKING_SPACING_MM >= DEEP_INTERIOR_MM
    deep_median = float(np.median(ct[deep])) if deep.any() else float("nan")
    cortex_median = float(np.median(ct[dense])) if dense.any() else float("nan")
    soft_tissue = has_soft_tissue(volume)
    low = soft_tissue and bool(deep.any()) and deep_median < MARROW_LOW_HU
    return MarrowDensity(
        deep_median, cortex_median, float(np.max(volume.spacing_xyz)), soft_tissue, bool(low)
    )


# ---------------------------------------------------------------------------------- public API
def segment_sacrum_low_density(volume: Volume) -> SacrumSegmentation:
    """Segment the sacrum of a CT whose marrow reads like soft tissue.

    Parameters
    ----------
    volume : Volume
        CT in HU with soft tissue, any storage orientation and spacing.

    Returns
    -------
    SacrumSegmentation
        Mask on the input grid; ``bone_labels`` on the 3 mm working grid (sacrum, hips, spine).

    Raises
    ------
    AnatomyNotFoundError
        If no pelvic ring (sacrum joined to both ilia) is found.
    """
    volume.check_values()
    return _segment(volume, *_working_ct(volume))


def _segment(volume: Volume, working: Volume, ct: np.ndarray,
             domain: np.ndarray) -> SacrumSegmentation:
    """:func:`segment_sacrum_low_density` on a working grid and domain already built."""
    dense = ct >= DENSE_HU_MIN
    if not dense.any():
        raise AnatomyNotFoundError(no_sacrum_message("no bone at all"))
    spacing = float(WORKING_SPACING_MM)
    offset_x_mm = (np.arange(ct.shape[2]) - float(np.median(np.nonzero(dense)[2]))) * spacing
    ring_seed, base_k = _ring_seed(ct, offset_x_mm, spacing)
    disc = find_lumbosacral_disc(ct, domain, offset_x_mm, base_k, spacing)
    # Height above the L5/S1 disc plane (mm); without a disc, above the top ring slice.
    if disc is not None:
        height_mm = disc.height_mm(ct.shape, spacing)
        base_level_k = disc.centre_kj_mm[0] / spacing
    else:
        height_mm = (np.arange(ct.shape[0]) - base_k)[:, None, None] * spacing
        base_level_k = float(base_k)
    markers = _markers(ct, domain, ring_seed, base_k, height_mm, offset_x_mm, spacing)
    labels = _flood(ct, domain, markers, spacing)
    holes = _canal_and_foramina(ct, domain, spacing)
    holes |= _canal_upwards(ct, holes, labels == SACRUM, base_level_k, spacing)
    sacrum = (labels == SACRUM) & ~holes
    if disc is not None:
        # Nothing of the sacrum lies above its base: the disc and L5 reached through the disc.
        sacrum &= height_mm < 0.0
    labels[(labels == SACRUM) & ~sacrum] = BACKGROUND
    if not sacrum.any():
        raise AnatomyNotFoundError(no_sacrum_message("the sacral marker did not hold"))
    bone_labels = working.with_array(labels.astype(np.uint8), "SEG")
    mask = _to_input_grid(working.with_array(sacrum.astype(np.float32)), volume)
    reasons = [
        "sacrum from the low-density route (marrow reads like soft tissue): SI joints and the "
        "L5/S1 disc split by a watershed on intensity, boundary uncertain by about a voxel; "
        "check the sacrum mask (--save-masks) or pass one made elsewhere (--segmentation)"
    ]
    reasons += border_reasons(mask)
    penalty = 0.15 * (len(reasons) - 1)
    return SacrumSegmentation(
        mask=mask,
        confidence=Confidence(
            score=float(np.clip(ROUTE_CONFIDENCE - penalty, 0.0, 1.0)), reasons=tuple(reasons)
        ),
        has_soft_tissue=True,
        working=working,
        bone_labels=bone_labels,
    )


# ---------------------------------------------------------------------------------- stages
def _ring_seed(ct: np.ndarray, offset_x_mm: np.ndarray, spacing: float):
    """Midline bone of the sacral pelvic-ring slices, and the top ring slice (k index)."""
    bone_like = ndimage.gaussian_filter(ct, RING_SMOOTHING_MM / spacing) >= RING_HU_MIN
    midline = np.abs(offset_x_mm) <= RING_MIDLINE_MM
    ring = np.zeros_like(bone_like)
    for k in range(ct.shape[0]):
        pieces, count = ndimage.label(bone_like[k])
        for piece in np.unique(pieces[:, midline]):
            if piece == 0:
                continue
            inside = pieces == piece
            reach = offset_x_mm[np.nonzero(inside.any(axis=0))[0]]
            if reach.min() <= -RING_REACH_MM and reach.max() >= RING_REACH_MM:
                ring[k] |= inside
    strip = np.abs(offset_x_mm) <= SEED_HALF_WIDTH_MM
    slices = np.nonzero(ring[:, :, strip].any(axis=(1, 2)))[0]
    if slices.size == 0:
        raise AnatomyNotFoundError(no_sacrum_message("no slice where bone joins both ilia"))
    # A run broken by a slice or two (a strip of dim cortex) is still one run: the sacral and
    # pubic rings lie 30 mm or more apart.
    gap = 1 + int(round(RING_GAP_MM / spacing))
    runs = np.split(slices, np.nonzero(np.diff(slices) > gap)[0] + 1)

    def posterior_mm(run: np.ndarray) -> float:
        # LPS: j grows to posterior on the working grid.
        return float(np.nonzero(ring[run][:, :, strip])[1].mean())

    run = max(runs, key=posterior_mm)
    seed = np.zeros_like(ring)
    seed[run] = ring[run]
    seed[:, :, ~strip] = False
    return seed, int(run.max())


def _domain(ct: np.ndarray, spacing: float) -> np.ndarray:
    """Cortex closed over :data:`DOMAIN_CLOSING_MM` and filled (3D, then axial planes)."""
    cortex = ct >= CORTEX_HU_MIN
    radius = max(1, int(round(DOMAIN_CLOSING_MM / spacing)))
    closed = sitk.GetArrayFromImage(
        sitk.BinaryMorphologicalClosing(
            sitk.GetImageFromArray(cortex.astype(np.uint8)), [radius] * 3, sitk.sitkBall
        )
    ).astype(bool)
    filled = ndimage.binary_fill_holes(closed | cortex)
    for k in range(filled.shape[0]):
        filled[k] = ndimage.binary_fill_holes(filled[k])
    return filled


def _markers(ct, domain, ring_seed, base_k, height_mm, offset_x_mm, spacing) -> np.ndarray:
    """Marker image: sacrum, spine, each ilium inside the domain; background outside it.

    ``height_mm`` is the signed distance above the L5/S1 disc (or the top ring slice): the spine
    marker lies above it, the sacral marker below it and below the top ring slice.
    """
    dense = ct >= DENSE_HU_MIN
    column = domain & (np.abs(offset_x_mm) <= COLUMN_HALF_WIDTH_MM)
    pieces, _ = ndimage.label(column)
    held = np.unique(pieces[ring_seed & column])
    column = np.isin(pieces, held[held > 0])
    core = ndimage.binary_erosion(column)
    margin = max(1, int(round(BASE_MARGIN_MM / spacing)))
    k_index = np.arange(domain.shape[0])[:, None, None]
    markers = np.zeros(domain.shape, np.uint8)
    # LPS: x grows to patient left.
    lateral = np.abs(offset_x_mm) >= HIP_MARKER_OFFSET_MM
    markers[dense & lateral & (offset_x_mm > 0)] = HIP_LEFT
    markers[dense & lateral & (offset_x_mm < 0)] = HIP_RIGHT
    far = domain & (np.abs(offset_x_mm) >= HIP_DOMAIN_OFFSET_MM)
    markers[far & (offset_x_mm > 0)] = HIP_LEFT
    markers[far & (offset_x_mm < 0)] = HIP_RIGHT
    ilium = iliac_marrow(ct, domain, offset_x_mm, HIP_MARKER_OFFSET_MM, spacing)
    markers[ilium & (offset_x_mm > 0)] = HIP_LEFT
    markers[ilium & (offset_x_mm < 0)] = HIP_RIGHT
    # Lateral of the L5 body, just above the disc plane, lie the S1 superior articular processes
    # and the alae: the spinal marker there starts higher.
    body = np.abs(offset_x_mm) <= SPINE_BODY_HALF_WIDTH_MM
    spine = (height_mm >= SPINE_MARGIN_MM) & (body | (height_mm >= SPINE_LATERAL_MARGIN_MM))
    markers[core & spine] = SPINE
    markers[core & (k_index <= base_k - margin) & (height_mm <= -BASE_MARGIN_MM)] = SACRUM
    markers[~domain] = BACKGROUND_MARKER
    return markers


#: Marker value of everything outside the domain (not a bone label; cleared after the flood).
BACKGROUND_MARKER = 9


def _flood(ct: np.ndarray, domain: np.ndarray, markers: np.ndarray, spacing: float):
    """Marker watershed inside the domain on smoothed HU."""
    elevation = ndimage.gaussian_filter(ct, ELEVATION_SMOOTHING_MM / spacing)
    elevation[~domain] = elevation.max() + 1.0
    flooded = sitk.GetArrayFromImage(
        sitk.MorphologicalWatershedFromMarkers(
            sitk.GetImageFromArray(elevation.astype(np.float32)),
            sitk.GetImageFromArray(markers),
            markWatershedLine=False,
            fullyConnected=True,
        )
    ).astype(np.uint8)
    flooded[~domain | (flooded == BACKGROUND_MARKER)] = BACKGROUND
    return flooded


def _canal_and_foramina(ct: np.ndarray, domain: np.ndarray, spacing: float) -> np.ndarray:
    """Dark voxels closely walled by brighter bone in their axial plane: canal and foramina.

    The domain's fill takes the canal and foramina in; they are dark (CSF, fat, nerve roots:
    smoothed HU below :data:`HOLE_HU_MAX`) and their walls are within a few mm (the grey closing
    over :data:`HOLE_CLOSING_MM` in the axial plane raises them by at least
    :data:`HOLE_DEPTH_HU`), while fatty marrow is as dark only in islands among its trabeculae
    (enclosed in the bone, see :func:`_open_to_outside`).
    """
    smooth = ndimage.gaussian_filter(ct, ELEVATION_SMOOTHING_MM / spacing)
    radius = max(1, int(round(HOLE_CLOSING_MM / spacing)))
    closed = sitk.GetArrayFromImage(
        sitk.GrayscaleMorphologicalClosing(
            sitk.GetImageFromArray(smooth.astype(np.float32)), (radius, radius, 0), sitk.sitkBall
        )
    )
    walled = (closed - smooth >= HOLE_DEPTH_HU) & (smooth < HOLE_HU_MAX)
    return _open_to_outside(walled, domain)


def _open_to_outside(dark: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """The pieces of ``dark`` that reach the outside of the domain.

    The canal opens at the hiatus and through the foramina, and each foramen opens on the
    anterior or posterior surface; fatty marrow is as dark in pockets among its trabeculae, but
    those lie enclosed in the bone (fatty phantoms, seeds 0 and 3: 315 and 398 sacral voxels in
    enclosed dark pieces, 0 and 5 outside the sacrum; every canal and foramen piece reaches the
    outside).
    """
    pieces, _ = ndimage.label(dark, np.ones((3, 3, 3), bool))
    outside = ndimage.binary_dilation(~domain, ndimage.generate_binary_structure(3, 1))
    opened = np.unique(pieces[outside & dark])
    return np.isin(pieces, opened[opened > 0])


def _canal_upwards(ct: np.ndarray, holes: np.ndarray, sacrum: np.ndarray, base_level_k: float,
                   spacing: float) -> np.ndarray:
    """The canal's dark continuation above the sacral base, where no bone walls it in.

    Between the L5 and S1 laminae the canal is open posteriorly, so :func:`_canal_and_foramina`
    misses it and the watershed gives it to the sacrum. Here: dark voxels (smoothed HU below
    :data:`HOLE_HU_MAX`) of the sacrum label, at or above the sacral base's level (the disc
    centre's axial slice), connected to a walled hole.
    """
    smooth = ndimage.gaussian_filter(ct, ELEVATION_SMOOTHING_MM / spacing)
    above = (np.arange(ct.shape[0]) >= base_level_k)[:, None, None]
    dark = sacrum & above & (smooth < HOLE_HU_MAX)
    pieces, _ = ndimage.label(dark | holes)
    held = np.unique(pieces[holes])
    return np.isin(pieces, held[held > 0]) & dark


def _to_input_grid(sacrum_working: Volume, volume: Volume) -> Volume:
    """0/1 map resampled linearly onto the input grid, thresholded at one half."""
    fraction = resample_like(sacrum_working, volume, "linear", default_value=0.0)
    return volume.with_array(fraction.array >= 0.5, "SEG")
