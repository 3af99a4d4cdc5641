"""Local calendar windows in any IANA time zone, as UTC millisecond instants.

A window is a local calendar hour, day, ISO week or month: a DST day lasts 23 or 25 hours, a repeated
hour (clocks set back) is two windows, and a skipped one is none. Offsets are piecewise
constant, so boundaries are found by local arithmetic between offset changes and a binary
search for each change; nothing steps minute by minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from meter.core.timerange import DAY_MS, to_ms

HOUR, DAY, WEEK, MONTH = "HOUR", "DAY", "WEEK", "MONTH"
WINDOW_SIZES = (HOUR, DAY, MONTH)  # what the native query offers; credit allowances also recur weekly


def offset_ms(ms: int, zone: ZoneInfo) -> int:
    """The zone's UTC offset at an instant."""
    offset = datetime.fromtimestamp(ms / 1000, zone).utcoffset()
    return int(offset.total_seconds() * 1000) if offset else 0


def wall(ms: int, zone: ZoneInfo) -> datetime:
    """The local wall-clock time at an instant (naive)."""
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None) + timedelta(milliseconds=offset_ms(ms, zone))


def _unit(ms: int, size: str, zone: ZoneInfo) -> tuple:
    """What identifies the window holding ``ms``: a repeated local hour is a different window."""
    local = wall(ms, zone)
    if size == HOUR:
        return local.date(), local.hour, offset_ms(ms, zone)
    if size == DAY:
        return (local.date(),)
    if size == WEEK:
        return local.date().isocalendar()[:2]
    return local.year, local.month


def _next_wall_start(local: datetime, size: str) -> datetime:
    if size == HOUR:
        return local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if size == DAY:
        return datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
    if size == WEEK:  # ISO weeks: Monday 00:00
        return datetime.combine(local.date() + timedelta(days=7 - local.weekday()), datetime.min.time())
    return datetime(local.year, local.month, 1) + relativedelta(months=1)


def _first_change(low: int, high: int, zone: ZoneInfo) -> int:
    """The first instant in ``(low, high]`` whose offset differs from ``low``'s (one is known to)."""
    before = offset_ms(low, zone)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if offset_ms(middle, zone) == before else (low, middle)
    return high


def next_boundary(ms: int, size: str, zone: ZoneInfo) -> int:
    """The first instant after ``ms`` that starts a new local window."""
    offset = offset_ms(ms, zone)
    start = _next_wall_start(wall(ms, zone), size)
    candidate = to_ms(start.replace(tzinfo=UTC)) - offset  # if the offset holds until then
    if offset_ms(candidate, zone) == offset and offset_ms(candidate - 1, zone) == offset:
        return candidate
    change = _first_change(ms, candidate, zone)
    if _unit(change, size, zone) != _unit(change - 1, size, zone):
        return change
    return next_boundary(change, size, zone)


def window_start(ms: int, size: str, zone: ZoneInfo) -> int:
    """The first instant of the local window holding ``ms``."""
    unit = _unit(ms, size, zone)
    step = {HOUR: 2 * 3_600_000, DAY: 27 * 3_600_000, WEEK: 8 * 24 * 3_600_000, MONTH: 32 * 24 * 3_600_000}[size]
    earlier = ms - step
    while _unit(earlier, size, zone) == unit:  # DST can stretch a window; step further back
        earlier -= step
    start = next_boundary(earlier, size, zone)
    while start <= ms and _unit(start, size, zone) != unit:
        start = next_boundary(start, size, zone)
    return start


def windows(start: int, end: int, size: str | None, zone: ZoneInfo) -> Iterator[tuple[int, int]]:
    """The local windows of ``size`` covering ``[start, end)``, clipped to it (one window if no size)."""
    if size is None:
        yield start, end
        return
    low = start
    while low < end:
        high = min(next_boundary(low, size, zone), end)
        yield low, high
        low = high


def local_midnight(day: str, zone: ZoneInfo) -> int:
    """The first instant of a local calendar date ``YYYY-MM-DD``."""
    noon = datetime.fromisoformat(day).replace(hour=12, tzinfo=zone)
    return window_start(to_ms(noon), DAY, zone)


def named_zone(name: str) -> ZoneInfo | None:
    """The IANA time zone of that name, or None if there is none."""
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return None


def midnight_quarters(zone: ZoneInfo, around: int) -> set[int]:
    """The quarters of the UTC day (1-95) where the zone's local midnights fall in the year around
    ``around`` (both of a DST zone's offsets; none for UTC's own midnight or an offset off the grid)."""
    quarter, month = 900_000, 30 * DAY_MS
    midnights = {-offset_ms(around + step * month, zone) % DAY_MS for step in range(-6, 7)}
    return {midnight // quarter for midnight in midnights if midnight and midnight % quarter == 0}


def local_iso(ms: int, zone: ZoneInfo) -> str:
    """RFC 3339 with the zone's offset at that instant (milliseconds only when not whole)."""
    moment = datetime.fromtimestamp(ms / 1000, zone)
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
