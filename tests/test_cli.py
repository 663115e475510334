"""The CLI run in-process end to end: exit codes, every output file, privacy."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest
import SimpleITK as sitk
from cli_helpers import run

from planner import cli
from planner.export.markups import validate_markups
from planner.loading import load
from planner.phantom import PhantomParams, make_phantom, write_dicom_series, write_nifti
from planner.planning import validate_plan_dict
from planner.sample import sample_case_path

SECRET_NAME = "DOE^JANE^SECRET"
SECRET_ID = "MRN-98765-SECRET"
#: A NIfTI-1 header with its extension flag: where a leaked identifier would sit.
NIFTI_HEADER_BYTES = 352
MASK_NAMES = ("sacrum.nii.gz", "canal.nii.gz", "foramina.nii.gz", "levels.nii.gz")


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory):
    """A 2 mm phantom pelvis as a DICOM series whose header carries a patient name and ID."""
    folder = tmp_path_factory.mktemp("series")
    phantom = make_phantom(PhantomParams.random(seed=5), spacing_mm=2.0)
    write_dicom_series(
        phantom.volume, folder, patient_name=SECRET_NAME, patient_id=SECRET_ID, uid_seed="cli-test"
    )
    return folder


@pytest.fixture(scope="module")
def planned(phantom_series, tmp_path_factory):
    """One ``sacroplan plan --save-masks --json`` run, shared by the checks below."""
    out = tmp_path_factory.mktemp("plan") / "out"
    argv = ["plan", str(phantom_series), "-o", str(out), "--save-masks", "--json"]
    return out, argv


def test_plan_writes_every_output(planned, phantom_series, capfd):
    out, argv = planned
    code, stdout, stderr = run(argv, capfd)
    plan = json.loads((out / "plan.json").read_text())
    assert code == (3 if plan["verdict"] == "unsafe" or not plan["feasible"] else 0)
    validate_plan_dict(plan)
    assert plan["format"] == "sacroplasty-plan" and plan["coordinate_system"] == "LPS"
    assert set(plan["fluoroscopy"]) >= {"lateral", "ap", "bullseye"}
    summary = json.loads(stdout)
    assert summary["verdict"] == plan["verdict"]
    for stage in ("load", "anatomy", "plan", "render", "write"):
        assert stage in stderr  # progress with elapsed time per stage
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    validate_markups(json.loads((out / "trajectory.mrk.json").read_text()))
    images = sorted(p.name for p in (out / "images").glob("*.png"))
    for expected in (
        "fluoro_lateral.png",
        "fluoro_ap.png",
        "fluoro_bullseye.png",
        "ct_needle_plane_sagittal_oblique.png",
        "ct_cross_section_at_target.png",
    ):
        assert expected in images
    ct = load(phantom_series)
    for name in MASK_NAMES:
        mask = sitk.ReadImage(str(out / "masks" / name))
        assert mask.GetSize() == ct.shape_ijk
        np.testing.assert_allclose(mask.GetOrigin(), ct.origin_lps, atol=1e-3)
        np.testing.assert_allclose(mask.GetSpacing(), ct.spacing_xyz, atol=1e-4)
        np.testing.assert_allclose(np.reshape(mask.GetDirection(), (3, 3)), ct.direction, atol=1e-6)
        assert sitk.GetArrayViewFromImage(mask).max() >= 1
    levels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "masks" / "levels.nii.gz")))
    assert set(np.unique(levels)) == {0, 1, 2, 3, 4, 5}


def _output_blobs(out) -> list[tuple[str, bytes]]:
    """Every output file's bytes, gzip files (NIfTI masks) decompressed so headers are read."""
    blobs = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blobs.append((path.name, gzip.decompress(data) if path.suffix == ".gz" else data))
    return blobs


def test_no_identifier_in_any_output(planned, capfd):
    out, argv = planned
    if not (out / "plan.json").exists():
        run(argv, capfd)
    blobs = _output_blobs(out)
    code, stdout, stderr = run(argv, capfd)
    blobs += [("stdout", stdout.encode()), ("stderr", stderr.encode())]
    # Long tokens are searched in every byte; the short family name only in text outputs,
    # because 3 bytes turn up by chance in compressed pixel data (PNG IDAT, PDF streams).
    for secret in (SECRET_NAME, SECRET_ID, "SECRET", "98765"):
        assert not any(secret.encode() in blob for _, blob in blobs), secret
    texts = [blob for name, blob in blobs if not name.endswith((".png", ".pdf", ".nii.gz"))]
    texts += [blob[:NIFTI_HEADER_BYTES] for name, blob in blobs if name.endswith(".nii.gz")]
    assert not any(b"DOE" in blob for blob in texts)


