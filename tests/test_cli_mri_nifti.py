"""`--mri` with NIfTI files, which carry no modality: an MRI is taken as one, a CT is refused."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run

from planner.mri.phantom_pair import make_phantom_pair
from planner.phantom import PhantomParams, write_nifti


@pytest.fixture(scope="module")
def nifti_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nifti_pair")
    pair = make_phantom_pair(
        PhantomParams.random(seed=6, lesion=True),
        "T2",
        rotation_deg=(-8.0, 3.0, 5.0),
        translation_mm=(5.0, 12.0, -8.0),
        ct_spacing_mm=2.0,
    )
    write_nifti(pair.ct.volume, folder / "ct.nii.gz")
    write_nifti(pair.mr, folder / "mr.nii.gz")
    return folder


def test_a_nifti_mri_is_read_as_an_mri(nifti_pair, tmp_path, capfd):
    """It loaded labelled CT and was refused as 'a CT (Hounsfield units)'."""
    out = tmp_path / "out"
    argv = ["plan", str(nifti_pair / "ct.nii.gz"), "-o", str(out), "-q"]
    code, _, stderr = run([*argv, "--mri", str(nifti_pair / "mr.nii.gz")], capfd)
    assert code in (0, 3), stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["mri"]["registration"]["quality_ok"] is True
    assert (out / "images" / "mri_fusion.png").exists()


def test_a_nifti_ct_given_as_the_mri_is_refused(nifti_pair, tmp_path, capfd):
    out = tmp_path / "out"
    ct = str(nifti_pair / "ct.nii.gz")
    code, _, stderr = run(["plan", ct, "-o", str(out), "-q", "--mri", ct], capfd)
    assert code == 2
    assert "Hounsfield" in stderr and "Traceback" not in stderr
    assert not out.exists()
