"""Sacrum segmentation: Dice, time and peak memory on the real scans and on phantoms.

Run from the project root::

    python benchmarks/bench_sacrum.py                # real scans + phantoms (20 seeds)
    python benchmarks/bench_sacrum.py --seeds 5      # fewer phantoms
    python benchmarks/bench_sacrum.py --no-phantoms  # real scans and grid timing only

Each real scan is segmented in a fresh child process (so its peak RSS is its own, including
loading the scan), ``--repeats`` times; the table gives the median wall time and the median CPU
time of the process (all threads; ITK uses both cores). Other processes may share the CPU: the
load average at start is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SACROPLAN_DATA", PROJECT_ROOT.parent / "shared" / "data"))

#: case -> (CT file, reference mask file, reference label, what the reference is)
CASES = {
    "pengwin-001": ("ct_boneonly.nii.gz", "labels.nii.gz", 1, "manual"),
    "pengwin-003": ("ct_boneonly.nii.gz", "labels.nii.gz", 1, "manual"),
    "totalseg-example": ("ct.nii.gz", "sacrum_model_prediction.nii.gz", 1, "network"),
}
GRID_SPACINGS_MM = (2.0, 1.0, 0.7)
PHANTOM_ORIENTATIONS = ("LPS", "permuted_flipped", "oblique")
PHANTOM_SPACINGS_MM = (2.0, 1.5)


def _child(case: str, spacing_mm: float, repeats: int) -> dict:
    """Run in a child process: segment one case, return Dice, median time, peak RSS."""
    import numpy as np
    import SimpleITK as sitk

    from planner.anatomy.sacrum import segment_sacrum
    from planner.errors import PlannerError
    from planner.sitk_bridge import volume_from_sitk

    ct_name, ref_name, ref_label, _ = CASES[case]
    ct = volume_from_sitk(sitk.ReadImage(str(DATA / case / ct_name)))
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / case / ref_name))) == ref_label
    times, cpu_times, result, error = [], [], None, ""
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            result = segment_sacrum(ct, working_spacing_mm=spacing_mm)
        except PlannerError as exc:
            error = str(exc)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    dice = float("nan")
    if result is not None:
        mask = result.mask.array
        dice = 2.0 * np.count_nonzero(mask & reference) / (mask.sum() + reference.sum())
    return {
        "dice": dice,
        "time_s": statistics.median(times),
        "cpu_s": statistics.median(cpu_times),
        "peak_mb": peak_mb,
        "error": error,
        "reasons": list(result.confidence.reasons) if result is not None else [],
    }


def _run_child(case: str, spacing_mm: float, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", case, str(spacing_mm), str(repeats)]
    process = subprocess.run(command, capture_output=True, text=True)
    if process.returncode != 0:
        last = (process.stderr.strip().splitlines() or ["no message"])[-1]
        nan = float("nan")
        return {
            "dice": nan,
            "time_s": nan,
            "cpu_s": nan,
            "peak_mb": nan,
            "error": last,
            "reasons": [],
        }
    return json.loads(process.stdout.strip().splitlines()[-1])


def real_scans(repeats: int) -> None:
    print(f"Real scans (working grid 2 mm; median of {repeats} runs; peak RSS of the process)")
    print(
        f"{'case':18} {'reference':9} {'Dice':>7} {'time s':>7} {'CPU s':>6} {'peak MB':>8}  notes"
    )
    for case, (_, _, _, kind) in CASES.items():
        row = _run_child(case, 2.0, repeats)
        notes = row["error"] or "; ".join(row["reasons"])
        print(
            f"{case:18} {kind:9} {row['dice']:7.4f} {row['time_s']:7.2f} {row['cpu_s']:6.2f} "
            f"{row['peak_mb']:8.0f}  {notes}"
        )


def grid_timing(repeats: int) -> None:
    print(f"\nWorking grid on pengwin-001 (median of {repeats} runs)")
    print(f"{'spacing mm':>10} {'Dice':>7} {'time s':>7} {'CPU s':>6} {'peak MB':>8}")
    for spacing in GRID_SPACINGS_MM:
        row = _run_child("pengwin-001", spacing, repeats)
        print(
            f"{spacing:10.1f} {row['dice']:7.4f} {row['time_s']:7.2f} {row['cpu_s']:6.2f} "
            f"{row['peak_mb']:8.0f}  {row['error']}"
        )


def phantoms(seeds: int) -> None:
    """Dice per spacing and orientation; also the cases whose mask holds any voxel of L5 or of
    the coccyx (both must stay out) and the seeds of those cases."""
    import numpy as np

    from planner.anatomy.sacrum import segment_sacrum
    from planner.errors import AnatomyNotFoundError
    from planner.phantom import PhantomParams, make_phantom

    print(
        f"\nPhantoms: {seeds} seeds x {len(PHANTOM_ORIENTATIONS)} orientations x "
        f"{len(PHANTOM_SPACINGS_MM)} spacings"
    )
    print(
        f"{'spacing mm':>10} {'orientation':17} {'n':>3} {'min':>7} {'median':>7} "
        f"{'mean':>7} {'>=0.97':>7} {'+L5':>4} {'+coccyx':>7} {'time s':>7}  seeds with L5/coccyx"
    )
    for spacing in PHANTOM_SPACINGS_MM:
        for orientation in PHANTOM_ORIENTATIONS:
            dices, times, with_l5, with_coccyx = [], [], [], []
            for seed in range(seeds):
                phantom = make_phantom(PhantomParams.random(seed=seed), spacing, orientation)
                start = time.perf_counter()
                try:
                    mask = segment_sacrum(phantom.volume).mask.array
                except AnatomyNotFoundError:
                    mask = np.zeros(phantom.truth.sacrum.array.shape, bool)
                times.append(time.perf_counter() - start)
                truth = phantom.truth.sacrum.array
                dices.append(2.0 * np.count_nonzero(mask & truth) / (mask.sum() + truth.sum()))
                if np.any(mask & phantom.truth.l5.array):
                    with_l5.append(seed)
                if np.any(mask & phantom.truth.coccyx.array):
                    with_coccyx.append(seed)
            dices = np.array(dices)
            print(
                f"{spacing:10.1f} {orientation:17} {len(dices):3d} {dices.min():7.4f} "
                f"{np.median(dices):7.4f} {dices.mean():7.4f} {np.mean(dices >= 0.97):7.0%} "
                f"{len(with_l5):4d} {len(with_coccyx):7d} {np.median(times):7.2f}  "
                f"{with_l5 or '-'}/{with_coccyx or '-'}"
            )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--no-phantoms", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "SPACING", "REPEATS"))
    args = parser.parse_args(argv)
    if args.child:
        case, spacing, repeats = args.child
        print(json.dumps(_child(case, float(spacing), int(repeats))))
        return
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    real_scans(args.repeats)
    grid_timing(args.repeats)
    if not args.no_phantoms:
        phantoms(args.seeds)


if __name__ == "__main__":
    main()
