"""Reconciliation restores exact totals after lost or corrupted aggregates and events the stream dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from meter import dynamo, keys
from meter.config import get_settings
from meter.dimensions import AGENT, IDENTIFIER, TENANT
from meter.ingest import ingest, parse_events
from meter.queries import listed_values
from meter.reconcile import HORIZON_MS, _repair, closed_windows, reconcile_all, reconcile_window
from meter.records import record_from_item
from meter.timerange import DAY_MS, HOUR_MS, now_ms, to_ms
from tests.conftest import STACK
from tests.helpers import aggregator, meaning, recount, stored_aggregates

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
START, END = to_ms(DAY), to_ms(DAY) + DAY_MS


def later() -> int:
    """A moment when every record stored so far is past the stream's horizon."""
    return now_ms() + HORIZON_MS + 60_000


def _key(dimension, value: str, sk: str) -> dict:
    return {"pk": {"S": dimension.pk("acme", value)}, "sk": {"S": sk}}


DAY_SK, HOUR_10 = keys.day_sk(f"{DAY:%Y-%m-%d}"), keys.hour_sk(f"{DAY:%Y-%m-%d}T10")


def _ingest(tenant: str, count: int, prefix: str = "e") -> None:
    events = [
        {
            "id": f"{prefix}-{n}",
            "type": ("tokens.input", "message", "conversation")[n % 3],
            "count": 1 + n,
            "credits": n % 4,
            "identifier": f"user-{n % 3}",
            "agentId": f"bot-{n % 2}",
            "model": f"m-{n % 2}",
            "datasetId": "ds-1" if n % 5 == 0 else None,
            "timestamp": (DAY + timedelta(hours=10, minutes=7 * n)).isoformat(),
        }
        for n in range(count)
    ]
    body = {"events": [{k: v for k, v in e.items() if v is not None} for e in events]}
    ingest(tenant, parse_events(json.dumps(body)))


def _truth(tenant: str) -> dict:
    items = dynamo.client().scan(TableName=get_settings().records_table)["Items"]
    return recount([r for r in map(record_from_item, map(dynamo.deserialize, items)) if r.tenant == tenant])


def _stored(tenant: str) -> dict:
    return stored_aggregates(dynamo.client(), get_settings().aggregates_table, tenant)


def _aggregates() -> str:
    return get_settings().aggregates_table


@pytest.fixture
def counted(keys):
    _ingest("acme", 20)
    _ingest("globex", 5)
    aggregator(STACK).drain()
    assert _stored("acme") == _truth("acme")


def test_lost_and_corrupted_aggregates_are_restored_exactly(counted):
    table = _aggregates()
    dynamo.client().delete_item(TableName=table, Key=_key(IDENTIFIER, "user-1", DAY_SK))
    dynamo.client().update_item(
        TableName=table,
        Key=_key(TENANT, "", HOUR_10),
        UpdateExpression="ADD credits :five, bogus :one",
        ExpressionAttributeValues={":five": {"N": "5"}, ":one": {"N": "1"}},
    )
    globex_before = _stored("globex")

    report = reconcile_window("acme", START, END, later())

    assert report.drifted == report.repaired == 2 and report.deferred == 0
    assert _stored("acme") == _truth("acme")
    assert _stored("globex") == globex_before
    assert reconcile_window("acme", START, END, later()).drifted == 0  # nothing left to repair


def test_events_the_stream_dropped_are_counted_once(counted):
    _ingest("acme", 6, prefix="dropped")  # stored, but the stream gave up on them past its record age

    report = reconcile_window("acme", START, END, later())

    assert report.repaired > 0
    assert _stored("acme") == _truth("acme")
    again = reconcile_window("acme", START, END, later())
    assert again.drifted == again.repaired == 0
    assert _stored("acme") == _truth("acme")


def test_a_recreated_day_item_is_listed_again(counted):
    dynamo.client().delete_item(TableName=_aggregates(), Key=_key(AGENT, "bot-1", DAY_SK))
    assert "bot-1" not in listed_values("acme", AGENT, START, END)
    reconcile_window("acme", START, END, later())
    assert listed_values("acme", AGENT, START, END)["bot-1"] == "bot-1"


def test_windows_with_records_the_stream_may_still_count_are_left_to_it(counted):
    _ingest("acme", 3, prefix="fresh")  # received now: the stream may still be counting them
    dynamo.client().delete_item(TableName=_aggregates(), Key=_key(IDENTIFIER, "user-1", DAY_SK))
    report = reconcile_window("acme", START, END, now_ms())
    assert report.deferred == 1 and report.repaired == 0


def test_a_repair_never_overwrites_an_aggregate_that_moved_since_it_was_read(counted):
    from collections import Counter

    key = (TENANT.pk("acme", ""), DAY_SK)
    stored = _stored("acme")[meaning(*key)]
    stale = {**stored, "credits": stored["credits"] - 1}

    assert _repair(key, Counter(stale), Counter({"events": 1})) is False
    assert _stored("acme")[meaning(*key)] == stored


def test_reconcile_all_covers_every_tenant(counted):
    dynamo.client().delete_item(
        TableName=_aggregates(), Key={"pk": {"S": TENANT.pk("globex", "")}, "sk": {"S": DAY_SK}}
    )
    report = reconcile_all(later(), windows=[(START, END)])
    assert report.repaired == 1
    assert _stored("globex") == _truth("globex")


def test_an_hourly_run_covers_the_hour_that_closed_a_horizon_ago_and_then_the_day():
    ten_past_horizon = START + 10 * HOUR_MS + HORIZON_MS
    assert closed_windows(ten_past_horizon) == [(START + 9 * HOUR_MS, START + 10 * HOUR_MS)]
    midnight_past_horizon = END + HORIZON_MS
    assert closed_windows(midnight_past_horizon) == [(END - HOUR_MS, END), (START, END)]
