"""One tenant can never hurt another, on the local stack over real HTTP: a tenant holding a
thousand alerts of twenty thresholds, sending an event a second, leaves another tenant's totals
on their normal delay and its own exact (its alerts still fire, the overflow through the alert
checker's queue); a receiver that trickles a byte every half second holds no other tenant's
webhook."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from local.webhook_receiver import Receiver
from tests.e2e.test_local_stack import eventually, headers

ALERTS = 999  # stored directly; the thousandth is created over HTTP
NEVER = list(range(10**12, 21 * 10**12, 10**12))  # twenty thresholds no test reaches: every one waits


def _table(stack, logical: str) -> str:
    (name,) = [n for n in stack.client("dynamodb").list_tables()["TableNames"] if n.endswith(logical)]
    return name


def _store_alerts(stack, tenant: str, count: int) -> None:
    """``count`` alerts on the tenant (every one a value to read, its marks to read), written
    straight to the table: creating them one by one over HTTP only adds minutes to the suite."""
    from meter.dal import dynamo, keys

    client, table = stack.client("dynamodb"), _table(stack, "AlertsTable")
    zones = ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Adelaide", "Asia/Kathmandu"]
    items = [
        {
            "pk": keys.alerts_pk(tenant),
            "sk": f"al_{n:020d}",
            "name": f"budget {n}",
            "subject": {},
            "measure": "credits",
            "period": "day" if n % 2 else "month",
            "timeZone": zones[n % len(zones)],
            "thresholds": NEVER,
            "createdAt": 0,
            "updatedAt": 0,
        }
        for n in range(count)
    ]
    for first in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": dynamo.serialize(item)}} for item in items[first : first + 25]]
        client.batch_write_item(RequestItems={table: batch})


def _credits(stack, token: str) -> int:
    found = requests.get(f"{stack.base_url}/v1/usage/query", headers=headers(token), timeout=10).json()
    return sum(row["value"] for row in found["data"])


def test_a_tenant_with_a_thousand_alerts_delays_no_one_and_stays_exact(stack):
    hostile, bystander = f"many{uuid.uuid4().hex[:6]}", f"by{uuid.uuid4().hex[:6]}"
    hostile_token = stack.key(hostile, "ingest,read,admin")
    bystander_token = stack.key(bystander)
    _store_alerts(stack, hostile, ALERTS)
    reached = {"name": "late id, low threshold", "measure": "credits", "period": "day", "thresholds": [5]}
    made = requests.post(f"{stack.base_url}/v1/alerts", headers=headers(hostile_token), json=reached, timeout=10)
    assert made.status_code == 201, made.text
    alert_id = made.json()["id"]  # sorts after the thousand: only the alert checker reaches it

    sent = 0
    for second in range(8):  # an event a second from the hostile tenant, the bystander's alongside
        event = {"id": f"h{second}", "type": "message", "count": 1, "credits": 1}
        assert requests.post(f"{stack.base_url}/v1/events", headers=headers(hostile_token), json=event, timeout=10).ok
        batch = [{"id": f"b{second}-{n}", "type": "message", "count": 1, "credits": 1} for n in range(10)]
        assert requests.post(
            f"{stack.base_url}/v1/events", headers=headers(bystander_token), json={"events": batch}, timeout=10
        ).ok
        sent += 1
        time.sleep(1)
    # the normal delay of this stack: a 1 s window, the 5 s batching window, the commit
    assert eventually(lambda: _credits(stack, bystander_token) == 80, timeout=20), _credits(stack, bystander_token)
    assert eventually(lambda: _credits(stack, hostile_token) == sent, timeout=20)

    def fired():
        url = f"{stack.base_url}/v1/alerts/{alert_id}/triggers"
        return [t["threshold"] for t in requests.get(url, headers=headers(hostile_token), timeout=10).json()["data"]]

    assert eventually(fired, timeout=60) == [5]


@pytest.fixture
def receivers():
    """A receiver on 127.0.0.1 that answers at once, and one that answers a byte every half second."""
    prompt, trickling = Receiver(status=204), Receiver(trickle=0.5)
    yield prompt, trickling
    prompt.close()
    trickling.close()


def _alert_to(stack, url: str) -> tuple[str, str]:
    """A new tenant (its token) with an alert at 1 credit whose webhook is ``url`` (its id)."""
    token = stack.key(f"t{uuid.uuid4().hex[:8]}", "ingest,read,admin")
    body = {"name": "n", "measure": "credits", "period": "day", "thresholds": [1], "webhookUrl": url}
    made = requests.post(f"{stack.base_url}/v1/alerts", headers=headers(token), json=body, timeout=10)
    assert made.status_code == 201, made.text
    return token, made.json()["id"]


def _delivery(stack, token: str, alert_id: str) -> dict:
    url = f"{stack.base_url}/v1/alerts/{alert_id}/triggers"
    found = requests.get(url, headers=headers(token), timeout=10).json()["data"]
    return found[0]["delivery"] if found else {}


def test_a_trickling_receiver_holds_no_other_tenants_webhook(stack, receivers):
    prompt, trickling = receivers
    slow_token, slow_alert = _alert_to(stack, trickling.url)
    polite_token, polite_alert = _alert_to(stack, prompt.url)
    for token in (slow_token, polite_token):  # the slow tenant's firing first
        event = {"id": "x", "type": "message", "count": 1, "credits": 3}
        assert requests.post(f"{stack.base_url}/v1/events", headers=headers(token), json=event, timeout=10).ok

    assert eventually(lambda: prompt.requests, timeout=30)
    assert eventually(lambda: _delivery(stack, polite_token, polite_alert).get("status") == "delivered", timeout=10)
    assert _delivery(stack, polite_token, polite_alert)["attempts"] == 1
    assert eventually(lambda: _delivery(stack, slow_token, slow_alert).get("attempts"), timeout=20)
    held = _delivery(stack, slow_token, slow_alert)
    assert held["status"] == "retrying" and held["lastError"].startswith("no HTTP answer from the webhook within")
