"""A window the aggregator gives up on does not stall its shard: it reaches the on-failure queue, and
the redrive counts it later (once past the stream's horizon), exactly once."""

from __future__ import annotations

import json
from collections import Counter

import boto3
import pytest
from botocore.exceptions import ClientError

from local.queues import QueueMapping, create_queues
from local.streams import StreamMapping
from meter.core.config import get_settings
from meter.core.timerange import now_ms
from meter.counting import aggregation
from meter.counting.reconcile import HORIZON_MS
from meter.dal import dynamo
from meter.dal.dimensions import TENANT
from meter.ingest.batch import ingest, parse_events
from meter.reading.queries import aggregate_items, counters
from tests.conftest import STACK
from tools.redrive import redrive_aggregation_failures, redrive_dead_letters


def later() -> int:
    """When every record stored so far is past the stream's horizon."""
    return now_ms() + HORIZON_MS + 60_000


@pytest.fixture
def queues(aws):
    sqs = boto3.client("sqs")
    return sqs, create_queues(STACK, sqs, visibility_timeout=0)


def _stream_mapping(sqs, urls) -> StreamMapping:
    source = STACK.stream_source_of("AggregateStreamFunction")
    failures = urls[source.on_failure]
    return StreamMapping(
        source,
        STACK.functions()[source.function],
        get_settings().records_table,
        lambda info: sqs.send_message(QueueUrl=failures, MessageBody=json.dumps(info)),
        retry_delay=0,
    )


def _tenant_totals(tenant: str) -> Counter:
    totals: Counter = Counter()
    for item in aggregate_items(TENANT.pk(tenant, ""), "D#", "D#~"):
        totals.update(counters(item))
    return totals


def _ingest(tenant: str, ids: list[str]) -> None:
    events = [{"id": i, "type": "message", "count": 1, "credits": 2, "identifier": "ana"} for i in ids]
    ingest(tenant, parse_events(json.dumps({"events": events})))


def _waiting(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_a_window_given_up_on_is_dead_lettered_the_shard_moves_on_and_redrive_counts_it_once(queues, monkeypatch):
    sqs, urls = queues
    failures = urls[STACK.stream_source_of("AggregateStreamFunction").on_failure]
    real_transact = aggregation.transact

    def denied(actions):  # storage the aggregator cannot write to (a policy change): not the data's fault
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "injected"}}, "TransactWriteItems")

    monkeypatch.setattr(aggregation, "transact", denied)
    _ingest("acme", ["evt-1", "evt-2", "evt-3"])
    mapping = _stream_mapping(sqs, urls)
    mapping.drain()
    assert _waiting(sqs, failures) == 1 and _tenant_totals("acme")["events"] == 0

    monkeypatch.setattr(aggregation, "transact", real_transact)  # the fault is fixed
    _ingest("acme", ["evt-4"])
    mapping.drain()
    assert _tenant_totals("acme")["events"] == 1  # the shard moved on past the window it gave up on

    early = redrive_aggregation_failures(failures, sqs=sqs)
    assert early.redriven == 0 and "horizon" in early.kept[0]  # the stream might still count them

    report = redrive_aggregation_failures(failures, sqs=sqs, now=later())
    assert report.redriven == 1 and report.kept == []
    assert _tenant_totals("acme") == Counter({"events": 4, "credits": 8, "messages": 4, "count": 4})

    again = redrive_aggregation_failures(failures, sqs=sqs, now=later())
    assert again.messages == 0
    assert _tenant_totals("acme")["events"] == 4


def test_a_redrive_of_a_range_already_counted_counts_nothing_twice(queues, monkeypatch):
    sqs, urls = queues
    _ingest("acme", ["evt-1", "evt-2"])
    mapping = _stream_mapping(sqs, urls)
    mapping.drain()
    assert _tenant_totals("acme")["events"] == 2
    # A failure message for a range that was counted after all: the redrive must skip it.
    streams = boto3.client("dynamodbstreams")
    arn = mapping.stream_arn()
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    records = streams.get_records(
        ShardIterator=streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )["Records"]
    info = {
        "DDBStreamBatchInfo": {
            "shardId": shard["ShardId"],
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "streamArn": arn,
        }
    }
    source = STACK.stream_source_of("AggregateStreamFunction")
    sqs.send_message(QueueUrl=urls[source.on_failure], MessageBody=json.dumps(info))

    report = redrive_aggregation_failures(urls[source.on_failure], sqs=sqs, now=later())

    assert report.redriven == 1 and not report.kept
    assert _tenant_totals("acme")["events"] == 2


def test_unreadable_failure_messages_stay_in_the_queue_with_a_reason(queues):
    sqs, urls = queues
    source = STACK.stream_source_of("AggregateStreamFunction")
    sqs.send_message(QueueUrl=urls[source.on_failure], MessageBody="not json")
    report = redrive_aggregation_failures(urls[source.on_failure], sqs=sqs)
    assert report.redriven == 0 and len(report.kept) == 1


def test_ingest_dead_letters_go_back_to_the_ingest_queue_and_are_stored_once(queues, tokens):
    sqs, urls = queues
    source = STACK.queue_source_of("IngestQueueFunction")
    dead_letter_url = urls["IngestDeadLetterQueue"]
    body = json.dumps({"id": "q-9", "type": "message", "count": 1})
    tenant = {"tenant": {"DataType": "String", "StringValue": "acme"}}
    sqs.send_message(QueueUrl=dead_letter_url, MessageBody=body, MessageAttributes=tenant)
    sqs.send_message(QueueUrl=dead_letter_url, MessageBody=body, MessageAttributes=tenant)

    report = redrive_dead_letters(dead_letter_url, urls[source.queue], sqs=sqs)
    mapping = QueueMapping(source, STACK.functions()[source.function], sqs, urls[source.queue])
    for _ in range(5):
        mapping.poll_once()

    assert report.redriven == 2
    stored = dynamo.client().scan(TableName=get_settings().records_table)["Items"]
    assert [item["pk"]["S"] for item in stored] == ["acme#q-9"]


def test_meterctl_redrive_reports_what_it_did_and_fails_while_messages_remain(queues, capsys):
    from tools.meterctl import run

    sqs, urls = queues
    sqs.send_message(QueueUrl=urls["IngestDeadLetterQueue"], MessageBody='{"id": "q-1", "type": "message", "count": 1}')
    assert run(["redrive", "ingest"]) == 0
    assert json.loads(capsys.readouterr().out)["redriven"] == 1
    moved = sqs.receive_message(QueueUrl=urls["IngestQueue"])["Messages"]
    assert json.loads(moved[0]["Body"])["id"] == "q-1"

    sqs.send_message(QueueUrl=urls["AggregationFailuresQueue"], MessageBody="{}")
    assert run(["redrive", "aggregation"]) == 3
    assert len(json.loads(capsys.readouterr().out)["kept"]) == 1
