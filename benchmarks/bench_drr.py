"""Benchmark: our DRR against plastimatch's ``drr`` on the same CT and the same geometry.

Prints, per view, the render times, their ratio and the normalised cross-correlation (NCC) of
the two images, after checking with a one-bead phantom that both programs put a point on the
same pixel (so the NCC compares the same picture).

plastimatch is only a benchmark reference, not a dependency. Install it first (Debian)::

    apt-get update && apt-get install -y plastimatch

or pass ``--install`` to run that command. Usage::

    python benchmarks/bench_drr.py [--case pengwin-001] [--repeats 3] [--uniform] [--views DIR]

``--views OUTDIR`` also writes the pictures of pengwin-001 with a hand-placed needle (hiatus
region to the S3 body): lateral, AP and bull's-eye DRRs, lateral checkpoints and CT reformats.

Geometry mapping. Ours: source at ``iso - sad * beam``; the image is seen from the detector
looking back at the source. plastimatch: ``--nrm`` points from the isocentre to the source
(``-beam``), ``--vup`` is the image up direction, and its image is seen from the source (beam's
eye view), i.e. mirrored left-right relative to ours. Both use ``(rows - 1) / 2`` as the centre.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from planner.fluoro.carm import Camera, CArm, camera_from_angles
from planner.fluoro.drr import render_drr
from planner.sitk_bridge import volume_from_sitk, volume_to_sitk
from planner.volume import Volume

DATA = Path(os.environ.get("SACROPLAN_DATA", Path(__file__).resolve().parents[2] / "shared/data"))
INSTALL_COMMAND = "apt-get update && apt-get install -y plastimatch"
#: (name, primary, secondary): left lateral, prone AP, prone AP tilted, an oblique.
VIEWS = [
    ("lateral", 90.0, 0.0),
    ("AP", 180.0, 0.0),
    ("AP CRAN 25", 180.0, 25.0),
    ("oblique", 135.0, -20.0),
]
SACRUM_LABEL = 1


def ensure_plastimatch(install: bool) -> str:
    path = shutil.which("plastimatch")
    if path is None and install:
        subprocess.run(INSTALL_COMMAND, shell=True, check=True, stdout=subprocess.DEVNULL)
        path = shutil.which("plastimatch")
    if path is None:
        sys.exit(f"plastimatch not found; install it with:  {INSTALL_COMMAND}  (or pass --install)")
    return path


def read_pfm(path: Path) -> np.ndarray:
    """A single-channel PFM image as written by plastimatch (rows top to bottom)."""
    with open(path, "rb") as handle:
        handle.readline()
        width, height = (int(v) for v in handle.readline().split())
        scale = float(handle.readline())
        data = np.frombuffer(handle.read(), dtype="<f4" if scale < 0 else ">f4")
    return data.reshape(height, width)


def plastimatch_drr(volume_path: Path, camera: Camera, out_dir: Path, algorithm: str):
    """Run plastimatch for our camera; returns (image in our orientation, wall s, render s)."""
    carm = camera.carm
    vec = lambda v: " ".join(f"{x:.6f}" for x in v)  # noqa: E731
    prefix = out_dir / "drr"
    command = [
        "plastimatch",
        "drr",
        "-I",
        str(volume_path),
        "-O",
        str(prefix),
        "-t",
        "pfm",
        "-i",
        algorithm,
        "--sad",
        f"{carm.sad_mm}",
        "--sid",
        f"{carm.sdd_mm}",
        "-r",
        f"{camera.shape[0]} {camera.shape[1]}",
        "-z",
        f"{carm.detector_size_mm[0]} {carm.detector_size_mm[1]}",
        "-o",
        vec(camera.isocenter_lps),
        "-n",
        vec(-camera.beam_lps),
        "--vup",
        vec(-camera.down_lps),
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    match = re.search(r"Total time:\s*([0-9.eE+-]+)", result.stdout + result.stderr)
    render = float(match.group(1)) if match else float("nan")
    image = read_pfm(Path(f"{prefix}0000.pfm"))
    return image[:, ::-1].copy(), wall, render  # mirror: plastimatch views from the source


def ncc(first: np.ndarray, second: np.ndarray) -> float:
    a = first - first.mean()
    b = second - second.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def centroid(image: np.ndarray) -> np.ndarray:
    weights = np.clip(image - np.median(image), 0, None)
    weights[weights < 0.2 * weights.max()] = 0
    rows, cols = np.indices(image.shape)
    return np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()


def bead_check(work: Path, carm: CArm) -> list[tuple[str, float, float]]:
    """Pixel error of a 3 mm bead in our DRR and in plastimatch's, for every view."""
    shape_ijk = (80, 70, 60)
    volume = Volume(np.full(shape_ijk[::-1], -1000, np.int16), [-40.0, -35.0, -30.0], [1, 1, 1])
    bead_lps = np.array([9.0, -6.0, 4.0])
    index = np.rint(volume.lps_to_index(bead_lps)).astype(int)
    volume.array[
        index[2] - 1 : index[2] + 2, index[1] - 1 : index[1] + 2, index[0] - 1 : index[0] + 2
    ] = 3000
    path = work / "bead.mha"
    sitk.WriteImage(volume_to_sitk(volume), str(path))
    rows = []
    for name, primary, secondary in VIEWS:
        camera = camera_from_angles([2.0, 3.0, -1.0], primary, secondary, carm)
        expected = camera.project(bead_lps)[0]
        ours = render_drr(volume, camera)
        theirs, _, _ = plastimatch_drr(path, camera, work, "exact")
        rows.append(
            (
                name,
                float(np.linalg.norm(centroid(ours) - expected)),
                float(np.linalg.norm(centroid(theirs) - expected)),
            )
        )
    return rows


