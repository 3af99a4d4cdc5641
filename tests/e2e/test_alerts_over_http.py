"""Alerts on the local stack over real HTTP: a key made with `make key SCOPES=...admin`, an alert
with a webhook on this machine, events that cross it, the signed POST verified as a receiver
would, the EventBridge event `make events` shows, and the firing's delivery in `triggers`."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from local.template import ROOT
from tests.e2e.test_local_stack import eventually, headers


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 that keeps what it gets."""
    got: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((dict(self.headers.items()), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/usage-hook", got
    server.shutdown()


def verify(secret: str, signature: str, body: bytes) -> bool:
    """The receiver check docs/api.md shows: HMAC-SHA256 of ``<t>.<body>``, compared in constant time."""
    fields = dict(part.split("=", 1) for part in signature.split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def test_an_alert_fires_once_to_a_signed_webhook_and_eventbridge(stack, receiver):
    url, got = receiver
    tenant = f"al{uuid.uuid4().hex[:6]}"
    token = stack.key(tenant, "ingest,read,admin")
    base = stack.base_url
    reader = stack.key(tenant, "read")
    refused = requests.post(f"{base}/v1/alerts", headers=headers(reader), json={}, timeout=10)
    assert refused.status_code == 403 and "admin" in refused.text
    body = {
        "name": "Ana's daily credits",
        "subject": {"identifier": "ana"},
        "measure": "credits",
        "period": "day",
        "timeZone": "Asia/Kolkata",
        "thresholds": [10, 100],
        "webhookUrl": url,
    }
    created = requests.post(f"{base}/v1/alerts", headers=headers(token), json=body, timeout=10)
    assert created.status_code == 201, created.text
    alert = created.json()
    events = [{"id": f"e{i}", "type": "message", "count": 1, "credits": 4, "identifier": "ana"} for i in range(3)]
    for event in events:  # one at a time: DynamoDB Local keeps one stream shard, so they are counted in this order
        posted = requests.post(f"{base}/v1/events", headers=headers(token), json=event, timeout=10)
        assert posted.status_code == 200, posted.text
    requests.post(f"{base}/v1/events", headers=headers(token), json={"events": events}, timeout=10)  # resent

    assert eventually(lambda: got, timeout=30)
    ((sent_headers, sent_body),) = got
    assert verify(alert["signingSecret"], sent_headers["X-Meter-Signature"], sent_body)
    payload = json.loads(sent_body)
    assert (payload["threshold"], payload["value"]) == (10, 12)
    assert payload["eventId"] == "e2"  # the third counted took the value from 8 to 12, past 10
    assert payload["periodStart"].endswith("+05:30")

    def delivered():
        found = requests.get(f"{base}/v1/alerts/{alert['id']}/triggers", headers=headers(token), timeout=10).json()
        return found["data"] if found["data"] and found["data"][0]["delivery"]["status"] == "delivered" else None

    (trigger,) = eventually(delivered)
    assert trigger["id"] == payload["id"]

    def committed():  # a firing may come from the open window, before its commit: status shows commits
        status = requests.get(f"{base}/v1/alerts/{alert['id']}/status", headers=headers(token), timeout=10).json()
        return status if status["value"] else None

    status = eventually(committed)
    assert status, "the window holding the events was never committed"
    assert (status["value"], status["crossed"], status["next"]) == (12, [10], 100)

    env = {**os.environ, "LOCAL_STATE_DIR": str(stack.state_dir)}
    shown = subprocess.run(
        [sys.executable, "-m", "local.key", "--events"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    recorded = [json.loads(line) for line in shown.stdout.splitlines()]
    mine = [e for e in recorded if e["detail"]["alert"]["id"] == alert["id"]]
    assert [(e["source"], e["detail-type"], e["detail"]) for e in mine] == [
        ("usage-meter", "Usage threshold crossed", payload)
    ]
    assert requests.get(f"{base}/_local/eventbridge", timeout=10).json()[-1]["detail"]["alert"]["id"]
    assert len(got) == 1  # the resend counted nothing and fired nothing
