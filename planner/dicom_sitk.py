"""SimpleITK as a reader of last resort, with its native console output kept off the terminal.

ITK and GDCM print warnings straight to the process's stderr (file descriptor 2), below Python.
The CLI promises one line on stderr for a bad input, so every SimpleITK read here runs inside
:func:`quiet_native_stderr`, which captures that output; callers may quote it in an error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from planner.sitk_bridge import volume_from_sitk

#: Longest captured native message kept for an error message (characters).
MAX_CAPTURED_CHARS = 2000


class CapturedText:
    """Holds what native code printed while a :func:`quiet_native_stderr` block ran."""

    def __init__(self) -> None:
        self.text = ""

    def first_line(self) -> str:
        for line in self.text.splitlines():
            if line.strip():
                return line.strip()[:200]
        return ""


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[CapturedText]:
    """Redirect file descriptor 2 to a temporary file for the duration of the block."""
    captured = CapturedText()
    try:
        sys.stderr.flush()
        saved_fd = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreter): nothing to hide
        yield captured
        return
    warning_display = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sitk.ProcessObject.SetGlobalWarningDisplay(warning_display)
            sink.seek(0)
            captured.text = sink.read(MAX_CAPTURED_CHARS).decode("utf-8", "replace")


def sitk_error_text(error: Exception, captured: CapturedText | None = None) -> str:
    """One line from a SimpleITK exception: the ITK ERROR sentence, without source paths."""
    text = str(error)
    for line in text.splitlines():
        if "ITK ERROR" in line:
            return line.split(":", 2)[-1].strip()[:200]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("/", "Exception thrown"))]
    detail = (useful or lines or [type(error).__name__])[0]
    if captured is not None and captured.first_line():
        detail = f"{detail}; {captured.first_line()}"
    return detail[:300]


def read_dicom_file_with_sitk(path: Path) -> np.ndarray:
    """Modality values of every frame of one DICOM file, ``(frames, rows, cols)``.

    GDCM applies RescaleSlope/RescaleIntercept itself, so the values are already rescaled.

    Raises
    ------
    RuntimeError
        When GDCM cannot read or decode the file (message: one line).
    """
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    with quiet_native_stderr() as captured:
        try:
            image = reader.Execute()
        except RuntimeError as error:
            raise RuntimeError(sitk_error_text(error, captured)) from None
    if image.GetDimension() == 2:
        image = sitk.JoinSeries([image])
    return volume_from_sitk(image).array
