"""Alerts through the API (moto): refused input names its field, the status a platform checks
before running an agent, firing exactly once with the event that crossed, local-time periods,
and delivery to EventBridge and to a signed webhook that keeps failing."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import select
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import boto3
import pytest

from local.streams import StreamMapping
from local.webhook_receiver import Receiver
from meter.alerts import delivery, rules, webhooks
from meter.api import alerts as alerts_api
from meter.core.localtime import DAY, MONTH, window_start
from meter.core.timerange import DAY_MS, HOUR_MS, iso, now_ms
from meter.dal import store
from tests.conftest import STACK, reset_caches
from tests.helpers import aggregator, call, clock_at_midday

NOW = now_ms()


def alert(**fields) -> dict:
    return {"name": "budget", "measure": "credits", "period": "day", "thresholds": [10, 20], **fields}


def event(event_id: str, credits: int = 0, ts: int | None = None, **fields) -> dict:
    found = {"id": event_id, "type": "message", "count": 1, "credits": credits, "identifier": "ana", **fields}
    return {**found, "timestamp": iso(ts)} if ts is not None else found


def send(gateway, token, *events) -> None:
    response = call(gateway, "POST", "/v1/events", token, {"events": list(events)})
    assert response.status in (200, 409), response.json()


def count(gateway, token, *events) -> None:
    """Ingest, then let the aggregator count (its windows closed)."""
    send(gateway, token, *events)
    aggregator(STACK).drain()


def create(gateway, token, **fields) -> dict:
    response = call(gateway, "POST", "/v1/alerts", token, alert(**fields))
    assert response.status == 201, response.json()
    return response.json()


def triggers(gateway, token, alert_id: str) -> list[dict]:
    response = call(gateway, "GET", f"/v1/alerts/{alert_id}/triggers", token)
    assert response.status == 200, response.json()
    return response.json()["data"]


def fired(gateway, token, alert_id: str) -> list[tuple[int, str | None]]:
    return [(t["threshold"], t["eventId"]) for t in triggers(gateway, token, alert_id)]


@pytest.fixture
def public_dns(monkeypatch):
    """Host names resolve to one public address (there is no DNS here)."""
    monkeypatch.setattr(webhooks, "_resolve", lambda host, port: [ipaddress.ip_address("93.184.215.14")])


# -- input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"thresholds": [10]}, "name"),
        (alert(measure="dollars"), "measure"),
        (alert(period="week"), "period"),
        (alert(thresholds=[]), "thresholds"),
        (alert(thresholds=list(range(1, 22))), "thresholds"),
        (alert(thresholds=[5, 5]), "thresholds"),
        (alert(thresholds=[0]), "thresholds"),
        (alert(timeZone="Mars/Olympus"), "timeZone"),
        (alert(period="billing_period", timeZone="Europe/Berlin"), "timeZone"),
        (alert(subject={"identifier": "ana", "agentId": "bot"}), "subject"),
        (alert(subject={"team": "x"}), "subject.team"),
        (alert(webhookUrl="http://example.com/hook"), "webhookUrl"),
        (alert(colour="red"), "colour"),
    ],
)
def test_a_bad_alert_is_refused_naming_the_field(gateway, tokens, body, field):
    response = call(gateway, "POST", "/v1/alerts", tokens["acme"], body)
    assert response.status == 400, response.json()
    assert f"'{field}'" in response.json()["error"]


HOSTILE_TARGETS = [
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/",
    "https://[fd00::1]/",
    "https://0xa9fea9fe/",
    "https://2852039166/",
    "https://user:pw@hooks.example.com/",
    "https://[::ffff:127.0.0.1]/",
    "https://0251.0376.0251.0376/",
]


@pytest.mark.parametrize("url", HOSTILE_TARGETS)
def test_webhooks_to_private_or_disguised_addresses_are_refused_on_create_and_change(gateway, tokens, receiver, url):
    response = call(gateway, "POST", "/v1/alerts", tokens["acme"], alert(webhookUrl=url))
    assert response.status == 400 and "'webhookUrl'" in response.json()["error"], response.json()
    made = create(gateway, tokens["acme"])
    response = call(gateway, "PATCH", f"/v1/alerts/{made['id']}", tokens["acme"], {"webhookUrl": url})
    assert response.status == 400 and "'webhookUrl'" in response.json()["error"], response.json()


def test_read_keys_see_the_webhook_host_and_admin_keys_the_url(gateway, tokens, public_dns):
    made = create(gateway, tokens["acme"], webhookUrl="https://hooks.example.com/services/T0/B0/secret-token")
    as_reader = call(gateway, "GET", f"/v1/alerts/{made['id']}", tokens["acme_read"]).json()
    listed = call(gateway, "GET", "/v1/alerts", tokens["acme_read"]).json()["data"]
    assert as_reader["webhookUrl"] is None and as_reader["webhookHost"] == "hooks.example.com"
    assert [(a["webhookUrl"], a["webhookHost"]) for a in listed] == [(None, "hooks.example.com")]
    as_admin = call(gateway, "GET", f"/v1/alerts/{made['id']}", tokens["acme"]).json()
    assert as_admin["webhookUrl"] == "https://hooks.example.com/services/T0/B0/secret-token"


def test_changing_what_an_alert_watches_is_refused_and_unknown_alerts_are_404(gateway, tokens):
    made = create(gateway, tokens["acme"])
    response = call(gateway, "PATCH", f"/v1/alerts/{made['id']}", tokens["acme"], {"measure": "tokens"})
    assert response.status == 400 and "'measure'" in response.json()["error"]
    assert call(gateway, "GET", "/v1/alerts/al_nope", tokens["acme"]).status == 404
    assert call(gateway, "DELETE", "/v1/alerts/al_nope", tokens["acme"]).status == 404


def test_a_tenant_holds_a_limited_number_of_alerts(gateway, tokens, monkeypatch):
    monkeypatch.setattr(alerts_api, "MAX_ALERTS", 2)
    create(gateway, tokens["acme"])
    create(gateway, tokens["acme"])
    response = call(gateway, "POST", "/v1/alerts", tokens["acme"], alert())
    assert response.status == 409 and "at most 2" in response.json()["error"]
    create(gateway, tokens["globex"])  # per tenant


def test_create_read_list_change_and_delete(gateway, tokens, public_dns):
    made = create(gateway, tokens["acme"], subject={"agentId": "bot-1"}, webhookUrl="https://example.com/h")
    assert made["signingSecret"].startswith("whsec_") and made["thresholds"] == [10, 20]
    shown = call(gateway, "GET", f"/v1/alerts/{made['id']}", tokens["acme"]).json()
    assert "signingSecret" not in shown and shown["subject"] == {"agentId": "bot-1", "identifier": None}
    changed = call(
        gateway,
        "PATCH",
        f"/v1/alerts/{made['id']}",
        tokens["acme"],
        {"name": "n", "thresholds": [30], "webhookUrl": None},
    ).json()
    assert (changed["name"], changed["thresholds"], changed["webhookUrl"]) == ("n", [30], None)
    listed = call(gateway, "GET", "/v1/alerts", tokens["acme"]).json()["data"]
    assert [a["id"] for a in listed] == [made["id"]]
    assert call(gateway, "GET", "/v1/alerts", tokens["globex"]).json()["data"] == []
    assert call(gateway, "DELETE", f"/v1/alerts/{made['id']}", tokens["acme"]).json() == {
        "id": made["id"],
        "deleted": True,
    }
    assert call(gateway, "GET", f"/v1/alerts/{made['id']}", tokens["acme"]).status == 404


# -- firing -----------------------------------------------------------------------------------
def test_each_threshold_fires_once_naming_the_event_that_crossed_it(gateway, tokens, monkeypatch):
    now = clock_at_midday(monkeypatch)  # the status is of the current day: the events' day
    token = tokens["acme"]
    watched = create(gateway, token, subject={"identifier": "ana"})
    send(gateway, token, event("e1", 6))  # apart: one request's records reach the stream in any order
    count(gateway, token, event("e2", 6), event("other", 50, identifier="bo"))
    assert fired(gateway, token, watched["id"]) == [(10, "e2")]
    count(gateway, token, event("e2", 6), event("e3", 20), event("e3", 20))  # duplicates count once
    assert fired(gateway, token, watched["id"]) == [(20, "e3"), (10, "e2")]  # newest first
    StreamMapping(*_replay_args()).drain()  # the whole stream again: counted and fired once
    assert fired(gateway, token, watched["id"]) == [(20, "e3"), (10, "e2")]
    status = call(gateway, "GET", f"/v1/alerts/{watched['id']}/status", token).json()
    assert (status["value"], status["crossed"], status["next"]) == (32, [10, 20], None)
    assert status["periodStart"] == iso(now // DAY_MS * DAY_MS).replace("Z", "+00:00")


def _replay_args():
    source = STACK.stream_source_of("AggregateStreamFunction")
    return source, STACK.functions()[source.function], STACK.physical_name(source.table), lambda _: None


def test_one_event_past_several_thresholds_fires_each_once_and_other_subjects_do_not_count(gateway, tokens):
    token = tokens["acme"]
    agent = create(gateway, token, subject={"agentId": "bot-1"}, measure="tokens", thresholds=[1, 2, 3, 100])
    tenant = create(gateway, token, measure="events", thresholds=[2])
    count(gateway, token, event("t1", type="tokens.input", count=5, agentId="bot-1"))
    count(gateway, token, event("m1", agentId="bot-2"))
    assert fired(gateway, token, agent["id"]) == [(3, "t1"), (2, "t1"), (1, "t1")]
    assert fired(gateway, token, tenant["id"]) == [(2, "m1")]
    status = call(gateway, "GET", f"/v1/alerts/{agent['id']}/status", token).json()
    assert (status["value"], status["crossed"], status["next"]) == (5, [1, 2, 3], 100)
    assert call(gateway, "GET", f"/v1/alerts/{agent['id']}/triggers", tokens["globex"]).status == 404


def test_an_alert_made_after_usage_passed_a_threshold_fires_at_once(gateway, tokens):
    token = tokens["acme"]
    count(gateway, token, event("a", 15))
    made = create(gateway, token, thresholds=[10, 20])
    assert fired(gateway, token, made["id"]) == [(10, None)]
    changed = call(gateway, "PATCH", f"/v1/alerts/{made['id']}", token, {"thresholds": [5, 10, 20]})
    assert changed.status == 200
    assert fired(gateway, token, made["id"]) == [(5, None), (10, None)]


def _boundary(size: str, zone: ZoneInfo) -> int:
    """The latest local day or month start at least an hour ago (its events are still accepted)."""
    start = window_start(NOW - HOUR_MS, size, zone)
    return start if NOW - start >= HOUR_MS else window_start(start - 1, size, zone)


@pytest.mark.parametrize(
    ("period", "zone", "size"), [("day", "Asia/Kolkata", DAY), ("month", "America/New_York", MONTH)]
)
def test_periods_roll_over_at_local_midnight(gateway, tokens, period, zone, size):
    token = tokens["acme"]
    boundary = _boundary(size, ZoneInfo(zone))
    made = alerts_api.create_alert(
        "acme", alert(period=period, timeZone=zone, thresholds=[10]), now=boundary - 2 * DAY_MS
    )
    half_hour = 30 * 60_000
    count(gateway, token, event("before", 8, boundary - half_hour), event("after", 8, boundary + half_hour))
    assert fired(gateway, token, made["id"]) == []  # 8 in each period, never 16 in one
    count(gateway, token, event("before-2", 3, boundary - 2 * half_hour), event("after-2", 3, boundary + 1))
    shown = triggers(gateway, token, made["id"])
    starts = sorted(t["periodStart"] for t in shown)
    assert [t["threshold"] for t in shown] == [10, 10] and len(set(starts)) == 2
    assert datetime.fromisoformat(starts[1]) == datetime.fromtimestamp(boundary / 1000, UTC)
    assert datetime.fromisoformat(starts[1]).utcoffset() == ZoneInfo(zone).utcoffset(
        datetime.fromisoformat(starts[1]).replace(tzinfo=None)
    )
    assert {t["eventId"] for t in shown} == {"before-2", "after-2"}


# -- delivery ---------------------------------------------------------------------------------
@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv("ALERT_WEBHOOKS_TO_LOCALHOST", "true")
    reset_caches()
    found = Receiver()
    yield found
    found.server.shutdown()
    monkeypatch.delenv("ALERT_WEBHOOKS_TO_LOCALHOST")
    reset_caches()


def verified(secret: str, headers: dict, body: bytes) -> bool:
    """What a receiver does: recompute the HMAC of ``<t>.<body>`` and compare in constant time."""
    parts = dict(item.split("=", 1) for item in headers["X-Meter-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def deliver_firings() -> None:
    source = STACK.stream_source_of("DeliverAlertsFunction")
    StreamMapping(source, STACK.functions()[source.function], STACK.physical_name(source.table), lambda _: None).drain()


def _bus_queue() -> str:
    """An SQS queue the default bus's rule for our events targets (how a consumer would listen)."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName="usage-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="usage-alerts", EventPattern=json.dumps({"source": ["usage-meter"]}))
    events.put_targets(Rule="usage-alerts", Targets=[{"Id": "queue", "Arn": arn}])
    return url


