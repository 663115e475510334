"""Time `planner.load` on a real NIfTI scan and on a synthetic 512 x 512 x 300 DICOM series.

Run from the project root: ``python benchmarks/bench_loading.py``. Prints the median of three
loads (and the first, cold one) per input. The DICOM series is written once into a temporary
folder with the test factory (uncompressed and RLE).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import dicom_factory as factory  # noqa: E402

from planner.loading import list_series, load  # noqa: E402

REPEATS = 3
DICOM_SHAPE_IJK = (512, 512, 300)


def time_call(function, *args) -> list[float]:
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function(*args)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    rows = []
    real = ROOT.parent / "shared" / "data" / "pengwin-001" / "ct_boneonly.nii.gz"
    if real.exists():
        rows.append(("pengwin-001 NIfTI 512x512x274", time_call(load, real)))
    with tempfile.TemporaryDirectory() as scratch:
        for syntax in ("explicit", "rle"):
            folder = Path(scratch) / syntax
            start = time.perf_counter()
            factory.write_series(
                folder,
                shape_ijk=DICOM_SHAPE_IJK,
                syntax=syntax,
                pixel_spacing_ij=(0.8, 0.8),
                slice_step_mm=1.0,
            )
            print(f"wrote {syntax} series in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            label = f"DICOM {syntax} 512x512x300"
            rows.append((f"{label}: list_series", time_call(list_series, folder)))
            rows.append((f"{label}: load", time_call(load, folder)))
    print(f"{'input':45s} {'first s':>8s} {'median s':>9s}")
    for name, seconds in rows:
        print(f"{name:45s} {seconds[0]:8.2f} {statistics.median(seconds):9.2f}")


if __name__ == "__main__":
    main()
