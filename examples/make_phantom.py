"""Write a synthetic pelvis phantom as a DICOM CT series (and optionally its truth as NIfTI).

Examples
--------
The bundled sample case (``sample_data/phantom-ct``)::

    python examples/make_phantom.py --seed 7 --spacing 1.5 1.5 2.0 --fov sacral_region \
        --out sample_data/phantom-ct --uid-seed sacroplan-sample-phantom-ct

A strongly kyphotic, bone-only case in an oblique orientation, with its truth::

    python examples/make_phantom.py --seed 3 --kyphotic --bone-only --orientation oblique \
        --out /tmp/phantom --truth /tmp/phantom-truth
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from planner.phantom import CONTRASTS, FIELDS_OF_VIEW, ORIENTATIONS, PhantomParams, make_phantom
from planner.phantom.io import write_dicom_series, write_nifti


def _landmarks_json(phantom) -> dict:
    marks = phantom.truth.landmarks

    def listed(value):
        return None if value is None else np.round(np.asarray(value, float), 3).tolist()

    return {
        "coordinate_system": "LPS",
        "units": "mm",
        "params": phantom.params.as_dict(),
        "promontory_lps": listed(marks.promontory_lps),
        "hiatus_apex_lps": listed(marks.hiatus_apex_lps),
        "hiatus_opening_lps": listed(marks.hiatus_opening_lps),
        "level_centers_lps": {k: listed(v) for k, v in marks.level_centers_lps.items()},
        "foramen_centers_lps": {
            f"{level}{side}": listed(v) for (level, side), v in marks.foramen_centers_lps.items()
        },
        "anterior_tangent_s3_lps": listed(marks.anterior_tangent_s3_lps),
        "midsagittal": {
            "point_lps": listed(marks.midsagittal.point_lps),
            "normal_lps": listed(marks.midsagittal.normal_lps),
        },
        "skin_over_hiatus_lps": listed(marks.skin_over_hiatus_lps),
        "skin_on_s3_tangent_lps": listed(marks.skin_on_s3_tangent_lps),
        "dural_sac_end_lps": listed(marks.dural_sac_end_lps),
        "lesion_center_lps": listed(marks.lesion_center_lps),
        "lesion_volume_mm3": marks.lesion_volume_mm3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spacing", type=float, nargs="+", default=[1.0], help="mm (1 or 3)")
    parser.add_argument("--orientation", choices=ORIENTATIONS, default="LPS")
    parser.add_argument("--contrast", choices=CONTRASTS, default="CT")
    parser.add_argument("--fov", choices=FIELDS_OF_VIEW, default="pelvis")
    parser.add_argument("--kyphotic", action="store_true", help="strongly curved sacrum")
    parser.add_argument("--bone-only", action="store_true", help="0 HU outside the bones")
    parser.add_argument("--lesion", action="store_true", help="lytic lesion in S3")
    parser.add_argument("--noise", type=float, default=None, help="noise SD (HU)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the DICOM series")
    parser.add_argument("--nifti", type=Path, help="also write the image as this .nii.gz")
    parser.add_argument("--truth", type=Path, help="folder for truth masks and landmarks.json")
    parser.add_argument("--uid-seed", help="derive every UID from this text (reproducible files)")
    args = parser.parse_args(argv)

    overrides = {"fov": args.fov, "bone_only": args.bone_only, "lesion": args.lesion}
    if args.noise is not None:
        overrides["noise_hu"] = args.noise
    params = PhantomParams.random(args.seed, kyphotic=args.kyphotic, **overrides)
    spacing = args.spacing[0] if len(args.spacing) == 1 else tuple(args.spacing)
    phantom = make_phantom(params, spacing, args.orientation, args.contrast)
    files = write_dicom_series(phantom.volume, args.out, uid_seed=args.uid_seed)
    print(f"wrote {len(files)} DICOM files to {args.out}: {phantom.volume}")
    if args.nifti:
        write_nifti(phantom.volume, args.nifti)
    if args.truth:
        truth = phantom.truth
        for name in ("sacrum", "canal", "foramina", "levels", "ilia", "lesion", "dural_sac"):
            write_nifti(getattr(truth, name), args.truth / f"{name}.nii.gz")
        (args.truth / "landmarks.json").write_text(json.dumps(_landmarks_json(phantom), indent=1))
        print(f"wrote truth masks and landmarks.json to {args.truth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
