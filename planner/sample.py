"""The bundled sample case, reached by name (as ``pydicom.examples`` does)."""

from __future__ import annotations

from pathlib import Path

from planner.errors import InputNotFoundError

SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "sample_data"
#: Folder (inside ``sample_data/``) of the bundled phantom DICOM series.
SAMPLE_CASE = "phantom-ct"


def sample_case_path() -> Path:
    """Path of the bundled sample case (a synthetic phantom written as a DICOM CT series)."""
    path = SAMPLE_DATA_DIR / SAMPLE_CASE
    if not path.is_dir():
        raise InputNotFoundError(
            f"sample case not found at {path}; run from a source checkout "
            "(pip install -e .) or regenerate it with examples/make_phantom.py"
        )
    return path
