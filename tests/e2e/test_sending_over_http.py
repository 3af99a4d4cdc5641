"""The sending side against the local stack over real HTTP: our client, the ``openmeter`` SDK,
LiteLLM's built-in OpenMeter callback, and the OpenTelemetry SDK's OTLP/HTTP exporter, each with
only its endpoint and key changed. Totals are read back through the native query API."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from agentmeter import Meter

from tests.e2e.test_load import _records
from tests.e2e.test_local_stack import eventually, headers


def tokens_by(stack, token: str, *group: str) -> dict[tuple, int]:
    """Tokens counted so far per value of ``group`` (the native query, today and yesterday, UTC)."""
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    query = [("from", since), ("measure", "tokens"), *[("groupBy", g) for g in group]]
    answer = requests.get(f"{stack.base_url}/v1/usage/query", params=query, headers=headers(token), timeout=10)
    assert answer.status_code == 200, answer.text
    return {tuple(row["groupBy"].get(g) for g in group): row["value"] for row in answer.json()["data"]}


@pytest.fixture
def tenant(stack) -> str:
    return f"s{uuid.uuid4().hex[:8]}"


@pytest.fixture
def token(stack, tenant) -> str:
    return stack.key(tenant)


def models_stored(stack, tenant: str) -> dict[str, str]:
    """Each stored record's model (the native query groups models by agent; these events name none)."""
    return {record.id: record.relations.get("model") for record in _records(stack.client("dynamodb"), tenant)}


def test_the_client_delivers_every_event_once_and_the_totals_match(stack, token):
    meter, at = Meter(stack.base_url, token, batch_size=40), datetime.now(UTC) - timedelta(minutes=1)
    for _ in range(2):  # everything twice: the second time, each one a duplicate
        for n in range(120):
            meter.track("tokens.input", 10, identifier=f"user-{n % 3}", model="gpt-4o", id=f"c-{n}", timestamp=at)
        assert meter.flush(timeout=30)
    meter.close(timeout=30)
    assert meter.stats.duplicates == 120
    assert meter.stats.delivered == 240 and meter.stats.failed == meter.stats.rejected == 0
    expected = {(f"user-{i}",): 400 for i in range(3)}
    assert eventually(lambda: tokens_by(stack, token, "identifier") == expected), tokens_by(stack, token, "identifier")


def test_processes_exiting_at_once_without_flush_lose_nothing(stack, token):
    """30 at once here; ``make bench`` counts 100."""
    script = textwrap.dedent(
        """
        import sys
        from agentmeter import Meter
        meter = Meter(sys.argv[1], sys.argv[2], flush_interval=60)
        for n in range(3):
            meter.track("tokens.output", 1, identifier="exiting", id=f"{sys.argv[3]}-{n}")
        """
    )
    processes = [subprocess.Popen([sys.executable, "-c", script, stack.base_url, token, f"p{i}"]) for i in range(30)]
    assert [p.wait(timeout=120) for p in processes] == [0] * 30
    assert eventually(lambda: tokens_by(stack, token, "identifier") == {("exiting",): 90}, timeout=30)


def test_the_openmeter_sdk_ingests_by_changing_only_endpoint_and_key(stack, tenant, token):
    from openmeter import Client

    client = Client(endpoint=stack.base_url, token=token)
    now = datetime.now(UTC)
    event = {"specversion": "1.0", "id": "om-1", "source": "my-app", "type": "prompt", "subject": "customer-1",
             "time": now.isoformat(), "data": {"tokens": 123, "model": "gpt-4o"}}  # fmt: skip
    client.events.ingest_event(event)
    client.events.ingest_events(
        [{**event, "id": "om-2"}, {**event, "id": "om-3", "data": {"tokens": 7, "model": "mini"}}]
    )
    client.events.ingest_event(event)  # a resend: still 204, counted once
    assert eventually(lambda: tokens_by(stack, token, "identifier") == {("customer-1",): 253})
    assert sorted(models_stored(stack, tenant).values()) == ["gpt-4o", "gpt-4o", "mini"]


def test_litellms_openmeter_callback_counts_input_and_output_of_its_user_and_model(stack, tenant, token):
    script = textwrap.dedent(
        """
        import litellm, time
        litellm.callbacks = ["openmeter"]
        answer = litellm.completion(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                    mock_response="hello", user="ana@example.com")
        time.sleep(2)  # the callback posts from LiteLLM's logging thread
        print(answer.usage.prompt_tokens, answer.usage.completion_tokens)
        """
    )
    env = {**os.environ, "OPENMETER_API_ENDPOINT": stack.base_url, "OPENMETER_API_KEY": token,
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    prompt, completion = map(int, done.stdout.split())
    user = "ana@example.com"
    expected = {("tokens.input", user): prompt, ("tokens.output", user): completion}
    assert eventually(lambda: tokens_by(stack, token, "type", "identifier") == expected), done.stderr[-2000:]
    assert set(models_stored(stack, tenant).values()) == {"gpt-4o"}


def test_the_opentelemetry_sdks_otlp_exporter_counts_genai_spans_once(stack, token, monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    # configured as users configure it: the exporter's own environment variables
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", stack.base_url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{token}")
    exporter = OTLPSpanExporter()
    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agents", "enduser.id": "ana"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_agent planner"), tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attributes({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 900,
                             "gen_ai.usage.cache_read.input_tokens": 400, "gen_ai.usage.output_tokens": 100,
                             "gen_ai.agent.id": "planner"})  # fmt: skip
    provider.shutdown()
    again = OTLPSpanExporter()
    assert again.export(kept.get_finished_spans()).name == "SUCCESS"  # exported twice: counted once
    expected = {("ana", "planner"): 1000}
    assert eventually(lambda: tokens_by(stack, token, "identifier", "agentId") == expected)
