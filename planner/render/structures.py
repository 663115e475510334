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


def bounding_box(mask: np.ndarray):
    """Tuple of slices bounding the non-zero voxels of a ``[k, j, i]`` array, or None if empty.

    Uses any-reductions (first over the slices, then inside the occupied slab), which is several
    times faster than a labelling pass on a large, mostly empty grid.
    """
    occupied = np.asarray(mask) != 0 if np.asarray(mask).dtype != bool else np.asarray(mask)
    along_k = np.flatnonzero(occupied.any(axis=(1, 2)))
    if along_k.size == 0:
        return None
    slab = occupied[along_k[0] : along_k[-1] + 1]
    along_j = np.flatnonzero(slab.any(axis=(0, 2)))
    along_i = np.flatnonzero(slab.any(axis=(0, 1)))
    return (
        slice(int(along_k[0]), int(along_k[-1]) + 1),
        slice(int(along_j[0]), int(along_j[-1]) + 1),
        slice(int(along_i[0]), int(along_i[-1]) + 1),
    )


def surface_points(mask: np.ndarray, volume: Volume, box=None) -> np.ndarray:
    """(N, 3) LPS centres of the voxels of a boolean ``[k, j, i]`` mask that touch its outside.

    Works on the mask's bounding box only (``box``, a tuple of slices, if already known), so a
    small structure in a large grid is cheap.
    """
    mask = np.asarray(mask, bool)
    if box is None:
        box = bounding_box(mask)
    if box is None:
        return np.zeros((0, 3))
    padded = [slice(max(0, s.start - 1), s.stop + 1) for s in box]
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
            labels = np.asarray(self.foramina.array)
            spacing = float(self.foramina.spacing_xyz.max())
            outer = bounding_box(labels)
            # No foramen found (an empty label map) leaves nothing to outline.
            boxes = [] if outer is None else ndimage.find_objects(labels[outer].astype(np.int32))
            offset = [b.start for b in outer] if outer is not None else [0, 0, 0]
            # One labelling pass over the crop finds every label's box.
            for index, box in enumerate(boxes):
                if box is None:
                    continue
                full_box = tuple(
                    slice(b.start + o, b.stop + o) for b, o in zip(box, offset, strict=True)
                )
                local = np.zeros(labels.shape, bool)
                local[full_box] = labels[full_box] == index + 1
                points = surface_points(local, self.foramina, full_box)
                result.append(SurfacePoints(f"foramen {index + 1}", "foramina", points, spacing))
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
