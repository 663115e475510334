"""Benchmark of `find_anatomy`: accuracy on phantoms with exact truth, time and memory on CT.

Usage::

    python benchmarks/bench_anatomy.py                 # phantoms (20 seeds) + timing
    python benchmarks/bench_anatomy.py --seeds 5       # quicker
    python benchmarks/bench_anatomy.py --skip-phantoms # timing only
    python benchmarks/bench_anatomy.py --spacing 3 --seeds 10 --skip-timing --fatty 12  # 3 mm

Phantoms: every seed is drawn on each spacing (``--spacing``, default 2 and 1.25 mm) and
orientation (``fov="sacrum"``). The sub-structures are found twice: from the phantom's true sacrum
mask (this measures the sub-structure stage alone) and, on the first spacing and the LPS
orientation only, from the planner's own segmentation (the whole pipeline; its sacrum Dice is the
segmentation stage's; the field of view is then the pelvis). Bars (issue 3): canal Dice >= 0.90;
every foramen found with centre error <= 2 mm; every level centre <= 3 mm; hiatus apex <= 3 mm;
sacrum Dice >= 0.97. On 3 mm grids the foramen bar is one voxel (3 mm).

Coarse fatty marrow (``--fatty N``): N seeds of ``planner.phantom.fatty_marrow_phantom`` (3 mm,
marrow that reads like soft tissue, as the totalseg-example CT), from the true sacrum mask and
from the planner's segmentation. Truth is the analytic model's (``compute_landmarks``), exact
whatever the grid. Per seed: foramina found, foramen and level centre errors (max), the level
centre error along the true arc only (the junctions' share; the rest is the centre's depth),
whether an extra pair was reported, and the source of each junction. Bars: every foramen within
3 mm (one voxel), every level centre within 3 mm, no extra pair.

Anterior cortex (``--cortex N``): N seeds of the planning benchmark's families (every fifth
strongly kyphotic, every fifth small), on 2 and 1.25 mm grids, sub-structures from the true
sacrum mask. Curve error: distance (mm) from each found curve point to the true anterior-cortex
polyline (``truth.landmarks.anterior_cortex_lps``, the outer bone surface on the mid-sagittal
plane, ridges included). Tangent error at S3: angle (deg) between the planner's reference tangent
(``planner.planning.geometry.anterior_edge_frame`` at the found S3 centre) and the true tangent
(``truth.landmarks.anterior_tangent_s3_lps``); the same with the exact anatomy
(``truth.to_anatomy()``) is printed as the floor of the planner's own fit. Bars: mean curve
distance <= 1 mm, tangent error <= 3 deg.

Timing: ``find_anatomy`` on pengwin-001 (512 x 512 x 274) in a fresh process per run (so peak
memory is that run's), median of 3; then the same CT resampled to 2, 1 and 0.7 mm grids.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(
    os.environ.get("SACROPLAN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SPACINGS_MM = (2.0, 1.25)
#: The segmentation needs the whole pelvis in view; the sub-structures only the sacrum (faster).
#: The whole pipeline (with segmentation) is measured on the first spacing and one orientation.
SEGMENTATION_ORIENTATION = "LPS"
#: Voxels coarser than this get a foramen bar of one voxel instead of 2 mm.
FINE_FORAMEN_BAR_MM = 2.0
#: Bars of the coarse (3 mm) fatty-marrow phantoms: one voxel (mm).
COARSE_BAR_MM = 3.0
ORIENTATIONS = ("LPS", "permuted_flipped", "oblique")
TIMING_REPEATS = 3


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / total) if total else 1.0


def _centre_errors(anatomy, truth) -> tuple[list[float], list[float]]:
    """Distances (mm) of each foramen (inf: not found) and level centre to the truth's."""
    from planner.anatomy.model import LEVEL_NAMES

    foramen_errors = [
        np.linalg.norm(f.center_lps - truth.foramen_centers_lps[(f.level, f.side)])
        if f.found
        else np.inf
        for f in anatomy.foramen_list
    ]
    level_errors = [
        np.linalg.norm(anatomy.level_centers_lps[n] - truth.level_centers_lps[n])
        for n in LEVEL_NAMES
    ]
    return foramen_errors, level_errors


