"""Benchmark of the low-density sacrum route: Dice, criterion and time, printed as a table.

Cases: fatty-marrow phantoms (3 mm, truth known; planner.phantom.fatty_marrow_phantom), the 3 mm
totalseg-example CT (against the network's prediction), and the criterion alone on dense phantoms
and the bone-only pengwin scans.

Run from the project root: ``python benchmarks/bench_sacrum_lowdensity.py [--seeds 0 1 2]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from planner.anatomy.sacrum_lowdensity import (  # noqa: E402
    marrow_is_low_density,
    segment_sacrum_low_density,
)
from planner.phantom import PhantomParams, fatty_marrow_phantom, make_phantom  # noqa: E402
from planner.sitk_bridge import volume_from_sitk, volume_to_sitk  # noqa: E402

DATA = PROJECT_ROOT.parent / "shared" / "data"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


def restored(volume):
    """The same voxels stored with permuted and flipped axes (no resampling)."""
    image = sitk.Flip(sitk.PermuteAxes(volume_to_sitk(volume), [2, 0, 1]), [True, False, True])
    return volume_from_sitk(image, volume.modality)


def read(path: Path, modality: str = "CT"):
    return volume_from_sitk(sitk.ReadImage(str(path)), modality)


def timed(volume):
    start = time.perf_counter()
    segmentation = segment_sacrum_low_density(volume)
    return segmentation, time.perf_counter() - start


def row(name, criterion, dice_value=None, seconds=None) -> str:
    dice_text = f"{dice_value:6.4f}" if dice_value is not None else "     -"
    time_text = f"{seconds:5.2f}" if seconds is not None else "    -"
    return (
        f"{name:34s} {criterion.deep_median_hu:8.0f} {criterion.cortex_median_hu:8.0f} "
        f"{criterion.voxel_mm:5.1f} {str(criterion.low_density):>5s} {dice_text} {time_text}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    header = ("case", "deep HU", "cortex", "vox", "low", "Dice", "s")
    print("{:34s} {:>8s} {:>8s} {:>5s} {:>5s} {:>6s} {:>5s}".format(*header))
    phantom_dice = []
    for seed in args.seeds:
        volume, truth = fatty_marrow_phantom(seed)
        segmentation, seconds = timed(volume)
        phantom_dice.append(dice(segmentation.mask.array, truth.array))
        print(row(f"fatty phantom seed {seed}", marrow_is_low_density(volume),
                  phantom_dice[-1], seconds))  # fmt: skip
    volume, truth = fatty_marrow_phantom(args.seeds[0])
    stored = restored(volume)
    segmentation, seconds = timed(stored)
    print(row(f"fatty phantom seed {args.seeds[0]} permuted", marrow_is_low_density(stored),
              dice(segmentation.mask.array, restored(truth).array > 0), seconds))  # fmt: skip
    print(f"{'fatty phantoms, mean Dice':34s} {np.mean(phantom_dice):42.4f}")
    for seed in args.seeds[:2]:
        for spacing in (2.0, 3.0):
            dense = make_phantom(PhantomParams.random(seed), spacing_mm=spacing).volume
            print(row(f"dense phantom seed {seed} {spacing:.0f} mm", marrow_is_low_density(dense)))
    if (DATA / "totalseg-example").exists():
        ct = read(DATA / "totalseg-example" / "ct.nii.gz")
        network = read(DATA / "totalseg-example" / "sacrum_model_prediction.nii.gz", "SEG")
        segmentation, seconds = timed(ct)
        print(row("totalseg-example (network mask)", marrow_is_low_density(ct),
                  dice(segmentation.mask.array, network.array > 0), seconds))  # fmt: skip
        for case in ("pengwin-001", "pengwin-003"):
            bone_only = read(DATA / case / "ct_boneonly.nii.gz")
            print(row(f"{case} (bone-only)", marrow_is_low_density(bone_only)))
    else:
        print(f"real scans not found at {DATA}")


if __name__ == "__main__":
    main()
