"""The sacrum on T1-weighted MRI: the fat's partial-volume rim, L5 cut off at a neck, small parts
with a thick cortex.

Known answers on small label maps and intensity lines, then one phantom with a thick cortex at the
benchmark's MR resolution (1.2 x 1.2 x 4 mm) whose truth is exact: where each truth voxel lies
along the sacrum comes from the phantom's own analytic frame.
"""

from __future__ import annotations

import numpy as np
import pytest
from mask_metrics import dice

from planner.mri.phantom_pair import make_phantom_pair
from planner.mri.sacrum_t1 import (
    MR_WORKING_SPACING_MM,
    PIECE_GAP_MM,
    PIECE_MIN_MM3,
    _cut_cranial_neighbour,
    _sacral_segments,
    find_sacrum_t1,
)
from planner.mri.sacrum_t1_fat import fat_rim
from planner.phantom import PhantomParams
from planner.phantom.pelvis import PelvisModel
from planner.sitk_bridge import resample_like
from planner.volume import Volume

VOXEL_MM3 = MR_WORKING_SPACING_MM**3


def test_fat_rim_takes_the_partial_volume_next_to_fat_only():
    """Along a line: muscle, fat, a fat/cortex partial-volume voxel, cortex, marrow, cortex, a
    voxel as bright as that partial volume but away from fat, muscle. The rim is the fat and the
    voxel touching it that reads more fat than cortex; nothing else."""
    line = np.array([0.38, 1.0, 0.7, 0.1, 0.8, 0.8, 0.1, 0.7, 0.38], np.float32)
    values = line.reshape(1, 1, -1)
    rim = fat_rim(values, fat_level=0.9, edge_level=0.55)[0, 0]
    assert np.flatnonzero(rim).tolist() == [1, 2]
    assert not fat_rim(values * 0.5, fat_level=0.9, edge_level=0.55).any()  # no fat: no rim


def _blocks(*boxes: tuple[slice, slice, slice], shape=(90, 30, 30)) -> np.ndarray:
    labels = np.zeros(shape, np.int32)  # [k, j, i] on the LPS working grid: k is superior
    for box in boxes:
        labels[box] = 1
    return labels


def test_cut_cranial_neighbour_cuts_l5_at_a_thin_neck_only():
    main = (slice(10, 40), slice(5, 25), slice(5, 25))
    cranial = (slice(42, 60), slice(5, 25), slice(5, 25))  # L5 arch, joined by a 1-voxel neck
    neck = (slice(40, 42), slice(14, 15), slice(14, 15))
    labels = _blocks(main, cranial, neck)
    cut, new = _cut_cranial_neighbour(labels, 1)
    assert len(new) == 1 and np.all(cut[cranial] == new[0]) and np.all(cut[main] == 1)
    # The same block joined broadly (a bone of its own part, not a neck) stays.
    broad = (slice(40, 42), slice(8, 22), slice(8, 22))
    assert _cut_cranial_neighbour(_blocks(main, cranial, broad), 1)[1] == []
    # Caudal of the main piece (a lower segment) or small (a facet): not L5.
    caudal = (slice(0, 8), slice(5, 25), slice(5, 25))
    low_neck = (slice(8, 10), slice(14, 15), slice(14, 15))
    assert _cut_cranial_neighbour(_blocks(main, caudal, low_neck), 1)[1] == []
    small = (slice(42, 46), slice(12, 17), slice(12, 17))
    assert _cut_cranial_neighbour(_blocks(main, small, neck), 1)[1] == []


def test_small_pieces_join_wherever_they_lie_when_near_and_not_specks():
    """Known answer: a 216 mm^3 piece 4.5 mm cranial and one 3 mm lateral of the sacral marrow
    join (a facet, the tip behind a thick cortex); an 81 mm^3 speck 3 mm away and a 216 mm^3
    piece 7.5 mm away do not."""
    labels = np.zeros((80, 30, 40), np.int32)
    labels[30:50, 5:15, 5:15] = 1  # the sacral marrow (chosen)
    labels[52:56, 8:12, 8:12] = 2  # cranial piece, 3 voxels (4.5 mm) away
    labels[36:40, 8:12, 17:21] = 3  # lateral piece, 2 voxels (3 mm) away
    labels[26:29, 8:10, 8:12] = 4  # speck, 81 mm^3, 2 voxels away
    labels[15:19, 8:12, 8:12] = 5  # piece 7 voxels (10.5 mm) away
    sizes = {label: np.count_nonzero(labels == label) * VOXEL_MM3 for label in (2, 3, 4, 5)}
    assert sizes[4] < PIECE_MIN_MM3 <= min(sizes[2], sizes[3], sizes[5])
    assert 4.5 <= PIECE_GAP_MM < 10.5
    work = Volume(np.zeros(labels.shape, np.float32), np.zeros(3), (MR_WORKING_SPACING_MM,) * 3)
    centre_x = float(work.center_lps()[0])
    assert sorted(_sacral_segments(labels, 1, work, centre_x)) == [1, 2, 3]


@pytest.fixture(scope="module")
def thick_cortex_case():
    """A phantom with a 2 mm cortex (the thickest the phantoms draw), its T1 MR at the
    benchmark's resolution, the sacrum found on it and the truth on the MR grid."""
    params = PhantomParams.random(3, lesion=True, fov="sacrum", fov_margin_mm=25.0,
                                  cortex_mm=2.0)
    pair = make_phantom_pair(params, "T1", (5.0, -7.0, 6.0), (8.0, -6.0, 10.0),
                             ct_spacing_mm=3.0)
    truth = pair.mr_truth["sacrum"]
    found = resample_like(find_sacrum_t1(pair.mr).mask, truth, "nearest", 0).array > 0
    # Arc length s along the sacrum (0 at the S1 endplate, the height at the tip) of every MR
    # voxel, from the phantom's analytic frame (the MR frame mapped back onto the CT's).
    model = PelvisModel(params)
    kji = np.argwhere(np.ones(truth.array.shape, bool))
    ct_lps = pair.mr_from_ct.inverse().apply(truth.index_to_lps(kji[:, ::-1].astype(float)))
    _, s_mm, _ = model.frame.pelvis_to_sacral(model.frame.world_to_pelvis(ct_lps))
    return dict(found=found, truth=truth.array > 0, canal=pair.mr_truth["canal"].array > 0,
                s_mm=s_mm.reshape(truth.array.shape), height_mm=params.sacral_height_mm)


def test_thick_cortex_keeps_the_tip_and_leaves_the_canal(thick_cortex_case):
    """Before the fat rim and the small pieces: 8 % of the last 6 mm of the tip found, 28 % of
    the canal inside the mask, Dice 0.909."""
    case = thick_cortex_case
    found, truth = case["found"], case["truth"]
    tip = truth & (case["s_mm"] > case["height_mm"] - 6.0)
    assert tip.sum() > 100
    assert np.count_nonzero(found & tip) >= 0.5 * np.count_nonzero(tip)
    assert np.count_nonzero(found & case["canal"]) <= 0.2 * np.count_nonzero(case["canal"])
    assert dice(found, truth) >= 0.915