def _structure_errors(anatomy, truth) -> dict[str, float]:
    foramen_errors, level_errors = _centre_errors(anatomy, truth)
    return {
        "canal_dice": _dice(anatomy.canal.array, truth.canal.array),
        "foramina_found": int(np.sum(np.isfinite(foramen_errors))),
        "foramen_max_mm": float(np.max(foramen_errors)),
        "level_max_mm": float(np.max(level_errors)),
        "apex_mm": float(np.linalg.norm(anatomy.hiatus.apex_lps - truth.hiatus_apex_lps)),
    }


def run_phantoms(seeds: int, spacings, orientations) -> list[dict]:
    from planner.anatomy.find import find_anatomy
    from planner.phantom import PhantomParams, make_phantom

    rows = []
    for spacing in spacings:
        for orientation in orientations:
            for seed in range(seeds):
                with_segmentation = (
                    spacing == spacings[0] and orientation == SEGMENTATION_ORIENTATION
                )
                fov = "pelvis" if with_segmentation else "sacrum"
                params = PhantomParams.random(seed=seed, fov=fov)
                phantom = make_phantom(params, spacing_mm=spacing, orientation=orientation)
                truth = phantom.truth
                start = time.perf_counter()
                from_truth = find_anatomy(phantom.volume, truth.sacrum)
                seconds = time.perf_counter() - start
                row = {
                    "spacing": spacing,
                    "orientation": orientation,
                    "seed": seed,
                    "seconds": seconds,
                    **_structure_errors(from_truth, truth),
                }
                row["sacrum_dice"] = float("nan")
                row["full"] = {"error": "not run"}
                try:
                    if not with_segmentation:
                        raise LookupError("not run")
                    full = find_anatomy(phantom.volume)
                    row["sacrum_dice"] = _dice(full.sacrum.array, truth.sacrum.array)
                    row["full"] = _structure_errors(full, truth)
                except LookupError:
                    pass
                except Exception as error:  # noqa: BLE001 - report, do not stop the benchmark
                    row["sacrum_dice"] = 0.0
                    row["full"] = {"error": str(error)}
                    print(f"  segmentation failed: {error}")
                rows.append(row)
                print(
                    f"  {spacing:4.2f} mm {orientation:17s} seed {seed:2d}: canal "
                    f"{row['canal_dice']:.3f} foramina {row['foramina_found']}/8 "
                    f"max {row['foramen_max_mm']:.2f} mm, levels {row['level_max_mm']:.2f} mm, "
                    f"apex {row['apex_mm']:.2f} mm, sacrum(seg) {row['sacrum_dice']:.3f}",
                    flush=True,
                )
    return rows


def _passes(row: dict) -> bool:
    return (
        row["canal_dice"] >= 0.90
        and row["foramina_found"] == 8
        and row["foramen_max_mm"] <= max(FINE_FORAMEN_BAR_MM, row["spacing"])
        and row["level_max_mm"] <= 3.0
        and row["apex_mm"] <= 3.0
    )


def print_phantom_table(rows: list[dict]) -> None:
    print("\nPhantoms, sub-structures from the true sacrum mask (min / median / max over seeds)")
    header = (
        f"{'spacing':>7} {'orientation':17} {'n':>3} {'canal Dice min/med':>18} "
        f"{'foramina all':>12} {'foramen err max/med':>19} {'level err max':>13} "
        f"{'apex err max':>12} {'sacrum Dice(seg) min/med':>24} {'pass':>6}"
    )
    print(header)
    groups = {}
    for row in rows:
        groups.setdefault((row["spacing"], row["orientation"]), []).append(row)
    for (spacing, orientation), group in groups.items():
        canal = [r["canal_dice"] for r in group]
        foramen = [r["foramen_max_mm"] for r in group]
        print(
            f"{spacing:7.2f} {orientation:17} {len(group):3d} "
            f"{min(canal):8.3f} / {np.median(canal):.3f}  "
            f"{sum(r['foramina_found'] == 8 for r in group):5d}/{len(group):<6d} "
            f"{max(foramen):8.2f} / {np.median(foramen):.2f} mm "
            f"{max(r['level_max_mm'] for r in group):10.2f} mm "
            f"{max(r['apex_mm'] for r in group):9.2f} mm "
            f"{np.min([r['sacrum_dice'] for r in group]):13.3f} / "
            f"{np.median([r['sacrum_dice'] for r in group]):.3f} "
            f"{sum(_passes(r) for r in group):3d}/{len(group)}"
        )
    full = [r["full"] for r in rows if "error" not in r["full"]]
    if full:
        print(
            "\nWhole pipeline (planner's own sacrum mask): canal Dice median "
            f"{np.median([f['canal_dice'] for f in full]):.3f}, all 8 foramina in "
            f"{sum(f['foramina_found'] == 8 for f in full)}/{len(full)}, foramen err median of "
            f"max {np.median([f['foramen_max_mm'] for f in full]):.2f} mm, level err max "
            f"{max(f['level_max_mm'] for f in full):.2f} mm, apex err max "
            f"{max(f['apex_mm'] for f in full):.2f} mm"
        )


