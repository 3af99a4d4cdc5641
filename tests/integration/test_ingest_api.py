"""POST /v1/events through API Gateway-shaped events, over moto."""

from __future__ import annotations

import json

import boto3
import pytest

from meter.core.config import get_settings
from meter.dal import dynamo
from meter.dal.keys import tenant_index_key, tenant_shard
from tests.helpers import call

EVENT = {"id": "evt-1", "type": "tokens.output", "count": 42, "identifier": "ana@example.com", "agentId": "bot-1"}


def stored(tenant: str, event_id: str) -> dict:
    found = dynamo.client().get_item(TableName=get_settings().records_table, Key={"pk": {"S": f"{tenant}#{event_id}"}})
    return dynamo.deserialize(found["Item"])


def stream_inserts() -> int:
    streams = boto3.client("dynamodbstreams")
    arn = dynamo.client().describe_table(TableName=get_settings().records_table)["Table"]["LatestStreamArn"]
    total = 0
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
        total += sum(1 for r in records if r["eventName"] == "INSERT")
    return total


def test_single_event_is_stored_with_resolved_fields(gateway, tokens):
    response = call(gateway, "POST", "/v1/events", tokens["acme"], EVENT)
    assert response.status == 200
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "conflicts": 0,
        "results": [{"id": "evt-1", "status": "accepted"}],
    }
    record = stored("acme", "evt-1")
    assert record["count"] == 42 and record["tenant"] == "acme" and record["credits"] == 0
    assert "ik" not in record and "ak" not in record  # the two record indexes are ByTenant and ByConversation
    assert record["tk"] == tenant_index_key("acme", tenant_shard(record["id"]))


def test_resend_is_a_duplicate_and_writes_no_stream_record(gateway, tokens):
    call(gateway, "POST", "/v1/events", tokens["acme"], EVENT)
    again = call(gateway, "POST", "/v1/events", tokens["acme"], EVENT)
    assert again.status == 200
    assert again.json()["duplicates"] == 1 and again.json()["results"][0]["status"] == "duplicate"
    assert stream_inserts() == 1


def test_different_body_is_a_conflict_and_never_overwrites(gateway, tokens):
    call(gateway, "POST", "/v1/events", tokens["acme"], EVENT)
    batch = {"events": [{**EVENT, "count": 43}, {**EVENT, "id": "evt-2"}]}
    response = call(gateway, "POST", "/v1/events", tokens["acme"], batch)
    assert response.status == 409
    body = response.json()
    assert body["conflicts"] == 1 and body["accepted"] == 1
    assert [r["status"] for r in body["results"]] == ["conflict", "accepted"]
    assert stored("acme", "evt-1")["count"] == 42


def test_same_id_twice_in_one_batch(gateway, tokens):
    batch = {"events": [EVENT, EVENT, {**EVENT, "count": 1}]}
    body = call(gateway, "POST", "/v1/events", tokens["acme"], batch).json()
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate", "conflict"]


def test_ids_are_per_tenant(gateway, tokens):
    assert call(gateway, "POST", "/v1/events", tokens["acme"], EVENT).json()["accepted"] == 1
    assert call(gateway, "POST", "/v1/events", tokens["globex"], EVENT).json()["accepted"] == 1


def test_invalid_batch_stores_nothing_and_names_each_field(gateway, tokens):
    batch = {"events": [{**EVENT, "id": "ok"}, {**EVENT, "id": "bad", "count": -5, "tenant": "globex"}]}
    response = call(gateway, "POST", "/v1/events", tokens["acme"], batch)
    assert response.status == 400
    details = response.json()["details"]
    assert {(d["index"], d["id"], d["field"]) for d in details} == {(1, "bad", "count"), (1, "bad", "tenant")}
    assert dynamo.client().scan(TableName=get_settings().records_table)["Count"] == 0


def test_rate_card_credits_are_applied_at_ingest(gateway, tokens):
    from tools.admin import set_rate_card

    set_rate_card("acme", {"tokens.output": "0.01"})
    call(gateway, "POST", "/v1/events", tokens["acme"], EVENT)
    call(gateway, "POST", "/v1/events", tokens["acme"], {**EVENT, "id": "evt-2", "credits": 9})
    assert (stored("acme", "evt-1")["credits"], stored("acme", "evt-1")["creditsSource"]) == (1, "rate_card")
    assert (stored("acme", "evt-2")["credits"], stored("acme", "evt-2")["creditsSource"]) == (9, "event")


def test_malformed_json_and_huge_bodies_are_4xx(gateway, tokens):
    assert call(gateway, "POST", "/v1/events", tokens["acme"], raw_body=b"{oops").status == 400
    assert call(gateway, "POST", "/v1/events", tokens["acme"], raw_body=b"\xff\xfe").status == 400
    huge = b'{"events": [' + b",".join([b'{"id":"x","type":"t","count":1}'] * 40_000) + b"]}"
    assert call(gateway, "POST", "/v1/events", tokens["acme"], raw_body=huge).status == 413


