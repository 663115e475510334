"""Measure the MRI stages on CT/MR phantom pairs with known truth, and the registration time on
a 512 x 512 x 300 CT.

Run from the project root: ``python benchmarks/bench_mri.py`` (``--transforms N`` per contrast,
default 10; ``--skip-large`` to leave out the timing on the large CT). Prints one row per case
and a summary table:

* registration error at the target (the lesion centre, mm) and in rotation (deg), for random
  patient movements between the scans (up to 20 mm and 15 deg), T1, T2 and STIR;
* the lesion grown from one seed on the MR (bounded by the CT sacrum moved into the MR frame by
  the *estimated* registration), mapped onto the CT: Dice against the CT truth; the same for the
  lesion drawn on the MR (its truth mask on the MR grid, at the slice centres) mapped as a bare
  mask (signed-distance interpolation) and refined on the MR intensities (with the sacrum);
* two ceilings: the bare truth mask is the best a mask alone gives; the truth's partial-volume
  fraction on the MR grid (share of each voxel's slice profile in the lesion), interpolated
  linearly and cut at 0.5, is the best an intensity edge gives;
* the sacrum found on T1 MR: Dice against the truth on the MR grid;
* the dural sac end on T2 (with the CT anatomy through the estimated registration): distance to
  the truth (mm) and whether the level is right;
* registration seconds (median), here and for the large CT;
* misregistrations flagged: each found registration is perturbed on purpose (3 mm along a
  random direction; 3 deg about a random axis through the target; 5 mm + 5 deg; 7 mm + 6 deg)
  and re-assessed, as is the truth moved by 1 mm + 1 deg (a correct registration at the issue's
  bar): how many of each are not ``quality_ok``, and the optimum check's offset ratio
  (estimated offset of the similarity's optimum over its limit, <= 1 passes) for good and bad.
  ``--quality-only`` measures only the registration and this;
* ``--t1-seeds 200-239`` measures only the sacrum on T1 MR, on phantoms of those seeds each
  moved by its own random movement (seed :data:`T1_SEED_MOVEMENT_BASE` + seed: seeds 200-209 are
  other cases than the main run's), and prints the Dice per seed (with the MR voxels found
  outside the truth, those in the canal, and those missed), the min, the median, the number
  below 0.90 and the finder's time.

CT: 1 mm phantom around the sacrum; MR: 20 oblique sagittal slices of 1.2 x 1.2 x 4 mm, each
averaging the signal across its thickness (``--slice-samples 1``: point-sampled slices).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import ndimage

from planner.mri.dural_sac import find_dural_sac_end
from planner.mri.lesion import grow_lesion, lesion_from_mask, lesion_to_ct
from planner.mri.phantom_pair import SLICE_PROFILE_SAMPLES, make_phantom_pair
from planner.mri.preprocess import preprocess_mr
from planner.mri.register import assess_registration, register_mr_to_ct
from planner.mri.register_quality import OPTIMUM_OFFSET_MAX_DEG, OPTIMUM_OFFSET_MAX_MM
from planner.mri.sacrum_t1 import find_sacrum_t1
from planner.mri.transform import RigidTransform, moved_volume
from planner.phantom import MR_CONTRASTS, PhantomParams
from planner.sitk_bridge import resample_like
from planner.volume import Volume

MAX_TRANSLATION_MM = 20.0
MAX_ROTATION_DEG = 15.0
LARGE_SHAPE_IJK = (512, 512, 300)
LARGE_SPACING_MM = (0.78, 0.78, 1.0)
REPEATS = 3
CONTRASTS = MR_CONTRASTS
#: CT voxels within this many voxels of the truth lesion are compared for the fraction ceiling.
CEILING_MARGIN_VOX = 6
#: Seed base of the STIR cases' movements.
STIR_MOVEMENT_SEED = 7000
#: Deliberate misregistrations (translation mm, rotation deg about the target) applied to each
#: found registration, and the correct-registration bar (applied to the truth).
MISREGISTRATIONS = ((3.0, 0.0), (0.0, 3.0), (5.0, 5.0), (7.0, 6.0))
CORRECT_BAR = (1.0, 1.0)
#: Seed base of the random directions of those perturbations.
PERTURBATION_SEED = 9100
#: Seed base of the movements of the ``--t1-seeds`` cases, and their CT voxel size (mm; the MR
#: does not depend on the CT grid, only the pair's anatomy does).
T1_SEED_MOVEMENT_BASE = 8000
T1_SEED_CT_SPACING_MM = 3.0
#: The issue's bar for the sacrum on MR.
SACRUM_DICE_BAR = 0.90


def random_movement(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotation angles (deg, about x, y, z) and translation (mm) within the issue's ranges."""
    angles = rng.uniform(-1.0, 1.0, 3)
    angles *= rng.uniform(0.3, 1.0) * MAX_ROTATION_DEG / max(np.linalg.norm(angles), 1e-9)
    direction = rng.normal(size=3)
    translation = direction / np.linalg.norm(direction) * rng.uniform(5.0, MAX_TRANSLATION_MM)
    return angles, translation


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.sum(a & b) / max(np.sum(a) + np.sum(b), 1))


