"""What a hostile tenant can make everyone else pay, measured on DynamoDB Local in this run:

* **reads**: the worst forms of the routes whose cost once grew with the tenant's history (a list
  filter that matches nothing, a grouping only raw events answer, hourly windows in a zone off the
  quarter-hour grid), each beside the normal form, and beside the same request with the tenant's
  data removed (a tenant that has none): read units and calls;
* **alerts**: how long another tenant's 1,000 events take to be counted while one tenant holding
  many alerts of 20 thresholds sends events alongside, against the same run with no alerts;
* **a slow receiver**: how long another tenant's webhook takes when it shares a delivery batch with
  a receiver that trickles a byte every half second, against the same delivery alone.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bench.poison import Aggregating, _events, _ingest, at_window_start, counted_for, until_counted
from local.webhook_receiver import Receiver

ALERTING = "alerting"
BYSTANDER = "bystander"
TRICKLING = "trickling"  # the tenant whose webhook receiver trickles (not ALERTING: it holds the most alerts allowed)
EMPTY = "nobody"  # a tenant with no data: what each request costs when history cannot matter


def _measured(meter: Any, gateway: Any, token: str, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
    """One warm call's status, read units and DynamoDB calls."""
    headers = {"Authorization": f"Bearer {token}"}
    gateway.handle("GET", path, urlencode(query), headers)
    meter.reset()
    answer = gateway.handle("GET", path, urlencode(query), headers)
    return {"status": answer.status, "rcu": round(meter.read, 2), "calls": sum(meter.calls.values())}


HOUR_WINDOWS_1971 = [("from", "1971-03-01"), ("to", "1971-03-15"), ("windowSize", "HOUR")]
CASES = [
    ("record list", "normal: a page of 1", "/api/v1/usage/list", [("take", "1")]),
    ("record list", "hostile: a meta filter that matches nothing", "/api/v1/usage/list",
     [("meta.nope", "x"), ("take", "1")]),
    ("record list", "hostile: a type never sent", "/api/v1/usage/list", [("type", "nope"), ("take", "1")]),
    ("native query", "normal: by end user, all time", "/v1/usage/query", [("groupBy", "identifier")]),
    ("native query", "hostile: by end user and agent, all time (raw events)", "/v1/usage/query",
     [("groupBy", "identifier"), ("groupBy", "agentId")]),
    ("native query", "normal: 14 days of HOUR windows in 1971, UTC", "/v1/usage/query", HOUR_WINDOWS_1971),
    ("native query", "hostile: the same in Africa/Monrovia (-0:44:30)", "/v1/usage/query",
     [*HOUR_WINDOWS_1971, ("timeZone", "Africa/Monrovia")]),
]  # fmt: skip


def reads(meter: Any, stack: Any, tenant: str) -> list[dict[str, Any]]:
    """Each hostile form beside the normal one, on ``tenant``'s data set and on a tenant with none."""
    from local.gateway import Gateway
    from tools.admin import create_key

    gateway = Gateway(stack)
    with_data, without = create_key(tenant, ["read"]), create_key(EMPTY, ["read"])
    rows = []
    for route, form, path, query in CASES:
        found, bare = (_measured(meter, gateway, token, path, query) for token in (with_data, without))
        rows.append(
            {
                "route": route,
                "form": form,
                "status": found["status"],
                "rcu": found["rcu"],
                "calls": found["calls"],
                "rcu_without_data": bare["rcu"],
                "calls_without_data": bare["calls"],
                "of_without_data": round(found["rcu"] / max(bare["rcu"], 0.5), 1),
            }
        )
    return rows


def _totals_while(start_mapping: Aggregating, day: datetime, tag: str, alongside: bool, window_s: int) -> float:
    """Seconds until the bystander's 1,000 events are counted, with the alerting tenant sending an
    event with every 100 of them (``alongside``) or not at all."""
    bystander = _events(f"by-{tag}", 1000, day, lambda i: f"b{i % 50}")
    noisy = _events(f"noisy-{tag}", 10, day, lambda i: "spender")
    before = counted_for(BYSTANDER, day)
    stop, thread = start_mapping()
    at_window_start(window_s)
    started = time.perf_counter()
    for n, first in enumerate(range(0, 1000, 100)):
        _ingest(BYSTANDER, bystander[first : first + 100])
        if alongside:
            _ingest(ALERTING, noisy[n : n + 1])
        time.sleep(0.1)
    return until_counted(BYSTANDER, day, before + 1000, started, stop, thread)


