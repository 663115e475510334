"""The CLI with an MRI: CT + MRI with an MR lesion, MRI alone, and the modality checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run

from planner.mri.phantom_pair import make_phantom_pair
from planner.phantom import PhantomParams, write_dicom_series, write_nifti


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """A CT phantom (DICOM) and a moved T2 MRI of it (DICOM, 4 mm oblique-sagittal slices)."""
    folder = tmp_path_factory.mktemp("pair")
    pair = make_phantom_pair(
        PhantomParams.random(seed=6, lesion=True),
        "T2",
        rotation_deg=(-8.0, 3.0, 5.0),
        translation_mm=(5.0, 12.0, -8.0),
        ct_spacing_mm=1.5,
    )
    write_dicom_series(pair.ct.volume, folder / "ct", uid_seed="ct")
    write_dicom_series(pair.mr, folder / "mr", uid_seed="mr")
    return pair, folder


def test_ct_with_mri_lesion_seed(pair_files, tmp_path, capfd):
    pair, folder = pair_files
    seed_mr = pair.mr_point(pair.ct.truth.landmarks.lesion_center_lps)
    out = tmp_path / "out"
    code, _, stderr = run(
        [
            "plan",
            str(folder / "ct"),
            "-o",
            str(out),
            "--mri",
            str(folder / "mr"),
            "--mri-contrast",
            "T2",
            "--lesion-seed",
            ",".join(map(str, seed_mr)),
            "-q",
        ],
        capfd,
    )
    assert code in (0, 3), stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["target"]["source"] == "lesion"
    truth_lps = pair.ct.truth.landmarks.lesion_center_lps
    assert np.linalg.norm(np.array(plan["target_lps"]) - truth_lps) <= 2.0
    assert plan["mri"]["registration"]["quality_ok"] is True
    assert plan["mri"]["lesion"]["volume_on_ct_ml"] > 0
    assert (out / "images" / "mri_fusion.png").exists()


def test_mri_given_as_the_ct_is_refused(pair_files, tmp_path, capfd):
    _, folder = pair_files
    code, _, stderr = run(["plan", str(folder / "mr"), "-o", str(tmp_path / "o")], capfd)
    assert code == 2
    assert "MRI" in stderr and "--mri" in stderr
    assert not (tmp_path / "o").exists()


def test_ct_given_as_the_mri_is_refused(pair_files, tmp_path, capfd):
    _, folder = pair_files
    code, _, stderr = run(
        ["plan", str(folder / "ct"), "-o", str(tmp_path / "o"), "--mri", str(folder / "ct")], capfd
    )
    assert code == 2
    assert "MRI" in stderr and "--mri" in stderr and "Traceback" not in stderr


def test_mri_options_need_mri(pair_files, tmp_path, capfd):
    _, folder = pair_files
    code, _, stderr = run(
        ["plan", str(folder / "ct"), "-o", str(tmp_path / "o"), "--lesion-seed", "1,2,3"], capfd
    )
    assert code == 2 and "--mri" in stderr


def test_mri_alone_carries_the_mri_caution(tmp_path, capfd):
    from planner.phantom import make_phantom

    t1 = make_phantom(
        PhantomParams.random(seed=4, fov="sacral_region"), spacing_mm=1.5, contrast="T1"
    ).volume
    path = write_nifti(t1, tmp_path / "t1.nii.gz")
    out = tmp_path / "out"
    code, _, stderr = run(["plan", str(path), "-o", str(out), "--modality", "MR", "-q"], capfd)
    assert code in (0, 3), stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["verdict"] in ("caution", "unsafe")
    assert any("MRI" in reason for reason in plan["reasons"])
    assert plan["source_modality"] == "MR"


def test_a_nifti_mri_is_read_as_an_mri(pair_files, tmp_path, capfd):
    """NIfTI has no modality tag: --mri loaded it labelled CT and refused it as a CT."""
    pair, _ = pair_files
    ct = write_nifti(pair.ct.volume, tmp_path / "ct.nii.gz")
    mr = write_nifti(pair.mr, tmp_path / "mr.nii.gz")
    out = tmp_path / "out"
    code, _, stderr = run(["plan", str(ct), "-o", str(out), "-q", "--mri", str(mr)], capfd)
    assert code in (0, 3), stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["mri"]["registration"]["quality_ok"] is True
    assert (out / "images" / "mri_fusion.png").exists()


def test_a_nifti_ct_given_as_the_mri_is_refused(pair_files, tmp_path, capfd):
    pair, _ = pair_files
    ct = str(write_nifti(pair.ct.volume, tmp_path / "ct.nii.gz"))
    out = tmp_path / "out"
    code, _, stderr = run(["plan", ct, "-o", str(out), "-q", "--mri", ct], capfd)
    assert code == 2
    assert "Hounsfield" in stderr and "Traceback" not in stderr
    assert not out.exists()
