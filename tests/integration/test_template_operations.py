"""What template.yaml grants and watches: least privilege per function (checked against the calls
each function really makes), alarms for every failure an on-call engineer must hear of, and who
may send to the ingest queue."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from local.lambda_runtime import invoke
from local.template import ROOT
from meter.dal import dynamo
from tests.conftest import STACK
from tests.helpers import sample_event

Grant = tuple[str, str, bool]  # DynamoDB action, table logical id, on an index
FUNCTIONS = sorted(STACK.functions())
TABLES = sorted(k for k, v in STACK.resources.items() if v["Type"] == "AWS::DynamoDB::Table")
INGESTERS = {"IngestEventsFunction", "IngestCloudEventsFunction", "IngestTracesFunction", "IngestQueueFunction"}
# Handlers whose answers can need raw records (the ragged edges of a range, lists, conversations).
# The series and the period snapshot read whole days only; ingestion and aggregation never read.
RECORD_READERS = {
    "IdentifierDatesFunction",
    "UsageQueryFunction",
    "AgentDatesFunction",
    "AgentModelsFunction",
    "OrganizationSummaryFunction",
    "OrganizationAgentsFunction",
    "AgentUsageFunction",
    "UsageListFunction",
    "BotUsageFunction",
    "ConversationUsageFunction",
    "ReconcileFunction",
}
# Who changes alerts, marks firings, or records deliveries.
ALERT_WRITERS = {"CreateAlertFunction", "UpdateAlertFunction", "DeleteAlertFunction", "DeliverAlertsFunction"}
ALERT_WRITERS |= {"AggregateStreamFunction", "ReconcileFunction", "CheckAlertsFunction"}
ALERT_WRITERS |= {"CreateGrantFunction", "VoidGrantFunction", "CreateReservationFunction"}  # balance alerts
# Who changes a tenant's layout: its day cuts (the zones its queries and alerts read local days
# in), its roster's sharding (the aggregator, on a commit with many agents), and the spread of its
# records (ingestion, once a container stores its events fast).
LAYOUT_KEEPERS = {"UsageQueryFunction", "CreateAlertFunction", "AggregateStreamFunction", *INGESTERS}
VERBS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchGetItem", "Scan", "ConditionCheckItem"}


def _table_of(resource: dict) -> tuple[str, bool]:
    if "Fn::GetAtt" in resource:
        return resource["Fn::GetAtt"][0], False
    match = re.fullmatch(r"\$\{(\w+)\.Arn\}/index/\*", resource["Fn::Sub"])
    assert match, resource
    return match.group(1), True


def _policies(logical_id: str) -> list[dict]:
    """A function's policies, each managed policy it references (``!Ref``) read as its document."""
    policies = STACK.resources[logical_id]["Properties"].get("Policies", [])
    return [STACK.resources[p["Ref"]]["Properties"]["PolicyDocument"] if "Ref" in p else p for p in policies]


def granted(logical_id: str) -> set[Grant]:
    """The DynamoDB actions a function's policies allow, per table (and whether on its indexes)."""
    found = set()
    for policy in _policies(logical_id):
        for statement in policy.get("Statement", []):
            assert statement["Effect"] == "Allow"
            for resource in statement["Resource"]:
                table, index = _table_of(resource)
                found |= {(action.removeprefix("dynamodb:"), table, index) for action in statement["Action"]}
    return found


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_no_function_holds_a_policy_broader_than_its_use(logical_id):
    templates = {name for policy in _policies(logical_id) for name in policy if name not in ("Statement", "Version")}
    assert templates <= {"SQSSendMessagePolicy", "EventBridgePutEventsPolicy"}, (
        "SAM's DynamoDB templates grant too much"
    )
    for action, table, index in granted(logical_id):
        assert action in VERBS and table in TABLES, (action, table)
        if table == "RecordsTable":
            assert ((action, index) == ("Query", True) and logical_id in RECORD_READERS) or (
                (action, index) == ("PutItem", False) and logical_id in INGESTERS
            ), (action, table)
        if table == "AggregatesTable" and action != "Query":
            assert logical_id in {"AggregateStreamFunction", "ReconcileFunction"}, (action, table)
        if table == "AlertsTable" and action not in ("GetItem", "Query"):
            assert logical_id in ALERT_WRITERS, (action, table)
        if table == "TenantsTable":
            assert (
                action == "GetItem"
                or (logical_id, action) == ("ReconcileFunction", "Scan")
                or (action == "UpdateItem" and logical_id in LAYOUT_KEEPERS)
            ), (action, table)
    reads_records = any(table == "RecordsTable" and action == "Query" for action, table, _ in granted(logical_id))
    assert reads_records == (logical_id in RECORD_READERS)


@pytest.fixture
def dynamo_calls(aws) -> Iterator[list[Grant]]:
    """Every DynamoDB call the code makes, as the grant it needs."""
    calls: list[Grant] = []
    logical = {STACK.physical_name(table): table for table in TABLES}

    def record(params, model, **_):
        name = model.name
        if name == "TransactWriteItems":
            for item in params["TransactItems"]:
                ((kind, action),) = item.items()
                calls.append((f"{kind}Item", logical[action["TableName"]], False))  # ConditionCheckItem too
        elif name == "BatchGetItem":
            calls.extend((name, logical[table], False) for table in params["RequestItems"])
        elif "TableName" in params and name not in ("CreateTable", "DescribeTable"):
            calls.append((name, logical[params["TableName"]], "IndexName" in params))

    dynamo.client().meta.events.register("provide-client-params.dynamodb", record)
    yield calls
    dynamo.client().meta.events.unregister("provide-client-params.dynamodb", record)


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_every_call_a_function_makes_is_granted(tokens, dynamo_calls, logical_id):
    event = sample_event(logical_id)
    dynamo_calls.clear()  # the fixtures' own setup
    invoke(STACK.functions()[logical_id], event)
    assert dynamo_calls or not granted(logical_id), "the sample event touched no table"
    assert set(dynamo_calls) <= granted(logical_id), set(dynamo_calls) - granted(logical_id)


