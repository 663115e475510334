"""Shared fixtures. Real scans are reached only through ``shared_data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "SACROPLAN_DATA"


def _data_dir() -> Path:
    return Path(os.environ.get(DATA_ENV, PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real scans (../shared/data, or $SACROPLAN_DATA).

    Skips with a visible reason where it is absent, except under CI, where that is a failure.
    """
    path = _data_dir()
    if not (path / "README.md").exists():
        message = f"real scans not found at {path} (set {DATA_ENV} to their folder)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