def test_a_firing_reaches_eventbridge_and_a_signed_webhook_once(gateway, tokens, receiver):
    from local.queues import create_queues

    create_queues(STACK, boto3.client("sqs"))
    bus = _bus_queue()
    made = create(gateway, tokens["acme"], thresholds=[5], webhookUrl=receiver.url)
    count(gateway, tokens["acme"], event("x", 7))
    deliver_firings()
    deliver_firings()  # a redelivered stream batch sends nothing twice
    ((headers, body),) = receiver.requests
    assert verified(made["signingSecret"], headers, body) and not verified("whsec_other", headers, body)
    sent = json.loads(body)
    assert (sent["type"], sent["threshold"], sent["value"], sent["eventId"]) == ("usage.threshold.crossed", 5, 7, "x")
    assert sent["alert"]["id"] == made["id"] and headers["X-Meter-Delivery"] == sent["id"]
    (message,) = boto3.client("sqs").receive_message(QueueUrl=bus, MaxNumberOfMessages=10)["Messages"]
    on_bus = json.loads(message["Body"])
    assert (on_bus["source"], on_bus["detail-type"], on_bus["detail"]) == (
        "usage-meter",
        "Usage threshold crossed",
        sent,
    )
    (shown,) = triggers(gateway, tokens["acme"], made["id"])
    assert shown["delivery"] == {"status": "delivered", "attempts": 1, "lastError": None}