# ------------------------------------------------------------------------------ coarse fatty
def _arc_length_mm(model, point_lps: np.ndarray) -> float:
    """Arc length (mm) of a point along the phantom's true sacral curve."""
    frame = model.frame
    _, s_mm, _ = frame.pelvis_to_sacral(frame.world_to_pelvis(np.atleast_2d(point_lps)))
    return float(np.ravel(s_mm)[0])


def _coarse_errors(anatomy, marks, model) -> dict:
    from planner.anatomy.model import LEVEL_NAMES

    foramen_errors, level_errors = _centre_errors(anatomy, marks)
    # Along the true arc only: the junctions' share of the error (the rest is the centre's depth).
    level_s_errors = [
        abs(
            _arc_length_mm(model, anatomy.level_centers_lps[n])
            - _arc_length_mm(model, marks.level_centers_lps[n])
        )
        for n in LEVEL_NAMES
    ]
    reasons = " ".join(anatomy.confidence["foramina"].reasons)
    sources = "".join(
        note.split(": ")[-1][0] for note in anatomy.notes if note.startswith("levels")
    )
    return {
        "foramina_found": int(np.sum(np.isfinite(foramen_errors))),
        "foramen_max_mm": float(np.max(foramen_errors)),
        "level_max_mm": float(np.max(level_errors)),
        "level_errors": level_errors,
        "level_s_max_mm": float(np.max(level_s_errors)),
        "extra_pair": "extra pair" in reasons,
        "sources": sources,  # per junction: f(oramina), d(isc remnant), p(roportional)
    }


def _coarse_passes(row: dict) -> bool:
    return (
        row["foramina_found"] == 8
        and row["foramen_max_mm"] <= COARSE_BAR_MM
        and row["level_max_mm"] <= COARSE_BAR_MM
        and not row["extra_pair"]
    )


def run_fatty(seeds: int) -> None:
    """Levels and foramina on the 3 mm fatty-marrow phantoms, true mask and segmentation."""
    from planner.anatomy.find import find_anatomy
    from planner.phantom import PhantomParams, fatty_marrow_phantom
    from planner.phantom.pelvis import PelvisModel
    from planner.phantom.truth import compute_landmarks

    print(f"\nFatty marrow, 3 mm ({seeds} seeds): level centre errors S1..S5 (mm), foramina")
    print(f"{'mask':>9} {'seed':>4} {'S1..S5 level err':>30} {'along arc':>9} {'foramina':>8} "
          f"{'for. max':>8} {'extra':>5} {'junctions':>9} {'s':>5}")
    summary = {}
    for mask_kind in ("true", "segmented"):
        rows = []
        for seed in range(seeds):
            volume, sacrum = fatty_marrow_phantom(seed)
            model = PelvisModel(PhantomParams.random(seed))
            marks = compute_landmarks(model)
            start = time.perf_counter()
            try:
                anatomy = find_anatomy(volume, sacrum if mask_kind == "true" else None)
            except Exception as error:  # noqa: BLE001 - report, do not stop the benchmark
                print(f"{mask_kind:>9} {seed:4d} failed: {error}")
                rows.append({"foramina_found": 0, "foramen_max_mm": np.inf,
                             "level_max_mm": np.inf, "level_s_max_mm": np.inf,
                             "extra_pair": False})
                continue
            row = _coarse_errors(anatomy, marks, model)
            rows.append(row)
            levels = " ".join(f"{e:5.1f}" for e in row["level_errors"])
            print(f"{mask_kind:>9} {seed:4d} {levels:>30} {row['level_s_max_mm']:9.1f} "
                  f"{row['foramina_found']:6d}/8 "
                  f"{row['foramen_max_mm']:8.1f} {'yes' if row['extra_pair'] else 'no':>5} "
                  f"{row['sources']:>9} {time.perf_counter() - start:5.1f}", flush=True)
        summary[mask_kind] = rows
    print(f"\n{'mask':>10} {'n':>3} {'8/8 foramina':>12} {'foramen max/med':>16} "
          f"{'level max/med':>14} {'along arc max/med':>17} {'extra':>5} {'pass':>6}")
    for mask_kind, rows in summary.items():
        foramen = [r["foramen_max_mm"] for r in rows]
        level = [r["level_max_mm"] for r in rows]
        extra = sum(r["extra_pair"] for r in rows)
        arc = [r["level_s_max_mm"] for r in rows]
        print(f"{mask_kind:>10} {len(rows):3d} {sum(r['foramina_found'] == 8 for r in rows):8d}/"
              f"{len(rows):<3d} {max(foramen):7.1f} / {np.median(foramen):4.1f} mm "
              f"{max(level):6.1f} / {np.median(level):4.1f} mm "
              f"{max(arc):9.1f} / {np.median(arc):4.1f} mm {extra:5d} "
              f"{sum(map(_coarse_passes, rows)):3d}/{len(rows)}")


