"""Concurrency and load against the local stack: nothing lost, nothing counted twice.

Load is bounded in count and time and targets only the stack on 127.0.0.1. ``make test`` runs
the hot tenant for LOAD_SECONDS=10; ``make load`` runs it for a minute.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest
import requests

from local.template import Stack
from meter.core.timerange import to_ms
from meter.dal import dynamo
from meter.dal.records import record_from_item
from tests.conftest import reset_caches
from tests.helpers import recount, stored_aggregates

LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "10"))
TARGET_EVENTS_PER_SECOND = 300
BATCH = 50


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _records(client, tenant: str) -> list:
    pages = client.get_paginator("scan").paginate(
        TableName=Stack().physical_name("RecordsTable"),
        FilterExpression="tenant = :t",
        ExpressionAttributeValues={":t": {"S": tenant}},
    )
    return [record_from_item(dynamo.deserialize(item)) for page in pages for item in page["Items"]]


def _quiescent_aggregates(client, tenant: str, expected_events: int, timeout: float = 300) -> dict:
    """The tenant's aggregates once the aggregator has caught up with every stored event and
    nothing changes between two reads (an overcount still in flight shows up as a mismatch)."""
    table = Stack().physical_name("AggregatesTable")
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        stored = stored_aggregates(client, table, tenant)
        day_events = sum(v.get("events", 0) for bucket, v in stored.items() if bucket[1:4] == ("tenant", None, "day"))
        caught_up = day_events >= expected_events and stored == previous
        if caught_up or time.monotonic() > deadline:
            return stored
        previous = stored if day_events >= expected_events else None
        time.sleep(0.5)


def test_one_event_id_sent_by_20_clients_at_once_is_stored_once_and_counted_once(stack):
    tenant = f"c{uuid.uuid4().hex[:8]}"
    token = stack.key(tenant)
    event = {"id": "same", "type": "message", "count": 1, "credits": 5, "identifier": "ana"}
    start = threading.Barrier(20)

    def send(_: int) -> str:
        start.wait()
        response = requests.post(f"{stack.base_url}/v1/events", json=event, headers=_headers(token), timeout=60)
        return response.json()["results"][0]["status"]

    with ThreadPoolExecutor(20) as pool:
        statuses = Counter(pool.map(send, range(20)))

    assert statuses == {"accepted": 1, "duplicate": 19}
    client = stack.client("dynamodb")
    assert len(_records(client, tenant)) == 1
    stored = _quiescent_aggregates(client, tenant, expected_events=1)
    assert stored == recount(_records(client, tenant))
    today = to_ms(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    assert stored[(tenant, "tenant", None, "day", today)]["credits"] == 5


def test_the_conditional_put_admits_one_writer_among_20_threads(stack, monkeypatch):
    """The same race below the HTTP layer, where the local gateway does not serialise calls."""
    from meter.ingest.batch import ingest, parse_events

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{stack.dynamodb_port}")
    for name, value in Stack().environment().items():
        monkeypatch.setenv(name, value)
    reset_caches()
    tenant = f"r{uuid.uuid4().hex[:8]}"
    stack.key(tenant)
    events = parse_events('{"id": "race", "type": "message", "count": 1}')
    start = threading.Barrier(20)

    def store(_: int) -> str:
        start.wait()
        return ingest(tenant, events).results[0]["status"]

    try:
        with ThreadPoolExecutor(20) as pool:
            assert Counter(pool.map(store, range(20))) == {"accepted": 1, "duplicate": 19}
    finally:
        monkeypatch.undo()
        reset_caches()


def _event(tenant_seq: int, n: int) -> dict:
    return {
        "id": f"hot-{tenant_seq}-{n}",
        "type": ("tokens.input", "tokens.output", "message", "conversation")[n % 4],
        "count": 1 + n % 97,
        "credits": n % 7,
        "identifier": f"user-{n % 50}",
        "agentId": f"agent-{n % 5}",
        "model": f"model-{n % 3}",
        "timestamp": datetime.now(UTC).isoformat(),
    }


def test_a_hot_tenant_loses_nothing_and_every_aggregate_equals_a_recount(stack):
    assert urlparse(stack.base_url).hostname == "127.0.0.1"  # load only ever targets the local stack
    tenant = f"h{uuid.uuid4().hex[:8]}"
    token = stack.key(tenant)
    total = int(LOAD_SECONDS * TARGET_EVENTS_PER_SECOND)
    batches = [[_event(0, n) for n in range(i, min(i + BATCH, total))] for i in range(0, total, BATCH)]
    started = time.monotonic()

    def send(index: int) -> int:
        # Pace each batch to its slot so the offered rate is TARGET_EVENTS_PER_SECOND at most.
        time.sleep(max(0.0, started + index * BATCH / TARGET_EVENTS_PER_SECOND - time.monotonic()))
        response = requests.post(
            f"{stack.base_url}/v1/events", json={"events": batches[index]}, headers=_headers(token), timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()["accepted"]

    with ThreadPoolExecutor(8) as pool:
        accepted = sum(pool.map(send, range(len(batches))))
    elapsed = time.monotonic() - started
    print(f"hot tenant: {total} events in {elapsed:.1f} s ({total / elapsed:.0f} events/s offered and accepted)")

    assert accepted == total
    client = stack.client("dynamodb")
    records = _records(client, tenant)
    assert len(records) == total
    assert _quiescent_aggregates(client, tenant, expected_events=total) == recount(records)


@pytest.fixture(autouse=True)
def _meter_points_at_moto_again():
    yield
    reset_caches()