def test_show_identifiers_puts_them_in_the_plan(phantom_series, tmp_path, capfd):
    out = tmp_path / "out"
    run(["plan", str(phantom_series), "-o", str(out), "--show-identifiers", "-q"], capfd)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["patient"]["PatientName"] == SECRET_NAME
    assert plan["patient"]["PatientID"] == SECRET_ID


def test_bad_input_exit_2_and_nothing_written(tmp_path, capfd):
    out = tmp_path / "out"
    code, _, stderr = run(["plan", str(tmp_path / "missing"), "-o", str(out)], capfd)
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert not out.exists()


def test_volume_without_sacrum_is_bad_input(tmp_path, capfd):
    params = PhantomParams.random(seed=2, fov="above_sacrum")
    phantom = make_phantom(params, spacing_mm=2.5)
    path = write_nifti(phantom.volume, tmp_path / "chest.nii.gz")
    code, _, stderr = run(["plan", str(path), "-o", str(tmp_path / "out"), "-q"], capfd)
    assert code == 2
    assert "sacrum" in stderr.lower()
    assert not (tmp_path / "out").exists()


def test_bad_config_is_bad_input(phantom_series, tmp_path, capfd):
    config = tmp_path / "config.toml"
    config.write_text("[thresholds\nfoo = ")
    code, _, stderr = run(
        ["plan", str(phantom_series), "-o", str(tmp_path / "o"), "--config", str(config)], capfd
    )
    assert code == 2 and "TOML" in stderr


def test_target_argument_is_validated(capfd):
    with pytest.raises(SystemExit) as raised:
        cli.main(["plan", "x", "-o", "y", "--target", "1,2"])
    assert raised.value.code == 2
    assert "3 comma-separated numbers" in capfd.readouterr().err


def test_version(capfd):
    with pytest.raises(SystemExit) as raised:
        cli.main(["--version"])
    assert raised.value.code == 0
    assert capfd.readouterr().out.startswith("sacroplan ")


def test_series_lists_the_sample_without_identifiers(capfd):
    code, stdout, _ = run(["series", str(sample_case_path())], capfd)
    assert code == 0
    assert "CT" in stdout and "PHANTOM" not in stdout


def test_demo_plans_the_sample_case(tmp_path, capfd):
    out = tmp_path / "demo"
    code, stdout, _ = run(["demo", "-o", str(out), "-q"], capfd)
    assert code in (0, 3)
    assert (out / "report.pdf").exists()
    assert str(out / "report.pdf") in stdout
    validate_plan_dict(json.loads((out / "plan.json").read_text()))


def test_batch_survives_a_bad_case(phantom_series, tmp_path, capfd):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "good").symlink_to(phantom_series, target_is_directory=True)
    (cases / "broken.nii.gz").write_bytes(b"not an image")
    code, _, _ = run(["batch", str(cases), "-o", str(tmp_path / "out"), "-q"], capfd)
    with (tmp_path / "out" / "summary.csv").open() as handle:
        rows = {row["case"]: row for row in csv.DictReader(handle)}
    assert rows["broken"]["verdict"] == "error" and rows["broken"]["error"]
    assert rows["good"]["verdict"] in {"safe", "caution", "unsafe"}
    assert (tmp_path / "out" / "good" / "plan.json").exists()
    assert code == 2


def test_bone_only_real_scan(shared_data, tmp_path, capfd):
    """pengwin-003 (bone-only): a bone path is planned; skin entry and depth are unknown."""
    out = tmp_path / "out"
    ct = shared_data / "pengwin-003" / "ct_boneonly.nii.gz"
    code, _, _ = run(["plan", str(ct), "-o", str(out), "-q", "--save-masks"], capfd)
    plan = json.loads((out / "plan.json").read_text())
    validate_plan_dict(plan)
    assert code == (3 if plan["verdict"] == "unsafe" or not plan["feasible"] else 0)
    assert plan["skin_entry_lps"] is None
    assert plan["metrics"]["skin_to_target_mm"] is None
    assert any("skin" in reason.lower() for reason in plan["reasons"] + plan.get("warnings", []))
    mask = sitk.ReadImage(str(out / "masks" / "sacrum.nii.gz"))
    assert mask.GetSize() == sitk.ReadImage(str(ct)).GetSize()
