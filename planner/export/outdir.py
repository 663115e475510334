"""An output folder that appears whole or not at all.

Everything is written into a hidden staging folder beside the destination; only when every file
is written is it renamed into place, so a failure never leaves half a plan behind.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from planner.errors import PlannerError


@contextmanager
def staged_output(destination: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a staging folder; on success replace ``destination`` with it, on error delete it.

    Files already in ``destination`` that the new run does not write are removed with the old
    folder, so a folder never mixes two runs.
    """
    destination = Path(destination).resolve()
    if destination.exists() and not destination.is_dir():
        raise PlannerError(f"output path {destination} exists and is not a folder")
    if destination.exists() and any(destination.iterdir()) and not overwrite:
        raise PlannerError(f"output folder {destination} is not empty (pass overwrite)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if destination.exists():
        backup = destination.with_name(f".{destination.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        destination.rename(backup)
        staging.rename(destination)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(destination)
