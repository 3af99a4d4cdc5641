"""The one range planner: how to read ``[start, end)`` exactly from aggregates and raw records.

``split`` cuts a range into whole UTC days (day items), parts of hours on a grid (hour items: whole
hours on the hour grid; quarter hours on the quarter grid, for items that hold their quarters) and
the slices off the grid (raw records, only at a ``from`` or ``to`` between grid lines).
``plan_range`` is the hour-grid split as item key ranges (the platform endpoints' per-day totals);
``signed_pieces`` plans one window of the native query and alerts, where a day item minus the
hours outside the window may read fewer hours than the hours inside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from meter.core.timerange import DAY_MS, HOUR_MS
from meter.dal.dimensions import QUARTER_MS
from meter.dal.keys import day_key, hour_key

Slice = tuple[int, int]
HourPart = tuple[int, int, int]  # hour start, first slot, last slot + 1 (slots of the grid)
Piece = tuple[int, int, int]  # sign, start, end: a part of one UTC day to add (1) or take away (-1)


@dataclass(frozen=True)
class Split:
    """``[start, end)`` as whole UTC days (their starts), parts of hours, and raw slices."""

    days: list[int] = field(default_factory=list)
    hours: list[HourPart] = field(default_factory=list)
    raw: list[Slice] = field(default_factory=list)


def _ceil(ms: int, unit: int) -> int:
    return -(-ms // unit) * unit


def _hour_parts(low: int, high: int, grid: int) -> Iterator[HourPart]:
    """The hours covering ``[low, high)`` (both on the grid), with the slots of each it covers."""
    hour = low // HOUR_MS * HOUR_MS
    while hour < high:
        first, last = max(low, hour) - hour, min(high, hour + HOUR_MS) - hour
        if first < last:
            yield hour, first // grid, last // grid
        hour += HOUR_MS


def split(start: int, end: int, grid: int = HOUR_MS) -> Split:
    """Cut ``[start, end)`` into whole UTC days, parts of hours on ``grid`` and raw slices off it."""
    low, high = _ceil(start, grid), end // grid * grid
    if low >= high:
        return Split(raw=[(start, end)] if start < end else [])
    raw = [(a, b) for a, b in ((start, low), (high, end)) if a < b]
    first_day, last_day = _ceil(low, DAY_MS), high // DAY_MS * DAY_MS
    days = list(range(first_day, last_day, DAY_MS))
    edges = [(low, first_day), (last_day, high)] if days else [(low, high)]
    hours = [part for a, b in edges if a < b for part in _hour_parts(a, b, grid)]
    return Split(days=days, hours=hours, raw=raw)


@dataclass(frozen=True)
class ReadPlan:
    """``split`` on the hour grid as inclusive key ranges: day items, runs of hour items, raw slices."""

    days: tuple[str, str] | None = None
    hours: list[tuple[str, str]] = field(default_factory=list)
    raw: list[Slice] = field(default_factory=list)


def hour_runs(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Hour starts as runs of consecutive hours, (first, last) each: one Query a run."""
    runs: list[list[int]] = []
    for hour in sorted(hours):
        if runs and hour == runs[-1][1] + HOUR_MS:
            runs[-1][1] = hour
        else:
            runs.append([hour, hour])
    return [(first, last) for first, last in runs]


def plan_range(start: int, end: int) -> ReadPlan:
    """How to read ``[start, end)`` exactly from day items, hour items and raw records at the edges."""
    cut = split(start, end)
    return ReadPlan(
        days=(day_key(cut.days[0]), day_key(cut.days[-1])) if cut.days else None,
        hours=[(hour_key(first), hour_key(last)) for first, last in hour_runs(hour for hour, _, _ in cut.hours)],
        raw=cut.raw,
    )


def _hours_in(start: int, end: int) -> int:
    return (_ceil(end, HOUR_MS) - start // HOUR_MS * HOUR_MS) // HOUR_MS if start < end else 0


def signed_pieces(start: int, end: int) -> tuple[list[int], list[Piece]]:
    """``[start, end)`` as whole UTC days (their starts) and signed sub-day pieces, choosing for
    each partial day whichever of "the part" or "the day minus the rest" reads fewer hours.

    Only items are ever taken away: the rest is on the quarter grid, and the part of a quarter hour
    at a ragged edge is added from raw records (a record not yet counted in an item must not take
    anything away from it, nor may an event outside the range move the answer).
    """
    first_day, last_day = start // DAY_MS * DAY_MS, (end - 1) // DAY_MS * DAY_MS
    days, pieces = [], []
    for day in range(first_day, last_day + 1, DAY_MS):
        low, high = max(start, day), min(end, day + DAY_MS)
        if (low, high) == (day, day + DAY_MS):
            days.append(day)
        elif _hours_in(low, high) <= _hours_in(day, low) + _hours_in(high, day + DAY_MS):
            pieces.append((1, low, high))
        else:
            on_grid = _ceil(low, QUARTER_MS), high // QUARTER_MS * QUARTER_MS
            days.append(day)
            pieces += [(-1, a, b) for a, b in ((day, on_grid[0]), (on_grid[1], day + DAY_MS)) if a < b]
            pieces += [(1, a, b) for a, b in ((low, on_grid[0]), (on_grid[1], high)) if a < b]
    return days, pieces
