"""Low-density sacrum route: canal and foramina against fatty marrow, with known answers.

The canal and foramina are dark and open to the outside of the bone; fatty marrow is as dark in
pockets enclosed in the bone. Synthetic blocks with exact answers first, then a fatty-marrow
phantom (truth known) beyond the seeds of ``test_sacrum_lowdensity.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from mask_metrics import dice

from planner.anatomy import sacrum_lowdensity
from planner.anatomy.sacrum_lowdensity import segment_sacrum_low_density
from planner.phantom import fatty_marrow_phantom

SPACING_MM = 3.0
#: Synthetic block (HU): fatty marrow brighter than the canal's contents, soft tissue around.
MARROW_HU = 120.0
CANAL_HU = -60.0
SOFT_TISSUE_HU = 40.0
#: Fatty phantom seed 3 (not among the other file's seeds): Dice 0.861 while enclosed marrow
#: pockets were cut out as canal, 0.888 since.
PHANTOM_SEED = 3
PHANTOM_DICE_MIN = 0.88
#: Sacral truth cut out as canal or foramina: at most this fraction (it was 5.8 % on seed 3).
TRUTH_IN_HOLES_MAX = 0.02
#: Fraction of the synthetic canal found (the smoothing narrows it by part of its edge).
CANAL_FOUND_MIN = 0.9
#: A strongly kyphotic fatty phantom whose pelvic-ring slices break at one slice.
KYPHOTIC_SEED = 8
KYPHOTIC_DICE_MIN = 0.85


def _block_with_canal_and_pocket():
    """A 3 mm block of marrow holding an open canal and an enclosed dark pocket.

    Returns the CT (k, j, i), the bone domain, the canal (a 3 x 3 voxel tube along k through
    the whole block, open at both ends) and the pocket (a 3 x 3 x 3 voxel cube in the middle
    of the other half, enclosed).
    """
    ct = np.full((24, 24, 30), SOFT_TISSUE_HU, np.float32)
    domain = np.zeros(ct.shape, bool)
    domain[2:22, 4:20, 4:26] = True
    ct[domain] = MARROW_HU
    canal = np.zeros(ct.shape, bool)
    canal[2:22, 11:14, 8:11] = True
    pocket = np.zeros(ct.shape, bool)
    pocket[11:14, 11:14, 19:22] = True
    ct[canal | pocket] = CANAL_HU
    return ct, domain, canal, pocket


def test_open_to_outside_keeps_the_canal_and_drops_an_enclosed_pocket():
    _, domain, canal, pocket = _block_with_canal_and_pocket()
    opened = sacrum_lowdensity._open_to_outside(canal | pocket, domain)
    assert np.array_equal(opened, canal)


def test_canal_found_and_marrow_pocket_kept():
    ct, domain, canal, pocket = _block_with_canal_and_pocket()
    holes = sacrum_lowdensity._canal_and_foramina(ct, domain, SPACING_MM)
    # The smoothed canal is a little narrower than the tube (172 of its 180 voxels).
    assert np.count_nonzero(holes & canal) >= CANAL_FOUND_MIN * np.count_nonzero(canal)
    assert not (holes & pocket).any()
    # Nothing of the bright marrow around is taken.
    assert not (holes & domain & ~canal).any()


@pytest.fixture(scope="module")
def phantom_segmentation():
    volume, truth = fatty_marrow_phantom(PHANTOM_SEED)
    return volume, truth, segment_sacrum_low_density(volume)


def test_fatty_phantom_marrow_is_not_cut_as_canal(phantom_segmentation):
    volume, truth, segmentation = phantom_segmentation
    working = segmentation.working
    ct = working.array.astype(np.float32)
    domain = sacrum_lowdensity._domain(ct, SPACING_MM)
    holes = sacrum_lowdensity._canal_and_foramina(ct, domain, SPACING_MM)
    # The phantom's grid is the working grid (3 mm, LPS, same origin).
    assert working.same_grid(truth)
    cut = np.count_nonzero(holes & truth.array)
    assert cut <= TRUTH_IN_HOLES_MAX * np.count_nonzero(truth.array)


def test_fatty_phantom_dice_beyond_the_bar_seeds(phantom_segmentation):
    _, truth, segmentation = phantom_segmentation
    assert dice(segmentation.mask.array, truth.array) >= PHANTOM_DICE_MIN


def test_ring_run_broken_by_one_slice_stays_the_sacral_run():
    # Fatty phantom seed 8 (64 deg kyphosis): its ring slices broke at one slice and the single
    # slice below the gap was taken as the sacral ring; the spine took the sacrum (Dice 0.24;
    # 0.885 with the gap bridged).
    volume, truth = fatty_marrow_phantom(KYPHOTIC_SEED)
    assert dice(segment_sacrum_low_density(volume).mask.array, truth.array) >= KYPHOTIC_DICE_MIN
