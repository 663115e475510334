"""Tissue classes and their intensity in CT (HU) and MR-like T1, T2 and STIR contrast."""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only for annotations: params re-exports the contrast lists from here
    from planner.phantom.params import PhantomParams


class Tissue(IntEnum):
    AIR = 0
    FAT = 1  # subcutaneous fat
    SOFT = 2  # muscle and pelvic soft tissue
    SKIN = 3
    CORTEX = 4
    MARROW = 5  # trabecular bone with fatty marrow
    DISC_REMNANT = 6  # sclerotic line of a fused sacral disc
    DISC = 7  # L5/S1 disc
    CSF = 8  # inside the dural sac
    EPIDURAL_FAT = 9  # canal outside the dural sac, and the foramina
    LESION = 10
    JOINT = 11  # sacroiliac and sacrococcygeal joint spaces


#: CT values (HU) of the tissues that do not depend on the case.
CT_FIXED_HU = {
    Tissue.AIR: -1000.0,
    Tissue.FAT: -100.0,
    Tissue.SOFT: 40.0,
    Tissue.SKIN: 30.0,
    Tissue.DISC: 80.0,
    Tissue.CSF: 10.0,
    Tissue.EPIDURAL_FAT: -80.0,
    Tissue.JOINT: 40.0,
}

#: MR-like intensities (arbitrary units on a 0-1000 scale). T1: marrow and fat bright, cortex
#: and CSF dark. T2: CSF bright, lesion bright, cortex dark. STIR (short-tau inversion recovery,
#: fat suppressed): fat and fatty marrow dark, fluid (CSF, joints, disc) and the lesion's oedema
#: bright, muscle intermediate, cortex dark.
MR_VALUES = {
    "T1": {
        Tissue.AIR: 0,
        Tissue.FAT: 900,
        Tissue.SOFT: 350,
        Tissue.SKIN: 500,
        Tissue.CORTEX: 40,
        Tissue.MARROW: 700,
        Tissue.DISC_REMNANT: 250,
        Tissue.DISC: 300,
        Tissue.CSF: 120,
        Tissue.EPIDURAL_FAT: 850,
        Tissue.LESION: 250,
        Tissue.JOINT: 200,
    },
    "T2": {
        Tissue.AIR: 0,
        Tissue.FAT: 650,
        Tissue.SOFT: 300,
        Tissue.SKIN: 400,
        Tissue.CORTEX: 40,
        Tissue.MARROW: 450,
        Tissue.DISC_REMNANT: 150,
        Tissue.DISC: 600,
        Tissue.CSF: 1000,
        Tissue.EPIDURAL_FAT: 600,
        Tissue.LESION: 800,
        Tissue.JOINT: 300,
    },
    "STIR": {
        Tissue.AIR: 0,
        Tissue.FAT: 60,
        Tissue.SOFT: 250,
        Tissue.SKIN: 300,
        Tissue.CORTEX: 30,
        Tissue.MARROW: 120,
        Tissue.DISC_REMNANT: 90,
        Tissue.DISC: 550,
        Tissue.CSF: 1000,
        Tissue.EPIDURAL_FAT: 60,
        Tissue.LESION: 800,
        Tissue.JOINT: 450,
    },
}


#: MR-like contrasts a phantom can be drawn in: those with a tissue table above.
MR_CONTRASTS: tuple[str, ...] = tuple(MR_VALUES)
#: Every contrast a phantom can be drawn in (the one list; ``planner.phantom.params`` and
#: ``planner.phantom`` re-export it).
CONTRASTS: tuple[str, ...] = ("CT", *MR_CONTRASTS)


def lookup_table(contrast: str, params: PhantomParams) -> np.ndarray:
    """Intensity of each :class:`Tissue` (indexable by the class value).

    Parameters
    ----------
    contrast : str
        One of :data:`CONTRASTS`.
    params : PhantomParams
        The case (its CT values of cortex, marrow, fused-disc remnant and lesion).

    Returns
    -------
    (len(Tissue),) float32
        HU for ``"CT"``, arbitrary units 0-1000 for the MR contrasts.
    """
    table = np.zeros(len(Tissue), dtype=np.float32)
    if contrast == "CT":
        for tissue, value in CT_FIXED_HU.items():
            table[tissue] = value
        table[Tissue.CORTEX] = params.cortical_hu
        table[Tissue.MARROW] = params.trabecular_hu
        table[Tissue.DISC_REMNANT] = params.disc_remnant_hu
        table[Tissue.LESION] = params.lesion_hu
        if not params.soft_tissue:
            table[[Tissue.FAT, Tissue.SOFT, Tissue.SKIN, Tissue.JOINT]] = CT_FIXED_HU[Tissue.AIR]
    else:
        for tissue, value in MR_VALUES[contrast].items():
            table[tissue] = value
    return table
