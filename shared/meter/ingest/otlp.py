"""OTLP/HTTP trace ingest: spans with OpenTelemetry GenAI usage become usage events, exactly once.

``POST /v1/traces`` reads ``application/x-protobuf`` (the exporters' default) and ``application/json``
(whose trace and span ids are hex, not base64 as protobuf's ``json_format`` would read them). A span
counts when it carries ``gen_ai.usage.*`` token attributes (the current names, or the older
``prompt_tokens``/``completion_tokens``); spans without usage are ignored. Its events' ids are built
from the trace and span ids, so a re-exported span is a duplicate. A span that cannot be counted is
rejected alone and reported in ``partial_success``; the others are stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meter.core.errors import BadRequest, UnsupportedMediaType
from meter.core.json_body import decode_json
from meter.core.timerange import now_ms
from meter.ingest.batch import ingest, validated
from meter.ingest.tokens import ResentEvent, TokenUsage, id_text, part_events

PROTOBUF, JSON = "application/x-protobuf", "application/json"
MAX_BODY_BYTES = 6_000_000  # a synchronous Lambda invocation's payload limit; spans carry prompts too
MAX_USAGE_SPANS = 2000  # spans with usage counted from one request; the rest are rejected, to send again

TOKEN_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "input": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cached": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "cache_creation": ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens"),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens",),
}
FIELD_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "identifier": ("user.id", "enduser.id"),
    "model": ("gen_ai.response.model", "gen_ai.request.model"),
    "agentId": ("gen_ai.agent.id",),
    "conversationId": ("gen_ai.conversation.id",),
}


@dataclass(frozen=True)
class Span:
    """What a span tells us: its ids (hex), when it ended, and its attributes over its resource's."""

    trace_id: str
    span_id: str
    end_ns: int
    attributes: dict[str, Any]


def _json_value(value: dict[str, Any]) -> Any:
    """An OTLP/JSON ``AnyValue`` (int64s arrive as strings); arrays and maps are not read."""
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in value:
            return value[kind]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    return None


def _json_attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {
        item["key"]: _json_value(item.get("value") or {})
        for item in items
        if isinstance(item, dict) and isinstance(item.get("key"), str) and isinstance(item.get("value", {}), dict)
    }


def _list(parent: Any, name: str) -> list[Any]:
    found = parent.get(name) if isinstance(parent, dict) else None
    return found if isinstance(found, list) else []


def _nanos(value: Any) -> int:
    """A ``fixed64`` time in OTLP/JSON: a string or a number of nanoseconds; 0 when neither."""
    text = str(value)
    return int(text) if re.fullmatch(r"[0-9]{1,20}", text) else 0


def _json_spans(payload: Any) -> Iterator[Span]:
    for resource_spans in _list(payload, "resourceSpans"):
        resource_part = resource_spans.get("resource") if isinstance(resource_spans, dict) else None
        resource = _json_attributes(resource_part.get("attributes") if isinstance(resource_part, dict) else None)
        for scope_spans in _list(resource_spans, "scopeSpans"):
            for span in _list(scope_spans, "spans"):
                if not isinstance(span, dict):
                    continue
                yield Span(
                    trace_id=str(span.get("traceId", "")).lower(),
                    span_id=str(span.get("spanId", "")).lower(),
                    end_ns=_nanos(span.get("endTimeUnixNano")) or _nanos(span.get("startTimeUnixNano")),
                    attributes={**resource, **_json_attributes(span.get("attributes"))},
                )


def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else None


def _proto_spans(body: bytes) -> Iterator[Span]:
    from google.protobuf.message import DecodeError  # imported here: JSON requests and cold starts skip it
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        raise BadRequest("Request body is not an OTLP ExportTraceServiceRequest (protobuf)") from None
    for resource_spans in request.resource_spans:
        resource = {kv.key: _proto_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield Span(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    end_ns=span.end_time_unix_nano or span.start_time_unix_nano,
                    attributes={**resource, **{kv.key: _proto_value(kv.value) for kv in span.attributes}},
                )


def _first(attributes: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any]:
    for name in names:
        if attributes.get(name) is not None:
            return name, attributes[name]
    return names[0], None


def _usage(span: Span) -> TokenUsage | None:
    """The span's token usage, None when it has none; ValueError naming a bad attribute."""
    found = {part: _first(span.attributes, names) for part, names in TOKEN_ATTRIBUTES.items()}
    if all(value is None for _, value in found.values()):
        return None
    counts = {}
    for part, (name, value) in found.items():
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"attribute '{name}' must be a whole number >= 0")
        counts[part] = value
    return TokenUsage(**counts)


