"""The formats people already emit: CloudEvents (OpenMeter's ingest) and OTLP GenAI spans, over moto."""

from __future__ import annotations

import gzip
import json
import secrets
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tests.helpers import stored_records
from tools.admin import set_cloudevent_mappings

LITELLM = {
    "specversion": "1.0",
    "type": "litellm_tokens",
    "id": "chatcmpl-1",
    "source": "litellm-proxy",
    "time": "2026-12-01T10:00:00Z",
    "subject": "ana@example.com",
    "data": {"model": "gpt-4o", "cost": 0.004, "prompt_tokens": 1200, "completion_tokens": 350, "total_tokens": 1550},
}


def post(gateway, path, token, body: bytes, content_type: str, **headers):
    return gateway.handle(
        "POST", path, "", {"Authorization": f"Bearer {token}", "Content-Type": content_type, **headers}, body
    )


def counts_by_type(tenant: str = "acme") -> dict[str, int]:
    found: dict[str, int] = {}
    for record in stored_records():
        if record.tenant == tenant:
            found[record.type] = found.get(record.type, 0) + record.count
    return found


@pytest.fixture(autouse=True)
def recent_times(monkeypatch):
    LITELLM["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))


def test_litellms_openmeter_event_counts_input_and_output_tokens_of_its_user_and_model(gateway, tokens):
    response = post(
        gateway, "/api/v1/events", tokens["acme"], json.dumps(LITELLM).encode(), "application/cloudevents+json"
    )
    assert (response.status, response.body) == (204, b"")
    records = {r.type: r for r in stored_records()}
    assert {t: r.count for t, r in records.items()} == {"tokens.input": 1200, "tokens.output": 350}
    assert {r.relations["identifier"] for r in records.values()} == {"ana@example.com"}
    assert {r.relations["model"] for r in records.values()} == {"gpt-4o"}


def test_a_resent_cloudevent_is_a_duplicate_even_with_a_new_time(gateway, tokens):
    first = json.dumps(LITELLM).encode()
    resent = json.dumps({**LITELLM, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
    for body in (first, resent, first):
        assert post(gateway, "/api/v1/events", tokens["acme"], body, "application/cloudevents+json").status == 204
    assert counts_by_type() == {"tokens.input": 1200, "tokens.output": 350}


def test_the_same_id_from_another_source_is_another_event(gateway, tokens):
    batch = [LITELLM, {**LITELLM, "source": "other-proxy"}]
    response = post(
        gateway, "/api/v1/events", tokens["acme"], json.dumps(batch).encode(), "application/cloudevents-batch+json"
    )
    assert response.status == 204
    assert counts_by_type() == {"tokens.input": 2400, "tokens.output": 700}


def test_plain_json_arrays_gzip_and_generic_events_follow_the_default_mapping(gateway, tokens):
    batch = [
        {
            "specversion": "1.0",
            "type": "message",
            "id": "m1",
            "source": "app",
            "subject": "42",
            "data": {"agent": "bot-1"},
        },
        {
            "specversion": "1.0",
            "type": "api-calls",
            "id": "c1",
            "source": "app",
            "subject": "ana",
            "data": {"value": "7"},
        },
        {"specversion": "1.0", "type": "x", "id": "t1", "source": "app", "subject": "ana", "data": {"tokens": 90}},
    ]
    body = gzip.compress(json.dumps(batch).encode())
    response = post(gateway, "/api/v1/events", tokens["acme"], body, "application/json", **{"Content-Encoding": "gzip"})
    assert response.status == 204
    assert counts_by_type() == {"message": 1, "api-calls": 7, "tokens": 90}
    message = next(r for r in stored_records() if r.type == "message")
    assert message.relations == {"identifier": "42", "agentId": "bot-1"}


def test_a_bad_cloudevent_is_a_400_naming_its_field_and_nothing_is_stored(gateway, tokens):
    bad = {**LITELLM, "id": "chatcmpl-2", "data": {**LITELLM["data"], "completion_tokens": -3}}
    response = post(
        gateway,
        "/api/v1/events",
        tokens["acme"],
        json.dumps([LITELLM, bad]).encode(),
        "application/cloudevents-batch+json",
    )
    assert response.status == 400
    assert response.json()["details"][0] | {"index": 1} == {
        "index": 1,
        "id": "chatcmpl-2",
        "field": "data.completion_tokens",
        "reason": response.json()["details"][0]["reason"],
    }
    assert "data.completion_tokens" in response.json()["error"]
    assert stored_records() == []
    missing = {k: v for k, v in LITELLM.items() if k != "source"}
    response = post(
        gateway, "/api/v1/events", tokens["acme"], json.dumps(missing).encode(), "application/cloudevents+json"
    )
    assert response.status == 400 and response.json()["details"][0]["field"] == "source"
    response = post(gateway, "/api/v1/events", tokens["acme"], b"<xml/>", "application/xml")
    assert response.status == 415 and "Content-Type" in response.json()["error"]


def test_a_tenants_mapping_replaces_the_default_for_its_type_only(gateway, tokens):
    set_cloudevent_mappings(
        "acme",
        {
            "llm_call": {
                "counts": {"tokens.input": "data.usage.in", "message": "data.turns"},
                "fields": {"agentId": "data.bot"},
            }
        },
    )
    event = {"specversion": "1.0", "type": "llm_call", "id": "1", "source": "s", "subject": "ana",
             "data": {"usage": {"in": 10}, "turns": 2, "bot": "b-7"}}  # fmt: skip
    assert (
        post(
            gateway, "/api/v1/events", tokens["acme"], json.dumps(event).encode(), "application/cloudevents+json"
        ).status
        == 204
    )
    assert counts_by_type() == {"tokens.input": 10, "message": 2}
    assert {r.relations.get("agentId") for r in stored_records()} == {"b-7"}
    assert all("identifier" not in r.relations for r in stored_records())  # the mapping names no identifier
    with pytest.raises(Exception, match="counts"):
        set_cloudevent_mappings("acme", {"llm_call": {"fields": {}}})


def test_another_tenant_never_sees_or_blocks_the_same_ids(gateway, tokens):
    body = json.dumps(LITELLM).encode()
    assert post(gateway, "/api/v1/events", tokens["acme"], body, "application/cloudevents+json").status == 204
    assert post(gateway, "/api/v1/events", tokens["globex"], body, "application/cloudevents+json").status == 204
    assert counts_by_type("globex") == {"tokens.input": 1200, "tokens.output": 350}


def _kv(key: str, value) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    return KeyValue(key=key, value=AnyValue(int_value=value))


def _span(attributes: dict, span_id: bytes | None = None) -> ProtoSpan:
    end = time.time_ns() - 10**9
    return ProtoSpan(
        trace_id=secrets.token_bytes(16),
        span_id=span_id or secrets.token_bytes(8),
        name="chat",
        start_time_unix_nano=end - 10**9,
        end_time_unix_nano=end,
        attributes=[_kv(k, v) for k, v in attributes.items()],
    )


def _export(*spans: ProtoSpan, resource: dict | None = None) -> bytes:
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    resource_spans.resource.attributes.extend(_kv(k, v) for k, v in (resource or {}).items())
    return ExportTraceServiceRequest(resource_spans=[resource_spans]).SerializeToString()


CHAT = {
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.cache_read.input_tokens": 600,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.reasoning.output_tokens": 120,
    "gen_ai.agent.id": "planner",
    "gen_ai.conversation.id": "conv-9",
}


def test_genai_spans_become_disjoint_token_events_and_spans_without_usage_are_ignored(gateway, tokens):
    body = _export(_span(CHAT), _span({"http.method": "GET"}), resource={"enduser.id": "ana"})
    response = post(gateway, "/v1/traces", tokens["acme"], body, "application/x-protobuf")
    assert response.status == 200 and response.headers["Content-Type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.body).HasField("partial_success")
    assert counts_by_type() == {
        "tokens.input": 400,
        "tokens.input.cached": 600,
        "tokens.output": 180,
        "tokens.output.reasoning": 120,
    }
    record = stored_records()[0]
    assert record.relations == {"identifier": "ana", "model": "gpt-4o-2024-08-06", "agentId": "planner",
                                "conversationId": "conv-9"}  # fmt: skip


def test_a_reexported_span_counts_once_and_older_names_count_too(gateway, tokens):
    span = _span({"gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 5, "user.id": "bo"})
    for _ in range(2):
        assert post(gateway, "/v1/traces", tokens["acme"], _export(span), "application/x-protobuf").status == 200
    assert counts_by_type() == {"tokens.input": 50, "tokens.output": 5}


def test_a_bad_span_is_rejected_alone_in_partial_success(gateway, tokens):
    bad = _span({**CHAT, "gen_ai.usage.output_tokens": -1})
    old = _span(CHAT)
    old.end_time_unix_nano = time.time_ns() - 90 * 86_400 * 10**9
    body = _export(_span({"gen_ai.usage.input_tokens": 5}), bad, old)
    response = post(gateway, "/v1/traces", tokens["acme"], body, "application/x-protobuf")
    partial = ExportTraceServiceResponse.FromString(response.body).partial_success
    assert response.status == 200 and partial.rejected_spans == 2
    assert "gen_ai.usage.output_tokens" in partial.error_message
    assert counts_by_type() == {"tokens.input": 5}


def test_otlp_json_reads_hex_ids_and_string_integers(gateway, tokens):
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    end = str(time.time_ns() - 10**9)
    payload = {"resourceSpans": [{"resource": {"attributes": [{"key": "user.id", "value": {"stringValue": "ana"}}]},
               "scopeSpans": [{"spans": [{"traceId": trace_id, "spanId": span_id, "endTimeUnixNano": end,
               "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                              {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 3}}]}]}]}]}  # fmt: skip
    body = gzip.compress(json.dumps(payload).encode())
    response = post(gateway, "/v1/traces", tokens["acme"], body, "application/json", **{"Content-Encoding": "gzip"})
    assert (response.status, response.json()) == (200, {})
    assert {r.id for r in stored_records()} == {
        f"otel:{trace_id}:{span_id}/tokens.input",
        f"otel:{trace_id}:{span_id}/tokens.output",
    }
    bad = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "1", "endTimeUnixNano": end,
            "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1"}}]}]}]}]}  # fmt: skip
    response = post(gateway, "/v1/traces", tokens["acme"], json.dumps(bad).encode(), "application/json")
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"


def test_unreadable_bodies_are_400s_and_a_gzip_bomb_a_413(gateway, tokens):
    assert post(gateway, "/v1/traces", tokens["acme"], b"\xff\x00garbage", "application/x-protobuf").status == 400
    assert post(gateway, "/v1/traces", tokens["acme"], b"{}", "text/plain").status == 415
    bomb = gzip.compress(b"[" + b" " * 8_000_000 + b"]")
    response = post(gateway, "/api/v1/events", tokens["acme"], bomb, "application/json", **{"Content-Encoding": "gzip"})
    assert response.status == 413
    response = post(
        gateway, "/api/v1/events", tokens["acme"], b"not gzip", "application/json", **{"Content-Encoding": "gzip"}
    )
    assert response.status == 400 and "gzip" in response.json()["error"]
