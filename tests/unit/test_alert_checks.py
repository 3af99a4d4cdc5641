"""Deferred alert checks: what the aggregator could not fit reaches the alert checker whole."""

from __future__ import annotations

import json

from meter.alerts import rules


def test_a_deferred_alert_check_is_split_to_fit_a_queue_message(monkeypatch):
    sent = []
    monkeypatch.setattr(rules.sqs, "send", lambda variable, body: sent.append(json.loads(body)))
    hours = {f"acme#I#{'u' * 250}{n}": set(range(0, 3_600_000 * 30, 3_600_000)) for n in range(400)}
    rules.defer("acme", hours, ("al_x", 0))
    assert len(sent) > 1 and all(len(json.dumps(body)) < 256 * 1024 for body in sent)
    assert {pk for body in sent for pk in body["hours"]} == set(hours)
    assert all(body["after"] == ["al_x", 0] and body["tenant"] == "acme" for body in sent)
