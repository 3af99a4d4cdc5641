"""Every key format parses back to what built it (meter.dal.keys is the only place that knows them)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from meter.dal import keys

names = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)


@given(tenant=st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True), value=names, ms=st.integers(0, 10**13 - 1))
def test_an_aggregate_key_parses_back_to_its_tenant_dimension_value_and_bucket(tenant, value, ms):
    day = keys.parse_aggregate(keys.aggregate_pk(tenant, "I", value), keys.day_sk(keys.day_key(ms)))
    hour = keys.parse_aggregate(keys.aggregate_pk(tenant, "I", value), keys.hour_sk(keys.hour_key(ms)))
    assert (day.tenant, day.code, day.value, day.granularity) == (tenant, "I", value, "day")
    assert day.bucket_start <= ms < day.bucket_start + day.bucket_ms == day.bucket_start + 86_400_000
    assert hour.granularity == "hour" and hour.bucket_start <= ms < hour.bucket_start + 3_600_000
    assert keys.parse_aggregate(keys.aggregate_pk(tenant, "T"), keys.day_sk("2026-11-23")).value == ""


@given(agent=names, model=names)
def test_a_model_key_splits_back_even_when_the_agent_holds_separators(agent, model):
    assert keys.split_agent_scoped_key(keys.agent_scoped_key(agent, model)) == (agent, model)


@given(st.lists(st.integers(1, 10**39), min_size=2, max_size=20))
def test_sequence_keys_sort_as_the_numbers_do(numbers):
    assert sorted(numbers) == [int(k) for k in sorted(keys.sequence_key(str(n)) for n in numbers)]


def test_a_tenants_records_spread_evenly_over_its_index_shards():
    shards = Counter(keys.tenant_shard(f"evt-{n}") for n in range(16_000))
    assert set(shards) == set(range(keys.TENANT_SHARDS))
    assert max(shards.values()) < 1.15 * 16_000 / keys.TENANT_SHARDS  # no hot shard
    assert keys.tenant_index_keys("acme") == [f"acme#{s:02d}" for s in range(keys.TENANT_SHARDS)]


@given(start=st.integers(0, 10**12), length=st.integers(1, 10**9), ts=st.integers(0, 10**12 + 10**9), event=names)
def test_order_bounds_hold_exactly_the_records_created_in_the_range(start, length, ts, event):
    low, high = keys.order_bounds(start, start + length)
    assert (low <= keys.order_key(ts, event) <= high) == (start <= ts < start + length)


def test_a_day_key_and_its_start_are_inverse_and_a_bucket_names_its_granularity():
    for instant in (0, 1_700_000_000_000, 4_102_444_799_999):
        day = keys.day_key(instant)
        assert keys.day_key(keys.day_start(day)) == day
        assert keys.day_start(day) <= instant < keys.day_start(day) + 86_400_000
    assert keys.granularity_of(keys.day_sk("2026-11-01")) == "day"
    assert keys.granularity_of(keys.hour_sk(keys.hour_key(0))) == "hour"


@given(ms=st.integers(0, 4_102_444_799_999), other=st.integers(0, 4_102_444_799_999), part=st.integers(0, 99))
def test_a_board_item_names_its_period_and_a_range_of_periods_holds_exactly_its_items(ms, other, part):
    day, month, hour = keys.day_sk(keys.day_key(ms)), keys.month_sk(keys.day_key(ms)), keys.hour_sk(keys.hour_key(ms))
    for period in (day, month, hour):
        for bucket in (f"{part % 32:02d}", f"{part % 32:02d}.{part}"):  # a bucket, or one of its sub-items
            sk = keys.board_sk(period, bucket)
            assert keys.board_period(sk) == period
            assert keys.board_day(sk) == (day[2:9] + "-01" if period == month else day[2:])
    assert keys.hour_key(keys.hour_start(keys.hour_key(ms))) == keys.hour_key(ms) and keys.hour_start(hour[2:]) <= ms
    low, high = sorted((ms, other))
    first, last = keys.day_sk(keys.day_key(low)), keys.day_sk(keys.day_key(high))
    bounds = keys.board_bounds(first, last)
    inside = bounds[0] <= keys.board_sk(day, f"{part % 32:02d}") <= bounds[1]
    assert inside == (first <= day <= last)
    assert keys.is_board_pk(keys.board_pk("acme", "I")) and not keys.is_board_pk(keys.aggregate_pk("acme", "I", "x"))


@given(ms=st.integers(0, 10**13 - 1))
def test_an_instants_periods_are_the_utc_day_hour_and_month_it_falls_in(ms):
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    periods = keys.periods(ms)
    assert (periods.day, periods.hour, periods.month) == (
        f"D#{moment:%Y-%m-%d}",
        f"H#{moment:%Y-%m-%dT%H}",
        f"M#{moment:%Y-%m}",
    )
