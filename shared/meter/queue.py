"""Event-driven ingestion from SQS: same validation and idempotency as the HTTP API.

The queue is for trusted producers (IAM decides who may send). Each message names its tenant
in the ``tenant`` message attribute, or, for producers that cannot set attributes (an
EventBridge rule's SQS target), in a top-level ``tenant`` field of the body. The tenant must be
registered. A message that fails here (invalid, unknown tenant, or an id conflict) is retried
and then lands in the dead-letter queue.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meter.errors import BadRequest, Conflict, NotFound
from meter.ingest import ingest, parse_events
from meter.logs import logger
from meter.tenants import get_tenant, validate_tenant_name


def _split_tenant(record: SQSRecord) -> tuple[str, str]:
    attribute = (
        (record.message_attributes.get("tenant") or {}).get("stringValue") if record.message_attributes else None
    )
    body = record.body
    try:
        payload: Any = json.loads(body)
    except json.JSONDecodeError:
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
