"""A phantom CT with fatty, osteoporotic marrow and a thin cortex, on a 3 mm grid.

It stands for the coarse CT of an elderly patient (as the 3 mm totalseg-example CT): the marrow
of every bone reads like soft tissue and the partial-volume cortex does not enclose it. The
anatomy and its truth come from :func:`planner.phantom.make_phantom`; only the bone intensities
change::

    from planner.phantom import fatty_marrow_phantom
    volume, sacrum_truth = fatty_marrow_phantom(seed=0)   # 3 mm CT in HU, bool sacrum mask
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from planner.phantom.build import make_phantom
from planner.phantom.params import PhantomParams
from planner.sitk_bridge import resample_like, resample_to_spacing
from planner.volume import Volume

#: Phantom drawn at this spacing (mm), then averaged down to the coarse scan's spacing, so the
#: cortex gets the partial volume of a real 3 mm scan.
FINE_MM = 1.5
COARSE_MM = 3.0
#: Fatty osteoporotic marrow as measured in the sacrum of the 3 mm totalseg-example CT: median
#: about 80 HU, 10th percentile about -40 HU (a normal law: sd = 120 / 1.28 HU on the coarse
#: grid). The spread is spatially correlated (fatty islands and trabecular clusters a few mm
#: wide): white noise smoothed over MARROW_GRAIN_MM on the fine grid; averaging 2x2x2 fine
#: voxels keeps 0.84 of its sd, so the fine sd is 94 / 0.84 HU.
FATTY_MARROW_HU = 80.0
FATTY_MARROW_SD_HU = 112.0
MARROW_GRAIN_MM = 1.5
#: Phantom voxels inside a bone's truth mask below this (HU) are marrow, above it cortex.
MARROW_MAX_HU = 400.0
#: Thin osteoporotic cortex: its fine-grid voxels are set to this (HU), so that the sacrum's
#: boundary voxels of the coarse grid read about 150-250 HU as on the 3 mm real CT (the
#: phantom's own cortex, about 1080 HU, would read about 400 HU there).
OSTEOPOROTIC_CORTEX_HU = 450.0
#: Scanner noise (HU, sd) added everywhere on the coarse grid.
NOISE_SD_HU = 15.0


def fatty_marrow_phantom(seed: int, orientation: str = "LPS") -> tuple[Volume, Volume]:
    """A phantom CT with fatty marrow in every bone, on a 3 mm grid, and its sacrum truth.

    The phantom of ``PhantomParams.random(seed)`` is drawn on a :data:`FINE_MM` grid; the
    marrow of the sacrum, ilia, L5 and coccyx (their truth masks, below :data:`MARROW_MAX_HU`)
    gets fatty-marrow values with a spatially correlated spread, their cortex
    :data:`OSTEOPOROTIC_CORTEX_HU`; the volume is then averaged down to :data:`COARSE_MM` and
    every coarse voxel gets scanner noise (fixed seed: same seed, same volume).

    Parameters
    ----------
    seed : int
        Seed of the anatomy (``PhantomParams.random``) and of the marrow texture and noise.
    orientation : str
        Storage orientation of the grid (one of ``planner.phantom.ORIENTATIONS``).

    Returns
    -------
    volume : Volume
        The CT in HU (float32) on the 3 mm grid, shape about (86, 57, 114) for ``[k, j, i]``.
    sacrum : Volume
        Sacrum truth (bool) on the same grid: the fine truth's fraction of each coarse voxel of
        at least one half.
    """
    phantom = make_phantom(PhantomParams.random(seed), spacing_mm=FINE_MM, orientation=orientation)
    ct = phantom.volume.array.astype(np.float32)
    truth = phantom.truth
    bones = truth.sacrum.array | (truth.ilia.array > 0) | truth.l5.array | truth.coccyx.array
    marrow = bones & (ct < MARROW_MAX_HU)
    rng = np.random.default_rng(seed)
    grain = ndimage.gaussian_filter(
        rng.normal(0.0, 1.0, ct.shape).astype(np.float32), MARROW_GRAIN_MM / FINE_MM
    )
    grain /= grain.std()
    ct[marrow] = FATTY_MARROW_HU + FATTY_MARROW_SD_HU * grain[marrow]
    ct[bones & ~marrow] = OSTEOPOROTIC_CORTEX_HU
    fine = phantom.volume.with_array(ct)
    coarse = resample_to_spacing(fine, COARSE_MM, "linear")
    noise = rng.normal(0.0, NOISE_SD_HU, coarse.array.shape).astype(np.float32)
    values = coarse.array + noise
    sacrum_fraction = resample_like(
        fine.with_array(truth.sacrum.array.astype(np.float32)), coarse, "linear", 0.0
    )
    return coarse.with_array(values.astype(np.float32)), coarse.with_array(
        sacrum_fraction.array >= 0.5, "SEG"
    )