def fraction_ceiling(pair) -> np.ndarray:
    """The truth's partial-volume fraction on the MR grid, mapped onto the CT through the true
    transform (linear, cut at 0.5): the lesion an ideal intensity edge would give."""
    truth = pair.ct.truth.lesion.array
    near = ndimage.binary_dilation(truth, iterations=CEILING_MARGIN_VOX)
    kji = np.argwhere(near)
    points = pair.mr_from_ct.apply(pair.ct.volume.index_to_lps(kji[:, ::-1].astype(float)))
    result = np.zeros(truth.shape, bool)
    result[tuple(kji.T)] = pair.mr_truth["lesion_fraction"].sample(points, order=1) >= 0.5
    return result


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


def _offset_ratio(registration) -> float:
    optimum = registration.optimum
    if optimum is None:
        return float("inf")
    return max(optimum.offset_mm / OPTIMUM_OFFSET_MAX_MM,
               optimum.offset_deg / OPTIMUM_OFFSET_MAX_DEG)


def misregistration_checks(pair, prepared, found, target, seed: int) -> dict:
    """Re-assess the found registration, the truth moved by the correct-registration bar, and
    the found registration moved by each of :data:`MISREGISTRATIONS` (directions drawn from a
    fixed seed). Returns lists of (flagged, offset ratio, seconds) for "good" and "bad"."""
    rng = np.random.default_rng(PERTURBATION_SEED + seed)
    sacrum = pair.ct.truth.sacrum

    def assess(mr_from_ct):
        result = assess_registration(pair.ct.volume, prepared, mr_from_ct, sacrum,
                                     target_lps=target, preprocessed=True)
        optimum = result.optimum
        return (not result.quality_ok, _offset_ratio(result),
                optimum.seconds if optimum else 0.0,
                any("best match" in reason for reason in result.reasons),
                optimum.offset_mm if optimum else np.inf,
                optimum.offset_deg if optimum else np.inf)

    def moved(transform, mm, deg):
        return transform.compose(RigidTransform.from_angles(deg * _unit(rng), mm * _unit(rng),
                                                            target))

    good = [assess(found.mr_from_ct), assess(moved(pair.mr_from_ct, *CORRECT_BAR))]
    bad = [assess(moved(found.mr_from_ct, mm, deg)) for mm, deg in MISREGISTRATIONS]
    return {"good": good, "bad": bad}


