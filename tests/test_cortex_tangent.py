"""The anterior-edge tangent read under the ridges (planner.anatomy.cortex_tangent), exact truth.

Phantom truth is analytic here (``PelvisModel`` + ``compute_landmarks``, no voxels drawn): the
curve is the phantom's exact anterior cortex, ridges included, and the true tangent the chord
of the ridge-free edge over +-1 mm (at the S3 centre the phantom's own
``anterior_tangent_s3_lps``). A +-8 mm ridge-trimmed line (the planner's reading before this
module) is 0.6-1.5 deg off at the S3 centre of the kyphotic seeds below and 3.4-5.2 deg off
3 mm from it on seed 3, whose junction ridges are 2 mm high.
"""

from __future__ import annotations

import numpy as np
import pytest

from planner.anatomy.cortex_tangent import edge_tangent
from planner.phantom import PhantomParams
from planner.phantom.pelvis import PelvisModel
from planner.phantom.truth import compute_landmarks

#: Bars: at the S3 centre (where the kyphotic bend starts) and 3 mm either side of it.
CENTRE_BAR_DEG = 0.7
OFF_CENTRE_BAR_DEG = 1.5


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cosine = abs(float(a @ b)) / float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0))))


def _edge_tangent_truth(model: PelvisModel, s_mm: float) -> np.ndarray:
    """Chord of the ridge-free anterior edge over s +- 1 mm (LPS, unnormalised)."""
    frame = model.frame
    return frame.sacral_to_world(0.0, s_mm - 1.0, 0.0) - frame.sacral_to_world(0.0, s_mm + 1.0, 0.0)


def _body_point(model: PelvisModel, s_mm: float) -> np.ndarray:
    """A point half-way through the body at arc length s (where a target sits)."""
    section = model.section(s_mm)
    depth = 0.5 * float(section["d_ant"] + section["D"])
    return model.frame.sacral_to_world(0.0, s_mm, depth)


@pytest.mark.parametrize(
    ("seed", "kyphotic"), [(1, True), (2, True), (3, True), (5, True), (6, True), (3, False)]
)
def test_tangent_at_s3_of_exact_phantom_curves(seed, kyphotic):
    """Strongly kyphotic sacra bend caudal of the S3 centre: the tangent there and 3 mm either
    side (seed 3: 2 mm ridges) is within the bars of the truth."""
    model = PelvisModel(PhantomParams.random(seed, kyphotic=kyphotic))
    marks = compute_landmarks(model)
    curve, left = marks.anterior_cortex_lps, marks.midsagittal.normal_lps
    s3 = float(model.centres_s[2])
    at_centre = edge_tangent(curve, marks.level_centers_lps["S3"], left)
    assert _angle_deg(at_centre.tangent_lps, marks.anterior_tangent_s3_lps) <= CENTRE_BAR_DEG
    assert at_centre.on_envelope
    for offset in (-3.0, 3.0):
        found = edge_tangent(curve, _body_point(model, s3 + offset), left)
        truth = _edge_tangent_truth(model, s3 + offset)
        assert _angle_deg(found.tangent_lps, truth) <= OFF_CENTRE_BAR_DEG, offset


def _arc(radius_mm: float, half_angle: float, step_mm: float = 0.5):
    """Unit radial directions (0, cos a, sin a) (M, 3) and angles a (M,), from +half_angle
    (top) down to -half_angle, every ``step_mm`` of arc on a circle of ``radius_mm``."""
    angle = np.arange(half_angle, -half_angle - 1e-9, -step_mm / radius_mm)
    radial = np.stack([np.zeros_like(angle), np.cos(angle), np.sin(angle)], axis=1)
    return radial, angle


def test_ridged_concave_arc_reads_the_edge_under_the_ridges():
    """A concave edge (radius 120 mm) with 2 mm ridges every 20 mm: the tangent is the
    circle's within 0.2 deg half-way between two ridges, within 2 deg on a ridge's flank
    (3-5 mm from its crest, where the envelope bridges the ridge by a chord). A +-8 mm trimmed
    line: 0.28 deg half-way, 2.8-5.4 deg on the flanks."""
    radius = 120.0
    radial, angle = _arc(radius, 0.4)
    centre = np.array([0.0, -radius, 0.0])  # anterior of the edge: concave from in front
    arc = radius * angle
    ridge = sum(2.0 * np.exp(-(((arc - s0) / 2.5) ** 2)) for s0 in (-30.0, -10.0, 10.0, 30.0))
    curve = centre + (radius - ridge)[:, None] * radial  # ridges bulge anteriorly (inwards)
    left = np.array([1.0, 0.0, 0.0])
    for s_mm, bar_deg in ((0.0, 0.2), (5.0, 2.0), (7.0, 2.0), (-15.0, 2.0)):
        phi = s_mm / radius
        point = centre + (radius + 15.0) * np.array([0.0, np.cos(phi), np.sin(phi)])
        truth = np.array([0.0, -np.sin(phi), np.cos(phi)])  # towards the promontory
        found = edge_tangent(curve, point, left)
        assert found.tangent_lps @ truth > 0
        assert _angle_deg(found.tangent_lps, truth) <= bar_deg, s_mm


def test_convex_stretch_falls_back_to_the_trimmed_line():
    """Where the curve bulges anteriorly (not concave) the envelope would be the chord of the
    stretch's ends: the line through it is used, which on a circle is exact at the middle."""
    radius = 120.0
    radial, _ = _arc(radius, 0.3)
    centre = np.array([0.0, radius, 0.0])  # posterior of the edge: convex from in front
    curve = centre + radius * radial * np.array([1.0, -1.0, 1.0])  # still top to bottom
    found = edge_tangent(curve, np.array([0.0, 15.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    assert not found.on_envelope
    assert _angle_deg(found.tangent_lps, np.array([0.0, 0.0, 1.0])) <= 0.05
