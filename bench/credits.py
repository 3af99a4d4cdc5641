"""Credits in ``make bench``: what a reservation, a settlement and a balance read cost, their
latency beside the identifier route's, and the load one tenant-wide budget would put on its
hottest key at 10,000 reservations a second. Every figure is measured in the run."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from bench.dataset import identifier

TENANT, PLAIN = "credits", "plain"  # a tenant that grants credits, and one that never did
TARGET_RESERVATIONS_PER_SECOND = 10_000
USER = identifier(1)


class _Client:
    def __init__(self, bench: Any, tenant: str):
        from local.gateway import Gateway
        from tools.admin import create_key

        self.gateway = Gateway(bench.stack)
        token = create_key(tenant, ["ingest", "read", "admin"], rate_limit=0)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None, query: str = "", expect: int = 200) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else b""
        response = self.gateway.handle(method, path, query, self.headers, payload)
        if response.status != expect:
            raise RuntimeError(f"{method} {path} answered {response.status}: {response.body[:300]!r}")
        return json.loads(response.body)


def _grants(client: _Client, now: datetime) -> None:
    """A tenant-wide budget, and 20 grants on one end user (packs, promos, a daily allowance)."""
    client.call("POST", "/v1/grants", {"id": "org-budget", "amount": 10**12}, expect=201)
    for n in range(19):
        expires = (now + timedelta(days=30 + n)).isoformat()
        body = {"id": f"pack-{n}", "subject": {"identifier": USER}, "amount": 10**9, "priority": 1 + 10 * n,
                "expiresAt": expires}  # fmt: skip
        client.call("POST", "/v1/grants", body, expect=201)
    allowance = {"id": "daily", "subject": {"identifier": USER}, "amount": 10**6,
                 "recurrence": {"period": "day", "timeZone": "Asia/Kolkata"}}  # fmt: skip
    client.call("POST", "/v1/grants", allowance, expect=201)


def _events(prefix: str, reservation: str | None, n: int) -> list[dict[str, Any]]:
    found = [{"id": f"{prefix}-{k}", "type": "tokens.output", "count": 300, "credits": 3, "identifier": USER,
              "agentId": "agent-01", "model": "gpt-4o"} for k in range(n)]  # fmt: skip
    return [{**e, "reservationId": reservation} for e in found] if reservation else found


def units(bench: Any, quick: bool) -> dict[str, Any]:
    """Capacity units per reservation, release, settled event and balance read, and the hottest key."""
    credits, plain = _Client(bench, TENANT), _Client(bench, PLAIN)
    _grants(credits, bench.now)
    runs, per_run = (20, 3) if quick else (150, 3)
    subjects = [{"identifier": USER}, {}]
    meter = bench.meter
    lend_w, lend_r = _lend_every_slice(credits, meter)
    reserve_w = reserve_r = release_w = items = 0.0
    for n in range(runs):
        meter.reset()
        credits.call("POST", "/v1/reservations", {"id": f"run-{n}", "subjects": subjects, "credits": 9}, expect=201)
        reserve_w, reserve_r, items = reserve_w + meter.write, reserve_r + meter.read, items + meter.transact_items
        meter.reset()
        credits.call("POST", f"/v1/reservations/run-{n}/release")
        release_w += meter.write
    # the tenant-wide budget alone: where its reservations and releases land, key by key
    budget_runs = 200 if quick else 3000
    on_key: dict[tuple[str, str], float] = {}
    for n in range(budget_runs):
        meter.reset()
        credits.call("POST", "/v1/reservations", {"id": f"org-{n}", "subjects": [{}], "credits": 1}, expect=201)
        credits.call("POST", f"/v1/reservations/org-{n}/release")
        for place, wcu in meter.write_on.items():
            on_key[place] = on_key.get(place, 0.0) + wcu
    # settlement: the same events through ingest and counting, carrying a reservation or not, in
    # groups that stay under the 100 open holds an end user may have
    settled_w = plain_w = 0.0
    for first in range(0, runs, 50):
        group = range(first, min(runs, first + 50))
        for n in group:
            body = {"id": f"settle-{n}", "subjects": subjects, "credits": 9}
            credits.call("POST", "/v1/reservations", body, expect=201)
        settled_w += _pipeline_writes(
            bench, credits, [e for n in group for e in _events(f"s{n}", f"settle-{n}", per_run)]
        )
        plain_w += _pipeline_writes(bench, plain, [e for n in group for e in _events(f"s{n}", None, per_run)])
        if first == 0:
            settled = credits.call("GET", "/v1/reservations/settle-0")
            if settled["consumed"] != 3 * per_run:
                raise RuntimeError(f"a reservation was not settled: {settled}")
        for n in group:
            credits.call("POST", f"/v1/reservations/settle-{n}/release")
    meter.reset()
    balance = credits.call("GET", "/v1/balance", query=f"identifier={quote(USER)}")
    balance_r, balance_calls = meter.read, sum(meter.calls.values())
    if len(balance["grants"]) != 20:
        raise RuntimeError(f"the balance shows {len(balance['grants'])} grants, not 20")
    (place, key), hottest = max(on_key.items(), key=lambda row: row[1])
    events = runs * per_run
    return {
        "reservations": runs,
        "wcu_per_reservation": round(reserve_w / runs, 2),
        "rcu_per_reservation": round(reserve_r / runs, 2),
        "transaction_items_per_reservation": round(items / runs, 2),
        "wcu_per_release": round(release_w / runs, 2),
        "wcu_per_first_hold_on_a_slice": round(lend_w, 2),
        "rcu_per_first_hold_on_a_slice": round(lend_r, 2),
        "settled_events": events,
        "wcu_per_event_settled": round(settled_w / events, 3),
        "wcu_per_event_without_credits": round(plain_w / events, 3),
        "settlement_wcu_per_event": round((settled_w - plain_w) / events, 3),
        "balance_rcu_20_grants": round(balance_r, 2),
        "balance_calls": balance_calls,
        "budget_reservations": budget_runs,
        "hottest_key_at_10k_reservations_per_s": {
            "key": f"{place} {key}",
            "wcu_per_s": round(hottest / budget_runs * TARGET_RESERVATIONS_PER_SECOND, 1),
        },
    }


def _lend_every_slice(client: _Client, meter: Any) -> tuple[float, float]:
    """A first hold on each slice of the tenant's budget, each lending the slice its share: the
    write and read units of one such hold (a rebalance), on average."""
    from meter.credits.slices import SLICES, slice_of

    ids, n = {}, 0
    while len(ids) < SLICES:
        ids.setdefault(slice_of(f"first-{n}"), f"first-{n}")
        n += 1
    meter.reset()
    for rid in ids.values():
        client.call("POST", "/v1/reservations", {"id": rid, "subjects": [{}], "credits": 1}, expect=201)
    writes, reads = meter.write / SLICES, meter.read / SLICES
    for rid in ids.values():
        client.call("POST", f"/v1/reservations/{rid}/release")
    return writes, reads


def _pipeline_writes(bench: Any, client: _Client, events: list[dict[str, Any]]) -> float:
    """Write units of ingesting ``events`` in batches of 100 and counting them."""
    bench.meter.reset()
    for start in range(0, len(events), 100):
        client.call("POST", "/v1/events", {"events": events[start : start + 100]})
    bench._mapping().drain()
    return bench.meter.write


def _quantiles(samples: list[float]) -> dict[str, float]:
    cut = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return {"p50": round(cut[49], 2), "p99": round(cut[98], 2)}


def latency(bench: Any, quick: bool) -> dict[str, Any]:
    """Warm in-process p50/p99 of a reservation (held, then released untimed), a balance read with 20
    grants, and the identifier route on the same tenant, one after another."""
    client, runs = _Client(bench, TENANT), 30 if quick else 300
    day = bench.now.strftime("%Y-%m-%d")
    first = (bench.now - timedelta(days=29)).strftime("%Y-%m-%d")
    dates = f"/api/v1/consumption/identifier/{quote(USER, safe='')}/dates"
    range_query = f"from={first}T00:00:00Z&to={day}T23:59:59Z"
    timed: dict[str, list[float]] = {"reservation": [], "balance": [], "identifier_dates": []}
    for n in range(runs + 5):  # the first five warm every path
        began = time.perf_counter()
        client.call("POST", "/v1/reservations", {"id": f"t-{n}", "subjects": [{"identifier": USER}, {}], "credits": 1},
                    expect=201)  # fmt: skip
        took = (time.perf_counter() - began) * 1000
        client.call("POST", f"/v1/reservations/t-{n}/release")
        began = time.perf_counter()
        client.call("GET", "/v1/balance", query=f"identifier={quote(USER)}")
        balance = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        client.call("GET", dates, query=range_query)
        route = (time.perf_counter() - began) * 1000
        if n >= 5:
            timed["reservation"].append(took)
            timed["balance"].append(balance)
            timed["identifier_dates"].append(route)
    found = {name: _quantiles(samples) for name, samples in timed.items()}
    base = found["identifier_dates"]["p50"]
    for name in ("reservation", "balance"):
        found[name]["of_identifier_p50"] = round(found[name]["p50"] / base, 2)
    return {**found, "runs": runs, "measured_at": datetime.now(UTC).strftime("%H:%M UTC")}
