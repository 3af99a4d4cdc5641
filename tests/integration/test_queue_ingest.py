"""Event-driven ingestion: SQS → ingest function, same validation and idempotency; failures → DLQ."""

from __future__ import annotations

import json

import boto3
import pytest

from local.queues import QueueMapping, create_queues
from meter import dynamo
from meter.config import get_settings
from tests.conftest import STACK

EVENT = {"id": "q-1", "type": "message", "count": 1, "identifier": "ana"}


@pytest.fixture
def queue(keys):
    sqs = boto3.client("sqs")
    urls = create_queues(STACK, sqs, visibility_timeout=0)
    source = STACK.queue_sources()[0]
    mapping = QueueMapping(source, STACK.functions()[source.function], sqs, urls[source.queue])

    def send(body, tenant: str | None = "acme") -> None:
        attributes = {"tenant": {"DataType": "String", "StringValue": tenant}} if tenant else {}
        text = body if isinstance(body, str) else json.dumps(body)
        sqs.send_message(QueueUrl=urls[source.queue], MessageBody=text, MessageAttributes=attributes)

    def drain() -> None:
        for _ in range(10):
            mapping.poll_once()

    def dead_letters() -> list[dict]:
        found = sqs.receive_message(QueueUrl=urls["IngestDeadLetterQueue"], MaxNumberOfMessages=10)
        return found.get("Messages", [])

    return send, drain, dead_letters


def stored_ids() -> set[str]:
    items = dynamo.client().scan(TableName=get_settings().records_table)["Items"]
    return {i["pk"]["S"] for i in items}


def test_messages_are_ingested_once_with_their_tenant(queue):
    send, drain, dead_letters = queue
    send(EVENT)
    send({"events": [EVENT, {**EVENT, "id": "q-2"}]})
    send({"tenant": "globex", **EVENT}, tenant=None)  # an EventBridge-style body naming its tenant
    drain()
    assert stored_ids() == {"acme#q-1", "acme#q-2", "globex#q-1"}
    assert dead_letters() == []


@pytest.mark.parametrize(
    ("body", "tenant"),
    [
        ({**EVENT, "count": -1}, "acme"),
        ("not json", "acme"),
        (EVENT, None),
        (EVENT, "nobody-registered"),
        (EVENT, "Bad Name!"),
        ({"tenant": "globex", **EVENT}, "acme"),
    ],
)
def test_bad_messages_end_in_the_dead_letter_queue_and_store_nothing(queue, body, tenant):
    send, drain, dead_letters = queue
    send(body, tenant)
    drain()
    assert stored_ids() == set()
    assert len(dead_letters()) == 1


def test_a_conflicting_resend_is_dead_lettered_not_dropped(queue):
    send, drain, dead_letters = queue
    send(EVENT)
    drain()
    send({**EVENT, "count": 99})
    drain()
    assert len(dead_letters()) == 1