def test_a_failing_webhook_is_retried_with_backoff_shown_in_triggers_and_dead_lettered_after_a_day(
    gateway, tokens, receiver
):
    from local.queues import create_queues

    urls = create_queues(STACK, boto3.client("sqs"))
    receiver.status = 500
    made = create(gateway, tokens["acme"], thresholds=[5], webhookUrl=receiver.url)
    count(gateway, tokens["acme"], event("x", 7))
    deliver_firings()
    (shown,) = triggers(gateway, tokens["acme"], made["id"])
    assert shown["delivery"] == {"status": "retrying", "attempts": 1, "lastError": "webhook answered HTTP 500"}
    retry = boto3.client("sqs").receive_message(QueueUrl=urls["AlertDeliveryRetryQueue"], WaitTimeSeconds=0)
    assert "Messages" not in retry  # delayed: 30 s, doubling to 15 min
    assert [delivery.retry_delay(n) for n in (1, 2, 3, 6, 20)] == [30, 60, 120, 900, 900]
    (item,) = store.alerts().triggers_before("acme", made["id"], None, 10)
    pk, sk = store.Alerts.trigger_key(item)
    later = item.triggered_at + DAY_MS - 60_000
    assert delivery.deliver(pk, sk, now=later) == "failed"  # a day of failures
    (shown,) = triggers(gateway, tokens["acme"], made["id"])
    assert (shown["delivery"]["status"], shown["delivery"]["attempts"]) == ("failed", 2)
    dead = boto3.client("sqs").receive_message(QueueUrl=urls["AlertDeliveryDeadLetterQueue"])["Messages"]
    assert json.loads(dead[0]["Body"]) == {"pk": pk, "sk": sk}
    assert len(receiver.requests) == 2


