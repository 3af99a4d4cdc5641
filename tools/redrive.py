"""Redrive the dead-letter queues. Both redrives are safe to run again and again.

* **Aggregation failures**: the stream mapping's on-failure queue holds the *position* of each
  window it gave up on (shard and sequence-number range), not the records. The redrive reads that
  range back from the stream (it keeps 24 hours), finds the days its records fall on, and
  reconciles those days: every aggregate of them is set to a recount of the records, which counts
  each dropped event exactly once whatever part of the window had been committed. A day can be
  reconciled once its records are past the stream's horizon (``reconcile.HORIZON_MS``), when no
  stream invocation can add to it any more; until then the message stays, with the time to retry.
  The same queue holds what the aggregator **set aside** (``meter.counting.set_aside``): a refused write
  names its tenant and days, which are reconciled the same way (distinct marks included), and the
  message stays while a write is still refused; an unreadable record is read again, and its day
  reconciled once it is a usage record (it stays while it is not; a deleted one is done).
* **Alert deliveries given up on**: the delivery dead-letter queue holds firings whose delivery
  failed for a day (``{"pk", "sk"}``) and the positions of stream batches the delivery function
  gave up on. Each firing goes back to the retry queue with a fresh day of retries (a firing
  already delivered sends nothing again; receivers deduplicate by its id in any case).
* **Ingest dead letters and parked messages**: messages go back to the ingest queue unchanged
  (parked ones with their message attributes), once whatever made them fail is fixed (a tenant
  registered, a producer corrected). Re-ingesting is idempotent: an event already stored is a
  duplicate, never a second record; a message that still cannot be ingested is parked again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from meter.core.logs import logger
from meter.core.timerange import DAY_MS, iso, now_ms
from meter.counting import set_aside
from meter.counting.reconcile import HORIZON_MS, reconcile_window
from meter.dal import dynamo, keys, store
from meter.dal.records import InvalidRecord, UsageRecord, record_from_item


@dataclass
class RedriveReport:
    """What one redrive did."""

    messages: int = 0
    redriven: int = 0
    kept: list[str] = field(default_factory=list)  # why each message still in the queue stayed

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "redriven": self.redriven, "kept": self.kept}


def _messages(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message visible now, once each (a message kept reappears after its visibility timeout)."""
    found: dict[str, dict[str, Any]] = {}
    while True:
        page = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        new = [m for m in page if m["MessageId"] not in found]
        found.update((m["MessageId"], m) for m in page)  # SQS deletes by the latest receipt handle
        if not new:
            return list(found.values())


