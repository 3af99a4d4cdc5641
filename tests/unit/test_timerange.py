"""Time parsing and the exact-range read plan."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meter.core.errors import BadRequest
from meter.core.timerange import DAY_MS, HOUR_MS, parse_instant, parse_range, to_ms
from meter.dal.dimensions import QUARTER_MS
from meter.reading.plan import plan_range, signed_pieces, split

JAN15 = to_ms(datetime(2024, 1, 15, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-15", JAN15),
        ("2024-01-15T00:00:00Z", JAN15),
        ("2024-01-15T01:00:00+01:00", JAN15),
        ("2024-01-15T01:00:00 01:00", JAN15),  # '+' decoded as a space by a careless client
        ("2024-01-15T00:00:00.250Z", JAN15 + 250),
        ("2024-01-15T00:00:00", JAN15),  # no zone: UTC
    ],
)
def test_parse_instant_accepts_iso_8601_and_bare_dates(text, expected):
    assert parse_instant("from", text) == expected


def test_bare_end_date_covers_the_whole_day():
    assert parse_instant("to", "2024-01-15", end_of_day=True) == JAN15 + DAY_MS - 1


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "2024-01-15T25:00:00Z", "15/01/2024", ""])
def test_unparsable_dates_name_the_parameter(text):
    with pytest.raises(BadRequest, match="'to'"):
        parse_instant("to", text or " ")


@pytest.mark.parametrize("text", ["0030-12-09T23:15:35+03:29", "1969-12-31", "2376-10-28T22:42:47Z"])
def test_instants_outside_what_records_can_hold_are_refused_naming_the_parameter(text):
    with pytest.raises(BadRequest, match=r"'from'.*1970-01-01"):
        parse_instant("from", text)


def test_from_after_to_is_rejected_naming_both():
    with pytest.raises(BadRequest, match=r"'from'.*'to'"):
        parse_range("from", "2024-01-16", "to", "2024-01-15")


@pytest.mark.parametrize(
    ("to", "end"),
    [
        ("2024-01-15T00:00:00.000Z", JAN15 + 1),
        ("2024-01-15T00:00:00Z", JAN15 + 1000),
        ("2024-01-15T00:00Z", JAN15 + 60_000),
        ("2024-01-14T23:59:59Z", JAN15),
        ("2024-01-15T01:59:59+02:00", JAN15),
    ],
)
def test_inclusive_to_covers_the_unit_it_is_written_in(to, end):
    """``to=…T23:59:59Z`` (AgentsGT's documented form) ends exactly at midnight: no raw reads."""
    assert parse_range("from", "2024-01-14T00:00:00Z", "to", to) == (JAN15 - DAY_MS, end)


def _covered(plan) -> list[tuple[int, int]]:
    """The plan's pieces as millisecond intervals."""

    def ms(key: str) -> int:
        text = key if len(key) > 10 else key + "T00"
        return to_ms(datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC))

    pieces = list(plan.raw)
    pieces += [(ms(a), ms(b) + HOUR_MS) for a, b in plan.hours]
    if plan.days:
        pieces.append((ms(plan.days[0]), ms(plan.days[1]) + DAY_MS))
    return sorted(pieces)


@given(st.integers(0, 400 * DAY_MS), st.integers(1, 100 * DAY_MS))
def test_plan_covers_the_range_exactly_once(start, length):
    pieces = _covered(plan_range(start, start + length))
    assert pieces[0][0] == start and pieces[-1][1] == start + length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))  # contiguous, no overlap
    assert all(a < b for a, b in pieces)


@given(st.integers(0, 400 * DAY_MS), st.integers(1, 100 * DAY_MS))
def test_raw_reads_stay_within_the_ragged_hours(start, length):
    plan = plan_range(start, start + length)
    assert len(plan.raw) <= 2
    assert all(b - a < 2 * HOUR_MS for a, b in plan.raw)
    assert len(plan.hours) <= 2


@given(st.integers(0, 400 * DAY_MS), st.integers(1, 10 * DAY_MS), st.sampled_from([HOUR_MS, 15 * 60_000]))
def test_split_covers_the_range_exactly_once_on_either_grid(start, length, grid):
    """Whole days, the grid's slots of each hour, and raw slices tile the range; only the raw
    slices are off the grid, and each is shorter than one slot."""
    cut = split(start, start + length, grid)
    pieces = sorted(
        [(day, day + DAY_MS) for day in cut.days]
        + [(hour + first * grid, hour + last * grid) for hour, first, last in cut.hours]
        + list(cut.raw)
    )
    assert pieces[0][0] == start and pieces[-1][1] == start + length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(a < b for a, b in pieces)
    assert all(b - a < grid for a, b in cut.raw) or cut.raw == [(start, start + length)]
    assert all(0 <= first < last <= HOUR_MS // grid for _, first, last in cut.hours)


@given(st.integers(0, 400 * DAY_MS), st.integers(1, 3 * DAY_MS))
def test_signed_pieces_count_the_range_once_and_take_away_only_items(start, length):
    """Whole days and signed pieces add up to the range (each boundary's net change is the range's);
    every piece taken away lies on the quarter grid, so no raw record is ever subtracted; and a
    partial day never reads more hours than its part alone would."""
    end = start + length
    days, pieces = signed_pieces(start, end)
    steps: Counter[int] = Counter()
    for sign, low, high in [(1, day, day + DAY_MS) for day in days] + pieces:
        steps[low] += sign
        steps[high] -= sign
    assert {moment: n for moment, n in steps.items() if n} == {start: 1, end: -1}
    assert all(low % QUARTER_MS == high % QUARTER_MS == 0 for sign, low, high in pieces if sign < 0)
    hours = Counter(low // DAY_MS for _, low, high in pieces for _ in split(low, high, QUARTER_MS).hours)
    for day, read in hours.items():
        part = (max(start, day * DAY_MS), min(end, (day + 1) * DAY_MS))
        assert read <= len(split(*part, QUARTER_MS).hours)
