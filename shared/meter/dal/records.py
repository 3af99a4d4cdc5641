"""The stored usage record: its fields, its Records-table item, and back.

A plain dataclass rather than a pydantic model: records are built by our own code (from
validated events, or from items we wrote), and the aggregator and query handlers should not
pay for importing pydantic on a cold start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meter.dal import keys

# The optional string fields a record may carry, in the order they are stored.
RELATION_FIELDS = (
    "identifier",
    "agentId",
    "model",
    "conversationId",
    "messageId",
    "taskId",
    "contactId",
    "blueprintId",
    "datasetId",
    "skillsetId",
    "abilityId",
    "reservationId",  # the hold its credits settle (meter.credits)
)
_TYPES = {"tenant": str, "id": str, "type": str, "count": int, "ts": int, "credits": int, "received_at": int}


_FIELDS = frozenset({"tenant", "id", "type", "count", "ts", "credits", "meta"})


class InvalidRecord(ValueError):
    """A stored item that is not a usage record (a poison pill for the aggregator)."""


@dataclass(frozen=True)
class UsageRecord:
    """An accepted event as stored: immutable, with its tenant, time and credits resolved."""

    tenant: str
    id: str
    type: str
    count: int
    ts: int  # event time, Unix milliseconds
    credits: int
    credits_source: str
    received_at: int
    fingerprint: str
    relations: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name, kind in _TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InvalidRecord(f"field '{name}' is {type(value).__name__}, expected {kind.__name__}")

    @property
    def time(self) -> datetime:
        """Event time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts / 1000, tz=UTC)

    @property
    def position(self) -> str:
        """Where the record sorts in every Records index (time, then id): list cursors hold it."""
        return keys.order_key(self.ts, self.id)

    def value_of(self, name: str) -> Any:
        """A field by its stored name (``type``, ``identifier``, ``agentId``, ``model``, ``meta``…);
        None for a relation the record does not carry."""
        if name in _FIELDS:
            return getattr(self, name)
        return self.relations.get(name)

    @property
    def identifier(self) -> str | None:
        return self.relations.get("identifier")

    @property
    def agent_id(self) -> str | None:
        return self.relations.get("agentId")


def record_item(record: UsageRecord, tenant_index_key: str) -> dict[str, Any]:
    """The Records-table item of a record (with the index keys its lookups need: its ``ByTenant``
    partition as the tenant's layout places it)."""
    item = {
        "pk": keys.record_pk(record.tenant, record.id),
        "tenant": record.tenant,
        "id": record.id,
        "type": record.type,
        "count": record.count,
        "ts": record.ts,
        "credits": record.credits,
        "creditsSource": record.credits_source,
        "receivedAt": record.received_at,
        "fp": record.fingerprint,
        "meta": record.meta or None,
        **record.relations,
    }
    item["tk"] = tenant_index_key
    item["ord"] = keys.order_key(record.ts, record.id)
    if "conversationId" in record.relations:
        item["ck"] = keys.conversation_index_key(record.tenant, record.relations["conversationId"])
    return item


def record_from_item(item: dict[str, Any]) -> UsageRecord:
    """A record back from its item (as read, or as a stream NewImage deserializes).

    Raises InvalidRecord if the item is not one (a field missing or of the wrong type).
    """
    missing = [name for name in ("tenant", "id", "type", "count", "ts", "credits") if name not in item]
    if missing:
        raise InvalidRecord(f"field '{missing[0]}' is missing")
    return UsageRecord(
        tenant=item["tenant"],
        id=item["id"],
        type=item["type"],
        count=item["count"],
        ts=item["ts"],
        credits=item["credits"],
        credits_source=item.get("creditsSource", "none"),
        received_at=item.get("receivedAt", item["ts"]),
        fingerprint=item.get("fp", ""),
        relations={name: item[name] for name in RELATION_FIELDS if name in item},
        meta=item.get("meta"),
    )