def run_case(seed: int, contrast: str, movement: tuple[np.ndarray, np.ndarray],
             slice_samples: int, quality_only: bool = False) -> dict:
    angles, translation = movement
    params = PhantomParams.random(seed, lesion=True, fov="sacrum", fov_margin_mm=30.0)
    pair = make_phantom_pair(params, contrast, angles, translation, ct_spacing_mm=1.0,
                             slice_samples=slice_samples)
    truth = pair.ct.truth
    target = truth.landmarks.lesion_center_lps
    prepared = preprocess_mr(pair.mr)
    started = time.perf_counter()
    registration = register_mr_to_ct(pair.ct.volume, prepared, ct_sacrum=truth.sacrum,
                                     target_lps=target, preprocessed=True, contrast=contrast)
    seconds = time.perf_counter() - started
    error_mm, error_deg = registration.mr_from_ct.error_to(pair.mr_from_ct, target)
    row = dict(seed=seed, contrast=contrast, move_deg=pair.mr_from_ct.angle_deg,
               move_mm=float(np.linalg.norm(translation)), error_mm=error_mm,
               error_deg=error_deg, seconds=seconds, quality_ok=registration.quality_ok,
               reasons="; ".join(registration.reasons))
    row["checks"] = misregistration_checks(pair, prepared, registration, target, seed)
    if quality_only:
        return row
    sacrum_mr = moved_volume(truth.sacrum, registration.mr_from_ct)
    seed_mr = registration.mr_from_ct.apply(target)  # the user clicks the lesion centre on MR
    grown = grow_lesion(prepared, seed_mr, sacrum_mr, preprocessed=True)
    row["lesion_grown_dice"] = dice(lesion_to_ct(grown, registration.mr_from_ct,
                                                 pair.ct.volume).array, truth.lesion.array)
    row["lesion_ml"] = grown.volume_ml
    row["lesion_true_ml"] = truth.landmarks.lesion_volume_mm3 / 1000.0
    row["lesion_radius_mm"] = truth.landmarks.lesion_radius_mm
    drawn = lesion_from_mask(pair.mr_truth["lesion"])
    row["lesion_drawn_dice"] = dice(lesion_to_ct(drawn, registration.mr_from_ct,
                                                 pair.ct.volume).array, truth.lesion.array)
    refined = lesion_from_mask(pair.mr_truth["lesion"], prepared, sacrum_mr, preprocessed=True)
    row["lesion_refined_dice"] = dice(lesion_to_ct(refined, registration.mr_from_ct,
                                                   pair.ct.volume).array, truth.lesion.array)
    row["lesion_ceiling_dice"] = dice(fraction_ceiling(pair), truth.lesion.array)
    if contrast == "T1":
        found = find_sacrum_t1(prepared, preprocessed=True)
        mask = resample_like(found.mask, pair.mr_truth["sacrum"], "nearest", 0).array
        row["sacrum_dice"] = dice(mask, pair.mr_truth["sacrum"].array > 0)
    elif contrast == "T2":
        end = find_dural_sac_end(prepared, anatomy=truth.to_anatomy(),
                                 mr_from_ct=registration.mr_from_ct, preprocessed=True)
        row["dural_error_mm"] = float(np.linalg.norm(end.end_ct_lps
                                                     - truth.landmarks.dural_sac_end_lps))
        row["dural_level_ok"] = end.level == truth.landmarks.dural_sac_end_level
        row["dural_level"] = f"{end.level}/{truth.landmarks.dural_sac_end_level}"
    return row


def sacrum_t1_dice(seed: int, slice_samples: int) -> dict:
    """Dice (on the MR grid) of the sacrum found on a T1 MR of phantom ``seed``, moved by the
    random movement of seed ``T1_SEED_MOVEMENT_BASE + seed``, with its error breakdown (MR
    voxels): ``fp`` found outside the truth, of which ``fp_canal`` in the sacral canal, ``fn``
    missed, and ``seconds`` of the finder (N4 included)."""
    angles, translation = random_movement(np.random.default_rng(T1_SEED_MOVEMENT_BASE + seed))
    params = PhantomParams.random(seed, lesion=True, fov="sacrum", fov_margin_mm=30.0)
    pair = make_phantom_pair(params, "T1", angles, translation,
                             ct_spacing_mm=T1_SEED_CT_SPACING_MM, slice_samples=slice_samples)
    started = time.perf_counter()
    found = find_sacrum_t1(pair.mr)
    seconds = time.perf_counter() - started
    truth = pair.mr_truth["sacrum"].array > 0
    mask = resample_like(found.mask, pair.mr_truth["sacrum"], "nearest", 0).array > 0
    canal = pair.mr_truth["canal"].array > 0
    return dict(dice=dice(mask, truth), fp=int(np.sum(mask & ~truth)),
                fp_canal=int(np.sum(mask & canal)), fn=int(np.sum(truth & ~mask)),
                seconds=seconds)


def seed_range(text: str) -> list[int]:
    """``"200-239"`` -> 200..239 (inclusive); ``"205"`` -> [205]."""
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds as FIRST-LAST, got {text!r}") from None
    if last < first:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return list(range(first, last + 1))