def alerts_delay(start_mapping: Aggregating, alert_count: int, window_s: int) -> dict[str, Any]:
    """Another tenant's delay while one tenant holding ``alert_count`` alerts of 20 thresholds
    (every zone a different period) sends events on the same shards; and that tenant stays exact."""
    from zoneinfo import available_timezones

    from meter.api.alerts import create_alert

    day = datetime.now(UTC).replace(hour=4, minute=0, second=0, microsecond=0) - timedelta(days=3)
    alone = _totals_while(start_mapping, day, "alone", alongside=False, window_s=window_s)
    zones = sorted(available_timezones())
    began = time.perf_counter()
    for n in range(alert_count):
        spec = {"name": f"a{n}", "measure": "credits", "period": "day" if n % 2 else "month",
                "timeZone": zones[n % len(zones)], "thresholds": list(range(10**6, 21 * 10**6, 10**6))}  # fmt: skip
        create_alert(ALERTING, spec)
    created = time.perf_counter() - began
    mixed = _totals_while(start_mapping, day, "mixed", alongside=True, window_s=window_s)
    return {
        "alerts": alert_count,
        "thresholds_each": 20,
        "create_s": round(created, 1),
        "window_s": window_s,
        "bystander_totals_s_alone": round(alone, 1),
        "bystander_totals_s_alongside_alerts": round(mixed, 1),
        "delay_s": round(mixed - alone, 1),
        "alerting_tenant_counted": counted_for(ALERTING, day),
        "alerting_tenant_sent": 10,
    }


def _firing(tenant: str, url: str, mapping: Any, day: datetime, tag: str) -> dict[str, Any]:
    """A stream record of a new firing of ``tenant``'s alert with a webhook to ``url``."""
    from meter.api.alerts import create_alert
    from meter.dal import store
    from meter.dal.models import Delivery

    alert = create_alert(tenant, {"name": tag, "measure": "credits", "period": "day", "thresholds": [1],
                                  "subject": {"identifier": f"who-{tag}"}, "webhookUrl": url})  # fmt: skip
    batch = _events(f"fire-{tag}", 1, day, lambda i: f"who-{tag}")
    batch[0]["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    _ingest(tenant, batch)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 900
    while not found and time.monotonic() < deadline:  # a new mapping first catches up with the stream
        mapping.drain(timeout=300)
        found = store.alerts().triggers_before(tenant, alert["id"], None, 1)
    (trigger,) = found
    # the webhook alone is measured: the bench has no EventBridge, so the event counts as published
    store.alerts().save_trigger(replace(trigger, delivery=Delivery(published=True)))
    pk, sk = store.Alerts.trigger_key(trigger)
    keys = {"pk": {"S": pk}, "sk": {"S": sk}}
    return {"eventSource": "aws:dynamodb", "dynamodb": {"Keys": keys, "SequenceNumber": tag}}


def slow_receiver(mapping: Any, rounds: int) -> dict[str, Any]:
    """Milliseconds from a delivery batch's start until the bystander's receiver has its webhook,
    alone and sharing the batch with a trickling receiver (median of ``rounds``)."""
    import os
    import statistics

    from meter.alerts.delivery import handle_deliveries
    from meter.core.config import get_settings

    os.environ["ALERT_WEBHOOKS_TO_LOCALHOST"] = "true"
    get_settings.cache_clear()
    prompt, trickling = Receiver(status=204), Receiver(trickle=0.5)
    day = datetime.now(UTC)
    found: dict[str, list[float]] = {"alone": [], "beside a trickling receiver": []}
    batch_ms = []
    try:
        for n in range(rounds):
            for shared, form in enumerate(found):
                records = [_firing(BYSTANDER, prompt.url, mapping, day, f"p{n}-{shared}")]
                if shared:  # the trickling receiver's firing first in the batch
                    records.insert(0, _firing(TRICKLING, trickling.url, mapping, day, f"t{n}"))
                prompt.times.clear()
                started = time.monotonic()
                handle_deliveries({"Records": records})
                found[form].append((prompt.times[0] - started) * 1000)
                if shared:
                    batch_ms.append((time.monotonic() - started) * 1000)
    finally:
        prompt.close()
        trickling.close()
        os.environ.pop("ALERT_WEBHOOKS_TO_LOCALHOST", None)
        get_settings.cache_clear()
    return {
        "rounds": rounds,
        "bystander_delivered_ms": {form: round(statistics.median(ms), 1) for form, ms in found.items()},
        "batch_ms_with_trickling": round(statistics.median(batch_ms), 1),
    }
