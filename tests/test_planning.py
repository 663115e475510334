"""Planning on hand-built synthetic sacra whose geometry is known exactly.

The synthetic sacrum (planner.planning.synthetic) has a circular anterior surface, so the
anterior-edge tangent at S3, the body depth there and hence the cortex clearance of a needle
through the S3 centre parallel to the edge are known in closed form.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from planner.errors import PlannerError, PlanningError
from planner.planning import (
    Plan,
    PlanSchemaError,
    Thresholds,
    Verdict,
    plan,
    threshold_table_markdown,
    validate_plan_dict,
)
from planner.planning.synthetic import SyntheticSacrum, synthetic_case

SPACING_MM = 1.5
#: Distances from a binary mask are known to half a voxel.
HALF_VOXEL_MM = 0.5 * SPACING_MM
RADIUS_13G_MM = 2.41 / 2


@pytest.fixture(scope="module")
def case():
    return synthetic_case(spacing_mm=SPACING_MM)


@pytest.fixture(scope="module")
def base_plan(case) -> Plan:
    return plan(case.ct, case.anatomy)


def _tangent_at(shape: SyntheticSacrum, theta_deg: float) -> np.ndarray:
    """Unit tangent of the anterior arc at a relative polar angle, pointing cranially."""
    t = np.radians(theta_deg + shape.tilt_deg)
    return np.array([0.0, -np.sin(t), np.cos(t)])


def test_default_plan_is_the_interpedicular_route(case, base_plan):
    shape = case.shape
    p = base_plan
    assert p.feasible and p.verdict is Verdict.SAFE, p.reasons
    np.testing.assert_allclose(p.target_lps, shape.level_center("S3"), atol=1e-9)
    assert p.target.level == "S3"
    # S3's centre sits at the middle of its arc, so the local tangent is known exactly.
    angle = np.degrees(np.arccos(p.direction_lps @ _tangent_at(shape, 0.0)))
    assert angle <= 3.0
    assert p.metrics.canal_crossing_level == "S4"
    assert abs(p.metrics.midline_offset_mm) < 0.5
    # Skin entry posterior and caudal of the target; the bone entry lies between them.
    skin, target = p.skin_entry_lps, p.target_lps
    assert skin[1] > target[1] and skin[2] < target[2]
    depth = np.linalg.norm(skin - target)
    assert p.metrics.skin_to_target_mm == pytest.approx(depth, abs=1e-6)
    assert 0 < p.metrics.bone_entry_to_target_mm < depth
    assert p.required_length_mm == pytest.approx(depth + 20.0)
    assert p.standard_length_mm == min(x for x in (100, 125, 150) if x >= p.required_length_mm)


def test_clearances_match_the_closed_form(case, base_plan):
    """A needle through the S3 centre parallel to the circular anterior edge keeps its
    smallest distance to the anterior surface at the target: half the body depth there."""
    shape, p = case.shape, base_plan
    if p.metrics.angle_to_anterior_edge_deg > 0.25:
        pytest.fail(f"expected the tangent itself, got {p.metrics.angle_to_anterior_edge_deg}")
    expected = 0.5 * shape.depth(0.0) - RADIUS_13G_MM
    assert p.metrics.anterior_cortex_clearance_mm == pytest.approx(expected, abs=HALF_VOXEL_MM)
    # Foramen clearance: the needle stays in the midline, the nearest foramen edge is at least
    # the half-width of the narrowest body it passes minus the needle radius.
    narrowest = 0.5 * shape.width(-shape.arc_half_deg) - RADIUS_13G_MM
    assert p.metrics.foramen_clearance_mm >= narrowest - HALF_VOXEL_MM
    assert p.metrics.foramen_clearance_mm == pytest.approx(
        min(p.metrics.foramen_clearances_mm.values()), abs=HALF_VOXEL_MM)


def test_plan_dict_follows_the_contract(base_plan):
    d = base_plan.to_dict()
    validate_plan_dict(d)
    json.dumps(d, allow_nan=False)
    assert d["format"] == "sacroplasty-plan" and d["version"] == 1
    assert d["verdict"] == "safe" and d["fluoroscopy"] == {}
    assert d["canal_crossing"]["level"] == "S4"
    assert set(d["levels"]) == {"S1", "S2", "S3", "S4", "S5"}
    assert 1 <= len(d["alternatives"]) <= 3
    broken = dict(d, direction_lps=[0.0, 0.0, 2.0], verdict="fine")
    with pytest.raises(PlanSchemaError, match="unit vector.*verdict"):
        validate_plan_dict(broken)


def test_alternatives_are_ranked_and_distinct(base_plan):
    directions = [base_plan.direction_lps] + [a.direction_lps for a in base_plan.alternatives]
    for index, first in enumerate(directions):
        for second in directions[index + 1:]:
            assert np.degrees(np.arccos(np.clip(first @ second, -1, 1))) >= 5.0 - 1e-6
    assert [a.rank for a in base_plan.alternatives] == list(
        range(2, 2 + len(base_plan.alternatives)))
    assert all(a.feasible for a in base_plan.alternatives)


def test_same_input_same_plan(case, base_plan):
    again = plan(case.ct, case.anatomy)
    assert again.to_dict() == base_plan.to_dict()


def test_orientation_of_storage_does_not_change_the_plan(base_plan):
    """The same sacrum voxelised on a permuted, flipped grid (same voxel centres)."""
    permuted = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    other = synthetic_case(spacing_mm=SPACING_MM, direction=permuted)
    assert other.ct.array.shape != synthetic_case(spacing_mm=SPACING_MM).ct.array.shape
    p = plan(other.ct, other.anatomy)
    angle = np.degrees(np.arccos(np.clip(p.direction_lps @ base_plan.direction_lps, -1, 1)))
    assert angle <= 0.5
    assert np.linalg.norm(p.skin_entry_lps - base_plan.skin_entry_lps) <= 0.5
    assert np.linalg.norm(p.canal_crossing.exit_lps - base_plan.canal_crossing.exit_lps) <= 0.5
    assert p.verdict is base_plan.verdict


def test_oblique_grid_gives_the_same_direction(base_plan):
    c, s = np.cos(np.radians(12.0)), np.sin(np.radians(12.0))
    oblique = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    other = synthetic_case(spacing_mm=SPACING_MM, direction=oblique)
    p = plan(other.ct, other.anatomy)
    angle = np.degrees(np.arccos(np.clip(p.direction_lps @ base_plan.direction_lps, -1, 1)))
    assert angle <= 0.5
    assert p.metrics.anterior_cortex_clearance_mm == pytest.approx(
        base_plan.metrics.anterior_cortex_clearance_mm, abs=2 * HALF_VOXEL_MM)


# --------------------------------------------------------------- each hard constraint flips it
def _assert_flipped(result: Plan, reason_words: str):
    assert result.verdict is Verdict.UNSAFE
    assert any(reason_words in reason for reason in result.reasons), result.reasons


def test_foramen_in_the_path_makes_it_unsafe():
    other = synthetic_case(spacing_mm=SPACING_MM, extra=("midline_foramen",))
    result = plan(other.ct, other.anatomy)
    assert not result.feasible
    _assert_flipped(result, "foramen")
    assert result.metrics.foramen_clearance_mm < 0


def test_target_at_the_anterior_cortex_breaches_it(case):
    shape = case.shape
    near_cortex = shape.point(shape.radius_mm + 1.0, 0.0)  # 1 mm inside the anterior surface
    result = plan(case.ct, case.anatomy, target=near_cortex)
    assert not result.feasible
    _assert_flipped(result, "breaches the anterior")
    assert result.metrics.anterior_cortex_clearance_mm < 0


def test_canal_crossed_at_the_target_level_is_unsafe():
    """Same bone, but S3 labelled down to the tip: every crossing is at the target's level."""
    other = synthetic_case(spacing_mm=SPACING_MM, extra=("s3_to_tip",))
    result = plan(other.ct, other.anatomy, target=other.shape.level_center("S3"))
    assert not result.feasible
    _assert_flipped(result, "canal")
    assert any("no feasible path" in reason for reason in result.reasons)