# ------------------------------------------------------------------------------ anterior cortex
CORTEX_SPACINGS_MM = (2.0, 1.25)
#: Bars (issue 4 needs the needle within 3 deg of the true anterior-edge tangent).
CORTEX_MEAN_BAR_MM = 1.0
TANGENT_BAR_DEG = 3.0


def cortex_family(seed: int):
    """Phantom parameters as in ``bench_planning.py``: every fifth seed kyphotic, one small."""
    from planner.phantom import PhantomParams

    if seed % 5 == 3:
        return "kyphotic", PhantomParams.random(seed, kyphotic=True, fov="sacrum")
    if seed % 5 == 4:
        return "small", PhantomParams.random(
            seed, sacral_height_mm=90.0, body_scale=0.85, fov="sacrum"
        )
    return "normal", PhantomParams.random(seed, fov="sacrum")


def curve_distances_mm(points_lps: np.ndarray, polyline_lps: np.ndarray) -> np.ndarray:
    """Distance (mm) from each point (N, 3) to the polyline (M, 3), segment by segment."""
    start, end = polyline_lps[:-1], polyline_lps[1:]
    segment = end - start
    length2 = np.maximum((segment**2).sum(axis=1), 1e-12)
    out = np.empty(len(points_lps))
    for n, point in enumerate(points_lps):
        t = np.clip(((point - start) * segment).sum(axis=1) / length2, 0.0, 1.0)
        out[n] = np.min(np.linalg.norm(point - (start + t[:, None] * segment), axis=1))
    return out


def tangent_error_deg(anatomy, truth) -> float:
    """Angle (deg) between the planner's reference tangent near S3 and the true one."""
    from planner.planning.geometry import anterior_edge_frame

    frame = anterior_edge_frame(anatomy, anatomy.level_centers_lps["S3"])
    true_tangent = truth.landmarks.anterior_tangent_s3_lps
    cosine = abs(float(frame.tangent_lps @ true_tangent))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def cortex_errors(anatomy, truth) -> dict[str, float]:
    distance = curve_distances_mm(anatomy.anterior_cortex_lps, truth.landmarks.anterior_cortex_lps)
    return {
        "mean_mm": float(distance.mean()),
        "max_mm": float(distance.max()),
        "tangent_deg": tangent_error_deg(anatomy, truth),
        "exact_tangent_deg": tangent_error_deg(truth.to_anatomy(), truth),
    }


def run_cortex(seeds: int) -> None:
    from planner.anatomy.find import find_anatomy
    from planner.phantom import make_phantom

    print(f"\nAnterior cortex vs truth ({seeds} seeds, sub-structures from the true sacrum mask)")
    print(f"{'spacing':>7} {'seed':>4} {'family':9} {'mean mm':>7} {'max mm':>6} "
          f"{'tangent deg':>11} {'exact-anatomy deg':>17} {'s':>5}")
    for spacing in CORTEX_SPACINGS_MM:
        rows = []
        for seed in range(seeds):
            family, params = cortex_family(seed)
            phantom = make_phantom(params, spacing_mm=spacing)
            start = time.perf_counter()
            anatomy = find_anatomy(phantom.volume, phantom.truth.sacrum)
            seconds = time.perf_counter() - start
            row = cortex_errors(anatomy, phantom.truth)
            rows.append(row)
            print(f"{spacing:7.2f} {seed:4d} {family:9} {row['mean_mm']:7.2f} {row['max_mm']:6.2f} "
                  f"{row['tangent_deg']:11.2f} {row['exact_tangent_deg']:17.2f} {seconds:5.1f}",
                  flush=True)
        tangent = [r["tangent_deg"] for r in rows]
        mean = [r["mean_mm"] for r in rows]
        print(f"{spacing:7.2f} summary: mean distance median {np.median(mean):.2f} max "
              f"{max(mean):.2f} mm (bar {CORTEX_MEAN_BAR_MM}); tangent median "
              f"{np.median(tangent):.2f} max {max(tangent):.2f} deg (bar {TANGENT_BAR_DEG}); "
              f"within both bars {sum(map(_cortex_passes, rows))}/{len(rows)}")