def t1_seed_table(seeds: list[int], slice_samples: int) -> None:
    """Print the sacrum Dice on T1 MR per seed and its summary row."""
    values, seconds = [], []
    for seed in seeds:
        started = time.perf_counter()
        row = sacrum_t1_dice(seed, slice_samples)
        values.append(row["dice"])
        seconds.append(row["seconds"])
        print(f"seed {seed} T1: sacrum Dice {row['dice']:.4f}; MR voxels false {row['fp']} "
              f"(canal {row['fp_canal']}), missed {row['fn']}; finder {row['seconds']:.1f} s "
              f"({time.perf_counter() - started:.1f} s with the phantom)", flush=True)
    below = sum(value < SACRUM_DICE_BAR for value in values)
    print("\n| measure | seeds | result | bar |")
    print("|---|---|---|---|")
    print(f"| sacrum Dice on T1 MR (own movements) | {seeds[0]}-{seeds[-1]} (n={len(values)}) | "
          f"min {min(values):.3f}, median {statistics.median(values):.3f}; {below} below | "
          f">= {SACRUM_DICE_BAR:.2f} |")
    print(f"| T1 sacrum finder time, N4 included (s) | {seeds[0]}-{seeds[-1]} | median "
          f"{statistics.median(seconds):.1f}, max {max(seconds):.1f} | |")


def large_ct_timing() -> list[float]:
    """Registration seconds on a 512 x 512 x 300 CT (the 1 mm phantom resampled onto it)."""
    params = PhantomParams.random(101, lesion=True, fov="sacrum", fov_margin_mm=30.0)
    pair = make_phantom_pair(params, "T2", (5.0, -8.0, 6.0), (10.0, -12.0, 8.0),
                             ct_spacing_mm=1.0)
    centre = pair.ct.truth.landmarks.level_centers_lps["S3"]
    shape = np.asarray(LARGE_SHAPE_IJK)
    spacing = np.asarray(LARGE_SPACING_MM)
    origin = centre - (shape - 1) / 2.0 * spacing
    grid = Volume(np.zeros(tuple(shape[::-1]), np.uint8), origin, spacing)
    ct = resample_like(pair.ct.volume, grid, "linear", default_value=-1000)
    sacrum = resample_like(pair.ct.truth.sacrum, grid, "nearest", default_value=0)
    print(f"large CT {ct.shape_ijk} {ct.array.dtype}, MR {pair.mr.shape_ijk}")
    seconds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        registration = register_mr_to_ct(ct, pair.mr, ct_sacrum=sacrum)
        seconds.append(time.perf_counter() - started)
        error = registration.mr_from_ct.error_to(pair.mr_from_ct, centre)
        print(f"  {seconds[-1]:.1f} s, error {error[0]:.2f} mm / {error[1]:.2f} deg")
    return seconds


def summarise(rows: list[dict]) -> None:
    def stats(key, subset, digits=2):
        values = [r[key] for r in subset if key in r]
        if not values:
            return "-"
        return f"median {statistics.median(values):.{digits}f}, max {max(values):.{digits}f}, " \
               f"min {min(values):.{digits}f} (n={len(values)})"

    def below(key, subset, bar):
        return sum(r[key] < bar for r in subset if key in r)

    print("\n| measure | contrast | result | bar |")
    print("|---|---|---|---|")
    for contrast in CONTRASTS:
        subset = [r for r in rows if r["contrast"] == contrast]
        if not subset:
            continue
        print(f"| registration error at target (mm) | {contrast} | {stats('error_mm', subset)}"
              " | <= 1 |")
        print(f"| registration rotation error (deg) | {contrast} | "
              f"{stats('error_deg', subset)} | <= 1 |")
        print(f"| quality_ok | {contrast} | {sum(r['quality_ok'] for r in subset)}/"
              f"{len(subset)} | all |")
        for key, name in (("lesion_grown_dice", "lesion grown from seed, Dice on CT"),
                          ("lesion_refined_dice", "lesion drawn on MR, refined, Dice on CT"),
                          ("lesion_drawn_dice", "lesion drawn on MR, bare mask, Dice on CT"),
                          ("lesion_ceiling_dice", "ceiling: true partial-volume fraction")):
            print(f"| {name} | {contrast} | {stats(key, subset)}; "
                  f"{below(key, subset, 0.85)} below | >= 0.85 |")
        print(f"| registration time (s) | {contrast} | {stats('seconds', subset)} | <= 20 |")
        summarise_checks(contrast, subset)
    t1 = [r for r in rows if r["contrast"] == "T1"]
    t2 = [r for r in rows if r["contrast"] == "T2"]
    print(f"| sacrum Dice on T1 MR | T1 | {stats('sacrum_dice', t1, 3)}; "
          f"{below('sacrum_dice', t1, SACRUM_DICE_BAR)} below | >= {SACRUM_DICE_BAR:.2f} |")
    print(f"| dural sac end error (mm) | T2 | {stats('dural_error_mm', t2)} | <= 5 |")
    levels_ok = sum(r.get("dural_level_ok", False) for r in t2)
    print(f"| dural sac level right | T2 | {levels_ok}/{len(t2)} | |")