def test_other_bone_on_the_path_is_unsafe():
    other = synthetic_case(spacing_mm=SPACING_MM, extra=("plate",))
    result = plan(other.ct, other.anatomy)
    assert not result.feasible and result.metrics.other_bone_contact
    _assert_flipped(result, "other bone")


def test_needle_too_short_is_unsafe(case, base_plan):
    # Shorter than the bone part of the path alone plus the working margin: no direction fits.
    short = base_plan.metrics.bone_entry_to_target_mm + 20.0 - 1.0
    result = plan(case.ct, case.anatomy, config={"planning": {"standard_lengths_mm": [short]}})
    assert not result.feasible
    _assert_flipped(result, "needle length needed")


def test_needle_skiving_along_the_back_of_the_body_lacks_bone_around_it(base_plan):
    """A flat sacrum whose bodies keep their depth (arc radius 200 mm, 14 mm deep): a needle
    near the anterior-edge tangent leaves the canal through the back of S4 at a shallow angle
    and runs along it with less than its radius of bone towards the canal. On the curved,
    tapering sacrum the same route has a full radius of bone (and is safe)."""
    from planner.planning.verdict import wall_pierce_mm

    assert base_plan.metrics.bone_margin_mm >= RADIUS_13G_MM
    flat = synthetic_case(SyntheticSacrum(radius_mm=200.0, body_depth_top_mm=14.0,
                                          body_depth_tip_mm=14.0), spacing_mm=SPACING_MM)
    result = plan(flat.ct, flat.anatomy)
    m = result.metrics
    assert result.feasible and result.verdict is Verdict.CAUTION
    assert 0.0 <= m.bone_margin_mm < RADIUS_13G_MM
    assert len(result.reasons) == 1 and "bone around the needle" in result.reasons[0]
    assert "crosses the anterior canal wall at" in result.reasons[0]
    # Every other clearance is comfortable: the new constraint alone flips the verdict.
    thresholds = Thresholds()
    assert m.anterior_cortex_clearance_mm >= thresholds.cortex_safe_mm
    assert m.foramen_clearance_mm >= thresholds.foramen_safe_mm
    assert m.canal_clearance_mm >= thresholds.canal_safe_mm
    # The shortfall sits where the canal just left starts to count: the pierce stretch's end.
    wall = np.linalg.norm(result.canal_crossing.exit_lps - result.target_lps)
    pierce = wall_pierce_mm(thresholds, RADIUS_13G_MM)
    assert pierce == pytest.approx(2 * RADIUS_13G_MM / np.sin(np.radians(20.0)))
    assert wall - m.bone_margin_from_target_mm == pytest.approx(pierce, abs=1.0)
    # As a hard constraint (a margin required of every path): no feasible path, unsafe.
    strict = plan(flat.ct, flat.anatomy, thresholds={"bone_margin_min_mm": RADIUS_13G_MM})
    assert not strict.feasible
    _assert_flipped(strict, "the needle leaves the sacral bone")
    assert "leaves the bone between the canal wall and the target" in strict.reasons[0]


