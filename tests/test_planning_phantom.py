"""Planning on the phantom (exact anatomy) and on the bone-only real scans.

Truth comes from the phantom's analytic signed distances, not from the label maps the
planner was given.
"""

from __future__ import annotations

import numpy as np
import pytest

from planner.phantom import PhantomParams, make_phantom
from planner.planning import Thresholds, Verdict, plan, validate_plan_dict
from planner.planning.verdict import wall_pierce_mm

SPACING_MM = 2.0
#: Fewer safety-cone samples keep these tests fast; the cone itself is tested elsewhere.
FAST = {"planning": {"cone_samples": 100}}


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def _true_clearances(truth, result) -> tuple[float, float, float]:
    """Analytic (foramen, envelope, anterior cortex) clearances of the needle surface, mm."""
    radius = result.needle.radius_mm
    s = np.arange(0.0, result.metrics.bone_entry_to_target_mm + 10.0, 0.25)
    axis = result.target_lps - s[:, None] * result.direction_lps
    foramen = truth.foramen_distance_mm(axis)
    s_exit = np.linalg.norm(result.canal_crossing.exit_lps - result.target_lps)
    bone_path = axis[s <= s_exit]
    envelope = -truth.signed_distance_mm("sacrum_solid", bone_path)
    arc = truth.signed_distance_mm("s", bone_path)
    anterior = truth.signed_distance_mm("d", bone_path) - truth.model.anterior_offset(arc)
    return foramen - radius, float(envelope.min()) - radius, float(anterior.min()) - radius


@pytest.fixture(scope="module")
def phantoms():
    params = {
        "normal": PhantomParams.random(0),
        "kyphotic": PhantomParams.random(3, kyphotic=True),
        "small": PhantomParams.random(4, sacral_height_mm=90.0, body_scale=0.85),
    }
    return {name: make_phantom(p, spacing_mm=SPACING_MM) for name, p in params.items()}


@pytest.mark.parametrize("name", ["normal", "kyphotic", "small"])
def test_phantom_plan_meets_the_truth(phantoms, name):
    phantom = phantoms[name]
    truth = phantom.truth
    result = plan(phantom.volume, truth.to_anatomy(), config=FAST)
    validate_plan_dict(result.to_dict())
    assert np.linalg.norm(result.target_lps - truth.level_centers_lps["S3"]) <= 1.0
    assert _angle_deg(result.direction_lps, truth.anterior_tangent_s3_lps) <= 3.0
    assert result.feasible and result.metrics.canal_crossing_level == "S4"
    foramen, envelope, anterior = _true_clearances(truth, result)
    if result.verdict is Verdict.SAFE:
        assert foramen >= 0 and envelope >= 0
    # The reported clearances are the analytic ones within a voxel.
    assert abs(result.metrics.anterior_cortex_clearance_mm - anterior) <= SPACING_MM
    if foramen < 15.0:
        assert abs(result.metrics.foramen_clearance_mm - foramen) <= SPACING_MM


@pytest.mark.parametrize(
    ("seed", "kyphotic"),
    [(7, False), (3, True), (28, True)],
    ids=["seed7-normal", "seed3-kyphotic", "seed28-kyphotic"],
)
def test_plan_through_find_anatomy_meets_the_truth(seed, kyphotic):
    """The planner on its own anatomy (``find_anatomy``, own sacrum mask): target within 1 mm
    of the true S3 centre, needle within 3 deg of the true anterior-edge tangent. These seeds
    failed before (seed 7: 3.4 deg, the 2 mm voxel staircase; seed 3: 4.0 deg, the found S3
    centre caudal of the truth where the kyphotic edge turns 2-3 deg per mm; seed 28: 4.0 deg
    and 1.0 mm)."""
    from planner.anatomy.find import find_anatomy

    phantom = make_phantom(PhantomParams.random(seed, kyphotic=kyphotic), spacing_mm=SPACING_MM)
    truth = phantom.truth
    result = plan(phantom.volume, find_anatomy(phantom.volume), config=FAST)
    assert np.linalg.norm(result.target_lps - truth.level_centers_lps["S3"]) <= 1.0
    assert _angle_deg(result.direction_lps, truth.anterior_tangent_s3_lps) <= 3.0


@pytest.mark.parametrize("seed", [0, 3])
def test_hooked_sacrum_is_reported_infeasible(seed):
    """Built to be infeasible (and so by the analytic truth): plan() says so plainly."""
    phantom = make_phantom(PhantomParams.random(seed, infeasible=True), spacing_mm=SPACING_MM)
    truth = phantom.truth
    assert truth.built_infeasible
    assert not truth.interpedicular_feasibility(step_deg=2.0).feasible
    result = plan(phantom.volume, truth.to_anatomy(), config=FAST)
    validate_plan_dict(result.to_dict())
    assert not result.feasible and result.verdict is Verdict.UNSAFE
    assert result.reasons[0].startswith("no feasible path")
    assert "canal at or above the target's level" in result.reasons[0]
    assert result.alternatives == ()


def test_foramen_clearance_at_the_channel_mouth_is_not_optimistic():
    """Seed 31 (2 mm grid): the needle passes the S4 channel where it opens into the canal,
    a sliver the voxel labels lose; the planner counted 1.45 mm more clearance than the truth
    before the mouth voxels were added. Now it errs by less than half a voxel that way."""
    phantom = make_phantom(PhantomParams.random(31), spacing_mm=SPACING_MM)
    truth = phantom.truth
    result = plan(phantom.volume, truth.to_anatomy(), config=FAST)
    foramen, _, _ = _true_clearances(truth, result)
    assert foramen < 15.0
    assert result.metrics.foramen_clearance_mm - foramen <= 0.5 * SPACING_MM
    per_foramen = min(result.metrics.foramen_clearances_mm.values())
    assert per_foramen - foramen <= 0.5 * SPACING_MM