def test_a_delivery_given_up_on_is_redriven_with_a_fresh_day(gateway, tokens, receiver):
    from local.queues import create_queues
    from tools.redrive import redrive_alert_deliveries

    urls = create_queues(STACK, boto3.client("sqs"), visibility_timeout=0)
    receiver.status = 500
    made = create(gateway, tokens["acme"], thresholds=[5], webhookUrl=receiver.url)
    count(gateway, tokens["acme"], event("x", 7))
    (item,) = store.alerts().triggers_before("acme", made["id"], None, 10)
    later = item.triggered_at + DAY_MS
    assert delivery.deliver(*store.Alerts.trigger_key(item), now=later) == "failed"
    receiver.status = 204  # the tenant fixed its receiver
    report = redrive_alert_deliveries(
        urls["AlertDeliveryDeadLetterQueue"], urls["AlertDeliveryRetryQueue"], now=later + 60_000
    )
    assert (report.messages, report.redriven, report.kept) == (1, 1, [])
    (message,) = boto3.client("sqs").receive_message(QueueUrl=urls["AlertDeliveryRetryQueue"])["Messages"]
    record = {"eventSource": "aws:sqs", "messageId": message["MessageId"], "body": message["Body"]}
    assert delivery.handle_deliveries({"Records": [record]}) == {"batchItemFailures": []}
    (shown,) = triggers(gateway, tokens["acme"], made["id"])
    assert (shown["delivery"]["status"], shown["delivery"]["attempts"]) == ("delivered", 2)
    dead = boto3.client("sqs").receive_message(QueueUrl=urls["AlertDeliveryDeadLetterQueue"])
    assert "Messages" not in dead


