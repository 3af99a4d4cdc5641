"""The local runner's emulation of Lambda event source mappings and of API Gateway."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from local.gateway import Gateway
from local.lambda_runtime import handler_of
from local.streams import StreamMapping, matches
from local.template import Function
from meter.core.config import get_settings
from meter.dal import dynamo
from tests.conftest import STACK
from tests.helpers import call

RECORDER = Function(
    "RecorderFunction", Path(__file__).parent.parent / "fixtures" / "recorder", "app.lambda_handler", {}, {}
)


@pytest.mark.parametrize(
    ("pattern", "record", "expected"),
    [
        ({"eventName": ["INSERT"]}, {"eventName": "INSERT"}, True),
        ({"eventName": ["INSERT"]}, {"eventName": "MODIFY"}, False),
        (
            {"dynamodb": {"NewImage": {"type": {"S": [{"prefix": "tokens"}]}}}},
            {"dynamodb": {"NewImage": {"type": {"S": "tokens.input"}}}},
            True,
        ),
        ({"eventName": [{"anything-but": ["REMOVE"]}]}, {"eventName": "MODIFY"}, True),
        ({"dynamodb": {"OldImage": [{"exists": False}]}}, {"dynamodb": {}}, True),
    ],
)
def test_filter_patterns(pattern, record, expected):
    assert matches(pattern, record) is expected


@pytest.fixture
def recorder(aws):
    module = handler_of(RECORDER).__globals__
    module["batches"].clear(), module["poison"].clear(), module["partial"].clear(), module["windows"].clear()
    return module


def put(*ids: str) -> None:
    for event_id in ids:
        dynamo.client().put_item(
            TableName=get_settings().records_table, Item={"pk": {"S": f"t#{event_id}"}, "id": {"S": event_id}}
        )


def mapping(dead: list, clock=None, **overrides) -> StreamMapping:
    """The template's stream mapping; without a window and with bisect unless ``overrides`` say else."""
    plain = {"tumbling_seconds": 0, "bisect_on_error": True, "report_item_failures": True}
    source = dataclasses.replace(STACK.stream_source_of("AggregateStreamFunction"), **{**plain, **overrides})
    extra = {"clock": clock} if clock else {}
    return StreamMapping(source, RECORDER, get_settings().records_table, dead.append, retry_delay=0, **extra)


def test_a_tumbling_window_hands_state_along_and_ends_with_a_final_invocation(recorder):
    put(*[f"e{i}" for i in range(5)])
    stream = mapping([], batch_size=2, tumbling_seconds=60, clock=lambda: 0.0)
    stream.drain(close_windows=False)  # the window is still open: no final invocation yet
    assert [w["ids"] for w in recorder["windows"]] == [["e0", "e1"], ["e2", "e3"], ["e4"]]
    assert [w["state"] for w in recorder["windows"]] == [{}, {"ids": ["e0", "e1"]}, {"ids": ["e0", "e1", "e2", "e3"]}]
    assert not any(w["isFinalInvokeForWindow"] for w in recorder["windows"])
    shards = {w["shardId"] for w in recorder["windows"]}
    assert len(shards) == 1 and all(shards)

    stream.close_windows()  # the clock passes the window's end
    final = recorder["windows"][-1]
    assert (
        final["isFinalInvokeForWindow"] and final["ids"] == [] and final["state"]["ids"] == [f"e{i}" for i in range(5)]
    )
    window = final["window"]
    assert window["start"] < window["end"]


def test_a_backlog_of_an_ended_window_is_read_page_by_page_into_one_window(recorder):
    put(*[f"e{i}" for i in range(5)])
    stream = mapping([], batch_size=2, tumbling_seconds=60, clock=lambda: 10.0**10)  # long past its end
    stream.read_limit = 2  # the backlog takes several polls
    stream.drain(close_windows=False)
    finals = [w for w in recorder["windows"] if w["isFinalInvokeForWindow"]]
    assert len(finals) == 1 and finals[0]["state"]["ids"] == [f"e{i}" for i in range(5)]


def test_a_window_that_keeps_failing_goes_to_the_failure_queue_whole(recorder):
    put("a", "b", "boom", "c")
    recorder["poison"].add("boom")
    dead: list = []
    mapping(dead, batch_size=2, tumbling_seconds=60, max_retries=2).drain()
    (failure,) = dead
    info = failure["DDBStreamBatchInfo"]
    assert int(info["startSequenceNumber"]) < int(info["endSequenceNumber"])  # from the window's first record
    assert recorder["windows"][-1]["state"] == {}  # the next invocation starts the window afresh


