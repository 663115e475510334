"""What the pictures outline: foramina, anterior cortex, masks, and the mid-sagittal normal."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import ndimage

from planner.volume import Volume


@dataclass(frozen=True)
class SurfacePoints:
    """Boundary voxels of one structure: what its projected silhouette is drawn from."""

    name: str
    kind: str  # "outline" (a mask from ``outlines``) or "foramina"
    points_lps: np.ndarray  # (N, 3) centres of the voxels on the structure's surface, mm
    voxel_mm: float  # largest voxel side, mm


def surface_points(mask: np.ndarray, volume: Volume) -> np.ndarray:
    """(N, 3) LPS centres of the voxels of a boolean ``[k, j, i]`` mask that touch its outside.

    Works on the mask's bounding box only, so a small structure in a large grid is cheap.
    """
    mask = np.asarray(mask, bool)
    box = ndimage.find_objects(mask.astype(np.uint8))
    if not box or box[0] is None:
        return np.zeros((0, 3))
    padded = [slice(max(0, s.start - 1), s.stop + 1) for s in box[0]]
    crop = mask[tuple(padded)]
    surface = crop & ~ndimage.binary_erosion(crop)
    kji = np.argwhere(surface) + [s.start for s in padded]
    return volume.index_to_lps(kji[:, ::-1].astype(float))


@dataclass(frozen=True, eq=False)
class Structures:
    """What to outline on the pictures (all optional; LPS geometry travels with the masks).

    Attributes
    ----------
    foramina : Volume (int), optional
        Anterior foramina labelled 1..8 (``planner.anatomy.FORAMEN_LABELS``).
    anterior_cortex_lps : (N, 3) ndarray, optional
        Anterior cortex line on the mid-sagittal plane, promontory to tip.
    outlines : dict of str -> Volume (bool)
        Further masks to outline (e.g. ``{"sacrum": mask, "canal": mask}``).
    midsagittal_normal_lps : (3,) ndarray, optional
        Normal of the fitted mid-sagittal plane (defines the true lateral).
    """

    foramina: Volume | None = None
    anterior_cortex_lps: np.ndarray | None = None
    outlines: dict[str, Volume] = field(default_factory=dict)
    midsagittal_normal_lps: np.ndarray | None = None

    @cached_property
    def surfaces(self) -> list[SurfacePoints]:
        """Surface voxels of every outlined structure and of each foramen (computed once)."""
        result = [
            SurfacePoints(
                name, "outline", surface_points(mask.array > 0, mask), float(mask.spacing_xyz.max())
            )
            for name, mask in self.outlines.items()
        ]
        if self.foramina is not None:
            labels = self.foramina.array
            spacing = float(self.foramina.spacing_xyz.max())
            for label in (int(v) for v in np.unique(labels) if v > 0):
                points = surface_points(labels == label, self.foramina)
                result.append(SurfacePoints(f"foramen {label}", "foramina", points, spacing))
        return result

    @cached_property
    def silhouette_cache(self) -> dict:
        """Scratch space for renderers: projected silhouettes per camera (lives with ``self``)."""
        return {}

    @classmethod
    def from_anatomy(cls, anatomy, extra_outlines: dict[str, Volume] | None = None):
        """Structures from a ``SacralAnatomy`` (foramina, cortex, canal, mid-sagittal plane)."""
        outlines = {"canal": anatomy.canal}
        outlines.update(extra_outlines or {})
        return cls(
            foramina=anatomy.foramina,
            anterior_cortex_lps=np.asarray(anatomy.anterior_cortex_lps, float),
            outlines=outlines,
            midsagittal_normal_lps=np.asarray(anatomy.midsagittal.normal_lps, float),
        )
