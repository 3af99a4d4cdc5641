"""Ingest → stream → aggregate → query, in process over moto, through API Gateway-shaped events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.conftest import STACK
from tests.helpers import aggregator, call, identifier_path, set_aside_notices

N_TYPES = 40  # moto copies whole tables per transaction; the unit test takes 10,000 types
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(days=2)


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def test_ingest_aggregate_query(gateway, tokens):
    events = [
        {
            "id": "e1",
            "type": "tokens.input",
            "count": 100,
            "credits": 5,
            "identifier": "user@example.com",
            "timestamp": at(0),
        },
        {
            "id": "e2",
            "type": "message",
            "count": 1,
            "credits": 7,
            "identifier": "user@example.com",
            "timestamp": at(25),
        },
        {
            "id": "e3",
            "type": "message",
            "count": 1,
            "credits": 0,
            "identifier": "user@example.com",
            "timestamp": at(26),
        },
    ]
    response = call(gateway, "POST", "/v1/events", tokens["acme"], {"events": events})
    assert response.status == 200, response.body
    assert response.json()["accepted"] == 3

    aggregator(STACK).drain()

    dates = call(gateway, "GET", identifier_path("user@example.com"), tokens["acme"])
    assert dates.status == 200, dates.body
    day0, day1 = at(0)[:10], at(25)[:10]
    assert dates.json() == {"data": [{"date": day0, "total_credits": 5}, {"date": day1, "total_credits": 7}]}


def test_a_stream_record_that_is_not_a_usage_record_is_set_aside_and_the_shard_moves_on(gateway, tokens, queues):
    from meter.core.config import get_settings
    from meter.dal import dynamo

    good = {"id": "ok-1", "type": "message", "count": 1, "credits": 3, "identifier": "ana", "timestamp": at(0)}
    assert call(gateway, "POST", "/v1/events", tokens["acme"], good).status == 200
    # A record written around the ingest API, missing what makes it a usage record.
    dynamo.client().put_item(
        TableName=get_settings().records_table, Item={"pk": {"S": "acme#broken"}, "tenant": {"S": "acme"}}
    )
    later = {**good, "id": "ok-2"}
    assert call(gateway, "POST", "/v1/events", tokens["acme"], later).status == 200
    dead: list = []
    aggregator(STACK, dead).drain()

    assert dead == []  # nothing was retried into the stream's failure queue...
    [notice] = set_aside_notices()  # ...but the record is there, set aside by the aggregator
    assert notice["kind"] == "unreadable record" and notice["record"] == "acme#broken"
    assert "field 'id' is missing" in notice["reason"]
    day = call(gateway, "GET", identifier_path("ana"), tokens["acme"]).json()["data"]
    assert [d["total_credits"] for d in day] == [6]  # both good events, before and after it, counted once


def test_any_number_of_distinct_event_types_is_counted_exactly_and_never_grows_an_item(gateway, tokens):
    """Each distinct type once added a counter to the tenant's day item: ~5,500 of 64 characters
    passed DynamoDB's 400 KB item limit, and every later update of the tenant failed."""
    from meter.core.config import get_settings
    from meter.dal import dynamo
    from meter.ingest.batch import ingest, parse_events
    from tests.helpers import recount, stored_aggregates, stored_records

    types = [f"tokens.{n:057d}" for n in range(N_TYPES)]
    for first in range(0, len(types), 100):
        batch = [
            {"id": f"t{n}", "type": t, "count": n + 1, "credits": 1, "agentId": "bot", "timestamp": at(0)}
            for n, t in enumerate(types[first : first + 100], start=first)
        ]
        assert ingest("acme", parse_events(json.dumps({"events": batch}))).body()["accepted"] == len(batch)
    aggregator(STACK).drain()

    client, settings = dynamo.client(), get_settings()
    records = stored_records()
    assert stored_aggregates(client, settings.aggregates_table, "acme") == recount(records)
    tenant_day = client.get_item(
        TableName=settings.aggregates_table, Key={"pk": {"S": "acme#T"}, "sk": {"S": "D#" + at(0)[:10]}}
    )["Item"]
    assert len(json.dumps(tenant_day)) < 400  # a handful of counters, whatever the number of types
    day = {"start": at(0)[:10] + "T00:00:00Z", "stop": at(0)[:10] + "T23:59:59Z"}
    measurements = call(gateway, "GET", "/v2/gen-ai/agents/bot/usage", tokens["acme"], query=day).json()["usage"]
    measurements = measurements["measurements"]
    assert len(measurements) == N_TYPES and measurements[31] == {"tokens": 32, "usage_type": types[31][7:].upper()}


