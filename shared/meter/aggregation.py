"""Exactly-once roll-up of stored records into hourly and daily totals.

Each stream batch is coalesced into one ``ADD`` per aggregate item. Every event also gets a
``countedAt`` marker on its own record, set with ``attribute_not_exists`` in the *same*
``TransactWriteItems`` as the counter updates. A replayed event fails its marker condition, the
transaction is cancelled, and it is retried without that event, so any replay, in any batch
boundaries, after a crash between any two writes, counts each event once. Lambda events carry
no shard id, so sequence-number watermarks cannot do this.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from meter import dynamo
from meter.config import get_settings
from meter.dimensions import DIMENSIONS, contribution_of, display_value
from meter.logs import logger
from meter.records import UsageRecord, record_from_item
from meter.timerange import day_key, hour_key, now_ms

MAX_TRANSACT_ACTIONS = 100
MAX_ATTEMPTS = 8

AggregateKey = tuple[str, str]


class AggregationFailed(Exception):
    """A chunk of events could not be committed after retries (reported as batch failures)."""


def aggregate_keys(record: UsageRecord) -> list[AggregateKey]:
    """Every (pk, sk) item the record adds to: a day item per dimension, an hour item where kept."""
    day, hour = f"D#{day_key(record.ts)}", f"H#{hour_key(record.ts)}"
    keys = []
    for dimension in DIMENSIONS:
        value = dimension.value_of(record)
        if value is None:
            continue
        pk = dimension.pk(record.tenant, value)
        keys.append((pk, day))
        if dimension.hourly:
            keys.append((pk, hour))
    return keys


def listing_attributes(record: UsageRecord) -> dict[AggregateKey, dict[str, str]]:
    """``lk`` and ``v`` of the record's day items in listed dimensions (what ByList indexes)."""
    day = f"D#{day_key(record.ts)}"
    attributes = {}
    for dimension in DIMENSIONS:
        value = dimension.value_of(record)
        if dimension.listed and value is not None:
            key = (dimension.pk(record.tenant, value), day)
            list_key = dimension.list_key(record.tenant, dimension.list_scope(record))
            attributes[key] = {"lk": list_key, "v": display_value(dimension, record)}
    return attributes


def contribution(record: UsageRecord) -> Counter[str]:
    """What one record adds to each of its aggregates."""
    return contribution_of(record.type, record.count, record.credits)


def coalesce(records: Iterable[UsageRecord]) -> dict[AggregateKey, Counter[str]]:
    """Sum the contributions of many records per aggregate item."""
    totals: dict[AggregateKey, Counter[str]] = defaultdict(Counter)
    for record in records:
        added = contribution(record)
        for key in aggregate_keys(record):
            totals[key].update(added)
    return totals


def _marker_action(record: UsageRecord, counted_at: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": get_settings().records_table,
            "Key": {"pk": {"S": f"{record.tenant}#{record.id}"}},
            "UpdateExpression": "SET countedAt = :at",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(countedAt)",
            "ExpressionAttributeValues": {":at": {"N": str(counted_at)}},
        }
    }


def _counter_action(key: AggregateKey, added: Counter[str], listing: dict[str, str] | None) -> dict[str, Any]:
    names = {f"#a{i}": name for i, name in enumerate(sorted(added))}
    values = {f":v{i}": {"N": str(added[name])} for i, name in enumerate(sorted(added))}
    expression = "ADD " + ", ".join(f"#a{i} :v{i}" for i in range(len(names)))
    if listing:
        names.update({"#lk": "lk", "#v": "v"})
        values.update({":lk": {"S": listing["lk"]}, ":dv": {"S": listing["v"]}})
        expression += " SET #lk = if_not_exists(#lk, :lk), #v = if_not_exists(#v, :dv)"
    return {
        "Update": {
            "TableName": get_settings().aggregates_table,
            "Key": {"pk": {"S": key[0]}, "sk": {"S": key[1]}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def transact(actions: list[dict[str, Any]]) -> None:
    """Commit one transaction (a seam tests use to inject crashes)."""
    dynamo.client().transact_write_items(TransactItems=actions)


def chunks(records: list[UsageRecord]) -> list[list[UsageRecord]]:
    """Split records so each chunk's markers plus coalesced counters fit one transaction."""
    result: list[list[UsageRecord]] = []
    current: list[UsageRecord] = []
    keys: set[AggregateKey] = set()
    for record in records:
        new_keys = set(aggregate_keys(record)) - keys
        if current and len(current) + 1 + len(keys) + len(new_keys) > MAX_TRANSACT_ACTIONS:
            result.append(current)
            current, keys, new_keys = [], set(), set(aggregate_keys(record))
        current.append(record)
        keys |= new_keys
    return [*result, current] if current else result


def _commit_chunk(records: list[UsageRecord]) -> None:
    pending = records
    for attempt in range(MAX_ATTEMPTS):
        if not pending:
            return
        counted_at = now_ms()
        actions = [_marker_action(r, counted_at) for r in pending]
        listing = {k: v for r in pending for k, v in listing_attributes(r).items()}
        actions += [_counter_action(key, added, listing.get(key)) for key, added in coalesce(pending).items()]
        try:
            transact(actions)
            return
        except ClientError as cancelled:
            if cancelled.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = cancelled.response.get("CancellationReasons") or []
            counted = {i for i, r in enumerate(reasons[: len(pending)]) if r.get("Code") == "ConditionalCheckFailed"}
            if counted:
                pending = [r for i, r in enumerate(pending) if i not in counted]
                continue
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
    raise AggregationFailed(f"{len(pending)} events not committed after {MAX_ATTEMPTS} attempts")


def aggregate(records: list[UsageRecord]) -> list[UsageRecord]:
    """Count every not-yet-counted record once; returns the records whose chunk failed."""
    unique = list({(r.tenant, r.id): r for r in records}.values())
    return [record for chunk in chunks(unique) for record in _commit_isolating(chunk)]


def _commit_isolating(chunk: list[UsageRecord]) -> list[UsageRecord]:
    """Commit a chunk; if it keeps failing, halve it until the records that fail are alone.

    One record the aggregator cannot count (a poison pill) then holds back only itself, not the
    events that happened to share its transaction.
    """
    try:
        _commit_chunk(chunk)
        return []
    except (AggregationFailed, ClientError):
        if len(chunk) == 1:
            logger.exception("event not counted", extra={"tenant": chunk[0].tenant, "event": chunk[0].id})
            return chunk
    half = len(chunk) // 2
    return _commit_isolating(chunk[:half]) + _commit_isolating(chunk[half:])


def handle_stream_records(stream_records: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Aggregate a DynamoDB stream batch; the partial-batch-failure response for Lambda.

    Records that cannot be parsed (poison pills) and records whose chunk failed are reported
    by sequence number. Lambda resumes from the lowest one; records after it that were
    counted now are skipped on that replay by their markers.
    """
    parsed: list[tuple[str, UsageRecord]] = []
    failures: list[str] = []
    for raw in stream_records:
        sequence = raw.get("dynamodb", {}).get("SequenceNumber", "")
        if raw.get("eventName") != "INSERT":
            continue
        try:
            parsed.append((sequence, record_from_item(dynamo.deserialize(raw["dynamodb"]["NewImage"]))))
        except Exception:
            logger.exception("unreadable stream record", extra={"sequence": sequence})
            failures.append(sequence)
    failed = {(r.tenant, r.id) for r in aggregate([record for _, record in parsed])}
    failures += [seq for seq, record in parsed if (record.tenant, record.id) in failed]
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failures]}
