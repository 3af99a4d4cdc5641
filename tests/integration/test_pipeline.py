"""Ingest → stream → aggregate → query, in process over moto, through API Gateway-shaped events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import STACK
from tests.helpers import aggregator, call, identifier_path

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(days=2)


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def test_ingest_aggregate_query(gateway, keys):
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
    response = call(gateway, "POST", "/v1/events", keys["acme"], {"events": events})
    assert response.status == 200, response.body
    assert response.json()["accepted"] == 3

    aggregator(STACK).drain()

    dates = call(gateway, "GET", identifier_path("user@example.com"), keys["acme"])
    assert dates.status == 200, dates.body
    day0, day1 = at(0)[:10], at(25)[:10]
    assert dates.json() == {"data": [{"date": day0, "total_credits": 5}, {"date": day1, "total_credits": 7}]}


def test_a_stream_record_that_is_not_a_usage_record_is_set_aside_and_the_shard_moves_on(gateway, keys):
    from meter import dynamo
    from meter.config import get_settings

    good = {"id": "ok-1", "type": "message", "count": 1, "credits": 3, "identifier": "ana", "timestamp": at(0)}
    assert call(gateway, "POST", "/v1/events", keys["acme"], good).status == 200
    # A record written around the ingest API, missing what makes it a usage record.
    dynamo.client().put_item(
        TableName=get_settings().records_table, Item={"pk": {"S": "acme#broken"}, "tenant": {"S": "acme"}}
    )
    later = {**good, "id": "ok-2"}
    assert call(gateway, "POST", "/v1/events", keys["acme"], later).status == 200
    dead: list = []
    aggregator(STACK, dead).drain()

    assert dead == []  # nothing was retried into the failure queue
    aside = dynamo.client().get_item(TableName=get_settings().control_table, Key={"pk": {"S": "ASIDE#acme#broken"}})
    assert "field 'id' is missing" in aside["Item"]["reason"]["S"]
    day = call(gateway, "GET", identifier_path("ana"), keys["acme"]).json()["data"]
    assert [d["total_credits"] for d in day] == [6]  # both good events, before and after it, counted once
