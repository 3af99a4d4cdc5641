"""OpenMeter-compatible ingest: CloudEvents 1.0 in, usage events stored exactly once.

``POST /api/v1/events`` reads ``application/cloudevents+json`` (one event),
``application/cloudevents-batch+json`` (an array) and ``application/json`` (either), as
OpenMeter does, and answers 204. A CloudEvent is identified by ``source`` and ``id``: each usage
event made from it has an id built from both, so a resend is a duplicate whatever else changed.

The default mapping (docs/sending.md): ``subject`` → ``identifier``; ``data.model``,
``data.agentId`` (or ``agent_id``, ``agent``), ``data.conversationId`` (or ``conversation_id``)
and ``data.credits`` → the fields of those names; ``time`` → ``timestamp``. Counts come from
token fields when there are any (``input_tokens``/``prompt_tokens``, cached ones included;
``output_tokens``/``completion_tokens``; ``cached_tokens``, ``reasoning_tokens``), split into the
disjoint ``tokens.*`` types; else from ``data.tokens`` (type ``tokens``); else ``data.count`` or
``data.value`` (else 1) counts an event of the CloudEvent's own type. A tenant can replace this for a
CloudEvents type with a mapping of its own (``CloudEventMapping``, set with ``meterctl``).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, ValidationError

from meter.core.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from meter.core.json_body import decode_json
from meter.core.timerange import now_ms
from meter.dal.tenants import cloudevent_mappings
from meter.ingest.batch import IngestResult, field_name, ingest, problems_error, validated
from meter.ingest.models import MAX_COUNT
from meter.ingest.tokens import ResentEvent, TokenUsage, id_text, part_events

MEDIA_TYPES = ("application/cloudevents+json", "application/cloudevents-batch+json", "application/json")
MAX_CLOUDEVENTS = 500
MAX_PARTS = 1000  # usage events made from one request
DataPath = Annotated[str, Field(pattern=r"^(subject|data(\.[A-Za-z0-9_$-]{1,64}){1,4})$")]
MAPPED_FIELDS = ("identifier", "agentId", "model", "conversationId", "credits")
EventType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode; extension attributes are allowed and ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    source: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    type: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    subject: Annotated[StrictStr, Field(min_length=1, max_length=256)] | None = None
    time: AwareDatetime | None = None
    datacontenttype: StrictStr | None = None
    dataschema: StrictStr | None = None
    data: dict[str, Any] | None = None


class CloudEventMapping(BaseModel):
    """A tenant's mapping of one CloudEvents type: which data fields count which event types, and which
    CloudEvent attribute or data field fills each usage event field (``subject`` or ``data.<path>``)."""

    model_config = ConfigDict(extra="forbid")

    counts: Annotated[dict[EventType, DataPath], Field(min_length=1, max_length=8)]
    fields: dict[Literal["identifier", "agentId", "model", "conversationId", "credits"], DataPath] = Field(
        default_factory=dict
    )


DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "identifier": ("subject",),
    "agentId": ("data.agentId", "data.agent_id", "data.agent"),
    "model": ("data.model",),
    "conversationId": ("data.conversationId", "data.conversation_id"),
    "credits": ("data.credits",),
}
TOKEN_FIELDS: dict[str, tuple[str, ...]] = {
    "input": ("data.input_tokens", "data.prompt_tokens"),
    "output": ("data.output_tokens", "data.completion_tokens"),
    "cached": ("data.cached_tokens", "data.cache_read_input_tokens"),
    "cache_creation": ("data.cache_creation_input_tokens",),
    "reasoning": ("data.reasoning_tokens",),
}


class _Invalid(ValueError):
    def __init__(self, path: str, reason: str):
        super().__init__(reason)
        self.path, self.reason = path, reason


def _lookup(event: CloudEvent, path: str) -> Any:
    if path == "subject":
        return event.subject
    value: Any = event.data or {}
    for part in path.split(".")[1:]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _first(event: CloudEvent, paths: tuple[str, ...]) -> tuple[str, Any]:
    for path in paths:
        value = _lookup(event, path)
        if value is not None:
            return path, value
    return paths[0], None


def _whole(path: str, value: Any) -> int:
    """A count: a whole number ≥ 0, sent as a number or a string of digits (OpenMeter reads both)."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,16}", value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise _Invalid(path, f"must be a whole number from 0 to {MAX_COUNT}")
    return value


