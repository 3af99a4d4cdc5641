"""Event-driven ingestion: SQS → ingest function, same validation and idempotency; a message that
cannot be ingested is parked durably with its reason, never dropped."""

from __future__ import annotations

import json

import boto3
import pytest

from local.queues import QueueMapping, create_queues
from meter.core.config import get_settings
from meter.dal import dynamo
from tests.conftest import STACK

EVENT = {"id": "q-1", "type": "message", "count": 1, "identifier": "ana"}


@pytest.fixture
def queue(tokens):
    sqs = boto3.client("sqs")
    urls = create_queues(STACK, sqs, visibility_timeout=0)
    source = STACK.queue_source_of("IngestQueueFunction")
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

    send.urls, send.sqs = urls, sqs
    return send, drain, dead_letters


def parked() -> list[dict]:
    from meter.dal import store

    return list(store.control().parked())


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
def test_bad_messages_are_parked_at_once_with_their_reason_and_store_nothing(queue, body, tenant):
    """They once took five receives to reach a dead-letter queue that drops them after 14 days."""
    send, drain, dead_letters = queue
    send(body, tenant)
    drain()
    assert stored_ids() == set()
    (kept,) = parked()
    assert (
        kept["receives"] == 1
        and kept["reason"]
        and kept["body"] == (body if isinstance(body, str) else json.dumps(body))
    )
    assert dead_letters() == []


def test_a_count_below_zero_is_parked_naming_the_field(queue):
    send, drain, _ = queue
    send({**EVENT, "count": -1})
    drain()
    assert "'count'" in parked()[0]["reason"]


def test_a_conflicting_resend_is_parked_not_dropped(queue):
    send, drain, _ = queue
    send(EVENT)
    drain()
    send({**EVENT, "count": 99})
    drain()
    assert "different body" in parked()[0]["reason"]


def test_a_message_storage_keeps_refusing_is_parked_on_its_last_receive_and_redriven_later(queue, monkeypatch):
    from botocore.exceptions import ClientError

    from meter.dal import store
    from tools.redrive import redrive_parked

    send, drain, dead_letters = queue

    def throttled(self, item):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "PutItem")

    with monkeypatch.context() as patch:
        patch.setattr(store.Records, "put_record", throttled)
        send(EVENT)
        drain()  # retried by SQS (five receives), then parked rather than left to expire
    (kept,) = parked()
    assert kept["receives"] == 5 and "gave up after 5 receives" in kept["reason"] and dead_letters() == []

    assert redrive_parked(send.urls["IngestQueue"], sqs=send.sqs).redriven == 1  # the fault is gone
    drain()
    assert stored_ids() == {"acme#q-1"} and parked() == []
