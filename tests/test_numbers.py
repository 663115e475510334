"""Numbers in reasons and on the sheet: no signed zero, never printed as the limit they break."""

from planner.numbers import format_beyond_limit, format_number


def test_a_zero_has_no_sign():
    assert format_number(-0.04) == "0.0"
    assert format_number(-0.06) == "-0.1"


def test_a_value_beyond_its_limit_never_prints_as_the_limit():
    assert format_beyond_limit(1.99, 2.0) == "1.99"
    assert format_beyond_limit(1.999, 2.0) == "1.999"
    assert format_beyond_limit(1.7, 2.0) == "1.7"
    assert format_beyond_limit(15.04, 15.0) == "15.04"


def _metrics(**changes):
    from dataclasses import replace

    from planner.planning.model import Metrics

    good = Metrics(
        foramen_clearance_mm=6.0, foramen_clearances_mm={"S3_L": 6.0}, canal_clearance_mm=6.0,
        bone_margin_mm=3.0, anterior_cortex_clearance_mm=5.0, angle_to_anterior_edge_deg=1.0,
        sagittal_tilt_deg=1.0, out_of_plane_tilt_deg=0.0, midline_offset_mm=0.5,
        skin_to_target_mm=80.0, bone_entry_to_target_mm=40.0, intraosseous_length_mm=40.0,
        canal_crossing_level="S4", other_bone_contact=False, posterior_wall_from_hiatus_mm=0.0,
        bone_margin_from_target_mm=20.0, canal_wall_angle_deg=30.0,
    )
    return replace(good, **changes)


def test_reasons_use_the_shared_rounding_and_a_missing_canal_crossing_is_unsafe():
    from planner.planning.model import Verdict
    from planner.planning.thresholds import Thresholds
    from planner.planning.verdict import soft_verdict

    thresholds = Thresholds()
    verdict, reasons = soft_verdict(_metrics(), None, thresholds, {}, None, 1.2)
    assert verdict is Verdict.SAFE and reasons == []

    close = thresholds.foramen_safe_mm - 0.01
    verdict, reasons = soft_verdict(
        _metrics(foramen_clearance_mm=close), None, thresholds, {}, None, 1.2
    )
    assert verdict is Verdict.CAUTION
    assert f"foramen clearance {close:.2f} mm" in reasons[0]

    # Not crossing the canal is another procedure, not a variant of this one.
    verdict, reasons = soft_verdict(
        _metrics(canal_crossing_level=None, posterior_wall_from_hiatus_mm=None,
                 canal_wall_angle_deg=None), None, thresholds, {}, None, 1.2
    )
    assert verdict is Verdict.UNSAFE
    assert any("does not cross the sacral canal" in reason for reason in reasons)
