"""The exact-range read plan: whole days and hours from aggregates, ragged edges from records."""

from __future__ import annotations

from dataclasses import dataclass, field

from meter.core.timerange import DAY_MS, HOUR_MS
from meter.dal.keys import day_key, hour_key


@dataclass(frozen=True)
class ReadPlan:
    """How to answer ``[start, end)`` exactly: day items, hour items, raw records at the edges."""

    days: tuple[str, str] | None = None
    hours: list[tuple[str, str]] = field(default_factory=list)
    raw: list[tuple[int, int]] = field(default_factory=list)


def _ceil(ms: int, unit: int) -> int:
    return -(-ms // unit) * unit


def plan_range(start: int, end: int) -> ReadPlan:
    """Split ``[start, end)`` into whole days, whole hours and ragged raw slices (inclusive keys)."""
    first_hour, last_hour = _ceil(start, HOUR_MS), end // HOUR_MS * HOUR_MS
    if first_hour >= last_hour:
        return ReadPlan(raw=[(start, end)] if start < end else [])
    raw = [(a, b) for a, b in ((start, first_hour), (last_hour, end)) if a < b]
    first_day, last_day = _ceil(first_hour, DAY_MS), last_hour // DAY_MS * DAY_MS
    if first_day >= last_day:
        return ReadPlan(hours=[(hour_key(first_hour), hour_key(last_hour - 1))], raw=raw)
    hours = [(hour_key(a), hour_key(b - 1)) for a, b in ((first_hour, first_day), (last_day, last_hour)) if a < b]
    return ReadPlan(days=(day_key(first_day), day_key(last_day - 1)), hours=hours, raw=raw)
