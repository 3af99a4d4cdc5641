"""Event-driven ingestion from SQS: same validation and idempotency as the HTTP API.

The queue is for trusted producers (IAM decides who may send). Each message names its tenant
in the ``tenant`` message attribute, or, for producers that cannot set attributes (an
EventBridge rule's SQS target), in a top-level ``tenant`` field of the body. The tenant must be
registered.

Nothing sent is ever dropped. A message retrying cannot fix (invalid, unknown tenant, an id
conflict) is **parked** at once: kept in the Control table with the reason, which names the
field (``PARKED#<message id>``, metric ``IngestMessagesParked``, no expiry). A message that fails
otherwise (storage throttled or down) is retried by SQS and parked on its last receive, so the
dead-letter queue (14 days) only ever holds a message whose parking failed too.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meter.core.errors import BadRequest, Conflict, MeterError, NotFound
from meter.core.json_body import parse_json
from meter.core.logs import logger, metrics
from meter.core.timerange import now_ms
from meter.dal import keys, store
from meter.dal.tenants import get_tenant, validate_tenant_name
from meter.ingest.batch import ingest, parse_events


def _split_tenant(record: SQSRecord) -> tuple[str, str]:
    attribute = (
        (record.message_attributes.get("tenant") or {}).get("stringValue") if record.message_attributes else None
    )
    body = record.body
    try:
        payload: Any = parse_json(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "tenant" in payload:
        in_body = payload.pop("tenant")
        if attribute and attribute != in_body:
            raise BadRequest("Message names two different tenants (attribute and body)")
        attribute, body = in_body, json.dumps(payload)
    if not isinstance(attribute, str) or not attribute:
        raise BadRequest("Message names no tenant: set the 'tenant' message attribute")
    return validate_tenant_name(attribute), body


def ingest_message(record: SQSRecord) -> dict[str, Any]:
    """Ingest one queue message; raises (→ retry, then DLQ) when it cannot be stored."""
    tenant, body = _split_tenant(record)
    if get_tenant(tenant) is None:
        raise NotFound(f"Unknown tenant '{tenant}'")
    result = ingest(tenant, parse_events(body)).body()
    if result["conflicts"]:
        ids = [r["id"] for r in result["results"] if r["status"] == "conflict"]
        raise Conflict(f"Event ids stored earlier with a different body: {ids[:10]}")
    logger.info("queue message ingested", extra={k: result[k] for k in ("accepted", "duplicates", "conflicts")})
    return result


def park(record: SQSRecord, reason: str) -> None:
    """Keep a message that cannot be ingested, durably, with why (for the runbook and redrive)."""
    attributes = {name: value.get("stringValue") for name, value in (record.message_attributes or {}).items()}
    store.control().put(
        {
            "pk": keys.parked_pk(record.message_id),
            "body": record.body,
            "attributes": {k: v for k, v in attributes.items() if v is not None},
            "reason": reason[:2000],
            "receives": int(record.attributes.approximate_receive_count),
            "at": now_ms(),
        }
    )
    logger.warning("queue message parked", extra={"message_id": record.message_id, "reason": reason[:500]})
    metrics.add_metric(name="IngestMessagesParked", unit="Count", value=1)


def ingest_or_park(record: SQSRecord, max_receives: int) -> dict[str, Any] | None:
    """Ingest a message; park it if retrying cannot help or this is its last receive; else raise (→ retry)."""
    try:
        return ingest_message(record)
    except Exception as error:
        if isinstance(error, MeterError) and error.status < 500:
            park(record, error.message)
        elif int(record.attributes.approximate_receive_count) < max_receives:
            raise
        else:
            reason = error.message if isinstance(error, MeterError) else f"{type(error).__name__}: {error}"
            park(record, f"gave up after {max_receives} receives: {reason}")
    return None