def stream_range(batch: dict[str, Any], streams: Any | None = None) -> list[dict[str, Any]]:
    """The stream records of a ``DDBStreamBatchInfo`` range, oldest first."""
    streams = streams or boto3.client("dynamodbstreams")
    first, last = int(batch["startSequenceNumber"]), int(batch["endSequenceNumber"])
    iterator = streams.get_shard_iterator(
        StreamArn=batch["streamArn"],
        ShardId=batch["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=batch["startSequenceNumber"],
    )["ShardIterator"]
    found: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        for record in page.get("Records", []):
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence > last:
                return found
            if sequence >= first:
                found.append(record)
        if not page.get("Records"):
            return found
        iterator = page.get("NextShardIterator")
    return found


def _usage_records(stream_records: list[dict[str, Any]]) -> list[UsageRecord]:
    inserts = [r for r in stream_records if r.get("eventName") == "INSERT"]
    return [record_from_item(dynamo.deserialize(r["dynamodb"]["NewImage"])) for r in inserts]


def _reconcile_days(days: set[tuple[str, int]], now: int, marks: bool = False) -> str | None:
    """Reconcile every (tenant, day start); why not, if it cannot be done yet."""
    for tenant, day in sorted(days):
        report = reconcile_window(tenant, day, day + DAY_MS, now, marks)
        if report.deferred:
            return f"day {iso(day)[:10]} of tenant {tenant} is within the stream's horizon or changed while read"
        if report.refused:
            return f"day {iso(day)[:10]} of tenant {tenant}: {report.refused} aggregate write(s) still refused"
    return None


def _days_of(records: list[UsageRecord]) -> set[tuple[str, int]]:
    return {(r.tenant, r.ts // DAY_MS * DAY_MS) for r in records}


def _stream_range_waiting(batch: dict[str, Any], streams: Any, now: int) -> str | None:
    """Reconcile the days of a window the stream gave up on; why not yet, if so."""
    records = _usage_records(stream_range(batch, streams))
    youngest = max((r.received_at for r in records), default=0)
    if youngest > now - HORIZON_MS:
        return f"waiting for the stream's horizon: redrive after {iso(youngest + HORIZON_MS)}"
    return _reconcile_days(_days_of(records), now)


def _set_aside_waiting(notice: dict[str, Any], now: int) -> str | None:
    """Count what the aggregator set aside, once it can be counted; why not yet, if so."""
    if notice["kind"] == set_aside.KIND_REFUSED:
        days = {(notice["tenant"], keys.day_start(day)) for day in notice["days"]}
        return _reconcile_days(days, now, marks=True)
    item = store.records().record(notice["record"])
    if item is None:
        return None  # deleted: nothing to count
    try:
        record = record_from_item(item)
    except InvalidRecord as error:
        return f"record {notice['record']} is still not a usage record: {error}"
    return _reconcile_days(_days_of([record]), now)


def _redrive_each(sqs: Any, queue_url: str, attempt: Callable[[dict[str, Any]], str | None]) -> RedriveReport:
    """Run ``attempt`` on the body of every message of a queue: delete the messages it finishes
    (None), keep the others with its reason, or the error it raised."""
    report = RedriveReport()
    for message in _messages(sqs, queue_url):
        report.messages += 1
        try:
            waiting = attempt(json.loads(message["Body"]))
        except (KeyError, ValueError, InvalidRecord) as error:  # unreadable message or still a poison pill
            report.kept.append(f"{message['MessageId']}: {error}")
            continue
        except Exception as error:  # e.g. TrimmedDataAccessException: the stream keeps 24 hours
            logger.exception("message not redriven", extra={"message": message["MessageId"]})
            report.kept.append(f"{message['MessageId']}: {type(error).__name__}: {error}")
            continue
        if waiting:
            report.kept.append(f"{message['MessageId']}: {waiting}")
            continue
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        report.redriven += 1
    return report


def redrive_aggregation_failures(
    queue_url: str, sqs: Any | None = None, streams: Any | None = None, now: int | None = None
) -> RedriveReport:
    """Count what the failure queue holds (windows the stream gave up on, what the aggregator set
    aside) by reconciling its days; delete the messages done, keep the others with the reason."""
    now = now_ms() if now is None else now

    def attempt(body: dict[str, Any]) -> str | None:
        if "setAside" in body:
            return _set_aside_waiting(body["setAside"], now)
        return _stream_range_waiting(body["DDBStreamBatchInfo"], streams, now)

    return _redrive_each(sqs or boto3.client("sqs"), queue_url, attempt)


def _firings_of(body: dict[str, Any], streams: Any) -> list[tuple[str, str]]:
    """The (pk, sk) of each firing a delivery dead letter stands for."""
    if "DDBStreamBatchInfo" not in body:
        return [(body["pk"], body["sk"])]
    inserts = [r for r in stream_range(body["DDBStreamBatchInfo"], streams) if r.get("eventName") == "INSERT"]
    found = [(r["dynamodb"]["Keys"]["pk"]["S"], r["dynamodb"]["Keys"]["sk"]["S"]) for r in inserts]
    return [(pk, sk) for pk, sk in found if pk.startswith(keys.TRIGGER_PREFIX)]


def redrive_alert_deliveries(
    dead_letter_url: str, retry_url: str, sqs: Any | None = None, streams: Any | None = None, now: int | None = None
) -> RedriveReport:
    """Send every firing of the delivery dead-letter queue back to the retry queue, with a fresh
    day of retries; delete each message once its firings are queued."""
    from meter.alerts.delivery import requeue

    sqs = sqs or boto3.client("sqs")
    now = now_ms() if now is None else now

    def attempt(body: dict[str, Any]) -> None:
        for pk, sk in _firings_of(body, streams):
            requeue(pk, sk, retry_url, sqs, now)

    return _redrive_each(sqs, dead_letter_url, attempt)


def redrive_dead_letters(dead_letter_url: str, source_url: str, sqs: Any | None = None) -> RedriveReport:
    """Move every message of a dead-letter queue back to its source queue, attributes kept."""
    sqs = sqs or boto3.client("sqs")
    report = RedriveReport()
    for message in _messages(sqs, dead_letter_url):
        report.messages += 1
        attributes = {
            name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        sqs.send_message(QueueUrl=source_url, MessageBody=message["Body"], MessageAttributes=attributes)
        sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
        report.redriven += 1
    return report


def redrive_parked(source_url: str, sqs: Any | None = None) -> RedriveReport:
    """Send every parked ingest message back to the ingest queue, and forget it once sent."""
    sqs = sqs or boto3.client("sqs")
    report = RedriveReport()
    control = store.control()
    for item in control.parked():
        report.messages += 1
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in (item.get("attributes") or {}).items()}
        sqs.send_message(QueueUrl=source_url, MessageBody=item["body"], MessageAttributes=attributes)
        control.remove(item["pk"])
        report.redriven += 1
    return report