def sacrum_centre(case_dir: Path, volume: Volume) -> np.ndarray:
    labels = volume_from_sitk(sitk.ReadImage(str(case_dir / "labels.nii.gz")))
    kji = np.argwhere(labels.array == SACRUM_LABEL)
    return labels.index_to_lps(kji[:, ::-1].mean(axis=0)) if kji.size else volume.center_lps()


def benchmark(case: str, repeats: int, work: Path, carm: CArm, uniform: bool = False) -> None:
    case_dir = DATA / case
    volume = volume_from_sitk(sitk.ReadImage(str(case_dir / "ct_boneonly.nii.gz")))
    mha = work / "ct.mha"
    sitk.WriteImage(volume_to_sitk(volume), str(mha))
    read_start = time.perf_counter()
    volume = volume_from_sitk(sitk.ReadImage(str(mha)))
    read_s = time.perf_counter() - read_start
    iso = sacrum_centre(case_dir, volume)
    print(f"\n{case}: {volume!r}")
    print(
        f"isocentre (sacrum centroid) LPS {np.round(iso, 1).tolist()} mm; "
        f"SDD {carm.sdd_mm:g} mm, SAD {carm.sad_mm:g} mm, detector {carm.detector_shape} px "
        f"over {carm.detector_size_mm} mm; reading the MHA with SimpleITK: {read_s:.2f} s"
    )
    header = (
        "| view | ours render s (CPU s) | plastimatch exact render s (process wall s) | "
        "ratio render | ratio incl. reading | NCC exact | plastimatch uniform render s | "
        "NCC uniform |"
    )
    print(header)
    print("|" + "---|" * 8)
    for name, primary, secondary in VIEWS:
        camera = camera_from_angles(iso, primary, secondary, carm)
        ours_times, ours_cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            ours = render_drr(volume, camera)
            ours_times.append(time.perf_counter() - start)
            ours_cpu.append(time.process_time() - start_cpu)
        results = {"uniform": (None, float("nan"), float("nan"))}
        for algorithm in ("exact", "uniform") if uniform else ("exact",):
            runs = [plastimatch_drr(mha, camera, work, algorithm) for _ in range(repeats)]
            results[algorithm] = (
                runs[-1][0],
                float(np.median([r[1] for r in runs])),
                float(np.median([r[2] for r in runs])),
            )
        ours_s = float(np.median(ours_times))
        exact_image, exact_wall, exact_render = results["exact"]
        uniform_image, _, uniform_render = results["uniform"]
        uniform_ncc = ncc(ours, uniform_image) if uniform_image is not None else float("nan")
        print(
            f"| {name} ({primary:g}/{secondary:g}) | {ours_s:.3f} ({np.median(ours_cpu):.3f}) | "
            f"{exact_render:.3f} "
            f"({exact_wall:.2f}) | {exact_render / ours_s:.2f}x | "
            f"{exact_wall / (ours_s + read_s):.2f}x | {ncc(ours, exact_image):.5f} | "
            f"{uniform_render:.3f} | {uniform_ncc:.5f} |"
        )
    print(
        "ratio = plastimatch time / our time (> 1: ours is faster); 'render' is plastimatch's own "
        "'Total time' line vs our render_drr call on a volume in memory; 'incl. reading' is "
        "plastimatch's process wall time vs our render plus reading the same MHA."
    )


