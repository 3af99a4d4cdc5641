"""Local windows against a brute force that walks the clock minute by minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from meter.core.localtime import local_iso, local_midnight, window_start, windows
from meter.core.timerange import to_ms

# (zone, a UTC moment near one of its transitions in 2026)
TRANSITIONS = [
    ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),  # 02:00 → 03:00
    ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),  # 02:00 → 01:00
    ("America/St_Johns", datetime(2026, 11, 1, 4, 30, tzinfo=UTC)),  # -02:30 → -03:30
    ("Australia/Adelaide", datetime(2026, 4, 4, 16, 30, tzinfo=UTC)),  # +10:30 → +09:30
    ("Australia/Adelaide", datetime(2026, 10, 3, 16, 30, tzinfo=UTC)),  # +09:30 → +10:30
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),  # a 30-minute shift
    ("America/Santiago", datetime(2026, 9, 6, 4, tzinfo=UTC)),  # midnight does not exist
    ("Pacific/Chatham", datetime(2026, 4, 4, 14, tzinfo=UTC)),  # +13:45 → +12:45
    ("Asia/Kolkata", datetime(2026, 11, 1, tzinfo=UTC)),  # no DST, +05:30
    ("Asia/Kathmandu", datetime(2026, 11, 1, tzinfo=UTC)),  # +05:45
]


def brute_force(start: int, end: int, size: str, zone: ZoneInfo) -> list[tuple[int, int]]:
    """Cut wherever the local calendar unit changes (a repeated hour is a new window)."""

    def unit(ms: int):
        local = datetime.fromtimestamp(ms / 1000, zone)
        return {"HOUR": (local.date(), local.hour, local.utcoffset()), "DAY": local.date(),
                "MONTH": (local.year, local.month)}[size]  # fmt: skip

    cuts, moment = [start], start - start % 60_000 + 60_000
    while moment < end:
        if unit(moment) != unit(moment - 1):
            cuts.append(moment)
        moment += 60_000
    return list(zip(cuts, [*cuts[1:], end], strict=True))


@pytest.mark.parametrize(("zone_name", "moment"), TRANSITIONS)
@pytest.mark.parametrize("size", ["HOUR", "DAY"])
def test_windows_cut_where_the_local_calendar_does(zone_name, moment, size):
    zone = ZoneInfo(zone_name)
    start = to_ms(moment - timedelta(hours=40)) + 7_123  # mid-minute, to the millisecond
    end = to_ms(moment + timedelta(hours=40)) - 1
    assert list(windows(start, end, size, zone)) == brute_force(start, end, size, zone)


def test_month_windows_and_a_range_without_size():
    zone = ZoneInfo("Asia/Kathmandu")
    start, end = to_ms(datetime(2026, 1, 30, tzinfo=UTC)), to_ms(datetime(2026, 3, 2, tzinfo=UTC))
    got = list(windows(start, end, "MONTH", zone))
    assert [local_iso(b, zone) for _, b in got[:-1]] == ["2026-02-01T00:00:00+05:45", "2026-03-01T00:00:00+05:45"]
    assert list(windows(start, end, None, zone)) == [(start, end)]


def test_days_last_23_or_25_hours_and_start_where_the_day_does():
    new_york = ZoneInfo("America/New_York")
    march_8, november_1 = local_midnight("2026-03-08", new_york), local_midnight("2026-11-01", new_york)
    assert local_midnight("2026-03-09", new_york) - march_8 == 23 * 3_600_000
    assert local_midnight("2026-11-02", new_york) - november_1 == 25 * 3_600_000
    santiago = ZoneInfo("America/Santiago")  # clocks jump from 00:00 to 01:00 on Sep 6
    assert local_iso(local_midnight("2026-09-06", santiago), santiago) == "2026-09-06T01:00:00-03:00"
    kolkata = ZoneInfo("Asia/Kolkata")
    inside = to_ms(datetime(2026, 11, 1, 20, tzinfo=UTC))  # 01:30 on Nov 2 in Kolkata
    assert local_iso(window_start(inside, "DAY", kolkata), kolkata) == "2026-11-02T00:00:00+05:30"
    assert local_iso(window_start(inside, "HOUR", kolkata), kolkata) == "2026-11-02T01:00:00+05:30"
