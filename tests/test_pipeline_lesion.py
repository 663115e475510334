"""The lesion a plan targets reaches the pictures: run_case hands it to the renderer."""

from __future__ import annotations

import numpy as np

from planner.phantom import PhantomParams, make_phantom, write_nifti
from planner.pipeline import CaseRequest, run_case


def test_a_ct_lesion_target_is_outlined_on_the_pictures(tmp_path, monkeypatch):
    """A plan aimed at a lesion mask (--lesion) drew the lesion on no picture."""
    import planner.fluoro.for_plan as for_plan

    phantom = make_phantom(PhantomParams.random(seed=3, lesion=True), spacing_mm=2.0)
    volume = phantom.volume
    lps = volume.index_to_lps(np.indices(volume.array.shape).reshape(3, -1).T[:, ::-1])
    centre = phantom.truth.landmarks.lesion_center_lps
    inside = np.linalg.norm(lps - centre, axis=1) <= phantom.truth.landmarks.lesion_radius_mm
    lesion = volume.with_array(inside.reshape(volume.array.shape), "SEG")
    write_nifti(volume, tmp_path / "ct.nii.gz")
    write_nifti(lesion.with_array(lesion.array.astype(np.uint8)), tmp_path / "lesion.nii.gz")

    seen = {}
    render = for_plan.render_plan_views

    def spy(*args, **kwargs):
        seen["lesion"] = kwargs.get("lesion")
        return render(*args, **kwargs)

    monkeypatch.setattr(for_plan, "render_plan_views", spy)
    request = CaseRequest(
        tmp_path / "ct.nii.gz", tmp_path / "out", lesion_path=tmp_path / "lesion.nii.gz"
    )
    result = run_case(request)
    assert result.plan["target"]["source"] == "lesion"
    assert seen["lesion"] is not None
    assert np.array_equal(seen["lesion"].array, lesion.array)