HOSTILE_BODIES = {
    "malformed JSON": (b'{"id": "a",', 400, "not valid JSON"),
    "invalid UTF-8": (b'{"id": "\xff", "type": "t", "count": 1}', 400, "UTF-8"),
    "unpaired surrogate": (b'{"id": "\\ud800", "type": "t", "count": 1}', 400, "Unicode"),
    "deep nesting": (b'{"meta": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}", 400, "JSON"),
    "wrong type": (b'{"id": "a", "type": "t", "count": "1"}', 400, "count"),
    "overlong id": (b'{"id": "' + b"x" * 129 + b'", "type": "t", "count": 1}', 400, "id"),
    "overlong identifier": (
        b'{"id": "a", "type": "t", "count": 1, "identifier": "' + b"u" * 257 + b'"}',
        400,
        "identifier",
    ),
    "path traversal type": (b'{"id": "a", "type": "../../etc/passwd", "count": 1}', 400, "type"),
    "a JSON array": (b"[1, 2]", 400, "event object"),
    "empty": (b"", 400, "empty"),
    "too many events": (b'{"events": [' + b",".join([b'{"id":"x","type":"t","count":1}'] * 501) + b"]}", 413, "500"),
    "a count of 5,000 digits": (b'{"id": "a", "type": "t", "count": ' + b"9" * 5000 + b"}", 400, "'count'"),
    "credits of -5,000 digits": (
        b'{"id": "a", "type": "t", "count": 1, "credits": -' + b"9" * 5000 + b"}",
        400,
        "credits",
    ),
    "a meta number of 5,000 digits": (
        b'{"id": "a", "type": "t", "count": 1, "meta": {"n": ' + b"9" * 5000 + b"}}",
        400,
        "meta",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_hostile_bodies_get_a_4xx_naming_the_problem(gateway, tokens, case):
    body, status, mentioned = HOSTILE_BODIES[case]
    response = call(gateway, "POST", "/v1/events", tokens["acme"], raw_body=body)
    assert response.status == status and mentioned in json.dumps(response.json()), response.json()


@pytest.mark.parametrize(
    "identifier",
    ["../../etc/passwd", "..%2F..%2Fetc", "ü½🚀", "a" * 500, "%00", "' OR 1=1 --", "<script>"],
)
def test_hostile_path_values_are_just_unknown_identifiers(gateway, tokens, identifier):
    from tests.helpers import identifier_path

    response = call(gateway, "GET", identifier_path(identifier), tokens["acme"])
    assert response.status == 404 and response.json() == {"error": "No consumption data found for this identifier"}


def test_path_and_query_values_past_their_bounds_are_400_naming_them(gateway, tokens):
    from tests.helpers import identifier_path

    long = "a" * 3000  # past DynamoDB's 2,048-byte partition key
    cases = [
        (identifier_path(long), None, "identifier"),
        ("/v1/alerts/" + long, None, "alertId"),
        ("/v1/usage/query", {"identifier": long}, "identifier"),
        ("/api/v1/usage/list", {"cursor": long}, "cursor"),
    ]
    for path, query, name in cases:
        response = call(gateway, "GET", path, tokens["acme"], query=query)
        assert response.status == 400 and f"'{name}'" in response.json()["error"], (path, response.json())


def test_an_alert_threshold_of_5000_digits_is_400_naming_it(gateway, tokens):
    body = b'{"name": "n", "measure": "credits", "period": "day", "thresholds": [' + b"9" * 5000 + b"]}"
    response = call(gateway, "POST", "/v1/alerts", tokens["acme"], raw_body=body)
    assert response.status == 400 and "'thresholds" in response.json()["error"], response.json()


def test_the_dashboard_may_not_be_framed_by_another_site(gateway):
    for path in ("/", "/dashboard/dashboard.js"):
        response = call(gateway, "GET", path)
        assert response.status == 200
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_identifiers_are_one_spelling_and_hidden_characters_are_refused(gateway, tokens):
    import unicodedata

    from tests.conftest import STACK
    from tests.helpers import aggregator, identifier_path

    composed, decomposed = unicodedata.normalize("NFC", "José"), unicodedata.normalize("NFD", "José")
    assert composed != decomposed
    events = [
        {"id": "e1", "type": "message", "count": 1, "credits": 2, "identifier": composed},
        {"id": "e2", "type": "message", "count": 1, "credits": 3, "identifier": decomposed},
    ]
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": events}).status == 200
    aggregator(STACK).drain()
    rows = call(gateway, "GET", "/v1/usage/query", tokens["acme"], query={"groupBy": "identifier"}).json()["data"]
    assert [(row["groupBy"], row["value"]) for row in rows] == [({"identifier": composed}, 5)]
    for spelling in (composed, decomposed):  # either spelling finds the same end user
        assert call(gateway, "GET", identifier_path(spelling), tokens["acme"]).status == 200
        one = call(gateway, "GET", "/v1/usage/query", tokens["acme"], query={"identifier": spelling}).json()
        assert [row["value"] for row in one["data"]] == [5]
    for bad in ("bell\u0007", "evil\u202etxt.exe", "nul\u0000", "zero\u200bwidth"):
        for field in ("identifier", "id", "agentId"):
            event = {"id": "e3", "type": "message", "count": 1, field: bad}
            response = call(gateway, "POST", "/v1/events", tokens["acme"], event)
            assert response.status == 400 and field in json.dumps(response.json()), (field, response.json())
