"""Delivering a firing: an EventBridge event on the default bus, and a signed webhook POST.

A firing reaches the delivery function from the Alerts table's stream (its insert), so a firing
stored is a firing delivered: nothing sits between the store and the send that a crash could
lose. A delivery that fails is tried again from a queue with growing delays for 24 hours, its
state (attempts, last error) kept on the firing where ``GET /v1/alerts/{id}/triggers`` shows it;
past that it is marked failed and dead-lettered. Delivery is at least once: receivers deduplicate
by the firing's ``id`` (also sent as ``X-Meter-Delivery``).

Signatures follow Stripe's scheme: ``X-Meter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>" with the alert's signing secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import boto3

from meter import sqs, store
from meter.alerts import shown_trigger
from meter.logs import logger, metrics
from meter.timerange import DAY_MS, now_ms

EVENT_SOURCE = "usage-meter"
DETAIL_TYPE = "Usage threshold crossed"
RETRY_FOR_MS = DAY_MS
FIRST_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 900  # SQS's longest message delay
WEBHOOK_TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Meter-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Meter-Signature`` value of a body sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt after ``attempts`` failed ones: 30 s doubling to 15 min."""
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(0, attempts - 1))


def notification(trigger: dict[str, Any], alert: dict[str, Any]) -> dict[str, Any]:
    """What receivers get: the firing, and the alert it belongs to."""
    shown = shown_trigger(trigger, ZoneInfo(alert.get("timeZone", "UTC")))
    shown.pop("delivery")
    return {
        "type": "usage.threshold.crossed",
        **shown,
        "alert": {
            "id": trigger["alertId"],
            "name": alert.get("name"),
            "subject": alert.get("subject") or {},
            "measure": alert.get("measure"),
            "period": alert.get("period"),
            "timeZone": alert.get("timeZone"),
        },
    }


@lru_cache(maxsize=1)
def _events() -> Any:
    return boto3.client("events")


def publish(body: dict[str, Any]) -> None:
    """Put the notification on the default event bus."""
    entry = {"Source": EVENT_SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps(body)}
    answer = _events().put_events(Entries=[entry])
    if answer.get("FailedEntryCount"):
        raise RuntimeError(f"EventBridge refused the event: {answer['Entries'][0].get('ErrorMessage')}")


def post_webhook(url: str, secret: str, body: dict[str, Any], now: int) -> None:
    """POST the notification, signed; raises unless the receiver answers 2xx."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    request = urllib.request.Request(  # noqa: S310 (the URL was checked: https, or a local receiver)
        url,
        data=payload,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "usage-meter-alerts/1",
            "X-Meter-Delivery": body["id"],
            SIGNATURE_HEADER: sign(secret, now // 1000, payload),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as answer:  # noqa: S310
            answer.read(1024)
    except urllib.error.HTTPError as refused:
        raise RuntimeError(f"webhook answered HTTP {refused.code}") from None
    except (urllib.error.URLError, OSError) as unreachable:
        raise RuntimeError(f"webhook unreachable: {getattr(unreachable, 'reason', unreachable)}") from None


def _send(trigger: dict[str, Any], now: int) -> dict[str, Any]:
    """Send what has not been sent yet; the delivery state after it."""
    delivery = dict(trigger.get("delivery") or {})
    alert = store.alerts().alert(trigger["tenant"], trigger["alertId"]) or {}
    body = notification(trigger, alert)
    delivery["attempts"] = int(delivery.get("attempts", 0)) + 1
    try:
        if not delivery.get("published"):
            publish(body)
            delivery["published"] = True
        if alert.get("webhookUrl"):
            post_webhook(alert["webhookUrl"], alert["signingSecret"], body, now)
    except Exception as failure:  # every failure is kept on the firing and retried
        delivery.update(status="retrying", lastError=str(failure)[:500])
        return delivery
    delivery.update(status="delivered", lastError=None)
    return delivery


def deliver(pk: str, sk: str, now: int | None = None) -> str:
    """Attempt one firing's delivery; its status after the attempt."""
    now = now_ms() if now is None else now
    trigger = store.alerts().get(store.Alerts.key(pk, sk), consistent=True)
    if trigger is None or (trigger.get("delivery") or {}).get("status") in ("delivered", "failed"):
        return "gone" if trigger is None else trigger["delivery"]["status"]
    delivery = _send(trigger, now)
    if delivery["status"] == "retrying":
        if now - int(trigger["triggeredAt"]) + retry_delay(delivery["attempts"]) * 1000 >= RETRY_FOR_MS:
            delivery["status"] = "failed"
            sqs.send("ALERT_DEAD_LETTER_QUEUE", json.dumps({"pk": pk, "sk": sk}))
            logger.error("alert delivery gave up", extra={"alert": trigger["alertId"], "error": delivery["lastError"]})
            metrics.add_metric(name="AlertDeliveriesFailed", unit="Count", value=1)
        else:
            sqs.send(
                "ALERT_RETRY_QUEUE", json.dumps({"pk": pk, "sk": sk}), DelaySeconds=retry_delay(delivery["attempts"])
            )
            logger.warning(
                "alert delivery failed; retrying", extra={"alert": trigger["alertId"], "error": delivery["lastError"]}
            )
    store.alerts().put({**trigger, "delivery": {k: v for k, v in delivery.items() if v is not None}})
    return delivery["status"]


def handle_deliveries(event: dict[str, Any]) -> dict[str, Any]:
    """The delivery function: firings from the Alerts stream, and retries from the retry queue."""
    failures = []
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:sqs":
            target = json.loads(record["body"])
            pk, sk = target["pk"], target["sk"]
        else:
            keys_ = record["dynamodb"]["Keys"]
            pk, sk = keys_["pk"]["S"], keys_["sk"]["S"]
        try:
            deliver(pk, sk)
        except Exception:  # the queue or the table failed: Lambda retries this record
            logger.exception("alert delivery could not be recorded")
            failures.append({"itemIdentifier": record.get("messageId") or record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}
