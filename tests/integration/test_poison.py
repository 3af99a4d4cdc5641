"""One tenant's poison among other tenants' traffic: the others are counted in their window as if
nothing happened, the poison is set aside at once, and redrive counts it once it can be counted.

The poison is real DynamoDB refusals, not injected errors: items of the tenant edited by hand (a
counter stored as a string, which every ``ADD`` to it is refused for), and stream records written
around the ingest API that are not usage records. No event the ingest API accepts can refuse an
aggregate write by itself (bounded ids and counts, a fixed set of counters per item), so stored
state and writes around the API are how poison reaches the aggregator.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from local.queues import create_queues
from local.streams import StreamMapping
from meter.core.config import get_settings
from meter.core.timerange import to_ms
from meter.counting import distinct
from meter.dal import dynamo, keys
from meter.ingest.batch import ingest, parse_events
from tests.conftest import STACK
from tests.helpers import distinct_since, recount, set_aside_notices, stored_aggregates, stored_records
from tests.integration.test_redrive import later
from tools.redrive import redrive_aggregation_failures

DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=10, minute=30, second=0, microsecond=0)
DAY_KEY = DAY.strftime("%Y-%m-%d")
HEALTHY = ("acme", "globex")


def _events(prefix: str, n: int) -> list[dict]:
    return [
        {
            "id": f"{prefix}-{i}",
            "type": "tokens.input" if i % 2 else "message",
            "count": i + 1,
            "credits": 2,
            "identifier": f"user-{i % 4}",
            "agentId": f"bot-{i % 3}",
            "timestamp": (DAY + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(n)
    ]


def _put(table: str, item: dict) -> None:
    dynamo.client().put_item(TableName=table, Item=dynamo.serialize(item))


def _poison_the_tenant(tenant: str) -> dict:
    """Items edited by hand, and records written around the API; what each one is."""
    settings = get_settings()
    tenant_day = {"pk": f"{tenant}#T", "sk": keys.day_sk(DAY_KEY), "events": "corrupt"}
    tally = {"pk": keys.seen_tally_pk(tenant), "sk": keys.seen_tally_sk(DAY_KEY), keys.seen_counter("I", DAY_KEY): "x"}
    _put(settings.aggregates_table, tenant_day)
    _put(settings.aggregates_table, tally)
    broken = [f"{tenant}#broken-{n}" for n in range(3)]
    for pk in broken:
        _put(settings.records_table, {"pk": pk, "tenant": tenant})
    return {"tenant_day": tenant_day, "tally": tally, "broken": broken}


def _of(tenant: str, buckets: dict) -> dict:
    return {bucket: counters for bucket, counters in buckets.items() if bucket[0] == tenant}


@pytest.fixture
def failures(aws):
    sqs = boto3.client("sqs")
    urls = create_queues(STACK, sqs, visibility_timeout=0)
    return sqs, urls[STACK.stream_source_of("AggregateStreamFunction").on_failure]


def test_one_tenants_poison_is_set_aside_at_once_the_others_count_exactly_and_redrive_counts_it_once(failures):
    sqs, queue = failures
    poison = _poison_the_tenant("poison")
    for first in range(0, 40, 10):  # the poison tenant's events interleaved with everyone else's
        for tenant in (*HEALTHY, "poison"):
            ingest(tenant, parse_events(json.dumps({"events": _events(tenant, 40)[first : first + 10]})))
    source = STACK.stream_source_of("AggregateStreamFunction")
    no_retries = dataclasses.replace(source, max_retries=0)  # any failed invocation would be dead-lettered
    given_up: list = []
    function = STACK.functions()[source.function]
    mapping = StreamMapping(no_retries, function, get_settings().records_table, given_up.append, retry_delay=0)
    mapping.drain()

    assert given_up == []  # no invocation failed: the shard never stalled
    table, records = get_settings().aggregates_table, stored_records(skip_unreadable=True)
    expected, stored = recount(records), stored_aggregates(dynamo.client(), table)
    for tenant in HEALTHY:  # the others: every aggregate exact, distinct counts too
        assert _of(tenant, stored) == _of(tenant, expected)
        assert distinct.seen_since(tenant, DAY_KEY) == distinct_since(
            records, tenant, to_ms(DAY) // 86_400_000 * 86_400_000
        )
    tenant_day = ("poison", "tenant", None, "day", to_ms(DAY) // 86_400_000 * 86_400_000)
    poisoned = {bucket: c for bucket, c in _of("poison", expected).items() if bucket != tenant_day}
    assert _of("poison", stored) == poisoned  # all but the refused item counted, none twice

    notices = set_aside_notices()
    unreadable = sorted(n["record"] for n in notices if n["kind"] == "unreadable record")
    assert unreadable == poison["broken"]  # each once
    refused = [n for n in notices if n["kind"] == "refused write"]
    assert {n["tenant"] for n in refused} == {"poison"} and {d for n in refused for d in n["days"]} == {DAY_KEY}
    refused_keys = {tuple(item) for n in refused for item in n["items"]}
    assert ("poison#T", keys.day_sk(DAY_KEY)) in refused_keys
    assert {pk for pk, sk in refused_keys if sk == keys.SEEN_SK} == {f"poison#I#user-{u}" for u in range(4)}

    waiting = redrive_aggregation_failures(queue, sqs=sqs, now=later())
    assert waiting.redriven == 0 and len(waiting.kept) == len(notices)  # still refused, still unreadable
    print(waiting.kept)
    assert any("still refused" in reason for reason in waiting.kept)

    # The operator repairs the items, deletes the broken records and sends one again as the event it was.
    client, records_table = dynamo.client(), get_settings().records_table
    client.delete_item(TableName=table, Key=dynamo.serialize({"pk": "poison#T", "sk": keys.day_sk(DAY_KEY)}))
    client.delete_item(TableName=table, Key=dynamo.serialize({k: poison["tally"][k] for k in ("pk", "sk")}))
    for pk in poison["broken"]:
        client.delete_item(TableName=records_table, Key={"pk": {"S": pk}})
    ingest("poison", parse_events(json.dumps({"events": [{**_events("fixed", 1)[0], "id": "broken-0"}]})))
    mapping.drain()  # the stream counts the resent event; the redrive below must not count it again

    counted = redrive_aggregation_failures(queue, sqs=sqs, now=later())
    assert counted.kept == [] and counted.redriven == len(notices)
    records = stored_records(skip_unreadable=True)
    assert stored_aggregates(client, table) == recount(records)  # every tenant exact, the poison's once
    day_start = to_ms(DAY) // 86_400_000 * 86_400_000
    assert distinct.seen_since("poison", DAY_KEY) == distinct_since(records, "poison", day_start)
    assert redrive_aggregation_failures(queue, sqs=sqs, now=later()).messages == 0