@pytest.mark.parametrize("flat", [False, True])
def test_canal_wall_crossing_angle_matches_the_geometry(flat):
    """The angle between the needle and the back of the body where it leaves the canal, against
    the closed form: the body's back is the curve rho = radius + depth(theta) in the
    mid-sagittal plane (its tangent there is exact). Within 5 deg on a 1.5 mm grid."""
    shape = (SyntheticSacrum(radius_mm=200.0, body_depth_top_mm=14.0, body_depth_tip_mm=14.0)
             if flat else SyntheticSacrum())
    case = synthetic_case(shape, spacing_mm=SPACING_MM)
    result = plan(case.ct, case.anatomy, config={"planning": {"cone_samples": 20}})
    _, theta = shape.polar(result.canal_crossing.exit_lps)
    step = 0.01
    ahead, behind = (shape.point(shape.radius_mm + shape.depth(a), a)
                     for a in (theta + step, theta - step))
    wall = (ahead - behind) / np.linalg.norm(ahead - behind)
    expected = np.degrees(np.arcsin(np.linalg.norm(np.cross(result.direction_lps, wall))))
    assert result.metrics.canal_wall_angle_deg == pytest.approx(expected, abs=5.0)
    assert (expected < 20.0) == flat  # the flat sacrum's is the shallow crossing
    assert result.to_dict()["metrics"]["canal_wall_angle_deg"] == pytest.approx(
        result.metrics.canal_wall_angle_deg, abs=0.01)


def test_search_prefers_a_tilted_caution_path_to_a_parallel_unsafe_one(case, base_plan):
    """An unsafe limit just above the parallel path's foramen clearance: rather than keep a
    path the verdict calls unsafe, the search tilts to one that clears the limit, and the plan
    is caution (for the angle) instead of unsafe."""
    limit = base_plan.metrics.foramen_clearance_mm + 0.15
    result = plan(case.ct, case.anatomy, thresholds={"foramen_min_mm": limit})
    assert result.feasible and result.verdict is Verdict.CAUTION
    assert result.metrics.foramen_clearance_mm >= limit
    assert result.metrics.angle_to_anterior_edge_deg > Thresholds().angle_safe_deg
    assert not any("foramen" in reason for reason in result.reasons)