def render_pictures(out_dir: Path, case: str = "pengwin-001") -> None:
    """Pictures of the planner's plan for a scan (anatomy from the manual sacrum mask).

    Falls back to a hand-placed needle (hiatus region to the S3 body of pengwin-001) when the
    planner cannot run.
    """
    from planner.fluoro.for_plan import plan_fluoroscopy, structures_for
    from planner.render.ct_views import plan_ct_views

    case_dir = DATA / case
    volume = volume_from_sitk(sitk.ReadImage(str(case_dir / "ct_boneonly.nii.gz")))
    labels = volume_from_sitk(sitk.ReadImage(str(case_dir / "labels.nii.gz")), modality="SEG")
    sacrum = labels.with_array(labels.array == SACRUM_LABEL)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        from planner.anatomy.find import find_anatomy
        from planner.planning import plan

        anatomy = find_anatomy(volume, sacrum)
        result = plan(volume, anatomy)
        print(f"{case}: plan {result.verdict.value}: " + "; ".join(result.reasons))
        pictures = plan_fluoroscopy(volume, result, anatomy)
        structures = structures_for(anatomy)
    except Exception as error:  # noqa: BLE001 - the pictures are still wanted without a plan
        if case != "pengwin-001":
            raise
        print(f"planner unavailable ({error}); drawing a hand-placed needle instead")
        pictures, structures = _hand_placed_pictures(volume, sacrum)
    for path in pictures.save(out_dir):
        print(f"  {path.name}")
    for name, view in pictures.views.items():
        print(f"{name}: {view.summary()}")
    for number, view in enumerate(plan_ct_views(volume, pictures.needle, structures), 1):
        view.save(out_dir / f"ct_{number}_{view.name.split()[0]}.png")
    print(f"pictures written to {out_dir}")


def _hand_placed_pictures(volume: Volume, sacrum: Volume):
    """pengwin-001 only: target in the S3 body, needle parallel to the anterior edge there."""
    from dataclasses import replace

    from planner.fluoro.for_plan import PlanFluoroscopy
    from planner.fluoro.needle import NeedlePath
    from planner.fluoro.views import Structures, checkpoint_views, plan_views

    # Midline x = 27 mm; anterior sacral edge slope dy/dz = -1.2 (from the manual mask).
    direction = np.array([0.0, -1.2, 1.0]) / np.hypot(1.2, 1.0)
    target = np.array([27.0, 76.0, -70.0])
    needle = NeedlePath(
        entry_lps=target - 60.0 * direction,
        target_lps=target,
        entry_is_skin=False,
        canal_level="S4",
    )
    # The canal is the gap between the two runs of the manual sacrum mask along the needle.
    _, points = needle.axis_points(0.25)
    inside = sacrum.sample(points, order=0) > 0.5
    edges = np.flatnonzero(np.diff(inside.astype(int)) != 0)
    if edges.size >= 3:
        needle = replace(
            needle, canal_entry_lps=points[edges[1] + 1], canal_exit_lps=points[edges[2] + 1]
        )
    structures = Structures(outlines={"sacrum": sacrum})
    views = plan_views(volume, needle, structures)
    checkpoints = checkpoint_views(None, needle, lateral=views["lateral"])
    return PlanFluoroscopy(needle, views, checkpoints), structures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="pengwin-001")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--install", action="store_true", help=f"run: {INSTALL_COMMAND}")
    parser.add_argument("--views", type=Path, help="also write the pictures to this folder")
    parser.add_argument(
        "--uniform",
        action="store_true",
        help="also time plastimatch's slower 'uniform' ray marcher",
    )
    args = parser.parse_args(argv)
    ensure_plastimatch(args.install)
    carm = CArm()
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        print("| view | bead error ours px | bead error plastimatch px |")
        print("|---|---|---|")
        for name, ours_px, theirs_px in bead_check(work, carm):
            print(f"| {name} | {ours_px:.3f} | {theirs_px:.3f} |")
        benchmark(args.case, args.repeats, work, carm, args.uniform)
    if args.views:
        render_pictures(args.views, args.case)


if __name__ == "__main__":
    main()