def test_phantom_plan_does_not_depend_on_storage_orientation(phantoms):
    params = phantoms["normal"].params
    stored = make_phantom(params, spacing_mm=SPACING_MM, orientation="permuted_flipped")
    first = plan(phantoms["normal"].volume, phantoms["normal"].truth.to_anatomy(), config=FAST)
    second = plan(stored.volume, stored.truth.to_anatomy(), config=FAST)
    assert _angle_deg(first.direction_lps, second.direction_lps) <= 0.5
    assert np.linalg.norm(first.target_lps - second.target_lps) <= 0.5
    assert np.linalg.norm(first.canal_crossing.exit_lps - second.canal_crossing.exit_lps) <= 0.5


@pytest.mark.parametrize("case", ["pengwin-001", "pengwin-003"])
def test_bone_only_real_scan(shared_data, case):
    """Manual sacrum mask -> find_anatomy -> plan: bone path in bone, skin unknown."""
    from planner.anatomy.find import find_anatomy
    from planner.loading import load

    volume = load(shared_data / case / "ct_boneonly.nii.gz")
    labels = load(shared_data / case / "labels.nii.gz")
    manual = labels.with_array(labels.array == 1, modality="SEG")
    anatomy = find_anatomy(volume, sacrum_mask=manual)
    result = plan(volume, anatomy, config=FAST)
    validate_plan_dict(result.to_dict())
    assert result.skin_entry_lps is None and result.metrics.skin_to_target_mm is None
    assert any("bone-only" in warning for warning in result.warnings)
    assert result.verdict is not Verdict.SAFE  # the depth must still be measured by hand
    assert result.target.level == "S3"
    assert result.canal_crossing is not None and result.canal_crossing.level in ("S4", "S5")
    # The strict reading of the bar: a full radius of bone around the needle's outer
    # surface (axis depth >= 2 radii in the MANUAL mask), from the target to where the canal
    # wall the needle has just pierced starts to count (wall_pierce_mm; at the wall itself no
    # straight needle can have bone around it).
    radius = result.needle.radius_mm
    assert result.metrics.bone_margin_mm >= radius
    crop = manual.crop_to_mask(manual.array, 10.0)
    depth_mm = _mask_depth_mm(crop.array.astype(bool), crop.spacing_xyz[::-1])
    wall = np.linalg.norm(result.canal_crossing.exit_lps - result.target_lps)
    s = np.arange(0.0, wall - wall_pierce_mm(Thresholds(), radius), 0.25)
    axis = result.target_lps - s[:, None] * result.direction_lps
    depth = crop.with_array(depth_mm).sample(axis)
    assert depth.min() - radius >= radius


def _mask_depth_mm(mask: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """Sub-voxel depth (mm) inside a mask: mean distance to the nearest outside voxel centre
    and to the nearest centre of the mask's rim (the surface lies between them)."""
    from scipy import ndimage

    rim = mask & ~ndimage.binary_erosion(mask, border_value=1)
    to_outside = ndimage.distance_transform_edt(mask, sampling=spacing_kji)
    to_rim = ndimage.distance_transform_edt(~rim, sampling=spacing_kji)
    return np.where(mask, 0.5 * (to_outside + to_rim), 0.0).astype(np.float32)


def test_canal_limit_keeps_the_crossing_below_the_dural_sac(phantoms):
    """A dural-sac end given as a canal limit is a hard constraint of the search."""
    from planner.planning import CanalLimit

    phantom = phantoms["normal"]
    anatomy = phantom.truth.to_anatomy()
    free = plan(phantom.volume, anatomy)
    crossing = free.canal_crossing
    assert crossing is not None
    caudal = -np.asarray(free.direction_lps, float)  # the needle runs cranially to the target
    caudal -= (caudal @ anatomy.midsagittal.normal_lps) * anatomy.midsagittal.normal_lps
    caudal /= np.linalg.norm(caudal)
    lowest = min(crossing.entry_lps @ caudal, crossing.exit_lps @ caudal)
    margin = 10.0

    def limit_above_crossing(distance_mm: float) -> CanalLimit:
        end = crossing.entry_lps + ((lowest - distance_mm) - crossing.entry_lps @ caudal) * caudal
        return CanalLimit(end, caudal, margin)

    unchanged = plan(phantom.volume, anatomy, canal_limit=limit_above_crossing(40.0))
    np.testing.assert_allclose(unchanged.direction_lps, free.direction_lps, atol=1e-9)
    assert unchanged.verdict == free.verdict

    # The sac ends 3 mm above the free plan's crossing: that crossing is now forbidden.
    close = limit_above_crossing(3.0)
    limited = plan(phantom.volume, anatomy, canal_limit=close)
    assert not np.allclose(limited.direction_lps, free.direction_lps) or not limited.feasible
    if not limited.feasible:
        assert limited.verdict is Verdict.UNSAFE
        assert any("dural sac" in reason for reason in limited.reasons)
    elif limited.canal_crossing is not None:
        points = np.vstack([limited.canal_crossing.entry_lps, limited.canal_crossing.exit_lps])
        assert np.min((points - close.end_lps) @ caudal) >= margin - 1e-6
    else:
        assert any("does not cross" in reason for reason in limited.reasons)