def test_pierce_stretch_follows_the_wall_angle_threshold(case, base_plan):
    """Asking for a steeper crossing of the anterior canal wall than this sacrum's: the canal
    counts closer to the wall, where the needle is less deep (caution)."""
    steep = plan(case.ct, case.anatomy, thresholds={"wall_pierce_angle_deg": 45.0})
    assert steep.verdict is Verdict.CAUTION
    assert steep.metrics.bone_margin_mm < base_plan.metrics.bone_margin_mm
    assert any("bone around the needle" in reason for reason in steep.reasons)


# --------------------------------------------------------------- inputs and settings
def test_bone_only_volume_reports_unknown_skin():
    other = synthetic_case(spacing_mm=SPACING_MM, extra=("bone_only",))
    result = plan(other.ct, other.anatomy)
    assert result.skin_entry_lps is None and result.metrics.skin_to_target_mm is None
    assert result.required_length_mm is None and result.standard_length_mm is None
    assert result.feasible and result.verdict is Verdict.CAUTION
    assert any("bone-only" in w for w in result.warnings)
    assert result.metrics.bone_entry_to_target_mm > 0
    validate_plan_dict(result.to_dict())


def test_thresholds_from_arguments_and_toml(case, base_plan, tmp_path):
    strict = base_plan.metrics.anterior_cortex_clearance_mm + 1.0
    by_argument = plan(case.ct, case.anatomy, thresholds={"cortex_safe_mm": strict})
    assert by_argument.verdict is Verdict.CAUTION
    toml = tmp_path / "planner.toml"
    toml.write_text(f"[thresholds]\ncortex_safe_mm = {strict}\n")
    assert plan(case.ct, case.anatomy, config=toml).verdict is Verdict.CAUTION
    assert plan(case.ct, case.anatomy, config=toml,
                thresholds=Thresholds()).verdict is Verdict.SAFE
    with pytest.raises(PlannerError, match="unknown setting.*cortex_safe"):
        plan(case.ct, case.anatomy, thresholds={"cortex_sfe_mm": 1.0})
    assert "`foramen_safe_mm` | 3 |" in threshold_table_markdown()


def test_lesion_mask_target_reports_volumes(case):
    center = case.shape.level_center("S3") + np.array([3.0, 0.0, 0.0])
    k, j, i = np.indices(case.ct.array.shape)
    points = case.ct.index_to_lps(np.stack([i, j, k], axis=-1).astype(float))
    lesion = np.linalg.norm(points - center, axis=-1) <= 8.0
    result = plan(case.ct, case.anatomy, target=case.ct.with_array(lesion, modality="SEG"))
    assert np.linalg.norm(result.target_lps - center) <= 1.0
    expected_ml = lesion.sum() * SPACING_MM**3 / 1000.0
    assert result.target.lesion_volume_ml == pytest.approx(expected_ml)
    assert result.target.cement_volume_ml == pytest.approx(min(max(0.5 * expected_ml, 2), 7))
    assert result.target.source == "lesion"


@pytest.mark.parametrize("needle, diameter", [("11G", 3.05), ("10g", 3.40), (13, 2.41)])
def test_needle_gauges(case, needle, diameter):
    result = plan(case.ct, case.anatomy, needle=needle, config={"planning": {"cone_samples": 50}})
    assert result.needle.outer_diameter_mm == diameter
    assert result.to_dict()["needle"]["outer_diameter_mm"] == diameter


def test_bad_requests_get_clear_errors(case):
    with pytest.raises(PlanningError, match="gauge"):
        plan(case.ct, case.anatomy, needle="14G")
    with pytest.raises(PlanningError, match="outside the sacrum"):
        plan(case.ct, case.anatomy, target=[0.0, 200.0, 0.0])
    with pytest.raises(PlanningError, match="not a sacral level"):
        plan(case.ct, case.anatomy, target="L5")


def test_safety_cone_known_answers(case):
    """No placement error: no harm for a clear plan, certain breach for a target at the cortex."""
    exact = {"planning": {"entry_error_mm": 0.0, "angle_error_deg": 0.0, "cone_samples": 20}}
    clear = plan(case.ct, case.anatomy, config=exact)
    assert clear.safety_cone.p_any == 0.0
    shape = case.shape
    at_cortex = plan(case.ct, case.anatomy, target=shape.point(shape.radius_mm + 1.0, 0.0),
                     config=exact)
    assert at_cortex.safety_cone.p_cortex == 1.0
    noisy = {"planning": {"entry_error_mm": 6.0, "angle_error_deg": 8.0, "cone_samples": 200}}
    first = plan(case.ct, case.anatomy, config=noisy).safety_cone
    second = plan(case.ct, case.anatomy, config=noisy).safety_cone
    assert first == second and first.p_any > clear.safety_cone.p_any


