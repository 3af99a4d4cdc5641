"""The Python client (``agentmeter``): batching, retries that keep ids, per-event results, a bounded
queue with explicit policies, and nothing lost at exit or fork. Against ``MeterDouble`` (scripted
failures); ``tests/e2e/test_sending_over_http.py`` runs it against the real stack."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from agentmeter import AsyncMeter, Meter, QueueFull, SqsTransport
from agentmeter.transport import DELIVERED, Outcome

from tests.integration.test_queue_ingest import queue, stored_ids  # noqa: F401  (the ingest queue fixture)
from tests.meter_double import DROP, MeterDouble

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "flush_interval": 0.05}


@pytest.fixture
def double() -> Iterator[MeterDouble]:
    server = MeterDouble()
    yield server
    server.close()


def sent_ids(double: MeterDouble) -> list[str]:
    return [i for request in double.requests for i in request]


def test_events_are_batched_gzipped_and_each_keeps_the_id_fixed_at_track(double):
    meter = Meter(double.url, "k", max_batch_events=50, **FAST)
    ids = [meter.track("tokens.input", n, identifier="ana", model="gpt-4o") for n in range(250)]
    assert meter.flush(timeout=10)
    assert set(double.stored) == set(ids) and len(sent_ids(double)) == 250
    assert max(len(request) for request in double.requests) == 50
    assert set(double.encodings) == {"gzip"}
    assert {uuid.UUID(i).version for i in ids} == {7}
    assert (meter.stats.delivered, meter.stats.queued, meter.stats.failed) == (250, 0, 0)
    meter.close()


def wait_for(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_batch_goes_at_batch_size_or_after_the_interval_whichever_comes_first(double):
    meter = Meter(double.url, "k", batch_size=100, flush_interval=60)
    for _ in range(99):
        meter.track("message", 1)
    time.sleep(0.2)
    assert double.requests == []
    meter.track("message", 1)
    assert wait_for(lambda: len(double.stored) == 100)
    timed = Meter(double.url, "k", batch_size=100, flush_interval=0.1)
    timed.track("message", 1, id="lonely")
    assert wait_for(lambda: "lonely" in double.stored)


def test_retries_on_network_errors_429_and_5xx_resend_the_same_ids_until_delivered(double):
    double.script.extend([500, DROP, (429, {"Retry-After": "0.05"}, {"error": "slow down"}), 503])
    meter = Meter(double.url, "k", **FAST)
    ids = [meter.track("message", 1, id=f"m-{n}") for n in range(5)]
    assert meter.flush(timeout=10)
    assert len(double.requests) == 5 and all(request == ids for request in double.requests)
    assert (meter.stats.delivered, meter.stats.duplicates, meter.stats.failed) == (5, 0, 0)


def test_a_resend_after_a_lost_answer_is_a_duplicate_and_counts_as_delivered(double):
    meter = Meter(double.url, "k", **FAST)
    meter.track("message", 1, id="once", timestamp="2026-12-01T00:00:00Z")
    meter.flush(timeout=10)
    meter.track("message", 1, id="once", timestamp="2026-12-01T00:00:00Z")
    meter.flush(timeout=10)
    assert (meter.stats.delivered, meter.stats.duplicates) == (2, 1) and list(double.stored) == ["once"]


def test_a_400_rejects_only_the_events_it_names_and_the_rest_are_resent(double):
    details = [{"index": 1, "id": "b", "field": "model", "reason": "too long"}]
    problem = {"error": "1 of 3 events is invalid", "details": details}
    double.script.append((400, {}, problem))
    errors: list[tuple[str, str]] = []
    meter = Meter(double.url, "k", on_error=lambda event, reason: errors.append((event["id"], reason)), **FAST)
    for name in "abc":
        meter.track("message", 1, id=name)
    assert meter.flush(timeout=10)
    assert errors == [("b", "invalid field 'model': too long")]
    assert double.requests == [["a", "b", "c"], ["a", "c"]] and set(double.stored) == {"a", "c"}
    assert (meter.stats.delivered, meter.stats.rejected) == (2, 1)


def test_conflicts_and_other_4xx_are_reported_per_event_and_never_retried(double):
    double.stored["x"] = "another body"
    errors: list[tuple[str, str]] = []
    meter = Meter(double.url, "k", on_error=lambda event, reason: errors.append((event["id"], reason)), **FAST)
    meter.track("message", 1, id="x")
    meter.track("message", 1, id="y")
    assert meter.flush(timeout=10)
    assert [e[0] for e in errors] == ["x"] and "conflict" in errors[0][1]
    double.script.append((401, {}, {"error": "Invalid or missing API key"}))
    meter.track("message", 1, id="z")
    meter.flush(timeout=10)
    assert errors[-1] == ("z", "HTTP 401: Invalid or missing API key")
    assert len(double.requests) == 2 and meter.stats.rejected == 2


def test_a_batch_over_the_limit_is_halved_until_it_fits(double):
    double.max_events = 40
    meter = Meter(double.url, "k", batch_size=500, max_batch_events=500, **FAST)
    ids = [meter.track("message", 1) for _ in range(150)]
    assert meter.flush(timeout=10)
    assert set(double.stored) == set(ids) and meter.stats.delivered == 150


def test_giving_up_after_the_retries_is_reported_never_silent(double):
    double.script.extend([503] * 10)
    errors: list[str] = []
    meter = Meter(double.url, "k", max_retries=2, on_error=lambda event, reason: errors.append(reason), **FAST)
    meter.track("message", 1)
    assert meter.flush(timeout=10)
    assert meter.stats.failed == 1 and errors[0].startswith("gave up after 3 attempts: HTTP 503")


class StalledTransport:
    """Never answers until released: the queue fills behind it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[str] = []

    def send(self, events):
        self.release.wait(30)
        self.sent += [e["id"] for e in events]
        return [Outcome(DELIVERED) for _ in events]


