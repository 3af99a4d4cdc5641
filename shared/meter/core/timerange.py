"""Instants: Unix milliseconds, ISO 8601 text, and the query parameters that name them.

All instants are Unix milliseconds (UTC). Ranges are half-open ``[start, end)`` inside the
code; the API's inclusive ``to`` becomes ``end = to + 1 ms``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

from meter.core.errors import BadRequest

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
LATEST_MS = 10**13 - 1  # record sort keys hold 13-digit millisecond times (until 2286)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    """The current instant."""
    return time.time_ns() // 1_000_000


def to_ms(moment: datetime) -> int:
    """An aware datetime as Unix milliseconds."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso(ms: int) -> str:
    """Unix milliseconds as ISO 8601 UTC with a ``Z`` (seconds precision when whole)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


def parse_instant(name: str, value: str, *, end_of_day: bool = False) -> int:
    """Parse a query parameter: ISO 8601 (zone optional, UTC if absent) or a bare date.

    With ``end_of_day`` (an inclusive ``to``) the instant is the last millisecond of the unit
    given: ``to=2024-01-31`` includes all of January 31st, and ``to=2024-01-31T23:59:59Z``
    includes that whole second, so a range ending on a day boundary reads no raw records.
    """
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment, unit = datetime(day.year, day.month, day.day, tzinfo=UTC), DAY_MS
        else:
            moment = datetime.fromisoformat(text.replace(" ", "+") if "T" in text else text)
            unit = _unit_ms(text)
    except ValueError:
        raise BadRequest(
            f"Invalid '{name}' parameter: expected ISO 8601 such as 2024-01-01T00:00:00Z or 2024-01-01"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    instant = to_ms(moment) + (unit - 1 if end_of_day else 0)
    if not 0 <= instant <= LATEST_MS:
        raise BadRequest(f"Invalid '{name}' parameter: it must fall between 1970-01-01 and {iso(LATEST_MS)[:10]}")
    return instant


def _unit_ms(text: str) -> int:
    """The precision of an ISO 8601 date-time as written: a minute, a second, or finer."""
    clock = re.match(r"[^T]*T(\d{2}(?::?\d{2})?(?::?\d{2})?)(\.\d+)?", text)
    if clock is None or clock.group(2):
        return 1
    digits = len(clock.group(1).replace(":", ""))
    return {2: HOUR_MS, 4: 60_000}.get(digits, 1000)


def parse_range(
    start_name: str, start: str | None, end_name: str, end: str | None, *, default_end: int | None = None
) -> tuple[int | None, int | None]:
    """Parse an inclusive ``[start, end]`` pair into half-open milliseconds (``None`` = open)."""
    start_ms = parse_instant(start_name, start) if start else None
    end_ms = parse_instant(end_name, end, end_of_day=True) + 1 if end else default_end
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise BadRequest(f"Invalid '{start_name}' parameter: it must not be after '{end_name}'")
    return start_ms, end_ms