def test_batches_follow_the_batch_size(recorder):
    put(*[f"e{i}" for i in range(7)])
    mapping([], batch_size=3).drain()
    assert [len(b) for b in recorder["batches"]] == [3, 3, 1]


def test_a_poison_record_is_bisected_out_and_dead_lettered_without_losing_others(recorder):
    put("a", "b", "boom", "c")
    recorder["poison"].add("boom")
    dead: list = []
    mapping(dead, batch_size=4, max_retries=3).drain()
    delivered_ok = {i for b in recorder["batches"] if "boom" not in b for i in b}
    assert delivered_ok == {"a", "b", "c"}
    assert len(dead) == 1 and dead[0]["DDBStreamBatchInfo"]["batchSize"] == 1


def test_partial_failure_resumes_from_the_first_failed_record(recorder):
    put("a", "b", "c", "d")
    recorder["partial"].add("b")
    mapping([], batch_size=4).drain()
    assert recorder["batches"] == [["a", "b", "c", "d"], ["b", "c", "d"]]


def test_a_handler_crash_is_a_500_json_and_the_gateway_keeps_serving(gateway, tokens, monkeypatch):
    route = next(r for r in STACK.routes() if r.path.endswith("{identifier}/dates"))
    original = gateway.functions[route.function]
    monkeypatch.setitem(gateway.functions, route.function, dataclasses.replace(original, handler="missing.handler"))
    crashed = call(gateway, "GET", "/api/v1/consumption/identifier/x/dates", tokens["acme"])
    assert crashed.status == 500 and crashed.json() == {"message": "Internal Server Error"}
    monkeypatch.setitem(gateway.functions, route.function, original)
    assert call(gateway, "GET", "/api/v1/consumption/identifier/x/dates", tokens["acme"]).status == 404


def test_unexpected_errors_inside_a_handler_are_500_with_our_body(gateway, tokens, monkeypatch):
    from meter.api import agentsgt

    monkeypatch.setattr(agentsgt, "daily_totals", lambda *a, **k: 1 / 0)
    response = call(gateway, "GET", "/api/v1/consumption/identifier/x/dates", tokens["acme"])
    assert (response.status, response.json()) == (500, {"error": "Internal server error"})


def test_gateway_is_built_from_the_template_alone():
    gateway = Gateway(STACK)
    assert {(r.method, r.path) for r in gateway.routes} == {(r.method, r.path) for r in STACK.routes()}


# -- schedules, timeouts and memory ------------------------------------------------------------
def test_the_local_stack_runs_the_templates_schedules():
    from datetime import UTC, datetime

    from local.schedules import next_fire

    assert STACK.schedules() == [("ReconcileFunction", "cron(15 * * * ? *)")]
    at = datetime(2026, 11, 23, 13, 20, tzinfo=UTC)
    assert next_fire("cron(15 * * * ? *)", at) == datetime(2026, 11, 23, 14, 15, tzinfo=UTC)
    assert next_fire("cron(0 3 ? * MON *)", at) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert next_fire("rate(5 minutes)", at) == datetime(2026, 11, 23, 13, 25, tzinfo=UTC)


def test_a_scheduled_reconcile_fires_against_the_tables(tokens):
    from local.schedules import Schedule
    from meter.dal import store

    ((name, expression),) = STACK.schedules()
    report = Schedule(STACK.functions()[name], expression).fire()
    assert report is not None and report["failed"] == 0
    assert store.control().reconcile_checkpoint() is not None  # it ran and moved its checkpoint


def test_functions_run_with_their_templates_timeout_and_memory(tmp_path):
    from local.lambda_runtime import FunctionTimedOut, invoke

    aggregator = STACK.functions()["AggregateStreamFunction"]
    assert (aggregator.timeout_seconds, aggregator.memory_mb) == (120, 1024)
    assert STACK.functions()["UsageListFunction"].timeout_seconds == 15  # from Globals
    (tmp_path / "app.py").write_text(
        "import time\n"
        "def handler(event, context):\n"
        "    time.sleep(event['sleep'])\n"
        "    return context.memory_limit_in_mb, context.get_remaining_time_in_millis()\n"
    )
    slow = dataclasses.replace(
        aggregator, logical_id="Slow", code_dir=tmp_path, handler="app.handler", timeout_seconds=1
    )
    memory, remaining = invoke(slow, {"sleep": 0})
    assert memory == 1024 and 0 < remaining <= 1000
    with pytest.raises(FunctionTimedOut, match="timed out after 1 seconds"):
        invoke(slow, {"sleep": 1.5})