def test_throttling_backs_off_and_commits_once_never_splitting_or_dead_lettering(gateway, tokens, monkeypatch):
    """Throttling was once treated like a poison pill: chunks were halved into up to 199
    sub-commits, and healthy events went to the dead-letter queue after Lambda's retries."""
    from botocore.exceptions import ClientError

    from meter.core.config import get_settings
    from meter.counting import aggregation
    from meter.dal import dynamo, transactions
    from tests.helpers import recount, stored_aggregates, stored_records

    events = [
        {"id": f"t-{n}", "type": "message", "count": 1, "credits": 1, "identifier": f"u{n}", "timestamp": at(0)}
        for n in range(60)
    ]
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": events}).status == 200
    real, calls = aggregation.transact, []

    def throttled_at_first(actions):
        calls.append(len(actions))
        if len(calls) <= 5:
            reasons = [{"Code": "ThrottlingError"}] + [{"Code": "None"}] * (len(actions) - 1)
            error = {"Error": {"Code": "TransactionCanceledException", "Message": "throttled"}}
            raise ClientError({**error, "CancellationReasons": reasons}, "TransactWriteItems")
        real(actions)

    monkeypatch.setattr(aggregation, "transact", throttled_at_first)
    monkeypatch.setattr(transactions.time, "sleep", lambda _: None)
    dead: list = []
    aggregator(STACK, dead).drain()

    assert dead == []
    assert calls[:6] == [calls[0]] * 6  # the throttled chunk was retried whole, never split
    client, settings = dynamo.client(), get_settings()
    records = stored_records()
    assert stored_aggregates(client, settings.aggregates_table, "acme") == recount(records)


def test_a_record_item_edited_by_hand_is_left_out_of_reads_and_counted_as_unreadable(gateway, tokens):
    from meter.core.config import get_settings
    from meter.counting.reconcile import _records
    from meter.dal import dynamo, keys
    from meter.dal.tenants import layout

    good = {"id": "ok-1", "type": "message", "count": 1, "credits": 3, "identifier": "ana", "timestamp": at(0)}
    assert call(gateway, "POST", "/v1/events", tokens["acme"], good).status == 200
    ts = int(datetime.fromisoformat(at(0)).timestamp() * 1000) + 1  # a millisecond later, the same day
    edited = {  # on the tenant's index like any record, but its count is no longer a number
        "pk": {"S": keys.record_pk("acme", "edited")},
        **{name: {"S": value} for name, value in (("tenant", "acme"), ("id", "edited"), ("type", "message"))},
        "count": {"S": "two"},
        "ts": {"N": str(ts)},
        "credits": {"N": "1"},
        "tk": {"S": layout("acme").index_key("acme", "edited", ts)},
        "ord": {"S": keys.order_key(ts, "edited")},
    }
    dynamo.client().put_item(TableName=get_settings().records_table, Item=edited)

    listed = call(gateway, "GET", "/api/v1/usage/list", tokens["acme"])
    assert listed.status == 200 and [item["id"] for item in listed.json()["items"]] == ["ok-1"]
    day = ts // 86_400_000 * 86_400_000
    records, unreadable = _records("acme", day, day + 86_400_000)
    assert [r.id for r in records] == ["ok-1"] and unreadable == 1


def test_a_board_item_a_window_would_overfill_is_spread_and_sums_exactly(gateway, tokens, monkeypatch):
    """A window adding more values to one board item than one write's expression holds spreads
    them over sub-items of the item; a period's items still sum to every value's credits."""
    from meter.core.config import get_settings
    from meter.dal import boards, dynamo
    from tests.helpers import recount, stored_aggregates, stored_records

    monkeypatch.setattr(boards, "MAX_ENTRIES", 4)
    events = [
        {"id": f"s-{n}", "type": "message", "count": 1, "credits": n + 1, "identifier": f"user-{n}", "timestamp": at(0)}
        for n in range(80)
    ]
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": events}).status == 200
    aggregator(STACK).drain()

    client, settings = dynamo.client(), get_settings()
    assert stored_aggregates(client, settings.aggregates_table, "acme") == recount(stored_records())
    items = client.query(
        TableName=settings.aggregates_table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "acme#BOARD#I"}},
    )["Items"]  # fmt: skip
    entries = [[name for name in item if name.startswith("=")] for item in items]
    assert max(len(names) for names in entries) <= 4 and any("." in item["sk"]["S"] for item in items)
    ranked = call(gateway, "GET", "/v1/usage/query", tokens["acme"],
                  query={"groupBy": "identifier", "from": at(0)[:10]}).json()["data"]  # fmt: skip
    assert {row["groupBy"]["identifier"]: row["value"] for row in ranked} == {f"user-{n}": n + 1 for n in range(80)}
