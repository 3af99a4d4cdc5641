"""Distinct end users, datasets, skillsets and abilities: kept as events are counted, read as one
item, and equal to a brute-force count over the raw events for any period start, whatever order
the events arrive in (late ones up to 35 days back included) and when the billing anchor moves."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from meter.core.config import get_settings
from meter.core.timerange import DAY_MS, to_ms
from meter.counting import distinct
from meter.counting.distinct import seen_since
from meter.dal import dynamo
from meter.dal.keys import day_key
from meter.dal.tenants import billing_period_start
from tests.conftest import STACK
from tests.helpers import aggregator, call
from tools.admin import set_billing_anchor

NOW = datetime.now(UTC)
RELATIONS = ("identifier", "datasetId", "skillsetId", "abilityId")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def usage(n: int, days_ago: float, **relations: str) -> dict:
    moment = NOW - timedelta(days=days_ago)
    return {"id": f"d{n}", "type": "message", "count": 1, "timestamp": iso(moment), **relations}


# Recent events first; then a backfill reaching 35 days back (older than the marks it meets).
RECENT = [
    usage(1, 0.01, identifier="ana", datasetId="ds-1"),
    usage(2, 1, identifier="bo", skillsetId="sk-1"),
    usage(3, 3, identifier="ana", abilityId="ab-1"),
    usage(4, 9, identifier="ché", datasetId="ds-2"),
    usage(5, 16, identifier="dee", skillsetId="sk-2", abilityId="ab-1"),
    usage(6, 2, identifier="eve", datasetId="ds-1"),
]
LATE = [
    usage(7, 34.9, identifier="ana", datasetId="ds-3"),
    usage(8, 34, identifier="fay", skillsetId="sk-1"),
    usage(9, 20, identifier="bo", abilityId="ab-2"),
    usage(10, 12, identifier="gus", datasetId="ds-2"),
    usage(11, 0.5, identifier="fay"),  # a later sighting arriving after an earlier one
]


def brute_force(events: list[dict], start: int) -> dict[str, int]:
    """Distinct values of each relation among the events from ``start`` on."""
    since = [e for e in events if to_ms(datetime.fromisoformat(e["timestamp"])) >= start]
    codes = dict(zip(RELATIONS, ("I", "DS", "SK", "AB"), strict=True))
    return {codes[field]: len({e[field] for e in since if field in e}) for field in RELATIONS}


@pytest.fixture
def sent(gateway, tokens):
    stream = aggregator(STACK)
    for batch in (RECENT, LATE):
        assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": batch}).status == 200
        stream.drain()
    call(gateway, "POST", "/v1/events", tokens["globex"], {"events": [usage(1, 0.01, identifier="zed")]})
    stream.drain()
    return RECENT + LATE


def test_distinct_counts_equal_brute_force_from_every_day(sent):
    today = to_ms(NOW) // DAY_MS * DAY_MS
    for start in range(today - 40 * DAY_MS, today + 2 * DAY_MS, DAY_MS):
        assert seen_since("acme", day_key(start)) == brute_force(sent, start), day_key(start)
    assert seen_since("globex", day_key(today - 40 * DAY_MS)) == {"I": 1, "DS": 0, "SK": 0, "AB": 0}


def test_snapshot_follows_the_billing_anchor_as_it_moves(sent, gateway, tokens):
    for anchor in (1, 9, NOW.day if NOW.day <= 28 else 28, 28, 2):
        set_billing_anchor("acme", anchor)
        database = call(gateway, "GET", "/api/v1/usage/fetch", tokens["acme"]).json()["database"]
        want = brute_force(sent, billing_period_start(anchor, to_ms(NOW)))
        counted = {"I": database["users"], "DS": database["datasets"], "SK": database["skillsets"]}
        assert {**counted, "AB": database["abilities"]} == want, anchor


def test_replayed_and_duplicate_events_move_nothing(sent, gateway, tokens):
    before = {day: seen_since("acme", day) for day in (day_key(to_ms(NOW) - d * DAY_MS) for d in (0, 3, 40))}
    distinct.forget()  # a fresh container that remembers nothing
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": RECENT + LATE}).status == 200
    aggregator(STACK).drain()
    assert {day: seen_since("acme", day) for day in before} == before


def _snapshot_reads(gateway, tokens) -> Counter[str]:
    """The snapshot's read calls on the usage tables (the key lookup's cache may expire meanwhile)."""
    calls: Counter[str] = Counter()
    usage_tables = {get_settings().aggregates_table, get_settings().records_table}

    def count(model, params, **_):
        if params.get("TableName") in usage_tables or set(params.get("RequestItems", ())) & usage_tables:
            calls.update([model.name])

    dynamo.client().meta.events.register("before-call.dynamodb.*", count)
    try:
        assert call(gateway, "GET", "/api/v1/usage/fetch", tokens["acme"]).status == 200
    finally:
        dynamo.client().meta.events.unregister("before-call.dynamodb.*", count)
    return calls


def test_the_snapshot_reads_the_same_however_many_users(sent, gateway, tokens):
    _snapshot_reads(gateway, tokens)  # the key and the tenant, now cached as a warm container has them
    few = _snapshot_reads(gateway, tokens)
    crowd = [usage(100 + n, n % 20, identifier=f"user-{n}", datasetId=f"ds-{n}") for n in range(90)]
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": crowd}).status == 200
    aggregator(STACK).drain()
    assert _snapshot_reads(gateway, tokens) == few
    today = to_ms(NOW) // DAY_MS * DAY_MS
    assert seen_since("acme", day_key(today - 40 * DAY_MS)) == brute_force(sent + crowd, today - 40 * DAY_MS)
