"""Reconciliation restores exact totals after lost, corrupted or never-counted aggregates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from meter import dynamo
from meter.config import get_settings
from meter.ingest import ingest, parse_events
from meter.reconcile import GRACE_MS, _repair, closed_windows, reconcile_all, reconcile_window
from meter.records import record_from_item
from meter.timerange import DAY_MS, HOUR_MS, now_ms, to_ms
from tests.conftest import STACK
from tests.helpers import aggregator, recount, stored_aggregates

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
START, END = to_ms(DAY), to_ms(DAY) + DAY_MS


def later() -> int:
    """A moment when every record stored so far is past the grace period."""
    return now_ms() + GRACE_MS + 60_000


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
    dynamo.client().delete_item(TableName=table, Key={"pk": {"S": "acme#I#user-1"}, "sk": {"S": f"D#{DAY:%Y-%m-%d}"}})
    dynamo.client().update_item(
        TableName=table,
        Key={"pk": {"S": "acme#T"}, "sk": {"S": f"H#{DAY:%Y-%m-%d}T10"}},
        UpdateExpression="ADD credits :five, bogus :one",
        ExpressionAttributeValues={":five": {"N": "5"}, ":one": {"N": "1"}},
    )
    globex_before = _stored("globex")

    report = reconcile_window("acme", START, END, later())

    assert report.drifted == report.repaired == 2 and report.uncounted == 0
    assert _stored("acme") == _truth("acme")
    assert _stored("globex") == globex_before
    assert reconcile_window("acme", START, END, later()).drifted == 0  # nothing left to repair


def test_events_the_stream_dropped_are_counted_once(counted):
    _ingest("acme", 6, prefix="dropped")  # stored, but their stream records never reach the aggregator

    report = reconcile_window("acme", START, END, later())

    assert report.uncounted == 6
    assert _stored("acme") == _truth("acme")
    aggregator(STACK).drain()  # the stream records turn up after all: their markers skip them
    assert _stored("acme") == _truth("acme")
    assert reconcile_window("acme", START, END, later()).uncounted == 0


def test_records_within_the_grace_period_are_left_to_the_stream(counted):
    _ingest("acme", 3, prefix="fresh")
    report = reconcile_window("acme", START, END, now_ms())
    assert report.uncounted == 0 and report.repaired == 0


def test_a_repair_never_overwrites_an_aggregate_that_moved_since_it_was_read(counted):
    key = ("acme#T", f"D#{DAY:%Y-%m-%d}")
    stored = _stored("acme")[key]
    stale = {**stored, "credits": stored["credits"] - 1}
    from collections import Counter

    assert _repair(key, Counter(stale), Counter({"events": 1})) is False
    assert _stored("acme")[key] == stored


def test_reconcile_all_covers_every_tenant(counted):
    dynamo.client().delete_item(
        TableName=_aggregates(), Key={"pk": {"S": "globex#T"}, "sk": {"S": f"D#{DAY:%Y-%m-%d}"}}
    )
    report = reconcile_all(later(), windows=[(START, END)])
    assert report.repaired == 1
    assert _stored("globex") == _truth("globex")


def test_an_hourly_run_covers_the_hour_that_closed_and_after_midnight_the_day():
    quarter_past_ten = to_ms(DAY + timedelta(hours=10, minutes=15))
    assert closed_windows(quarter_past_ten) == [(START + 9 * HOUR_MS, START + 10 * HOUR_MS)]
    after_midnight = END + 15 * 60_000
    assert closed_windows(after_midnight) == [(END - HOUR_MS, END), (START, END)]