# -- alarms ----------------------------------------------------------------------------------
def _alarms() -> dict[str, dict]:
    return {k: v["Properties"] for k, v in STACK.resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def _resource_named(value: Any) -> str:
    """The logical id a dimension names: ``Ref X``, ``GetAtt X.Attr``, or ``Sub "${X}"`` as the
    alarm loops write it (``Fn::ForEach`` substitutes only inside strings)."""
    if not isinstance(value, dict):
        return value
    if "Fn::Sub" in value:
        return re.fullmatch(r"\$\{(\w+)(\.\w+)?\}", value["Fn::Sub"]).group(1)
    return value.get("Ref") or value["Fn::GetAtt"][0]


def _watched(metric: str, dimension: str) -> set[str]:
    found = set()
    for alarm in _alarms().values():
        if alarm.get("MetricName") == metric:
            found |= {_resource_named(p["Value"]) for p in alarm.get("Dimensions", []) if p["Name"] == dimension}
    return found


def test_every_function_alarms_on_errors_and_throttles():
    assert _watched("Errors", "FunctionName") == set(FUNCTIONS)
    assert _watched("Throttles", "FunctionName") == set(FUNCTIONS)
    assert _watched("IteratorAge", "FunctionName") == {"AggregateStreamFunction", "DeliverAlertsFunction"}


def test_every_dead_letter_and_failure_queue_and_table_alarms():
    queues = {k for k, v in STACK.resources.items() if v["Type"] == "AWS::SQS::Queue"}
    # busy by design; their dead letters alarm (alert checks: a later check, or reconciliation, repeats one)
    work_queues = {"IngestQueue", "AlertDeliveryRetryQueue", "AlertChecksQueue"}
    assert _watched("ApproximateNumberOfMessagesVisible", "QueueName") == queues - work_queues
    assert _watched("ThrottledRequests", "TableName") == set(TABLES)


def test_the_services_own_failure_metrics_alarm_and_each_is_emitted_by_the_code():
    source = "\n".join(
        path.read_text() for path in [*ROOT.glob("shared/meter/**/*.py"), *ROOT.glob("functions/*/app.py")]
    )
    for metric in ("UncountedEvents", "DriftedAggregates", "StreamRecordsFailed", "UnhandledErrors",
                   "ReconcileFailures", "OvercountedAggregates", "IngestMessagesParked",
                   "AlertDeliveriesFailed", "AlertChecksFailed", "AggregateWritesRefused",
                   "RefusedRepairs", "PendingCommitsVoided"):  # fmt: skip
        assert _watched(metric, "service") == {"usage-meter"}, metric
        assert f'"{metric}"' in source, f"{metric} is alarmed on but never emitted"


def test_alarm_thresholds_are_parameters_and_notify_the_optional_topic():
    parameters = set(STACK.template["Parameters"])
    for name, alarm in _alarms().items():
        threshold = alarm["Threshold"]
        assert ("Ref" in threshold and threshold["Ref"] in parameters) or "Fn::Sub" in threshold, name
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }
    rate = _alarms()["Api5xxRateAlarm"]
    assert {m.get("MetricStat", {}).get("Metric", {}).get("MetricName") for m in rate["Metrics"]} >= {"5xx", "Count"}


def test_the_dashboard_shows_what_on_call_looks_at_first():
    body = STACK.resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    titles = [widget["properties"]["title"] for widget in json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]]
    for topic in ("Ingest rate", "Aggregation lag", "Errors", "queue depth", "Drift", "Read latency"):
        assert any(topic in title for title in titles), topic


# -- who may do what -------------------------------------------------------------------------
def test_only_the_listed_producers_may_send_to_the_ingest_queue():
    (policy,) = [v["Properties"] for v in STACK.resources.values() if v["Type"] == "AWS::SQS::QueuePolicy"]
    assert policy["Queues"] == [{"Ref": "IngestQueue"}]
    deny = next(s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "OnlyListedProducersSend")
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sqs:SendMessage")
    assert deny["Condition"] == {"StringNotEquals": {"aws:PrincipalArn": {"Ref": "IngestProducerArns"}}}
    assert STACK.template["Parameters"]["IngestProducerArns"]["Default"] == "none"  # nobody until listed


def test_the_aggregator_has_reserved_concurrency_and_the_api_a_throttle_and_secret_free_access_logs():
    aggregator = STACK.resources["AggregateStreamFunction"]["Properties"]
    assert aggregator["ReservedConcurrentExecutions"] == {"Ref": "AggregatorReservedConcurrency"}
    api = STACK.resources["HttpApi"]["Properties"]
    assert set(api["DefaultRouteSettings"]) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    log_format = api["AccessLogSettings"]["Format"].lower()
    assert "requestid" in log_format and not any(s in log_format for s in ("header", "authorization", "querystring"))


def test_reconciliation_failures_have_a_destination_and_runs_never_overlap():
    reconcile = STACK.resources["ReconcileFunction"]["Properties"]
    assert reconcile["ReservedConcurrentExecutions"] == 1
    destination = reconcile["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["ReconcileFailuresQueue", "Arn"]}
    schedule = reconcile["Events"]["Hourly"]["Properties"]
    assert schedule["DeadLetterConfig"]["Arn"] == destination