def test_zero_filled_volume_is_not_read_as_endless_soft_tissue():
    """A bone-only volume whose anatomy claims soft tissue: skin unknown, not 'too long'."""
    other = synthetic_case(spacing_mm=SPACING_MM, extra=("bone_only",))
    from dataclasses import replace

    anatomy = replace(other.anatomy, has_soft_tissue=True)
    result = plan(other.ct, anatomy, config={"planning": {"cone_samples": 20}})
    assert result.feasible and result.skin_entry_lps is None
    assert any("0 HU" in warning for warning in result.warnings)


def test_hiatus_offset_known_answers():
    from planner.planning.metrics import hiatus_offset_mm

    apex, opening = np.array([0.0, 30.0, 10.0]), np.array([0.0, 25.0, -10.0])
    caudal = np.array([0.0, 0.0, -1.0])  # apex and opening at different depths: depth ignored
    assert hiatus_offset_mm(np.array([0.0, 20.0, 22.0]), apex, opening, caudal) == 12.0
    assert hiatus_offset_mm(np.array([3.0, 20.0, 0.0]), apex, opening, caudal) == 0.0
    assert hiatus_offset_mm(np.array([0.0, 20.0, -17.0]), apex, opening, caudal) == -7.0


def test_posterior_wall_pierced_above_the_hiatus_is_caution(base_plan, monkeypatch):
    """Laminae reaching lower (the hiatus apex near the tip): the needle enters the canal
    through the laminae well cranial to the apex; the search tilts it towards the hiatus."""
    assert base_plan.metrics.posterior_wall_from_hiatus_mm == 0.0
    assert not any("hiatus" in reason for reason in base_plan.reasons)
    low = synthetic_case(SyntheticSacrum(hiatus_deg=-36.0), spacing_mm=SPACING_MM)
    result = plan(low.ct, low.anatomy)
    assert result.feasible and result.verdict is Verdict.CAUTION
    offset = result.metrics.posterior_wall_from_hiatus_mm
    assert offset > Thresholds().hiatus_entry_safe_mm
    monkeypatch.setattr("planner.planning.search.HIATUS_WEIGHT_PER_MM", 0.0)
    untilted = plan(low.ct, low.anatomy)
    assert float(untilted.direction_lps @ base_plan.direction_lps) > np.cos(np.radians(1.0))
    untilted_offset = untilted.metrics.posterior_wall_from_hiatus_mm
    assert untilted_offset > offset + 1.0
    monkeypatch.undo()
    assert any(f"through the laminae {offset:.1f} mm cranial" in r for r in result.reasons)
    validate_plan_dict(result.to_dict())
    # A limit beyond even the untilted path's offset: no path near the tangent is cautioned.
    relaxed = plan(low.ct, low.anatomy,
                   thresholds={"hiatus_entry_safe_mm": untilted_offset + 1.0})
    assert not any("hiatus" in reason for reason in relaxed.reasons)


def test_foramen_mouth_continues_the_channel_medially_into_the_canal():
    from planner.anatomy.model import Plane
    from planner.planning.geometry import foramen_mouths
    from planner.volume import Volume

    # x = i (left), canal at |x| <= 3 voxels, a foramen channel (label 7) along +x at x 4..8.
    shape_kji = (5, 5, 19)
    canal = np.zeros(shape_kji, bool)
    canal[:, :, 6:13] = True
    canal[3, 2, 13:18] = True  # canal just cranial to the channel: beside it, not its mouth
    foramina = np.zeros(shape_kji, np.uint8)
    foramina[2, 2, 13:18] = 7
    grid = Volume(np.zeros(shape_kji, np.float32), origin_lps=[-18.0, 0.0, 0.0],
                  spacing_xyz=[2.0, 2.0, 2.0])
    midsagittal = Plane(point_lps=np.zeros(3), normal_lps=np.array([1.0, 0.0, 0.0]))
    mouths = foramen_mouths(foramina, canal, grid, midsagittal)
    assert mouths[2, 2, 12] == 7  # medial neighbour of the channel's last voxel
    assert np.count_nonzero(mouths) == 1  # not the canal voxels beside or above it
