"""What the pictures outline: foramina, anterior cortex, masks, and the mid-sagittal normal."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planner.volume import Volume


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
