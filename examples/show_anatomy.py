"""Render the anatomy found on a CT: mid-sagittal and oblique-coronal pictures with overlays.

Usage::

    python examples/show_anatomy.py CT [--labels LABELS.nii.gz --label 1] [--out DIR]

``CT`` is anything ``planner.load`` reads: a DICOM folder (e.g. ``sample_data/phantom-ct``) or a
NIfTI, NRRD or MHA file.

With ``--labels`` the sacrum mask is taken from that label map (e.g. the PENGWIN manual masks,
label 1); otherwise the planner segments the sacrum. Writes ``<name>_sagittal.png`` and
``<name>_coronal.png``: levels S1-S5 in colour, canal in cyan, foramina in magenta/orange
(left/right), the anterior cortex as a yellow line, level centres as white dots, the hiatus apex
(red) and opening (green). Orientation letters (R/L, A/P, H/F, as on every picture of the
planner) and a 10 mm scale bar are drawn on each picture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from planner.anatomy.find import find_anatomy  # noqa: E402
from planner.anatomy.model import LEVEL_NAMES, SacralAnatomy  # noqa: E402
from planner.errors import PlannerError  # noqa: E402
from planner.loading import load  # noqa: E402
from planner.render.annotate import direction_letters  # noqa: E402
from planner.volume import Volume  # noqa: E402

PIXEL_MM = 0.5
LEVEL_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00")


def _plane_grid(centre_lps, axis_right, axis_down, half_right, half_down):
    right = np.arange(-half_right, half_right + 1e-9, PIXEL_MM)
    down = np.arange(-half_down, half_down + 1e-9, PIXEL_MM)
    r, d = np.meshgrid(right, down)
    return centre_lps + r[..., None] * axis_right + d[..., None] * axis_down


def _project(points_lps, centre_lps, axis_right, axis_down):
    rel = np.atleast_2d(points_lps) - centre_lps
    return rel @ axis_right, rel @ axis_down


def render(ct: Volume, anatomy: SacralAnatomy, title: str, out_dir: Path) -> list[Path]:
    """Write the two pictures; return their paths."""
    left = anatomy.midsagittal.normal_lps
    centres = np.array([anatomy.level_centers_lps[n] for n in LEVEL_NAMES])
    long_axis = centres[0] - centres[-1]
    long_axis -= (long_axis @ left) * left
    long_axis /= np.linalg.norm(long_axis)  # cranial, in the plane
    posterior = np.cross(long_axis, left)
    middle = centres.mean(axis=0)
    found = [f.center_lps for f in anatomy.foramen_list if f.found]
    coronal_centre = np.mean(found, axis=0) if found else middle
    sagittal_centre = middle - ((middle - anatomy.midsagittal.point_lps) @ left) * left
    views = {
        # Mid-sagittal: right of the picture = posterior, down = caudal.
        "sagittal": (sagittal_centre, posterior, -long_axis),
        # Oblique coronal through the foramina: right of the picture = patient left.
        "coronal": (coronal_centre, left, -long_axis),
    }
    paths = []
    for name, (centre, right, down) in views.items():
        grid = _plane_grid(centre, right, down, 75.0, 80.0)
        image = ct.sample(grid, order=1, fill_value=-1000)
        levels = anatomy.levels.sample(grid, order=0)
        canal = anatomy.canal.sample(grid, order=0) > 0.5
        foramina = anatomy.foramina.sample(grid, order=0)
        sacrum = anatomy.sacrum.sample(grid, order=0) > 0.5
        fig, ax = plt.subplots(figsize=(7, 7.5))
        extent = (-75, 75, 80, -80)
        ax.imshow(image, cmap="gray", vmin=-300, vmax=1300, extent=extent)
        overlay = np.zeros((*image.shape, 4))
        for index, colour in enumerate(LEVEL_COLOURS):
            overlay[levels == index + 1] = (*matplotlib.colors.to_rgb(colour), 0.35)
        overlay[canal] = (0.0, 1.0, 1.0, 0.55)
        odd = (foramina > 0) & (foramina % 2 == 1)
        even = (foramina > 0) & (foramina % 2 == 0)
        overlay[odd] = (1.0, 0.0, 1.0, 0.6)
        overlay[even] = (1.0, 0.6, 0.0, 0.6)
        ax.imshow(overlay, extent=extent)
        right_mm = np.arange(image.shape[1]) * PIXEL_MM - 75.0
        down_mm = np.arange(image.shape[0]) * PIXEL_MM - 80.0
        ax.contour(right_mm, down_mm, sacrum.astype(float), [0.5], colors="w", linewidths=0.4)
        if name == "sagittal":
            r, d = _project(anatomy.anterior_cortex_lps, centre, right, down)
            ax.plot(r, d, "-", color="yellow", lw=1.2)
        for points, style in (
            (centres, "wo"),
            (anatomy.hiatus.apex_lps, "ro"),
            (anatomy.hiatus.opening_lps, "go"),
            (np.array(found) if found else np.empty((0, 3)), "m+"),
        ):
            if len(points):
                r, d = _project(points, centre, right, down)
                ax.plot(r, d, style, ms=4)
        for index, label in enumerate(LEVEL_NAMES):
            r, d = _project(centres[index], centre, right, down)
            ax.annotate(label, (r[0] + 3, d[0]), color="w", fontsize=8)
        ax.text(-73, 0, direction_letters(-right), color="y", fontsize=12, va="center")
        ax.text(70, 0, direction_letters(right), color="y", fontsize=12, va="center")
        ax.text(0, -76, direction_letters(-down), color="y", fontsize=12, ha="center")
        ax.text(0, 78, direction_letters(down), color="y", fontsize=12, ha="center")
        ax.plot([50, 60], [74, 74], "w-", lw=3)
        ax.text(55, 71, "10 mm", color="w", ha="center", fontsize=8)
        ax.set_title(f"{title}: {name}", fontsize=10)
        ax.set_axis_off()
        path = out_dir / f"{title}_{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def _case_name(path: Path) -> str:
    """``/data/case-7/ct.nii.gz`` -> ``case-7``; a DICOM folder is named by itself."""
    return path.name if path.is_dir() else path.parent.name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ct", type=Path, help="DICOM folder or NIfTI/NRRD/MHA file")
    parser.add_argument("--labels", type=Path, help="label map holding the sacrum mask")
    parser.add_argument("--label", type=int, default=1, help="sacrum label in --labels")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--name", default=None, help="file name prefix (default: case folder)")
    args = parser.parse_args(argv)
    try:
        ct = load(args.ct)
        mask = None
        if args.labels is not None:
            labels = load(args.labels, modality="SEG")
            mask = labels.with_array(labels.array == args.label, "SEG")
        anatomy = find_anatomy(ct, mask)
    except PlannerError as error:
        print(f"show_anatomy: error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for path in render(ct, anatomy, args.name or _case_name(args.ct), args.out):
        print(path)
    for line in anatomy.low_confidence_reasons():
        print("  ", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