@pytest.mark.parametrize("policy", ["drop", "raise", "block"])
def test_a_full_queue_follows_its_policy_and_counts_what_it_drops(policy):
    transport, dropped = StalledTransport(), []
    meter = Meter(transport=transport, max_queue=3, batch_size=1, on_full=policy, block_timeout=0.05,
                  on_drop=lambda event, reason: dropped.append(reason), flush_interval=0.01)  # fmt: skip
    meter.track("message", 1)  # taken by the sender, which stalls
    while meter.stats.queued:
        pass
    for _ in range(3):
        meter.track("message", 1)
    if policy == "raise":
        with pytest.raises(QueueFull):
            meter.track("message", 1)
        assert meter.stats.dropped == 0 and meter.stats.tracked == 4
    else:
        assert meter.track("message", 1)
        assert meter.stats.dropped == 1 and dropped == ["queue full (max_queue)"]
    transport.release.set()
    assert meter.flush(timeout=10) and len(transport.sent) == 4


def test_a_blocked_producer_goes_on_when_room_is_made():
    transport = StalledTransport()
    meter = Meter(
        transport=transport, max_queue=2, batch_size=1, on_full="block", block_timeout=10, flush_interval=0.01
    )
    meter.track("message", 1)
    while meter.stats.queued:
        pass
    meter.track("message", 1)
    meter.track("message", 1)
    threading.Timer(0.1, transport.release.set).start()
    meter.track("message", 1)  # waits for the sender to take a batch
    assert meter.flush(timeout=10) and len(transport.sent) == 4 and meter.stats.dropped == 0


def test_flush_after_sends_before_the_lambda_handler_returns(double):
    meter = Meter(double.url, "k", flush_interval=60)

    @meter.flush_after
    def handler(event, context):
        meter.track("message", 1, id=event["id"])
        return "ok"

    assert handler({"id": "lambda-1"}, None) == "ok"
    assert "lambda-1" in double.stored  # before anything else ran


