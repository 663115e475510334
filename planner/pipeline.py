"""One case end to end: load -> anatomy -> plan -> pictures -> files.

The CLI's ``plan``, ``demo`` and ``batch`` commands and the Python API's ``Plan.save`` all go
through :func:`run_case`, so every face of the product writes the same files. Each stage reports
its elapsed time through a ``progress`` callback; nothing identifying the patient is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planner.errors import PlannerError, UnsupportedInputError, WrongModalityError
from planner.volume import Volume

ProgressCallback = Callable[[str], None]


@dataclass(frozen=True)
class CaseRequest:
    """What to plan and how.

    Attributes
    ----------
    input_path : Path
        DICOM folder or file, NIfTI, NRRD or MHA.
    output_dir : Path
        Folder to write; replaced whole on success, untouched on failure.
    target : tuple of 3 floats, str or None
        LPS point (mm), a level name ("S2".."S4"), or None for the centre of S3.
    lesion_path : Path or None
        Lesion mask (any grid; resampled onto the CT).
    """

    input_path: Path
    output_dir: Path
    series: str | None = None
    target: tuple[float, float, float] | str | None = None
    lesion_path: Path | None = None
    needle: str = "13G"
    config_path: Path | None = None
    save_masks: bool = False
    segmentation_path: Path | None = None
    sacrum_label: int | None = None
    show_identifiers: bool = False
    allow_resample: bool = False
    #: "CT" (default) or "MR" to plan on an MRI alone (T1-weighted).
    modality: str = "CT"
    mri_path: Path | None = None
    mri_series: str | None = None
    mri_contrast: str | None = None
    lesion_mri_path: Path | None = None
    lesion_seed_mr_lps: tuple[float, float, float] | None = None


@dataclass
class StageTimer:
    """Wall time of each stage, reported as it ends."""

    progress: ProgressCallback | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, function, *args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        elapsed = time.perf_counter() - start
        self.seconds[name] = elapsed
        if self.progress is not None:
            self.progress(f"{name:<10s} {elapsed:6.2f} s")
        return result


@dataclass(frozen=True)
class CaseResult:
    """Outcome of one case: the plan dictionary and where it was written."""

    case_id: str
    output_dir: Path
    plan: dict
    stage_seconds: dict[str, float]

    @property
    def verdict(self) -> str:
        return str(self.plan["verdict"])

    @property
    def written_unsafe(self) -> bool:
        return self.verdict == "unsafe" or self.plan.get("feasible") is False


def _load_config(path: Path | None) -> dict:
    if path is None:
        return {}
    import tomllib

    from planner.fluoro.for_plan import carm_from_config

    try:
        config = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise PlannerError(f"config file {path} does not exist") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PlannerError(f"config file {path} is not valid TOML: {error}") from error
    # A bad [carm] table is refused now, not after minutes of anatomy and planning.
    carm_from_config(config.get("carm"))
    return config


def _load_lesion(path: Path, volume):
    from planner.loading import load
    from planner.sitk_bridge import resample_like

    lesion = load(path, modality="SEG")
    lesion = lesion.with_array(np.asarray(lesion.array) > 0, modality="SEG")
    if not lesion.array.any():
        raise PlannerError(f"lesion mask {path} is empty")
    if not lesion.same_grid(volume):
        lesion = resample_like(lesion, volume, "nearest")
    if not lesion.array.any():
        raise PlannerError(f"lesion mask {path} does not overlap the CT")
    return lesion


def _external_sacrum(request: CaseRequest, volume):
    from planner.anatomy.sacrum import sacrum_from_labelmap
    from planner.loading import load

    labelmap = load(request.segmentation_path, modality="SEG")
    label = request.sacrum_label if request.sacrum_label is not None else 1
    return sacrum_from_labelmap(labelmap, label, volume).mask


def _parse_target(request: CaseRequest, volume):
    if request.lesion_path is not None:
        return _load_lesion(request.lesion_path, volume)
    if isinstance(request.target, tuple):
        return np.asarray(request.target, dtype=float)
    return request.target  # a level name or None (centre of S3)


def _write_outputs(
    staging: Path, volume, anatomy, plan_dict: dict, pictures: dict, save_masks: bool
) -> None:
    import json

    from planner.export.markups import write_markups
    from planner.report import render_plan_sheet

    images = staging / "images"
    images.mkdir()
    from matplotlib import image as mpimg

    for name, rgb in pictures.items():
        mpimg.imsave(images / f"{name}.png", np.clip(rgb, 0, 1) if rgb.dtype.kind == "f" else rgb)
    (staging / "plan.json").write_text(json.dumps(plan_dict, indent=2))
    write_markups(plan_dict, staging / "trajectory.mrk.json")
    render_plan_sheet(plan_dict, report_pictures(pictures), staging / "report.pdf")
    if save_masks:
        from planner.export.masks import write_masks

        write_masks(anatomy, volume, staging / "masks")


def run_case(request: CaseRequest, progress: ProgressCallback | None = None) -> CaseResult:
    """Plan one case and write every output file (see the README's "Outputs").

    Raises
    ------
    PlannerError
        Bad input; nothing is written.
    """
    from planner.export.outdir import check_destination
    from planner.loading import load
    from planner.mri.preprocess import check_modality

    timer = StageTimer(progress)
    config = _load_config(request.config_path)
    _check_mri_options(request)
    # A bad output path is refused before minutes of work, not after.
    check_destination(request.output_dir)
    modality = request.modality.upper()
    # Without a modality the loader takes the CT series if any, else the MR one, so an MRI given
    # where a CT is expected reaches check_modality and its message.
    volume = timer.run(
        "load",
        load,
        request.input_path,
        series=request.series,
        allow_resample=request.allow_resample,
        modality=None if modality == "CT" else modality,
    )
    check_modality(volume, modality, f"the input {request.input_path}")
    for note in volume.info.notes:
        if progress is not None:
            progress(f"note: {note}")
    if modality == "MR":
        return _run_mri_alone(request, volume, config, timer)
    mr = None
    if request.mri_path is not None:
        mr = timer.run("load mri", _load_mri, request)
        check_modality(mr, "MR", f"--mri {request.mri_path}")
    # Later stages are imported only once the input is known to be good.
    from planner.anatomy.find import find_anatomy
    from planner.planning import plan as make_plan

    sacrum_mask = None
    if request.segmentation_path is not None:
        sacrum_mask = timer.run("external", _external_sacrum, request, volume)
    anatomy = timer.run("anatomy", find_anatomy, volume, sacrum_mask=sacrum_mask)
    target = _parse_target(request, volume)
    extra: dict = {}
    extra_files = None
    # The lesion the plan targets is outlined on every picture.
    lesion = target if isinstance(target, Volume) else None
    if request.mri_path is not None:
        plan, extra, extra_files, lesion = timer.run(
            "mri", _plan_with_mri, request, volume, mr, anatomy, target, config
        )
    else:
        plan = timer.run(
            "plan", make_plan, volume, anatomy, target=target, needle=request.needle, config=config
        )
    if request.show_identifiers:
        from planner.identifiers import read_identifiers

        extra["patient"] = read_identifiers(request.input_path, volume.info.series_uid)
    plan_dict = save_plan(
        plan,
        request.output_dir,
        volume,
        anatomy,
        config=config,
        save_masks=request.save_masks,
        extra=extra,
        timer=timer,
        extra_files=extra_files,
        lesion=lesion,
    )
    return CaseResult(volume.info.case_id, Path(request.output_dir), plan_dict, timer.seconds)


def _load_mri(request: CaseRequest):
    """The --mri volume. NIfTI and other single files carry no modality: --mri says it is an MRI."""
    from planner.loading import load

    try:
        return load(request.mri_path, series=request.mri_series, modality="MR")
    except WrongModalityError as error:
        raise UnsupportedInputError(
            f"--mri {request.mri_path} holds no MRI, only {'/'.join(error.found)}; give the "
            "MRI with --mri and the CT as the main input"
        ) from error


def _check_mri_options(request: CaseRequest) -> None:
    mri_only = (
        request.lesion_mri_path,
        request.lesion_seed_mr_lps,
        request.mri_series,
        request.mri_contrast,
    )
    if request.mri_path is None and any(option is not None for option in mri_only):
        raise PlannerError(
            "--lesion-mri, --lesion-seed, --mri-series and --mri-contrast need --mri MR"
        )
    if request.lesion_mri_path is not None and request.lesion_seed_mr_lps is not None:
        raise PlannerError(
            "give the MR lesion as a mask (--lesion-mri) or as a seed point "
            "(--lesion-seed), not both"
        )
    mr_lesion = request.lesion_mri_path is not None or request.lesion_seed_mr_lps is not None
    ct_target = request.lesion_path is not None or isinstance(request.target, tuple)
    if mr_lesion and ct_target:
        raise PlannerError("give one target: a CT lesion or point, or an MR lesion")
    if request.modality.upper() not in ("CT", "MR"):
        raise PlannerError(f"modality must be CT or MR, got {request.modality!r}")
    if request.modality.upper() == "MR" and request.mri_path is not None:
        raise PlannerError(
            "--mri adds an MRI to a CT; to plan on an MRI alone give it as the "
            "input with --modality MR"
        )


def _plan_with_mri(request: CaseRequest, ct, mr, anatomy, target, config: dict):
    """Plan on the CT with the lesion and dural sac from the MRI.

    Returns (plan, extra plan.json keys, writer of the fusion picture, lesion on the CT or None).
    """
    from planner.loading import load
    from planner.mri.fusion import save_fused_picture
    from planner.mri.workflow import plan_with_mri

    lesion_mask = None
    if request.lesion_mri_path is not None:
        lesion_mask = load(request.lesion_mri_path, modality="SEG")
    options = {"needle": request.needle, "config": config}
    if target is not None and lesion_mask is None and request.lesion_seed_mr_lps is None:
        options["target"] = target
    result = plan_with_mri(
        ct,
        mr,
        anatomy,
        lesion_mask_mr=lesion_mask,
        lesion_seed_mr_lps=request.lesion_seed_mr_lps,
        contrast=request.mri_contrast,
        **options,
    )

    def write_fusion(folder: Path) -> None:
        plan = result.plan
        crossing = plan.canal_crossing
        candidates = (
            plan.skin_entry_lps,
            None if crossing is None else crossing.entry_lps,
            plan.bone_entry_lps,
            plan.target_lps,
        )
        start = next(point for point in candidates if point is not None)
        save_fused_picture(
            result.registration.fused_rgb,
            folder / "images" / "mri_fusion.png",
            centre_lps=result.registration.fused_centre_lps,
            needle_lps=np.vstack([start, plan.target_lps]),
        )

    return result.plan, {"mri": result.report()}, write_fusion, result.lesion_ct


def _run_mri_alone(request: CaseRequest, mr, config: dict, timer: StageTimer) -> CaseResult:
    """Plan on a T1-weighted MRI alone: anatomy from a pseudo-CT, with the MRI caution."""
    from planner.mri.anatomy import add_mri_bone_caution, find_anatomy_mr
    from planner.planning import plan as make_plan

    found = timer.run("anatomy", find_anatomy_mr, mr)
    target = _parse_target(request, found.pseudo_ct)
    plan = timer.run(
        "plan",
        make_plan,
        found.pseudo_ct,
        found.anatomy,
        target=target,
        needle=request.needle,
        config=config,
    )
    plan = add_mri_bone_caution(plan)
    plan_dict = save_plan(
        plan,
        request.output_dir,
        found.pseudo_ct,
        found.anatomy,
        config=config,
        save_masks=request.save_masks,
        extra={"source_modality": "MR"},
        timer=timer,
    )
    return CaseResult(mr.info.case_id, Path(request.output_dir), plan_dict, timer.seconds)


def save_plan(
    plan,
    output_dir: str | Path,
    volume,
    anatomy,
    config: dict | None = None,
    save_masks: bool = False,
    extra: dict | None = None,
    timer: StageTimer | None = None,
    extra_files: Callable[[Path], None] | None = None,
    lesion: Volume | None = None,
) -> dict:
    """Render and write every output of a plan into ``output_dir`` (replaced whole).

    Parameters
    ----------
    plan : planner.planning.Plan
    output_dir : path
        Gets ``plan.json``, ``report.pdf``, ``images/``, ``trajectory.mrk.json`` and, with
        ``save_masks``, ``masks/`` on the grid of ``volume``.
    volume : Volume
        The CT the plan was made on.
    anatomy : SacralAnatomy
    config : dict, optional
        Its ``[carm]`` table sets the C-arm of the fluoroscopy views.
    extra : dict, optional
        More top-level keys for ``plan.json``.
    extra_files : callable, optional
        Called with the staging folder to write more files (e.g. the MR fusion picture).
    lesion : Volume (bool), optional
        The lesion the plan targets (any grid), outlined on every picture.

    Returns
    -------
    dict
        The plan-file dictionary as written.
    """
    from planner.export.outdir import staged_output

    timer = timer or StageTimer()
    config = config or {}
    pictures, fluoroscopy = timer.run(
        "render", render_pictures, volume, anatomy, plan, config, lesion
    )
    plan_dict = plan.to_dict()
    plan_dict["fluoroscopy"] = fluoroscopy
    plan_dict["case_id"] = volume.info.case_id
    plan_dict["input_notes"] = list(volume.info.notes)
    plan_dict["anatomy_notes"] = list(getattr(anatomy, "notes", ()))
    plan_dict.update(extra or {})
    with staged_output(output_dir) as staging:
        timer.run(
            "write", _write_outputs, staging, volume, anatomy, plan_dict, pictures, save_masks
        )
        if extra_files is not None:
            extra_files(staging)
    return plan_dict


def render_pictures(
    volume, anatomy, plan, config: dict, lesion: Volume | None = None
) -> tuple[dict, dict]:
    """Every picture of a plan (RGB arrays by file stem) and the ``fluoroscopy`` plan block.

    A ``lesion`` mask (the plan's target) is outlined on every picture.

    The report's slots are ``lateral``, ``ap`` and ``ct_sagittal`` (the needle's own
    oblique-sagittal plane); see :func:`report_pictures`.
    """
    from planner.fluoro.for_plan import render_plan_views

    return render_plan_views(volume, anatomy, plan, config.get("carm"), lesion=lesion)


def report_pictures(pictures: dict) -> dict:
    """The three pictures of the one-page sheet, by sheet slot."""
    return {
        "lateral": pictures.get("fluoro_lateral"),
        "ap": pictures.get("fluoro_ap"),
        "ct_sagittal": pictures.get("ct_needle_plane_sagittal_oblique"),
    }