def _span_events(span: Span, usage: TokenUsage, now: int) -> list[ResentEvent]:
    """The span's usage events; ValueError naming the first field that is not valid."""
    if not re.fullmatch(r"[0-9a-f]{32}", span.trace_id) or not re.fullmatch(r"[0-9a-f]{16}", span.span_id):
        raise ValueError("a span needs a 16-byte traceId and an 8-byte spanId (hex in OTLP/JSON)")
    common: dict[str, Any] = {}
    for field, names in FIELD_ATTRIBUTES.items():
        value = _first(span.attributes, names)[1]
        if value is not None:
            common[field] = id_text(value)
    if span.end_ns:  # past year 9999 is out of every accepted window: read as the year 9999
        common["timestamp"] = datetime.fromtimestamp(min(span.end_ns / 1e9, 253_402_300_799), tz=UTC).isoformat()
    events = []
    for index, body in enumerate(part_events(f"otel:{span.trace_id}:{span.span_id}", usage.parts(), common)):
        event, problems = validated(index, body, now, ResentEvent)
        if problems:
            raise ValueError(f"field '{problems[0]['field']}' {problems[0]['reason']}")
        events.append(event)
    return events


def spans_of(body: bytes, media_type: str) -> Iterator[Span]:
    """The spans of an export request in either encoding."""
    if media_type == PROTOBUF:
        return _proto_spans(body)
    if media_type == JSON:
        return _json_spans(decode_json(body, "an OTLP ExportTraceServiceRequest", MAX_BODY_BYTES))
    raise UnsupportedMediaType(f"Invalid 'Content-Type': send {PROTOBUF} or {JSON}")


@dataclass
class ExportOutcome:
    """What an export came to: spans counted, spans rejected and why (the first reason)."""

    counted: int = 0
    rejected: int = 0
    error_message: str = ""

    def reject(self, span: Span, reason: str) -> None:
        self.rejected += 1
        self.error_message = self.error_message or f"span {span.span_id[:32] or '?'}: {reason}"


def ingest_traces(tenant: str, body: bytes, media_type: str) -> ExportOutcome:
    """Store the usage of every span that has some; reject (and report) only the spans that cannot count."""
    now, outcome, events, owners = now_ms(), ExportOutcome(), [], []
    for span in spans_of(body, media_type):
        try:
            usage = _usage(span)
            if usage is None or not usage.parts():
                continue
            if outcome.counted >= MAX_USAGE_SPANS:
                outcome.reject(span, f"at most {MAX_USAGE_SPANS} spans with usage per request; send smaller batches")
                continue
            made = _span_events(span, usage, now)
        except ValueError as invalid:
            outcome.reject(span, str(invalid))
            continue
        outcome.counted += 1
        events += made
        owners += [span] * len(made)
    if events:
        statuses = ingest(tenant, events).results
        conflicted = {
            id(span): span for span, result in zip(owners, statuses, strict=True) if result["status"] == "conflict"
        }
        for span in conflicted.values():
            outcome.counted -= 1
            outcome.reject(span, "its id is stored with a different body")
    return outcome


def response_body(outcome: ExportOutcome, media_type: str) -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's encoding; ``partial_success`` only when rejecting."""
    if media_type == PROTOBUF:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTracePartialSuccess,
            ExportTraceServiceResponse,
        )

        response = ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=outcome.rejected, error_message=outcome.error_message)
            )
        return response.SerializeToString()
    if not outcome.rejected:
        return b"{}"
    partial = {"rejectedSpans": str(outcome.rejected), "errorMessage": outcome.error_message}
    return json.dumps({"partialSuccess": partial}).encode()
