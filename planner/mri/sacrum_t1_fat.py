"""Fat and its partial-volume shell on a T1-weighted MRI: never bone.

On T1 fat (subcutaneous, the canal's epidural fat, the fat in the foramina) is brighter than
fatty marrow. Where fat meets the dark cortex lining the canal and the foramina, the voxels
across the edge average the two and read anywhere between them, much of it at the marrow's
level: a bright rim that the marrow search takes for bone. It joins L5's arch to the sacrum
along the canal and leaves a ring of false bone round the canal (about 5 % of the sacrum's
volume on the phantoms). Those voxels touch the fat itself and read closer to fat than to the
cortex; true marrow is kept from the fat by the cortex between them.

Works on the isotropic LPS working grid of :func:`~planner.mri.sacrum_t1.find_sacrum_t1`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Width (voxels of the working grid, face-connected steps) of the partial-volume rim taken off
#: round the fat: one 1.5 mm voxel, the edge blur in-plane.
FAT_RIM_VOXELS = 1


def fat_rim(values: np.ndarray, fat_level: float, edge_level: float) -> np.ndarray:
    """The fat and its partial-volume rim.

    Parameters
    ----------
    values : (K, J, I) float
        The prepared T1 on the working grid.
    fat_level : float
        Brighter than this is fat (the core).
    edge_level : float
        The rim: voxels within :data:`FAT_RIM_VOXELS` of the core that read brighter than this
        (halfway between fat and cortex: more fat than cortex in the voxel).

    Returns
    -------
    (K, J, I) bool
    """
    core = values > fat_level
    if not core.any():
        return core
    near = ndimage.binary_dilation(core, iterations=FAT_RIM_VOXELS)
    return core | (near & (values > edge_level))


def hole_rim(sacrum: np.ndarray, values: np.ndarray, edge_level: float) -> np.ndarray:
    """Voxels of the sacrum next to a hole of its axial section that read more fat than cortex.

    The canal (closed behind by the laminae) and the foramina are holes in the sacrum's axial
    sections. Their fat is often too thin to reach the fat level of :func:`fat_rim` (a 1-3 mm
    ring of epidural fat round the dural sac, blurred), so its partial-volume rim on the
    sacrum's side is found from the hole instead: voxels of ``sacrum`` face-adjacent to a hole
    and brighter than ``edge_level``.

    Parameters
    ----------
    sacrum : (K, J, I) bool
        The sacrum on the working grid (axis 0 superior: sections ``sacrum[k]`` are axial).
    values : (K, J, I) float
        The prepared T1.
    edge_level : float
        Halfway between fat and cortex.

    Returns
    -------
    (K, J, I) bool
        Voxels of ``sacrum`` to remove.
    """
    holes = np.zeros(sacrum.shape, bool)
    for k in np.flatnonzero(sacrum.any(axis=(1, 2))):
        holes[k] = ndimage.binary_fill_holes(sacrum[k]) & ~sacrum[k]
    return ndimage.binary_dilation(holes) & sacrum & (values > edge_level)
