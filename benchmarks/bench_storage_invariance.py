"""Storage invariance: the same CT stored in another axis order gives the same plan, stage by stage.

Run from the project root::

    python benchmarks/bench_storage_invariance.py                     # pengwin-003
    python benchmarks/bench_storage_invariance.py --case pengwin-001
    python benchmarks/bench_storage_invariance.py --oblique           # add an oblique storage
    python benchmarks/bench_storage_invariance.py --oblique-only --angle 20 --axis P

Storages: ``permuted`` (axes [2, 0, 1], i and k flipped) and ``flipped i,j`` hold exactly the
same voxels (no resampling), so every stage must agree to floating point. ``oblique`` (optional)
is the scan resampled (linear) onto a grid rotated ``--angle`` degrees (default 10) about
``--axis`` (``SL``: about S, then about L): other voxels, so differences there measure robustness
to resampling, not storage dependence. Where the case has manual labels (``labels.nii.gz``, 1 =
sacrum), each storage's sacrum is scored by Dice against them, resampled the same way (nearest
neighbour), and each plan's target level and canal-crossing level are printed with its verdict
and reasons. ``--manual-mask`` skips segmentation (the manual sacrum, resampled by nearest
neighbour onto each storage): what is left then comes from the later stages. Each stage is
compared with the as-stored run in LPS: masks as ``|A xor B|`` voxels after mapping B onto A's
grid by nearest neighbour, points and planes in mm / degrees.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SACROPLAN_DATA", PROJECT_ROOT.parent / "shared" / "data"))
#: Default rotation of the oblique storage (degrees) and its axes (LPS letters, applied in order).
OBLIQUE_DEG = 10.0
OBLIQUE_AXES = "SL"


def permuted(volume, permutation=(2, 0, 1), flips=(True, False, True)):
    """The same voxels stored with permuted and flipped axes (no resampling)."""
    from planner.sitk_bridge import volume_from_sitk, volume_to_sitk

    image = sitk.Flip(sitk.PermuteAxes(volume_to_sitk(volume), list(permutation)), list(flips))
    return volume_from_sitk(image, volume.modality)


def rotation(degrees: float, axes: str) -> np.ndarray:
    """3x3 rotation by ``degrees`` about each LPS axis named in ``axes`` (e.g. ``"SL"``), in
    order."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    about = {"S": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
             "L": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
             "P": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])}
    rot = np.eye(3)
    for axis in axes:
        rot = rot @ about[axis]
    return rot


def oblique(volume, degrees: float = OBLIQUE_DEG, axes: str = OBLIQUE_AXES):
    """The scan resampled (linear) onto a grid rotated by ``degrees`` about ``axes`` (same
    spacing)."""
    from planner.sitk_bridge import make_grid, volume_from_sitk, volume_to_sitk

    rot = rotation(degrees, axes)
    corners = volume.corners_lps()
    local = (corners - corners.mean(0)) @ rot
    low, high = local.min(0), local.max(0)
    spacing = volume.spacing_xyz.copy()
    shape = np.ceil((high - low) / spacing).astype(int) + 1
    origin = corners.mean(0) + rot @ low
    reference = make_grid(origin, spacing, rot, shape)
    # Pad with what surrounds the body (0 on the bone-only scans, air on a full CT).
    outside = float(np.median(volume.array[:, :, 0]))
    image = sitk.Resample(volume_to_sitk(volume), reference, sitk.Transform(), sitk.sitkLinear,
                          outside)
    return volume_from_sitk(image, volume.modality)


def same_voxels(a, b) -> bool:
    """Whether two axis-aligned storages hold the same voxel centres and values in LPS."""
    from planner.sitk_bridge import reorient_to_lps

    a, b = reorient_to_lps(a), reorient_to_lps(b)
    return (a.array.shape == b.array.shape and np.array_equal(a.array, b.array)
            and np.allclose(a.origin_lps, b.origin_lps, atol=1e-6)
            and np.allclose(a.direction, b.direction, atol=1e-9)
            and np.allclose(a.spacing_xyz, b.spacing_xyz, atol=1e-9))


def mask_xor(a, b) -> int:
    """Voxels of ``b`` (bool/label Volume) not matched by ``a`` on ``a``'s grid, both ways."""
    from planner.sitk_bridge import resample_like

    back = resample_like(b.with_array(b.array.astype(np.uint8)), a, "nearest", 0).array
    return int(np.count_nonzero((a.array.astype(np.uint8)) != back))


