"""Ingestion use case: validate a batch all-or-nothing, then store each event exactly once.

A conditional put keyed by tenant and event id makes a resend a ``duplicate`` (same body) or a
``conflict`` (different body) without overwriting anything; a refused put writes no stream
record, so only new events are ever aggregated.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from meter.core.config import get_settings
from meter.core.errors import BadRequest, PayloadTooLarge, Unavailable
from meter.core.json_body import decode_json
from meter.core.logs import logger, with_log_keys
from meter.core.timerange import DAY_MS, now_ms, to_ms
from meter.dal import store
from meter.dal.arrivals import note_late_arrivals
from meter.dal.records import RELATION_FIELDS, UsageRecord
from meter.dal.tenants import RECORDS_SHARD_AT, credits_for, placed_record_item, rate_card, shard_records
from meter.ingest.models import UsageEvent

MAX_BATCH_EVENTS = 500
_PUT_WORKERS = 16


class Traffic:
    """Each tenant's records stored by this container in the current span of ``SPAN_MS``: a tenant
    storing ``RECORDS_SHARD_AT`` a second over a span here spreads its records over the shards
    before its one ``ByTenant`` partition nears a key's write limit. A container sees only its own
    share of the traffic, so this errs late by the number of containers ingesting for the tenant
    at once (few: one takes a batch of 500 in well under a second)."""

    SPAN_MS = 10_000

    def __init__(self) -> None:
        self._spans: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def note(self, tenant: str, stored: int, now: int) -> None:
        """Count ``stored`` new records of the tenant; shard its records once they come fast."""
        span = now // self.SPAN_MS
        with self._lock:
            if len(self._spans) > 10_000:  # forget other tenants' past spans
                self._spans = {t: seen for t, seen in self._spans.items() if seen[0] == span}
            seen_span, seen = self._spans.get(tenant, (span, 0))
            total = stored + (seen if seen_span == span else 0)
            self._spans[tenant] = (span, total)
        if total >= RECORDS_SHARD_AT * self.SPAN_MS // 1000:
            try:
                shard_records(tenant, now)
            except ClientError as refused:  # the batch is stored; the next fast span tries again
                logger.warning("records not spread", extra={"tenant": tenant, "error": str(refused)[:300]})


traffic = Traffic()


@dataclass
class IngestResult:
    """Per-event outcome of one batch, in request order."""

    results: list[dict[str, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r["status"] == status)

    def body(self) -> dict[str, Any]:
        """The response body of ``POST /v1/events`` (``meter.api.shapes.IngestResult``)."""
        return {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "conflicts": self.count("conflict"),
            "results": self.results,
        }


def _event_dicts(payload: Any) -> list[Any]:
    if isinstance(payload, dict) and "events" in payload:
        extra = sorted(set(payload) - {"events"})
        if extra:
            raise BadRequest(f"Unknown field '{extra[0]}' beside 'events'")
        events = payload["events"]
        if not isinstance(events, list) or not events:
            raise BadRequest("Field 'events' must be a non-empty array of events")
        if len(events) > MAX_BATCH_EVENTS:
            raise PayloadTooLarge(f"A batch holds at most {MAX_BATCH_EVENTS} events; got {len(events)}")
        return events
    if isinstance(payload, dict):
        return [payload]
    raise BadRequest('Request body must be an event object or {"events": [...]}')


def field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "event"


def validated(
    index: int, raw: Any, now: int, model: type[UsageEvent] = UsageEvent
) -> tuple[UsageEvent | None, list[dict[str, Any]]]:
    """The event (as ``model``), or the problems that make it invalid (each naming its field)."""
    event_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
    where = {"index": index, "id": event_id}
    if not isinstance(raw, dict):
        return None, [{**where, "field": "event", "reason": "must be a JSON object"}]
    try:
        event = model.model_validate(raw)
    except ValidationError as invalid:
        return None, [{**where, "field": field_name(e["loc"]), "reason": e["msg"]} for e in invalid.errors()]
    if event.timestamp is None:
        return event, []
    settings, ts = get_settings(), to_ms(event.timestamp)
    if ts < now - settings.max_event_age_days * DAY_MS:
        return None, [{**where, "field": "timestamp", "reason": f"is older than {settings.max_event_age_days} days"}]
    if ts > now + settings.max_future_skew_seconds * 1000:
        reason = f"is more than {settings.max_future_skew_seconds} seconds in the future"
        return None, [{**where, "field": "timestamp", "reason": reason}]
    return event, []


def parse_events(body: str | bytes | None, now: int | None = None) -> list[UsageEvent]:
    """Parse a request or message body; BadRequest listing every bad event if any is invalid."""
    now = now_ms() if now is None else now
    raws = _event_dicts(decode_json(body))
    checked = [validated(index, raw, now) for index, raw in enumerate(raws)]
    problems = [p for _, found in checked for p in found]
    if problems:
        raise problems_error(problems, len(raws))
    return [event for event, _ in checked if event is not None]


def problems_error(problems: list[dict[str, Any]], total: int, noun: str = "event") -> BadRequest:
    """The 400 of a batch with invalid items: how many, the first problem, and every one in ``details``."""
    bad = len({p["index"] for p in problems})
    first = problems[0]
    return BadRequest(
        f"{bad} of {total} {noun}{' is' if bad == 1 else 's are'} invalid (first: {noun} {first['index']} field "
        f"'{first['field']}' {first['reason']}); nothing was stored",
        details=problems,
    )


def to_record(tenant: str, event: UsageEvent, card: dict[str, Any], received_at: int) -> UsageRecord:
    """The immutable record of an accepted event, credits resolved by the rate-card rule."""
    credits, source = credits_for(event.type, event.count, event.credits, card)
    relations = {name: getattr(event, name) for name in RELATION_FIELDS if getattr(event, name) is not None}
    return UsageRecord(
        tenant=tenant,
        id=event.id,
        type=event.type,
        count=event.count,
        ts=to_ms(event.timestamp) if event.timestamp else received_at,
        credits=credits,
        credits_source=source,
        received_at=received_at,
        fingerprint=event.fingerprint(),
        relations=relations,
        meta=event.meta,
    )


def _store(record: UsageRecord) -> str:
    """Put one record unless its id exists; the outcome as a result status."""
    stored_fingerprint = store.records().put_record(placed_record_item(record))
    if stored_fingerprint is None:
        return "accepted"
    return "duplicate" if stored_fingerprint == record.fingerprint else "conflict"


def ingest(tenant: str, events: list[UsageEvent]) -> IngestResult:
    """Store every event of a validated batch for ``tenant``; never overwrites a stored record."""
    received_at = now_ms()
    card = rate_card(tenant)
    first_by_id: dict[str, UsageRecord] = {}
    for event in events:
        first_by_id.setdefault(event.id, to_record(tenant, event, card, received_at))
    unique = list(first_by_id.values())
    try:
        note_late_arrivals(unique)  # first: a record stored is always one reconciliation will find
        if len(unique) == 1:
            statuses = [_store(unique[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(_PUT_WORKERS, len(unique))) as pool:
                statuses = list(pool.map(with_log_keys(_store), unique))
    except ClientError as failed:
        raise Unavailable(
            f"Storage refused the batch ({failed.response['Error']['Code']}); resend it: "
            "events already stored will come back as duplicates"
        ) from None
    traffic.note(tenant, statuses.count("accepted"), received_at)
    status_by_id = dict(zip(first_by_id, statuses, strict=False))
    result, seen = IngestResult(), set()
    for event in events:
        status = status_by_id[event.id]
        if event.id in seen:
            same = event.fingerprint() == first_by_id[event.id].fingerprint
            status = "duplicate" if same else "conflict"
        seen.add(event.id)
        result.results.append({"id": event.id, "status": status})
    return result
