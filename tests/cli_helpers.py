"""Helpers shared by the CLI test modules (``test_cli.py``, ``test_cli_mri.py``)."""

from __future__ import annotations

import pytest

from planner import cli


def run(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``sacroplan`` in-process with ``argv``.

    Returns
    -------
    (int, str, str)
        The exit code, and what it wrote to stdout and to stderr (captured by ``capfd``).
    """
    code = cli.main(argv)
    captured = capfd.readouterr()
    return code, captured.out, captured.err
