"""An output folder that appears whole or not at all, and never at the cost of the user's files.

Everything is written into a hidden staging folder beside the destination; only when every file
is written is it renamed into place, so a failure never leaves half a plan behind.

An existing destination is replaced only when it is empty or holds nothing but a previous plan's
files (:data:`PLAN_OUTPUT_NAMES`): ``-o ~/Documents`` must be refused, not emptied.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from planner.errors import PlannerError

#: Names a plan output folder holds (README "Outputs"); a folder holding only these (or nothing)
#: is a previous plan and may be replaced.
PLAN_OUTPUT_NAMES = frozenset(
    {"plan.json", "report.pdf", "trajectory.mrk.json", "images", "masks"}
)
#: Files a file browser leaves in any folder it shows; replacing them loses nothing.
FILE_BROWSER_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
#: How many of a refused folder's other entries the message names.
NAMED_ENTRIES_MAX = 3
#: Errors of the file system the user can fix (permissions, read-only, full disk, bad path).
_USER_FIXABLE_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.ENAMETOOLONG,
    }
)


def _foreign_entries(destination: Path) -> list[str]:
    """Entries of an existing folder that are not a plan's outputs (hidden ones included)."""
    known = PLAN_OUTPUT_NAMES | FILE_BROWSER_NAMES
    return sorted(p.name for p in destination.iterdir() if p.name not in known)


def check_destination(destination: str | Path) -> Path:
    """Refuse an output path that cannot become a plan folder; cheap, call it before the work.

    Returns
    -------
    Path
        The resolved destination.

    Raises
    ------
    PlannerError
        The path is a file; or an existing folder holding files that are not a previous plan's
        (they would be deleted); or the nearest existing parent is not a writable folder.
    """
    destination = Path(destination).expanduser().resolve()
    if destination.exists() and not destination.is_dir():
        raise PlannerError(
            f"output path {destination} exists and is not a folder; give a new folder name"
        )
    if destination.is_dir():
        foreign = _foreign_entries(destination)
        if foreign:
            shown = ", ".join(foreign[:NAMED_ENTRIES_MAX])
            hidden = len(foreign) - NAMED_ENTRIES_MAX
            more = f" and {hidden} more" if hidden > 0 else ""
            raise PlannerError(
                f"output folder {destination} already holds files that are not a plan's "
                f"({shown}{more}); the output folder is replaced whole, so give a new or empty "
                "folder"
            )
    parent = destination.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PlannerError(
            f"output folder {destination} cannot be created: {parent} is not a folder you can "
            "write to; choose another output folder"
        )
    return destination


def _user_error(destination: Path, error: OSError) -> PlannerError:
    reason = error.strerror or type(error).__name__
    return PlannerError(
        f"output folder {destination} cannot be written ({reason}: {error.filename or ''}); "
        "choose a folder you can write to, with free space"
    )


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def staged_output(destination: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a staging folder; on success replace ``destination`` with it, on error delete it.

    A previous plan in ``destination`` is replaced whole, so a folder never mixes two runs. A
    destination holding other files is refused (:func:`check_destination`), and so is any
    non-empty one when ``overwrite`` is False. The folder gets the permissions of a folder made
    with ``mkdir`` (the umask), not the private ones of a temporary folder.

    Raises
    ------
    PlannerError
        The destination is refused, or the file system refuses the writing (permissions,
        read-only, full); nothing is left behind.
    """
    destination = check_destination(destination)
    if destination.exists() and any(destination.iterdir()) and not overwrite:
        raise PlannerError(f"output folder {destination} is not empty (pass overwrite)")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
        staging.chmod(0o777 & ~_umask())
    except OSError as error:
        raise _user_error(destination, error) from error
    try:
        yield staging
        _replace(staging, destination)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and error.errno in _USER_FIXABLE_ERRNOS:
            raise _user_error(destination, error) from error
        raise


def _replace(staging: Path, destination: Path) -> None:
    """Rename ``staging`` to ``destination``, moving a previous plan aside and deleting it."""
    if not destination.exists():
        staging.rename(destination)
        return
    backup = destination.with_name(f".{destination.name}.old")
    shutil.rmtree(backup, ignore_errors=True)
    destination.rename(backup)
    try:
        staging.rename(destination)
    except OSError:
        backup.rename(destination)  # put the previous plan back
        raise
    shutil.rmtree(backup, ignore_errors=True)