def test_a_slow_receiver_holds_no_other_tenants_firing(gateway, tokens, receiver, monkeypatch):
    from local.queues import create_queues

    urls = create_queues(STACK, boto3.client("sqs"))
    monkeypatch.setattr(delivery, "FIRST_ATTEMPT_DEADLINE_SECONDS", 1.0)
    received = {}

    class Trickling(BaseHTTPRequestHandler):
        """Answers a byte every half second, and notes the moment we hang up on it."""

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            for byte in b"HTTP/1.1 200 OK\r\n" * 10:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if select.select([self.connection], [], [], 0.5)[0] and not self.connection.recv(1):
                    received["cut"] = time.monotonic()
                    return

        def log_message(self, *_):
            pass

    trickler = ThreadingHTTPServer(("127.0.0.1", 0), Trickling)
    threading.Thread(target=trickler.serve_forever, daemon=True).start()
    hostile = create(gateway, tokens["globex"], thresholds=[5], webhookUrl=f"http://127.0.0.1:{trickler.server_port}/h")
    polite = create(gateway, tokens["acme"], thresholds=[5], webhookUrl=receiver.url)
    count(gateway, tokens["globex"], event("g", 7))
    count(gateway, tokens["acme"], event("a", 7))
    original = receiver.server.RequestHandlerClass.do_POST

    def timed(handler):
        received.setdefault("acme", time.monotonic())
        original(handler)

    monkeypatch.setattr(receiver.server.RequestHandlerClass, "do_POST", timed)
    deliver_firings()  # both firings in one stream batch, the hostile one first
    trickler.shutdown()
    assert received["acme"] < received["cut"]  # delivered while the trickling receiver was still held
    (shown,) = triggers(gateway, tokens["acme"], polite["id"])
    assert shown["delivery"]["status"] == "delivered"
    (held,) = triggers(gateway, tokens["globex"], hostile["id"])
    assert held["delivery"] == {
        "status": "retrying",
        "attempts": 1,
        "lastError": "no HTTP answer from the webhook within 1 s",
    }
    retry = boto3.client("sqs").receive_message(QueueUrl=urls["AlertDeliveryRetryQueue"], WaitTimeSeconds=0)
    assert len(retry["Messages"]) == 1  # a receiver slower than the first deadline is retried at once


def test_a_webhook_that_recovers_is_delivered_by_the_retry(gateway, tokens, receiver):
    from local.queues import create_queues

    create_queues(STACK, boto3.client("sqs"))
    receiver.status = 503
    made = create(gateway, tokens["acme"], thresholds=[5], webhookUrl=receiver.url)
    count(gateway, tokens["acme"], event("x", 7))
    deliver_firings()
    receiver.status = 204
    (item,) = store.alerts().triggers_before("acme", made["id"], None, 10)
    pk, sk = store.Alerts.trigger_key(item)
    retried = {"Records": [{"eventSource": "aws:sqs", "messageId": "m", "body": json.dumps({"pk": pk, "sk": sk})}]}
    assert delivery.handle_deliveries(retried) == {"batchItemFailures": []}
    (shown,) = triggers(gateway, tokens["acme"], made["id"])
    assert shown["delivery"] == {"status": "delivered", "attempts": 2, "lastError": None}
    assert len(receiver.requests) == 2 and all(verified(made["signingSecret"], h, b) for h, b in receiver.requests)