def test_async_meter_has_the_same_verbs(double):
    async def main() -> list[str]:
        async with AsyncMeter(double.url, "k", **FAST) as meter:
            ids = [await meter.track("tokens.output", 7, agent_id="bot") for _ in range(3)]
            assert await meter.flush(timeout=10)
        return ids

    ids = asyncio.run(main())
    assert set(double.stored) == set(ids)


SCRIPT = """
import os, sys
from agentmeter import Meter
meter = Meter({url!r}, "k", flush_interval=60, backoff_base=0.01)
{body}
"""


def run_script(body: str, url: str) -> subprocess.CompletedProcess:
    code = SCRIPT.format(url=url, body=textwrap.dedent(body))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)


def test_a_process_that_exits_without_flushing_loses_nothing_even_through_failures(double):
    double.script.extend([503, DROP])
    run_script("for n in range(300): meter.track('message', 1, id=f'exit-{n}')", double.url)
    assert set(double.stored) == {f"exit-{n}" for n in range(300)}


def test_a_forked_child_sends_its_own_events_and_never_the_parents_again(double):
    run_script(
        """
        for n in range(5):
            meter.track("message", 1, id=f"parent-{n}")
        pid = os.fork()
        if pid == 0:
            for n in range(5):
                meter.track("message", 1, id=f"child-{n}")
            sys.exit(0)  # as a gunicorn worker ends: the exit hook runs in the child
        os.waitpid(pid, 0)
        """,
        double.url,
    )
    expected = {f"{who}-{n}" for who in ("parent", "child") for n in range(5)}
    assert set(double.stored) == expected and sorted(sent_ids(double)) == sorted(expected)


def test_the_sqs_transport_sends_batches_the_ingest_queue_stores_once(queue):  # noqa: F811
    send, drain, _ = queue
    meter = Meter(transport=SqsTransport(send.urls["IngestQueue"], "acme", client=boto3.client("sqs")), **FAST)
    ids = [meter.track("message", 1, identifier="ana") for _ in range(25)]
    assert meter.flush(timeout=10)
    drain()
    assert stored_ids() == {f"acme#{i}" for i in ids}


def test_a_request_never_passes_max_batch_bytes(double):
    meter = Meter(double.url, "k", max_batch_bytes=2_000, **FAST)
    ids = [meter.track("message", 1, meta={"note": "x" * 200}) for _ in range(40)]
    assert meter.flush(timeout=10)
    assert set(double.stored) == set(ids)
    assert max(len(request) for request in double.requests) <= 2_000 // 250


class BrokenTransport:
    def send(self, events):
        raise RuntimeError("no route to the meter")


def test_a_transport_that_raises_is_retried_then_reported_and_flush_returns():
    errors: list[str] = []
    meter = Meter(
        transport=BrokenTransport(), max_retries=1, on_error=lambda event, reason: errors.append(reason), **FAST
    )
    meter.track("message", 1)
    assert meter.flush(timeout=10)
    assert meter.stats.failed == 1 and errors == ["gave up after 2 attempts: RuntimeError: no route to the meter"]
    with pytest.raises(ValueError, match="meta"):
        meter.track("message", 1, meta={"bad": object()})


def oldest_python() -> str | None:
    """A Python 3.9 on this machine (the client's floor), if there is one."""
    candidates = [*sorted(Path.home().glob(".pyenv/versions/3.9.*/bin/python")), shutil.which("python3.9")]
    for candidate in filter(None, candidates):  # a pyenv shim may be there without selecting 3.9
        if subprocess.run([str(candidate), "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return str(candidate)
    return None


@pytest.mark.skipif(oldest_python() is None, reason="no Python 3.9 here")
def test_the_client_runs_on_python_3_9_from_its_own_directory(double):
    script = SCRIPT.format(url=double.url, body="meter.track('message', 1, id='py39', meta={'v': 1})")
    client_dir = Path(__file__).resolve().parents[2] / "clients" / "python"
    done = subprocess.run([oldest_python(), "-c", script], cwd=client_dir, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "py39" in double.stored