def grid_text(volume) -> str:
    return (f"origin {np.round(volume.origin_lps, 4).tolist()} shape {list(volume.shape_ijk)} "
            f"dir {np.round(volume.direction, 3).reshape(-1).tolist()}")


def angle_deg(u, v) -> float:
    u, v = np.asarray(u, float), np.asarray(v, float)
    cos = abs(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def run(ct, mask=None) -> dict:
    """Every stage of the pipeline on one storage (``mask``: a given sacrum mask, no segmenting).

    A :class:`~planner.errors.PlannerError` is recorded under ``"error"`` instead of raised.
    """
    from planner.anatomy.find import find_anatomy
    from planner.anatomy.model import Confidence
    from planner.anatomy.sacrum import SacrumSegmentation, segment_sacrum
    from planner.errors import PlannerError
    from planner.planning import plan

    out: dict = {"ct": ct, "segment_s": 0.0, "anatomy_s": 0.0, "plan_s": 0.0}
    try:
        start = time.perf_counter()
        seg = segment_sacrum(ct) if mask is None else SacrumSegmentation(
            mask, Confidence(1.0, ()), False)
        out["segment_s"] = time.perf_counter() - start
        out["seg"] = seg
        start = time.perf_counter()
        out["anatomy"] = find_anatomy(ct, seg.mask)
        out["anatomy_s"] = time.perf_counter() - start
        start = time.perf_counter()
        out["plan"] = plan(ct, out["anatomy"])
        out["plan_s"] = time.perf_counter() - start
    except PlannerError as error:
        out["error"] = f"{type(error).__name__}: {str(error)[:60]}"
    return out


def compare(base: dict, other: dict) -> list[tuple[str, str]]:
    if "error" in base or "error" in other:
        return [("error", base.get("error", "") + " | " + other.get("error", ""))]
    rows = []
    a, b = base["seg"], other["seg"]
    if a.working is not None and b.working is not None:
        same = np.allclose(a.working.origin_lps, b.working.origin_lps, atol=1e-6) and \
            a.working.shape_ijk == b.working.shape_ijk
        rows.append(("working grid (cropped)", "same" if same else
                     f"{grid_text(a.working)} vs {grid_text(b.working)}"))
        rows.append(("working sacrum labels (xor vox)", str(mask_xor(a.bone_labels,
                                                                     b.bone_labels))))
    rows.append(("sacrum mask on input (xor vox)",
                 f"{mask_xor(a.mask, b.mask)} of {int(a.mask.array.sum())}"))
    aa, ab = base["anatomy"], other["anatomy"]
    tilt = angle_deg(aa.midsagittal.normal_lps, ab.midsagittal.normal_lps)
    offset = abs(aa.midsagittal.signed_distance(ab.midsagittal.point_lps[None])[0])
    rows.append(("midsagittal normal (deg)", f"{tilt:.4f}"))
    rows.append(("midsagittal offset (mm)", f"{offset:.4f}"))
    for name in ("sacrum", "canal", "foramina", "levels"):
        rows.append((f"anatomy {name} (xor vox)", str(mask_xor(getattr(aa, name),
                                                               getattr(ab, name)))))
    centres = max(float(np.linalg.norm(aa.level_centers_lps[n] - ab.level_centers_lps[n]))
                  for n in aa.level_centers_lps)
    rows.append(("level centres max (mm)", f"{centres:.4f}"))
    found = [(f, g) for f, g in zip(aa.foramen_list, ab.foramen_list, strict=True)
             if f.found and g.found]
    worst = max((float(np.linalg.norm(f.center_lps - g.center_lps)) for f, g in found),
                default=0.0)
    counts = [sum(f.found for f in x.foramen_list) for x in (aa, ab)]
    rows.append(("foramen centres max (mm)", f"{worst:.4f} ({counts[0]} vs {counts[1]})"))
    if aa.anterior_cortex_lps is not None and ab.anterior_cortex_lps is not None:
        from scipy.spatial import cKDTree

        d = cKDTree(ab.anterior_cortex_lps).query(aa.anterior_cortex_lps)[0]
        rows.append(("anterior cortex curve max (mm)", f"{d.max():.4f}"))
    pa, pb = base["plan"], other["plan"]
    rows.append(("plan target (mm)", f"{np.linalg.norm(pa.target_lps - pb.target_lps):.4f}"))
    rows.append(("plan direction (deg)", f"{angle_deg(pa.direction_lps, pb.direction_lps):.4f}"))
    for key in ("canal_wall_angle_deg", "intraosseous_length_mm",
                "anterior_cortex_clearance_mm", "foramen_clearance_mm"):
        va, vb = getattr(pa.metrics, key, None), getattr(pb.metrics, key, None)
        if va is not None and vb is not None:
            rows.append((f"plan {key}", f"{abs(va - vb):.4f}"))
    rows.append(("plan verdict", f"{pa.verdict.name} vs {pb.verdict.name}"))
    return rows


def dice(mask, labels) -> float:
    """Dice of a sacrum mask (bool Volume) against manual labels (label 1 = sacrum), the labels
    resampled onto the mask's grid by nearest neighbour."""
    from planner.sitk_bridge import resample_like

    truth = resample_like(labels, mask, "nearest", 0).array == 1
    found = mask.array.astype(bool)
    return float(2 * np.count_nonzero(truth & found) / (truth.sum() + found.sum()))


def plan_levels(result: dict) -> str:
    """Target level / level of the canal crossing, e.g. ``S3/S4``."""
    if "plan" not in result:
        return "-"
    p = result["plan"]
    canal = p.canal_crossing.level if p.canal_crossing is not None else None
    return f"{p.target.level}/{canal}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", default="pengwin-003")
    parser.add_argument("--ct", default="ct_boneonly.nii.gz")
    parser.add_argument("--oblique", action="store_true", help="add the oblique storage")
    parser.add_argument("--oblique-only", action="store_true",
                        help="compare the oblique storage alone with the as-stored scan")
    parser.add_argument("--angle", type=float, default=OBLIQUE_DEG,
                        help="rotation of the oblique storage (degrees)")
    parser.add_argument("--axis", default=OBLIQUE_AXES,
                        help="LPS axes of the oblique rotation, in order (e.g. SL, S, L, P)")
    parser.add_argument("--manual-mask", action="store_true",
                        help="use the manual sacrum (labels.nii.gz == 1) instead of segmenting")
    args = parser.parse_args()
    from planner.sitk_bridge import resample_like, volume_from_sitk

    ct = volume_from_sitk(sitk.ReadImage(str(DATA / args.case / args.ct)), "CT")
    mask = labels = None
    labels_path = DATA / args.case / "labels.nii.gz"
    if labels_path.exists():
        labels = volume_from_sitk(sitk.ReadImage(str(labels_path)), "SEG")
    if args.manual_mask:
        mask = labels.with_array(labels.array == 1)
    storages = {"as stored": ct}
    if not args.oblique_only:
        storages["permuted"] = permuted(ct)
        storages["flipped i,j"] = permuted(ct, (0, 1, 2), (True, True, False))
        print(f"case {args.case}: permuted storage holds the same voxels in LPS: "
              f"{same_voxels(ct, storages['permuted'])}")
    if args.oblique or args.oblique_only:
        storages[f"oblique {args.angle:g} deg {args.axis}"] = oblique(ct, args.angle, args.axis)
    runs = {}
    for name, volume in storages.items():
        on_grid = None if mask is None else resample_like(mask, volume, "nearest", 0)
        runs[name] = run(volume, on_grid)
    table: dict[str, dict[str, str]] = {}
    for name, result in list(runs.items())[1:]:
        for stage, value in compare(runs["as stored"], result):
            table.setdefault(stage, {})[name] = value
    for name, result in runs.items():
        if labels is not None and "seg" in result:
            table.setdefault("sacrum Dice vs manual", {})[name] = \
                f"{dice(result['seg'].mask, labels):.4f}"
        table.setdefault("plan target/canal level", {})[name] = plan_levels(result)
    names = list(runs)
    print(f"{'stage':36s} | " + " | ".join(f"{n:>28s}" for n in names))
    for stage, values in table.items():
        print(f"{stage:36s} | " + " | ".join(f"{values.get(n, '-'):>28s}" for n in names))
    for name, r in runs.items():
        if "plan" in r:
            print(f"verdict {name}: {r['plan'].verdict.name}: {'; '.join(r['plan'].reasons)}")
    for name, r in runs.items():
        print(f"time {name}: segment {r['segment_s']:.1f} s, find_anatomy {r['anatomy_s']:.1f} s,"
              f" plan {r['plan_s']:.1f} s")


if __name__ == "__main__":
    main()