def _cortex_passes(row: dict) -> bool:
    return row["mean_mm"] <= CORTEX_MEAN_BAR_MM and row["tangent_deg"] <= TANGENT_BAR_DEG


# ------------------------------------------------------------------------------ timing
def child(spec: str) -> None:
    """One timed run in this process; prints JSON with seconds and peak memory."""
    import SimpleITK as sitk

    from planner.anatomy.find import find_anatomy
    from planner.sitk_bridge import resample_to_spacing, volume_from_sitk

    options = json.loads(spec)
    case = DATA / options["case"]
    ct = volume_from_sitk(sitk.ReadImage(str(case / "ct_boneonly.nii.gz")))
    labels = volume_from_sitk(sitk.ReadImage(str(case / "labels.nii.gz")), "SEG")
    mask = labels.with_array(labels.array == 1, "SEG")
    if options.get("spacing"):
        ct = resample_to_spacing(ct, options["spacing"], "linear", default_value=0)
        mask = resample_to_spacing(mask, options["spacing"], "nearest", default_value=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    find_anatomy(ct, mask if options["mask"] else None)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, "shape": list(ct.shape_ijk)}
    print(json.dumps(result))


def _timed(options: dict) -> dict:
    runs = []
    for _ in range(TIMING_REPEATS):
        output = (
            subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(options)],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        runs.append(json.loads(output))
    return {
        "seconds": float(np.median([r["seconds"] for r in runs])),
        "cpu": float(np.median([r.get("cpu", np.nan) for r in runs])),
        "peak_mb": float(max(r["peak_mb"] for r in runs)),
        "shape": runs[0]["shape"],
    }


def print_timing() -> None:
    print(
        f"\nTiming, pengwin-001, median of {TIMING_REPEATS} fresh processes "
        f"(machine shared with other jobs; load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'grid':>14} {'shape ijk':>16} {'mask':>14} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}")
    cases = [
        ("native", None, False),
        ("native", None, True),
        ("2 mm", 2.0, True),
        ("1 mm", 1.0, True),
        ("0.7 mm", 0.7, True),
        ("2 mm", 2.0, False),
        ("1 mm", 1.0, False),
        ("0.7 mm", 0.7, False),
    ]
    for name, spacing, manual in cases:
        result = _timed({"case": "pengwin-001", "spacing": spacing, "mask": manual})
        shape = "x".join(str(n) for n in result["shape"])
        print(
            f"{name:>14} {shape:>16} {'manual' if manual else 'segmented':>14} "
            f"{result['seconds']:8.2f} {result['cpu']:8.2f} {result['peak_mb']:8.0f}",
            flush=True,
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--skip-phantoms", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--cortex", type=int, default=0, metavar="N",
                        help="anterior-cortex curve and S3 tangent error on N phantom seeds")
    parser.add_argument("--spacing", type=float, nargs="+", default=list(SPACINGS_MM),
                        metavar="MM", help="phantom grid spacings (mm); the first one is also "
                        "run through the planner's segmentation")
    parser.add_argument("--fatty", type=int, default=0, metavar="N",
                        help="levels and foramina on N 3 mm fatty-marrow phantoms")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return
    if args.cortex:
        run_cortex(args.cortex)
    if args.fatty:
        run_fatty(args.fatty)
    if not args.skip_phantoms:
        rows = run_phantoms(args.seeds, tuple(args.spacing), ORIENTATIONS)
        print_phantom_table(rows)
    if not args.skip_timing and (DATA / "pengwin-001").exists():
        print_timing()


if __name__ == "__main__":
    main()
