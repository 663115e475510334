"""Numbers as the user reads them: in the verdict's reasons and on the plan sheet.

One rule for both, so a reason and the sheet never disagree: a zero has no sign ("-0.0 mm"
reads like a breach), and a value beyond a limit gets as many decimals as it takes not to print
as the limit itself (1.99 mm against a 2 mm limit is "1.99", never "2.0 < 2").
"""

from __future__ import annotations

#: Decimals added at most to tell a value from its limit.
EXTRA_DECIMALS_MAX = 2


def format_number(value: float, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals, without a minus sign on a zero."""
    text = f"{value:.{digits}f}"
    if float(text) == 0.0:
        text = text.lstrip("-")
    return text


def format_beyond_limit(value: float, limit: float, digits: int = 1) -> str:
    """``value`` with at least ``digits`` decimals, more (up to two) if it would print as ``limit``.

    Parameters
    ----------
    value : float
        The measured value (e.g. a clearance in mm), on the wrong side of ``limit``.
    limit : float
        The threshold it is compared with, same unit.
    digits : int
        Decimals normally shown.
    """
    for extra in range(EXTRA_DECIMALS_MAX + 1):
        text = format_number(value, digits + extra)
        if float(text) != limit or value == limit:
            return text
    return text
