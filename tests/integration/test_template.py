"""template.yaml is valid, complete, and every function has a working sample event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from local.lambda_runtime import invoke
from local.template import ROOT, expand_loops
from tests.conftest import STACK
from tests.helpers import aggregator, sample_event, sample_event_name

SAM = ROOT / ".venv-sam" / "bin" / "sam"


def test_cfn_lint_passes():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(ROOT / "template.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes():
    assert SAM.exists(), "SAM CLI lives in .venv-sam: run `make test`, which installs it"
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run([str(SAM), "validate", "--lint"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_architecture_and_default_stage():
    function_globals = STACK.template["Globals"]["Function"]
    assert (function_globals["Runtime"], function_globals["Architectures"]) == ("python3.11", ["arm64"])
    api = STACK.resources["HttpApi"]["Properties"]
    assert "StageName" not in api  # the $default stage: served from "/"


def test_the_api_has_no_gateway_authorizer_so_handlers_answer_a_missing_key():
    """API Gateway would answer a request without the identity header itself, with its own body."""
    api = STACK.resources["HttpApi"]["Properties"]
    assert "Auth" not in api
    assert not STACK._of_type("AWS::Lambda::Permission")


def test_stream_mapping_is_insert_only_windowed_bounded_and_dead_lettered():
    source = STACK.stream_source_of("AggregateStreamFunction")
    assert [json.loads(f) for f in source.filters] == [{"eventName": ["INSERT"]}]
    assert 0 < source.tumbling_seconds <= 900 and not source.bisect_on_error
    assert 0 <= source.max_retries <= 10 and source.on_failure == "AggregationFailuresQueue"
    events = STACK.functions()["AggregateStreamFunction"].events.values()
    (mapping,) = [event["Properties"] for event in events if event["Type"] == "DynamoDB"]
    assert mapping["ParallelizationFactor"] == 1  # one invocation per shard at a time: exactness rests on it


def test_alert_delivery_receives_only_new_firings_and_dead_letters_what_it_cannot_record():
    source = STACK.stream_source_of("DeliverAlertsFunction")
    assert source.table == "AlertsTable" and source.report_item_failures and 0 <= source.max_retries <= 10
    (pattern,) = [json.loads(f) for f in source.filters]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "TRIGGER#"}]}}}}
    assert source.on_failure == "AlertDeliveryDeadLetterQueue"
    (retries,) = [q for q in STACK.queue_sources() if q.function == "DeliverAlertsFunction"]
    assert retries.queue == "AlertDeliveryRetryQueue"


def test_reconciliation_waits_past_the_record_age_the_stream_mapping_gives_up_at():
    from meter.counting.aggregation import HORIZON_MS, MAX_WINDOW_MS, STREAM_MAX_AGE_MS, WRITE_MARGIN_MS

    props = STACK.resources["AggregateStreamFunction"]["Properties"]["Events"]["Records"]["Properties"]
    assert props["MaximumRecordAgeInSeconds"] * 1000 == STREAM_MAX_AGE_MS
    assert STACK.template["Parameters"]["AggregationWindowSeconds"]["MaxValue"] * 1000 == MAX_WINDOW_MS
    held = MAX_WINDOW_MS + props["MaximumBatchingWindowInSeconds"] * 1000
    # A record is read before its maximum age and held by its window; its commit's writers stop
    # WRITE_MARGIN_MS before reconciliation may recount its buckets: that leaves them minutes, at worst.
    assert HORIZON_MS - WRITE_MARGIN_MS - STREAM_MAX_AGE_MS - held >= 6 * 60_000


def test_reconciliation_runs_hourly_on_a_schedule():
    events = STACK.functions()["ReconcileFunction"].events
    assert [e["Properties"]["ScheduleExpression"] for e in events.values() if e["Type"] == "ScheduleV2"] == [
        "cron(15 * * * ? *)"
    ]


def test_ingest_queue_has_a_dead_letter_queue():
    redrive = STACK.resources["IngestQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}


def test_one_handler_and_one_sample_event_per_function():
    for logical_id, function in STACK.functions().items():
        assert (function.code_dir / "app.py").exists(), logical_id
        assert (ROOT / "events" / f"{sample_event_name(logical_id)}.json").exists(), logical_id


# What each API sample answers once the data it names exists (``sample_data``): every route's success.
SAMPLE_STATUS = {"CreateAlertFunction": 201, "CreateGrantFunction": 201, "CreateReservationFunction": 201}
SAMPLE_STATUS["IngestCloudEventsFunction"] = 204  # OpenMeter answers an ingest with no content
SAMPLE_ALERT = "al_0123456789abcdef0123"  # the alert the alert samples name
SAMPLE_DAY = datetime(2026, 11, 10, 12, tzinfo=UTC)  # inside every sample's range


@pytest.fixture
def sample_data(tokens, queues):
    """Tenant ``demo`` with what the samples ask about: an alert, a grant and a reservation, and
    usage of user@example.com on agent support-bot, counted (records written as ingestion stores
    them, then aggregated)."""
    from meter.core.timerange import now_ms, to_ms
    from meter.dal import keys, store
    from meter.dal.records import UsageRecord
    from meter.dal.tenants import placed_record_item
    from tools.admin import create_key

    create_key("demo", ["read"])
    at = to_ms(SAMPLE_DAY)
    relations = {"identifier": "user@example.com", "agentId": "support-bot", "model": "gpt-4o"}
    for n in range(2):  # received now, as ingestion receives them (the aggregator writes by their receipt)
        record = UsageRecord(
            "demo", f"sample-{n}", "tokens.input", 100, at + n, 3, "explicit", now_ms(), "f", relations
        )
        assert store.records().put_record(placed_record_item(record)) is None
    aggregator(STACK).drain()
    grant_sample_credits("demo")
    alert = {"name": "sample", "subject": {}, "measure": "credits", "period": "month", "timeZone": "UTC"}
    store.alerts().put(
        {
            "pk": keys.alerts_pk("demo"),
            "sk": SAMPLE_ALERT,
            **alert,
            "thresholds": [1000],
            "createdAt": at,
            "updatedAt": at,
        }
    )


def grant_sample_credits(tenant: str) -> None:
    """The grant and the reservation the credit samples name."""
    from meter.api.credits import create_grant, create_reservation

    create_grant(tenant, {"id": "gr_sample", "amount": 1000})
    create_reservation(tenant, {"id": "rs_sample", "subjects": [{}], "credits": 10})


@pytest.mark.parametrize("logical_id", sorted(STACK.functions()))
def test_sample_events_run_against_their_handlers(sample_data, logical_id, monkeypatch):
    import ipaddress

    from meter.alerts import webhooks
    from meter.counting.reconcile import ReconcileReport

    # there is no DNS here: the sample's webhook host resolves to a public address, as it would deployed
    monkeypatch.setattr(webhooks, "_resolve", lambda host, port: [ipaddress.ip_address("93.184.215.14")])

    result = invoke(STACK.functions()[logical_id], sample_event(logical_id))
    if "statusCode" in (result or {}):
        assert result["statusCode"] == SAMPLE_STATUS.get(logical_id, 200), result
    elif logical_id == "ReconcileFunction":
        assert result == {name: 0 for name in ReconcileReport.COUNTS}
    elif logical_id == "AggregateStreamFunction":
        assert result == {"state": {}, "batchItemFailures": []}  # the sample is a window's final invocation
    else:
        assert result == {"batchItemFailures": []}


def test_every_path_in_the_template_is_relative_to_the_repo():
    for function in STACK.functions().values():
        assert Path(function.code_dir).is_relative_to(ROOT)


def test_the_local_reader_expands_for_each_loops_as_cloudformation_does():
    fragment = {"${T}Alarm": {"Properties": {"Value": {"Fn::Sub": "${${T}Table}"}, "Text": "${T} is ${T}"}}}
    loop = {"Kept": 1, "Fn::ForEach::Tables": ["T", ["Records", "Alerts"], fragment]}
    assert expand_loops(loop) == {
        "Kept": 1,
        "RecordsAlarm": {"Properties": {"Value": {"Fn::Sub": "${RecordsTable}"}, "Text": "Records is Records"}},
        "AlertsAlarm": {"Properties": {"Value": {"Fn::Sub": "${AlertsTable}"}, "Text": "Alerts is Alerts"}},
    }
