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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from meter.alerts import webhooks
from meter.alerts.rules import shown_trigger, subject_of
from meter.core.caches import memoized
from meter.core.config import get_settings
from meter.core.logs import logger, metrics, with_log_keys
from meter.core.timerange import DAY_MS, now_ms
from meter.dal import aws, sqs, store
from meter.dal.models import Alert, Delivery, Trigger

EVENT_SOURCE = "usage-meter"
DETAIL_TYPE = "Usage threshold crossed"
RETRY_FOR_MS = DAY_MS
FIRST_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 900  # SQS's longest message delay
WEBHOOK_DEADLINE_SECONDS = 10.0  # wall clock for a whole webhook exchange, on a retry
FIRST_ATTEMPT_DEADLINE_SECONDS = 3.0  # on the stream: a slower receiver is retried at once from the queue
SIGNATURE_HEADER = "X-Meter-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Meter-Signature`` value of a body sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt after ``attempts`` failed ones: 30 s doubling to 15 min."""
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(0, attempts - 1))


def notification(trigger: Trigger, alert: Alert | None) -> dict[str, Any]:
    """What receivers get: the firing, and the alert it belongs to (its fields null if it was deleted)."""
    shown = shown_trigger(trigger, ZoneInfo(alert.time_zone if alert else "UTC"))
    shown.pop("delivery")
    return {
        "type": "usage.threshold.crossed",
        **shown,
        "alert": {
            "id": trigger.alert_id,
            "name": alert.name if alert else None,
            "subject": subject_of(alert) if alert else {},
            "measure": alert.measure if alert else None,
            "period": alert.period if alert else None,
            "timeZone": alert.time_zone if alert else None,
        },
    }


@memoized(1)
def _events() -> Any:
    return aws.session().client("events")


def publish(body: dict[str, Any]) -> None:
    """Put the notification on the default event bus."""
    entry = {"Source": EVENT_SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps(body)}
    answer = _events().put_events(Entries=[entry])
    if answer.get("FailedEntryCount"):
        raise RuntimeError(f"EventBridge refused the event: {answer['Entries'][0].get('ErrorMessage')}")


def post_webhook(
    url: str, secret: str, body: dict[str, Any], now: int, deadline: float = WEBHOOK_DEADLINE_SECONDS
) -> None:
    """POST the notification, signed, to a public address only, within ``deadline`` seconds of
    wall-clock time; raises ``webhooks.DeliveryFailed`` unless the receiver answers 2xx."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "usage-meter-alerts/1",
        "X-Meter-Delivery": body["id"],
        SIGNATURE_HEADER: sign(secret, now // 1000, payload),
    }
    webhooks.post(url, payload, headers, deadline, get_settings().webhooks_to_localhost)


def _send(trigger: Trigger, now: int, deadline: float) -> Delivery:
    """Send what has not been sent yet; the delivery state after it."""
    alert = store.alerts().alert(trigger.tenant, trigger.alert_id)
    body = notification(trigger, alert)
    delivery = replace(trigger.delivery, attempts=trigger.delivery.attempts + 1, timed_out=False)
    try:
        if not delivery.published:
            publish(body)
            delivery = replace(delivery, published=True)
        if alert is not None and alert.webhook_url:
            post_webhook(alert.webhook_url, alert.signing_secret or "", body, now, deadline)
    except webhooks.DeliveryFailed as failure:  # the receiver's doing: the tenant is told what it can act on
        return replace(delivery, status="retrying", last_error=str(failure)[:500], timed_out=failure.timed_out)
    except Exception as failure:  # ours (EventBridge): kept on the firing and retried
        logger.warning("alert publish failed", extra={"error": str(failure)[:500]})
        return replace(delivery, status="retrying", last_error="the event could not be published; retrying")
    return replace(delivery, status="delivered", last_error=None)


def deliver(pk: str, sk: str, now: int | None = None, first: bool = False) -> str:
    """Attempt one firing's delivery (``first``: straight from the stream, with a shorter
    deadline; a receiver slower than that is retried at once from the queue with the full one);
    its status after the attempt."""
    now = now_ms() if now is None else now
    trigger = store.alerts().trigger(pk, sk)
    if trigger is None or trigger.delivery.status in ("delivered", "failed"):
        return "gone" if trigger is None else trigger.delivery.status
    delivery = _send(trigger, now, FIRST_ATTEMPT_DEADLINE_SECONDS if first else WEBHOOK_DEADLINE_SECONDS)
    if delivery.status == "retrying":
        delay = 0 if first and delivery.timed_out else retry_delay(delivery.attempts)
        retrying_since = delivery.retry_from if delivery.retry_from is not None else trigger.triggered_at
        extra = {"alert": trigger.alert_id, "error": delivery.last_error}
        if now - retrying_since + delay * 1000 >= RETRY_FOR_MS:
            delivery = replace(delivery, status="failed")
            sqs.send("ALERT_DEAD_LETTER_QUEUE", json.dumps({"pk": pk, "sk": sk}))
            logger.error("alert delivery gave up", extra=extra)
            metrics.add_metric(name="AlertDeliveriesFailed", unit="Count", value=1)
        else:
            sqs.send("ALERT_RETRY_QUEUE", json.dumps({"pk": pk, "sk": sk}), DelaySeconds=delay)
            logger.warning("alert delivery failed; retrying", extra=extra)
    store.alerts().save_trigger(replace(trigger, delivery=delivery))
    return delivery.status


def requeue(pk: str, sk: str, retry_url: str, sqs_client: Any, now: int) -> None:
    """Give a firing whose delivery was given up on a fresh day of retries, from now."""
    trigger = store.alerts().trigger(pk, sk)
    if trigger is None:
        return
    if trigger.delivery.status == "failed":
        store.alerts().save_trigger(
            replace(trigger, delivery=replace(trigger.delivery, status="retrying", retry_from=now))
        )
    sqs_client.send_message(QueueUrl=retry_url, MessageBody=json.dumps({"pk": pk, "sk": sk}))


def _target(record: dict[str, Any]) -> tuple[str, str, bool]:
    """(pk, sk, straight from the stream) of a stream insert or a retry message."""
    if record.get("eventSource") == "aws:sqs":
        target = json.loads(record["body"])
        return target["pk"], target["sk"], False
    keys_ = record["dynamodb"]["Keys"]
    return keys_["pk"]["S"], keys_["sk"]["S"], True


def handle_deliveries(event: dict[str, Any]) -> dict[str, Any]:
    """The delivery function: firings from the Alerts stream, and retries from the retry queue,
    all of a batch at once, so no receiver (each bounded by its deadline) holds another's firing."""
    records = event.get("Records") or []

    def attempt(record: dict[str, Any]) -> dict[str, str] | None:
        try:
            pk, sk, first = _target(record)
            deliver(pk, sk, first=first)
        except Exception:  # the queue or the table failed: Lambda retries this record
            logger.exception("alert delivery could not be recorded")
            return {"itemIdentifier": record.get("messageId") or record["dynamodb"]["SequenceNumber"]}
        return None

    if not records:
        return {"batchItemFailures": []}
    with ThreadPoolExecutor(max_workers=len(records)) as pool:
        outcomes = list(pool.map(with_log_keys(attempt), records))
    return {"batchItemFailures": [failure for failure in outcomes if failure]}
