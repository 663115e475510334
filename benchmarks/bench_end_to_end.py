"""End-to-end ``sacroplan plan`` timing: wall time, peak memory and each stage's share.

Runs the real command in a fresh process (as a user would), under ``/usr/bin/time -v`` for the
peak resident memory, and prints a table of medians over ``--repeats`` runs.

    python benchmarks/bench_end_to_end.py [--repeats 3] [--case pengwin-001/ct_boneonly.nii.gz]

Real scans are read from ``../shared/data`` or ``$SACROPLAN_DATA``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SACROPLAN_DATA", ROOT.parent / "shared" / "data"))
STAGE_LINE = re.compile(r"\]\s+(\w+)\s+([\d.]+) s$")
PEAK_LINE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
WALL_LINE = re.compile(
    r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)"
)


def run_once(case: Path, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [
            "/usr/bin/time",
            "-v",
            sys.executable,
            "-m",
            "planner",
            "plan",
            str(case),
            "-o",
            str(Path(out) / "plan"),
            *extra,
        ]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode not in (0, 3):
        raise SystemExit(f"sacroplan failed ({completed.returncode}): {completed.stderr[-2000:]}")
    stages = {
        m.group(1): float(m.group(2))
        for line in completed.stderr.splitlines()
        if (m := STAGE_LINE.search(line))
    }
    wall = WALL_LINE.search(completed.stderr)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    return {
        "wall_s": hours * 3600 + minutes * 60 + seconds,
        "peak_mb": int(PEAK_LINE.search(completed.stderr).group(1)) / 1024.0,
        "stages": stages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case",
        action="append",
        help="path under the data folder (default: pengwin-001, totalseg)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--save-masks", action="store_true")
    args = parser.parse_args()
    # totalseg-example is not segmented without an external mask (see issue notes), so the
    # default cases are the 512 x 512 x 274 scan the issue names and the bundled sample.
    cases = args.case or [
        "pengwin-001/ct_boneonly.nii.gz",
        str(ROOT / "sample_data" / "phantom-ct"),
    ]
    extra = ["--save-masks"] if args.save_masks else []
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| case | wall s (median) | peak MB | load | anatomy | plan | render | write |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        runs = [run_once(DATA / case, extra) for _ in range(args.repeats)]
        wall = statistics.median(r["wall_s"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        shares = []
        for stage in ("load", "anatomy", "plan", "render", "write"):
            seconds = statistics.median(r["stages"].get(stage, 0.0) for r in runs)
            shares.append(f"{seconds:.2f} s ({100 * seconds / wall:.0f} %)")
        print(f"| {case} | {wall:.2f} | {peak:.0f} | " + " | ".join(shares) + " |")


if __name__ == "__main__":
    main()