# -- a tenant with many alerts --------------------------------------------------------------
def _reads_of(calls: list, tenant: str) -> int:
    return sum(1 for values in calls if any(tenant in str(v.get("S", "")) for v in values))


def _drain_checks(queue_url: str) -> None:
    from local.queues import QueueMapping

    source = STACK.queue_source_of("CheckAlertsFunction")
    mapping = QueueMapping(source, STACK.functions()["CheckAlertsFunction"], boto3.client("sqs"), queue_url)
    while mapping.poll_once():
        pass


def test_a_tenants_many_alerts_cost_the_aggregator_a_fixed_budget_and_all_still_fire(
    gateway, tokens, queues, monkeypatch
):
    from meter.dal import dynamo
    from tools.admin import create_key

    monkeypatch.setattr(rules, "CHECKS_PER_TENANT", 4)
    monkeypatch.setattr(rules, "CHECKS_PER_MESSAGE", 6)
    calls: list[list[dict]] = []

    def record(params, model, **_):
        if model.name == "Query":
            calls.append(list(params["ExpressionAttributeValues"].values()))

    dynamo.client().meta.events.register("provide-client-params.dynamodb", record)
    thresholds = list(range(1, 21))  # the most an alert may have
    reads = {}
    made = {}
    for tenant, many in (("initech", 6), ("hooli", 18)):
        token = create_key(tenant, ["ingest", "read", "admin"])
        made[tenant] = [
            alerts_api.create_alert(tenant, alert(thresholds=thresholds), now=NOW)["id"] for _ in range(many)
        ]
        calls.clear()
        count(gateway, token, event(f"{tenant}-1", 7), event(f"{tenant}-2", 0))
        reads[tenant] = _reads_of(calls, tenant)
    dynamo.client().meta.events.unregister("provide-client-params.dynamodb", record)
    assert reads["hooli"] == reads["initech"]  # 3x the alerts, the same reads in the aggregator
    _drain_checks(queues["AlertChecksQueue"])
    for tenant, ids in made.items():
        for alert_id in ids:  # every alert fired each threshold reached, exactly once
            assert sorted(t for t, _ in fired(gateway, create_key(tenant, ["read"]), alert_id)) == list(range(1, 8))
    _drain_checks(queues["AlertChecksQueue"])  # nothing is left to check
    assert boto3.client("sqs").receive_message(QueueUrl=queues["AlertChecksQueue"]).get("Messages") is None


def test_a_cursor_works_only_on_the_listing_that_minted_it(gateway, tokens):
    first, second = create(gateway, tokens["acme"]), create(gateway, tokens["acme"])
    minted = alerts_api.list_alerts("acme", None, limit=1)["cursor"]
    assert [a["id"] for a in alerts_api.list_alerts("acme", minted, limit=1)["data"]] == sorted(
        [first["id"], second["id"]]
    )[1:]
    for path in ("/api/v1/usage/list", f"/v1/alerts/{first['id']}/triggers"):
        response = call(gateway, "GET", path, tokens["acme"], query={"cursor": minted})
        assert response.status == 400 and "'cursor'" in response.json()["error"], (path, response.json())
    count(gateway, tokens["acme"], event("x", 25))  # two firings each: a page of one has a cursor
    of_first = alerts_api.list_triggers("acme", first["id"], None, limit=1)["cursor"]
    assert alerts_api.list_triggers("acme", first["id"], of_first, limit=1)["data"]
    response = call(gateway, "GET", f"/v1/alerts/{second['id']}/triggers", tokens["acme"], query={"cursor": of_first})
    assert response.status == 400
    response = call(gateway, "GET", "/v1/alerts", tokens["acme"], query={"cursor": of_first})
    assert response.status == 400
