"""ECP/1 time: RFC 3339 UTC with a `Z` suffix and millisecond precision, `2026-11-21T08:00:00.000Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

_TIME_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})Z")


def parse_time(text: object) -> datetime | None:
    """The aware UTC datetime `text` denotes, or None unless it is exactly an ECP/1 time.

    Leap seconds (`:60`) are refused: Python datetimes cannot represent them.
    """
    if not isinstance(text, str):
        return None
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, millis = map(int, match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)
    except ValueError:
        return None


def time_problem(text: object) -> str | None:
    """Why `text` is not an ECP/1 time, or None when it is one."""
    if parse_time(text) is not None:
        return None
    if isinstance(text, str) and _TIME_RE.fullmatch(text) is not None:
        return "not a real date and time"
    return "expected a time YYYY-MM-DDTHH:MM:SS.mmmZ (UTC, millisecond precision)"


def format_time(moment: datetime) -> str:
    """An aware datetime as an ECP/1 time, truncated to the millisecond."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("ECP/1 times are aware datetimes")
    m = moment.astimezone(UTC)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
            f".{m.microsecond // 1000:03d}Z")
