"""What the aggregator cannot count is set aside at once, durably, and the shard moves on.

Two things are set aside, never retried in the stream:

* an **unreadable record**: a stream record that is not a usage record (written around the ingest
  API, or by a bug); metric ``StreamRecordsFailed``;
* a **refused write**: aggregate items (or distinct marks) DynamoDB refuses whatever the retries,
  e.g. an item past 400 KB or a counter of another type (``meter.dal.transactions``); the window commits
  without them, so only those items miss the window's events; metric ``AggregateWritesRefused``.

Each goes, before the commit that leaves it out, to the stream's failure queue
(``AggregationFailuresQueue``), where the stream's own dead letters go: 14 days, alarmed on depth,
and read by ``meterctl redrive aggregation``. The message names the tenant and the UTC days to
recount; the redrive reconciles them once they are past the stream's horizon (so exactly once,
whatever else wrote meanwhile), and keeps the message while a write is still refused.
Reconciliation finds the same drift on its own (its retry set keeps the window until it can be
repaired), so a notice that is lost or purged loses no event.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from meter.core.logs import logger, metrics
from meter.dal import keys, sqs

QUEUE = "AGGREGATION_FAILURES_QUEUE"
KIND_UNREADABLE = "unreadable record"
KIND_REFUSED = "refused write"


def _send(notice: dict[str, Any]) -> None:
    sqs.send(QUEUE, json.dumps({"setAside": notice}, separators=(",", ":")))


def unreadable_record(shard: str, raw: dict[str, Any], reason: str) -> None:
    """Set aside a stream record that is not a usage record (its key and reason)."""
    change = raw.get("dynamodb") or {}
    record = (change.get("Keys") or {}).get("pk", {}).get("S", "?")
    logger.error("stream record set aside", extra={"record": record, "reason": reason, "shard": shard})
    _send(
        {
            "kind": KIND_UNREADABLE,
            "record": record,
            "shard": shard,
            "sequence": change.get("SequenceNumber", ""),
            "reason": reason[:1000],
        }
    )
    metrics.add_metric(name="StreamRecordsFailed", unit="Count", value=1)


def refused_items(shard: str, first: str, last: str, items: Iterable[tuple[str, str, str]], reason: str) -> None:
    """Set aside writes DynamoDB refused: ``(pk, sk, UTC day)`` of each item, one notice per tenant."""
    by_tenant: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for pk, sk, day in items:
        by_tenant[keys.owner_of_aggregate(pk)[0]].append((pk, sk, day))
    for tenant, refused in sorted(by_tenant.items()):
        logger.error(
            "aggregate writes refused; set aside",
            extra={"tenant": tenant, "items": len(refused), "reason": reason, "shard": shard},
        )
        _send(
            {
                "kind": KIND_REFUSED,
                "tenant": tenant,
                "days": sorted({day for _, _, day in refused}),
                "items": [[pk, sk] for pk, sk, _ in refused],
                "shard": shard,
                "first": first,
                "last": last,
                "reason": reason[:1000],
            }
        )
        metrics.add_metric(name="AggregateWritesRefused", unit="Count", value=len(refused))
