"""One tenant's records on one ``ByTenant`` partition until its traffic shards them: a new tenant's
reads query one partition; a tenant that stores fast spreads its records over the shards from a
receipt time every container knows of, and every read finds each record on either side of it."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest

from meter.core.config import get_settings
from meter.core.timerange import DAY_MS, HOUR_MS, now_ms
from meter.counting.reconcile import HORIZON_MS, reconcile_window
from meter.dal import dynamo, keys, store, tenants
from meter.ingest import batch
from meter.ingest.batch import Traffic
from tests.conftest import STACK
from tests.helpers import aggregator, call, identifier_path, queries_made


def _events(prefix: str, count: int, ts: int) -> list[dict]:
    return [
        {
            "id": f"{prefix}-{n:02d}",
            "type": "message",
            "count": 1,
            "credits": 1 + n % 4,
            "identifier": f"u{n % 3}",
            "timestamp": _iso(ts + 2 * n),
        }
        for n in range(count)
    ]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _send(gateway, token: str, events: list[dict], received: int) -> None:
    with mock.patch.object(batch, "now_ms", lambda: received):
        response = call(gateway, "POST", "/v1/events", token, {"events": events})
    assert response.status == 200 and response.json()["accepted"] == len(events), response.body


def _placed(tenant: str) -> dict[str, str]:
    """Record id → the ``ByTenant`` partition it is stored under."""
    items = dynamo.client().scan(TableName=get_settings().records_table)["Items"]
    return {item["id"]["S"]: item["tk"]["S"] for item in items if item["tenant"]["S"] == tenant}


def _partitions_read(read) -> list[str]:
    """The ``ByTenant`` partition of each Query ``read`` makes."""
    return [
        value["S"]
        for q in queries_made(read)
        if q.get("IndexName") == "ByTenant"
        for value in q["ExpressionAttributeValues"].values()
        if value.get("S", "").startswith("acme#") and len(value["S"]) == len("acme#00")
    ]


def _listed(gateway, token: str, take: int) -> list[str]:
    """Every record id the usage list returns, page by page, oldest first."""
    ids, cursor = [], None
    while True:
        query = {"take": str(take), "order": "asc", **({"cursor": cursor} if cursor else {})}
        page = call(gateway, "GET", "/api/v1/usage/list", token, query=query).json()
        ids += [item["id"] for item in page["items"]]
        cursor = page.get("cursor")
        if not cursor:
            return ids


def _in_list_order(*batches: list[dict]) -> list[str]:
    events = [e for events in batches for e in events]
    return [e["id"] for e in sorted(events, key=lambda e: (e["timestamp"], e["id"]))]


@pytest.fixture
def hour() -> int:
    """An hour two hours ago: the events' times (receipt times are set apart)."""
    return now_ms() // HOUR_MS * HOUR_MS - 2 * HOUR_MS


def test_a_new_tenants_records_sit_on_one_partition_and_its_reads_query_only_it(gateway, tokens, hour):
    events = _events("one", 30, hour)
    _send(gateway, tokens["acme"], events, hour + 60_000)
    assert set(_placed("acme").values()) == {"acme#00"}
    assert set(_partitions_read(lambda: _listed(gateway, tokens["acme"], 7))) == {"acme#00"}
    assert _listed(gateway, tokens["acme"], 7) == _in_list_order(events)


def test_a_tenant_registered_before_keeps_its_records_spread(gateway, tokens, hour):
    table = get_settings().tenants_table
    key = {"pk": {"S": keys.tenant_pk("acme")}}
    dynamo.client().update_item(TableName=table, Key=key, UpdateExpression="REMOVE recordsOnOneShard")
    tenants.forget_tenant_settings("acme")
    events = _events("old", 40, hour)
    _send(gateway, tokens["acme"], events, hour + 60_000)
    placed = _placed("acme")
    assert all(placed[e["id"]] == keys.tenant_index_key("acme", keys.tenant_shard(e["id"])) for e in events)
    assert len(set(placed.values())) > 1
    assert set(_partitions_read(lambda: _listed(gateway, tokens["acme"], 100))) == set(keys.tenant_index_keys("acme"))
    assert _listed(gateway, tokens["acme"], 9) == _in_list_order(events)


def test_records_spread_from_the_start_and_every_read_finds_both_sides(gateway, tokens, hour):
    before = _events("before", 30, hour)
    _send(gateway, tokens["acme"], before, hour + 60_000)
    tenants.shard_records("acme", hour + 60_000)
    start = tenants.layout("acme").records_sharded_from
    assert start == hour + 60_000 + (get_settings().rate_card_cache_seconds + 60) * 1000
    tenants.shard_records("acme", hour + 10 * 60_000)  # the first start stands
    tenants.forget_tenant_settings("acme")
    assert tenants.layout("acme").records_sharded_from == start

    after = _events("after", 30, hour + 1)  # received later, timestamped among the first
    _send(gateway, tokens["acme"], after[:10], start - 1)
    _send(gateway, tokens["acme"], after[10:], start)
    placed = _placed("acme")
    assert {placed[e["id"]] for e in before + after[:10]} == {"acme#00"}
    spread = {placed[e["id"]] for e in after[10:]}
    assert len(spread) > 1 and spread == {keys.tenant_index_key("acme", keys.tenant_shard(e["id"])) for e in after[10:]}

    assert _listed(gateway, tokens["acme"], 7) == _in_list_order(before, after)
    aggregator(STACK).drain()
    low, high = hour + 3, hour + 41  # ragged at both ends: the raw records of both layouts
    response = call(gateway, "GET", identifier_path("u1"), tokens["acme"], query={"from": _iso(low), "to": _iso(high)})
    at = {e["id"]: int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1000) for e in before + after}
    want = sum(e["credits"] for e in before + after if e["identifier"] == "u1" and low <= at[e["id"]] <= high)
    assert response.status == 200 and [day["total_credits"] for day in response.json()["data"]] == [want]
    day = hour // DAY_MS * DAY_MS
    assert reconcile_window("acme", day, day + DAY_MS, now_ms() + HORIZON_MS + 60_000).drifted == 0


def test_a_container_storing_fast_shards_the_tenants_records(tokens, hour):
    traffic, per_span = Traffic(), tenants.RECORDS_SHARD_AT * Traffic.SPAN_MS // 1000
    span = hour // Traffic.SPAN_MS * Traffic.SPAN_MS
    traffic.note("acme", per_span - 1, span)
    traffic.note("acme", 1, span + Traffic.SPAN_MS)  # a new span starts the count again
    tenants.forget_tenant_settings("acme")
    assert tenants.layout("acme").records_sharded_from is None
    traffic.note("acme", per_span - 1, span + Traffic.SPAN_MS + 5)
    wait = (get_settings().rate_card_cache_seconds + 60) * 1000
    assert tenants.layout("acme").records_sharded_from == span + Traffic.SPAN_MS + 5 + wait
    assert store.tenants().tenant("globex").records_sharded_from is None  # only the fast tenant


def test_a_refused_spread_leaves_the_batch_stored_and_answered(gateway, tokens, hour, monkeypatch):
    from botocore.exceptions import ClientError

    def refused(*_):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "UpdateItem")

    monkeypatch.setattr(batch, "RECORDS_SHARD_AT", 1)
    monkeypatch.setattr(batch, "shard_records", refused)
    events = _events("kept", 20, hour)
    _send(gateway, tokens["acme"], events, hour + 60_000)
    assert set(_placed("acme")) == {e["id"] for e in events}