def summarise_checks(contrast: str, subset: list[dict]) -> None:
    """Rows: correct registrations passed, misregistrations flagged, offset-ratio margins."""
    good = [c for r in subset for c in r["checks"]["good"]]
    bad = [c for r in subset for c in r["checks"]["bad"]]
    print(f"| correct registrations (found; truth + 1 mm + 1 deg) passed | {contrast} | "
          f"{sum(not c[0] for c in good)}/{len(good)}; offset ratio max "
          f"{max(c[1] for c in good):.2f} | all, ratio <= 1 |")
    print(f"| misregistrations (>= 3 mm or 3 deg) flagged | {contrast} | "
          f"{sum(c[0] for c in bad)}/{len(bad)} (by the optimum check "
          f"{sum(c[3] for c in bad)}); offset ratio min {min(c[1] for c in bad):.2f} | all |")
    print(f"| optimum check time (s) | {contrast} | median "
          f"{statistics.median(c[2] for c in good + bad):.2f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transforms", type=int, default=10, help="cases per contrast")
    parser.add_argument("--contrasts", default=",".join(CONTRASTS),
                        help="comma-separated MR contrasts (default all)")
    parser.add_argument("--slice-samples", type=int, default=SLICE_PROFILE_SAMPLES,
                        help="sub-slices averaged per MR slice (1: point-sampled slices)")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--quality-only", action="store_true",
                        help="measure only the registration and its quality checks")
    parser.add_argument("--t1-seeds", type=seed_range, metavar="FIRST-LAST",
                        help="measure only the sacrum on T1 MR over these phantom seeds")
    args = parser.parse_args()
    if args.t1_seeds:
        t1_seed_table(args.t1_seeds, args.slice_samples)
        return
    contrasts = [c.strip() for c in args.contrasts.split(",") if c.strip()]
    rng = np.random.default_rng(7)
    rows = []
    for index in range(args.transforms):
        for contrast in CONTRASTS:
            # T1 and T2 draw from one stream (the cases of earlier runs), STIR from its own;
            # skipped contrasts still draw, so every run measures the same cases.
            movement = random_movement(rng if contrast in ("T1", "T2") else
                                       np.random.default_rng(STIR_MOVEMENT_SEED + index))
            if contrast not in contrasts:
                continue
            row = run_case(200 + index, contrast, movement, args.slice_samples,
                           args.quality_only)
            rows.append(row)
            ratios = {kind: " ".join(f"{c[1]:.2f}({c[4]:.1f}mm,{c[5]:.1f}deg){'F' if c[0] else ''}"
                                     for c in row["checks"][kind]) for kind in ("good", "bad")}
            print(f"seed {row['seed']} {contrast}: offset ratio good {ratios['good']}, bad "
                  f"{ratios['bad']} (offset of the optimum; F: flagged)", flush=True)
            if args.quality_only:
                continue
            extra = (f"sacrum Dice {row['sacrum_dice']:.3f}" if contrast == "T1" else
                     f"dural {row['dural_error_mm']:.1f} mm {row['dural_level']}"
                     if contrast == "T2" else "")
            print(f"seed {row['seed']} {contrast}: moved {row['move_mm']:.1f} mm "
                  f"{row['move_deg']:.1f} deg -> error {row['error_mm']:.2f} mm "
                  f"{row['error_deg']:.2f} deg, {row['seconds']:.1f} s, ok {row['quality_ok']} "
                  f"{row['reasons']}; lesion R {row['lesion_radius_mm']:.1f} mm, Dice grown "
                  f"{row['lesion_grown_dice']:.3f} refined {row['lesion_refined_dice']:.3f} "
                  f"bare {row['lesion_drawn_dice']:.3f} ceiling {row['lesion_ceiling_dice']:.3f} "
                  f"({row['lesion_ml']:.2f}/{row['lesion_true_ml']:.2f} mL); {extra}", flush=True)
    summarise(rows)
    if not args.skip_large:
        seconds = large_ct_timing()
        print(f"\n| registration time, CT {'x'.join(map(str, LARGE_SHAPE_IJK))} + 20-slice MR "
              f"| median {statistics.median(seconds):.1f} s of {REPEATS} | <= 20 s |")


if __name__ == "__main__":
    main()
