"""The planner's masks as NIfTI files on the input's own grid (the DESIGN.md mask contract)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from planner.sitk_bridge import resample_like, volume_to_sitk
from planner.volume import Volume

#: File name -> ``SacralAnatomy`` attribute. Label values: see ``planner.anatomy.model``.
MASK_FILES = {
    "sacrum.nii.gz": "sacrum",
    "canal.nii.gz": "canal",
    "foramina.nii.gz": "foramina",
    "levels.nii.gz": "levels",
}


def mask_on_grid(mask: Volume, grid: Volume) -> Volume:
    """``mask`` as uint8 on the grid of ``grid`` (nearest-neighbour where the grids differ)."""
    mask = mask.with_array(np.asarray(mask.array).astype(np.uint8), modality="SEG")
    if not mask.same_grid(grid):
        mask = resample_like(mask, grid, "nearest", default_value=0)
    return mask


def write_masks(anatomy, grid: Volume, folder: str | Path) -> list[Path]:
    """Write ``sacrum``, ``canal``, ``foramina`` and ``levels`` masks on ``grid``.

    Returns the paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, attribute in MASK_FILES.items():
        path = folder / filename
        sitk.WriteImage(volume_to_sitk(mask_on_grid(getattr(anatomy, attribute), grid)), str(path),
                        useCompression=True)
        written.append(path)
    return written