def _default_counts(event: CloudEvent) -> dict[str, int]:
    found = {name: _first(event, paths) for name, paths in TOKEN_FIELDS.items()}
    if any(value is not None for _, value in found.values()):
        usage = TokenUsage(**{name: _whole(path, value) for name, (path, value) in found.items() if value is not None})
        return usage.parts()
    if (tokens := _lookup(event, "data.tokens")) is not None:
        return {"tokens": _whole("data.tokens", tokens)}
    path, count = _first(event, ("data.count", "data.value"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}", event.type):
        raise _Invalid("type", "must be letters, digits and . _ : / - (at most 64) to name a usage event type")
    return {event.type: 1 if count is None else _whole(path, count)}


def _mapped(event: CloudEvent, mapping: CloudEventMapping | None) -> tuple[dict[str, int], dict[str, Any], dict]:
    """Counts per usage event type, the shared fields, and which CloudEvent path each field came from."""
    if mapping is None:
        counts = _default_counts(event)
        sources = {name: _first(event, paths) for name, paths in DEFAULT_FIELDS.items()}
    else:
        counts = {}
        for event_type, path in mapping.counts.items():
            value = _lookup(event, path)
            if value is not None:
                counts[event_type] = _whole(path, value)
        if not counts:
            raise _Invalid(next(iter(mapping.counts.values())), "is missing: the tenant's mapping counts from it")
        sources = {name: (path, _lookup(event, path)) for name, path in mapping.fields.items()}
    common: dict[str, Any] = {"timestamp": event.time.isoformat() if event.time else None}
    for name, (path, value) in sources.items():
        if value is not None:
            common[name] = _whole(path, value) if name == "credits" else id_text(value)
    where = {name: path for name, (path, _) in sources.items()} | {"timestamp": "time"}
    return counts, {k: v for k, v in common.items() if v is not None}, where


def _base_id(event: CloudEvent) -> str:
    """``source`` and ``id`` together, unambiguously (the source's length comes first)."""
    return f"ce:{len(event.source)}:{event.source}:{event.id}"


def _check_media_type(media_type: str) -> None:
    if media_type not in MEDIA_TYPES:
        raise UnsupportedMediaType(f"Invalid 'Content-Type': send one of {', '.join(MEDIA_TYPES)}")


def cloudevent_bodies(payload: Any, media_type: str) -> list[Any]:
    """The CloudEvents a body holds, as its media type says it holds them."""
    batch = media_type == "application/cloudevents-batch+json" or (
        media_type == "application/json" and isinstance(payload, list)
    )
    if not batch:
        if not isinstance(payload, dict):
            raise BadRequest("Request body must be a CloudEvent object")
        return [payload]
    if not isinstance(payload, list) or not payload:
        raise BadRequest("Request body must be a non-empty array of CloudEvents")
    if len(payload) > MAX_CLOUDEVENTS:
        raise PayloadTooLarge(f"A batch holds at most {MAX_CLOUDEVENTS} CloudEvents; got {len(payload)}")
    return payload


def _usage_events(index: int, raw: Any, mappings: dict[str, Any], now: int) -> tuple[list, list[dict[str, Any]]]:
    """The usage events one CloudEvent makes, or the problems that stop it (each naming its field)."""
    where = {"index": index, "id": raw.get("id") if isinstance(raw, dict) else None}
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as invalid:
        return [], [{**where, "field": field_name(e["loc"]), "reason": e["msg"]} for e in invalid.errors()]
    mapping = mappings.get(event.type)
    try:
        counts, common, sources = _mapped(event, CloudEventMapping.model_validate(mapping) if mapping else None)
    except _Invalid as invalid:
        return [], [{**where, "field": invalid.path, "reason": invalid.reason}]
    events, problems = [], []
    for body in part_events(_base_id(event), counts, common):
        usage, found = validated(index, body, now, ResentEvent)
        problems += [{**p, "id": event.id, "field": sources.get(p["field"], p["field"])} for p in found]
        events += [usage] if usage else []
    return events, problems


def ingest_cloudevents(tenant: str, body: bytes, media_type: str) -> IngestResult:
    """Validate every CloudEvent of a request (all or nothing, as ``POST /v1/events``), then store them."""
    media_type = media_type or "application/json"
    _check_media_type(media_type)
    raws = cloudevent_bodies(decode_json(body, "a CloudEvent or an array of them"), media_type)
    mappings, now = cloudevent_mappings(tenant), now_ms()
    events, problems = [], []
    for index, raw in enumerate(raws):
        made, found = _usage_events(index, raw, mappings, now)
        events += made
        problems += found
    if problems:
        raise problems_error(problems, len(raws), "CloudEvent")
    if len(events) > MAX_PARTS:
        raise PayloadTooLarge(f"The CloudEvents make {len(events)} usage events; at most {MAX_PARTS} a request")
    return ingest(tenant, events) if events else IngestResult()
