"""``make bench``: capacity per event and per query, the load on the hottest key, throughput,
latency and cold start.

Each section runs on a DynamoDB Local of its own, in memory, and drives the shipped code with the
template's own stream settings (tumbling window, batch size, batching window) through the stream
mapping emulation; a full run puts the sections side by side (``bench.lanes``):

* **live**: one tenant's traffic as it arrives (``bench.dataset.LiveTraffic``), a batch of 100
  events a second through the HTTP API's ingest route, plus a read mix, for two minutes;
* **backfill**: a 30-day Zipf data set loaded in batches of 100, then every read endpoint queried;
* **crowd**: the same over 10x the end users and agents; **poison** and **hostile**: what one
  tenant costs the others (``bench.poison``, ``bench.hostile``); **coldstart**: fresh processes.

Every figure is measured in this run (nothing is typed in by hand), from ``ReturnConsumedCapacity``
on every call, attributed to the partition key it landed on, or from timing. Writes
bench/results/latest.json and latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench import coldstart, lanes
from bench.capacity import CapacityMeter
from bench.dataset import LiveTraffic, Shape, agent, events, identifier
from bench.lanes import ALONE, BESIDE, SHARED
from local import services
from local.run import configure_environment, ensure_tables
from local.template import ROOT, Stack

RESULTS = ROOT / "bench" / "results"
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"
RUN_BEGIN = "<!-- the last full run: rendered by make bench from bench/results/latest.json, not edited by hand -->"
RUN_END = "<!-- end of the last full run -->"
TENANT = "bench"
LIVE_TENANT = "live"
LIVE_RUNS = 3  # the live section's runs (its figures are the median run's)
BACKFILL_RUNS = 3  # the backfill and crowd loads (write figures: the median run's; reads use the first's data)
CROWD_TENANT = "crowd"  # the 10x-population data set
WINDOWS = (1, 7, 30)  # the data set spans 30 days
TARGET_EVENTS_PER_SECOND = 10_000
USD_PER_MILLION_WRITE_UNITS = 0.625  # DynamoDB on-demand, us-east-1
RCU_PER_WCU = 5  # by price: $0.625 vs $0.125 per million


class Bench:
    """One benchmark run against one in-memory DynamoDB Local."""

    def __init__(self, quick: bool, seed: int, stack: Stack):
        self.quick, self.seed, self.stack = quick, seed, stack
        self.now = datetime.now(UTC)
        from meter.dal import dynamo

        index_keys = {
            spec["TableName"]: {
                i["IndexName"]: i["KeySchema"][0]["AttributeName"] for i in spec.get("GlobalSecondaryIndexes", [])
            }
            for spec in stack.tables().values()
        }
        self.meter = CapacityMeter(index_keys).attach(dynamo.client())
        self.source = stack.stream_source_of("AggregateStreamFunction")
        self.conversation: dict[str, str] = {}  # per tenant: a conversation of its data set
        self.given_up: list[dict[str, Any]] = []  # windows the stream mapping dead-lettered

    def _give_up(self, failure: dict[str, Any]) -> None:
        print("dead-lettered:", failure)
        self.given_up.append(failure)

    # -- writes --------------------------------------------------------------------------------
    def _aggregating(self) -> tuple[threading.Event, threading.Thread]:
        """The template's stream mapping, polling on the real clock in the background."""
        stop = threading.Event()
        thread = threading.Thread(target=self._mapping().run, args=(stop,), daemon=True)
        thread.start()
        return stop, thread

    @staticmethod
    def _reads_local_days(tenant: str) -> None:
        """The tenant has read its days in Asia/Kolkata before (as the native query steps do), so its
        day items are cut at Kolkata's midnight as they are counted."""
        from zoneinfo import ZoneInfo

        from meter.dal.tenants import ensure_tenant, keep_zone_cuts

        ensure_tenant(tenant)
        keep_zone_cuts(tenant, ZoneInfo("Asia/Kolkata"))

    @staticmethod
    def _spreads_records(tenant: str) -> None:
        """The tenant's records are spread over the ``ByTenant`` shards from the start: the hot-key
        table scales this traffic to 10,000 events/s, a rate that spreads them within seconds."""
        from meter.dal import store
        from meter.dal.tenants import forget_tenant_settings

        store.tenants().shard_records(tenant, 0)
        forget_tenant_settings(tenant)

    def _counted(self) -> int:
        """Events the aggregator has committed so far (its ledgers), read with an unmetered client."""
        import boto3

        client = boto3.client("dynamodb")
        pages = client.get_paginator("scan").paginate(TableName=self.stack.physical_name("ControlTable"))
        return sum(
            int(i.get("events", {}).get("N", 0)) for p in pages for i in p["Items"] if i["pk"]["S"].startswith("SHARD#")
        )

    def _wait_counted(self, expected: int, timeout: float) -> float:
        started = time.perf_counter()
        while self._counted() < expected:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"aggregation did not catch up: {self._counted()} of {expected} events counted")
            time.sleep(0.5)
        return time.perf_counter() - started

    def live(self, seconds: int, per_second: int, tenant: str = LIVE_TENANT) -> dict[str, Any]:
        """One tenant's live traffic through the HTTP API, aggregated with the template's settings."""
        from local.gateway import Gateway
        from tools.admin import create_key

        gateway, token = Gateway(self.stack), create_key(tenant, ["ingest", "read"], rate_limit=0)
        self._reads_local_days(tenant)
        self._spreads_records(tenant)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        traffic, reads = LiveTraffic(self.seed), 0
        stop, thread = self._aggregating()
        first_of_day = self._first_of_day(gateway, headers, traffic)
        before = self._counted()
        self.meter.reset()
        started = time.perf_counter()
        for second in range(seconds):
            body = json.dumps({"events": traffic.batch(per_second)}).encode()
            response = gateway.handle("POST", "/v1/events", "", headers, body)
            if response.status != 200:
                raise RuntimeError(f"ingest answered {response.status}: {response.body[:200]!r}")
            # The read mix: a user's last 30 days, and a page of the record list.
            user = identifier(traffic.user())
            day = self.now.strftime("%Y-%m-%d")
            query = f"from={(self.now.date().replace(day=1)).isoformat()}T00:00:00Z&to={day}T23:59:59Z"
            path = f"/api/v1/consumption/identifier/{user.replace('@', '%40')}/dates"
            gateway.handle("GET", path, query, headers)
            gateway.handle("GET", "/api/v1/usage/list", "take=20", headers)
            reads += 2
            time.sleep(max(0.0, started + second + 1 - time.perf_counter()))
        sending = time.perf_counter() - started
        events = traffic.sent - first_of_day["events"]
        caught_up = self._wait_counted(before + events, timeout=self.source.tumbling_seconds + 120)
        stop.set()
        thread.join(timeout=30)
        result = {
            "first_of_day": first_of_day,
            "events": events,
            "seconds": round(sending, 1),
            "events_per_second": round(events / sending, 1),
            "reads_per_second": round(reads / sending, 2),
            "aggregation_delay_s": round(caught_up, 1),
            "window_s": self.source.tumbling_seconds,
            "wcu_per_event": round(self.meter.write / events, 3),
            "failed_conditions_per_event": round(self.meter.failed_conditions / events, 4),
            "wcu_per_event_by_table": {
                _short(place): round(units / events, 3) for place, units in sorted(self.meter.write_by.items())
            },
            "hot_keys_at_10k_eps": self._hot_keys(events),
        }
        return result

    def _first_of_day(self, gateway: Any, headers: dict[str, str], traffic: LiveTraffic) -> dict[str, Any]:
        """Each end user's first event of the day, sent and counted before the metered traffic (a
        day's traffic of a user pays for its first event once, among thousands): its write units
        per event, measured on their own."""
        before = self._counted()
        self.meter.reset()
        firsts = traffic.firsts()
        for start in range(0, len(firsts), 100):
            body = json.dumps({"events": firsts[start : start + 100]}).encode()
            response = gateway.handle("POST", "/v1/events", "", headers, body)
            if response.status != 200:
                raise RuntimeError(f"ingest answered {response.status}: {response.body[:200]!r}")
        self._wait_counted(before + len(firsts), timeout=self.source.tumbling_seconds + 120)
        return {"events": len(firsts), "wcu_per_event": round(self.meter.write / len(firsts), 3)}

    def _hot_keys(self, events: int) -> dict[str, dict[str, Any]]:
        """Per table and index, the key closest to a partition's limits (1,000 WCU/s, 3,000 RCU/s) if
        one tenant sent 10,000 events/s with this run's mix of writes and reads."""
        scale = TARGET_EVENTS_PER_SECOND / events
        hot: dict[str, dict[str, Any]] = {}
        for place, key in set(self.meter.write_on) | set(self.meter.read_on):
            row = {
                "key": key,
                "wcu_per_s": round(self.meter.write_on[(place, key)] * scale, 1),
                "rcu_per_s": round(self.meter.read_on[(place, key)] * scale, 1),
            }
            best = hot.get(_short(place))
            if best is None or _load(row) > _load(best):
                hot[_short(place)] = row
        return dict(sorted(hot.items()))

    def backfill(self, shape: Shape, tenant: str = TENANT) -> dict[str, Any]:
        """Load the 30-day data set in batches of 100 while the aggregator runs; WCU per event."""
        from meter.ingest.batch import ingest, parse_events

        # In time order, as a history export arrives: each window then holds neighbouring hours.
        data = sorted(events(shape, seed=self.seed, now=self.now), key=lambda e: e["timestamp"])
        self.conversation[tenant] = next(e["conversationId"] for e in data if e["identifier"] == identifier(1))
        self._reads_local_days(tenant)
        before = self._counted()
        stop, thread = self._aggregating()
        self.meter.reset()
        started = time.perf_counter()
        batches = [data[i : i + 100] for i in range(0, len(data), 100)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda b: ingest(tenant, parse_events(json.dumps({"events": b}))), batches))
        ingested = time.perf_counter() - started
        self._wait_counted(before + len(data), timeout=1800)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join(timeout=30)
        return {
            "events": len(data),
            "identifiers": shape.identifiers,
            "agents": shape.agents,
            "wcu_per_event": round(self.meter.write / len(data), 3),
            "failed_conditions_per_event": round(self.meter.failed_conditions / len(data), 4),
            "wcu_per_event_by_table": {
                _short(place): round(units / len(data), 3) for place, units in sorted(self.meter.write_by.items())
            },
            "ingest_events_per_second": round(len(data) / ingested, 1),
            "aggregated_events_per_second": round(len(data) / elapsed, 1),
        }

    def _mapping(self) -> Any:
        """The template's stream mapping, driven by hand (``drain``)."""
        from local.streams import StreamMapping

        return StreamMapping(
            self.source,
            self.stack.functions()[self.source.function],
            self.stack.physical_name(self.source.table),
            self._give_up,
        )

    def poison_hold(self, rounds: int) -> dict[str, Any]:
        """How long one poison event holds its shard (``bench.poison``)."""
        from bench import poison

        day = self.now.replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=1)
        return poison.shard_hold(self._mapping(), rounds, day)

    def poison_delay(self) -> dict[str, Any]:
        """How long 1,000 poison events delay another tenant's totals, and that all of it was set aside."""
        from bench import poison

        return {
            **poison.delay(self._aggregating, self.source.tumbling_seconds),
            "set_aside_messages": poison.set_aside_messages(),
            "windows_given_up": len(self.given_up),
        }

    def alerts_delay(self, alert_count: int) -> dict[str, Any]:
        """Another tenant's delay beside a tenant holding many alerts (``bench.hostile``)."""
        from bench import hostile

        return hostile.alerts_delay(self._aggregating, alert_count, self.source.tumbling_seconds)

    def slow_receiver(self, rounds: int) -> dict[str, Any]:
        """Another tenant's webhook beside a trickling receiver (``bench.hostile``)."""
        from bench import hostile

        return hostile.slow_receiver(self._mapping(), rounds)

    def hostile_reads(self) -> list[dict[str, Any]]:
        """The worst read forms on the backfill data set, beside the normal ones (``bench.hostile``)."""
        from bench import hostile

        return hostile.reads(self.meter, self.stack, TENANT)

    def all_in(self, calls: int, per_second: int) -> dict[str, float]:
        """A 30-day identifier query through the gateway, all in: authentication (cached per container
        as the handlers cache it), rate limiting (the deployment default) and the query; in read-unit equivalents."""
        from local.gateway import Gateway
        from meter.core.config import get_settings
        from tools.admin import create_key

        os.environ["RATE_LIMIT_PER_SECOND"] = self.stack.parameters["RateLimitPerSecond"]
        get_settings.cache_clear()
        gateway, token = Gateway(self.stack), create_key(TENANT, ["read"])
        end = self.now.strftime("%Y-%m-%d")
        start = datetime.fromtimestamp(self.now.timestamp() - 29 * 86_400, tz=UTC).strftime("%Y-%m-%d")
        path = f"/api/v1/consumption/identifier/{identifier(1).replace('@', '%40')}/dates"
        query = f"from={start}T00:00:00Z&to={end}T23:59:59Z"
        self.meter.reset()
        began = time.perf_counter()
        for n in range(calls):
            response = gateway.handle("GET", path, query, {"Authorization": f"Bearer {token}"})
            assert response.status == 200, response.body
            time.sleep(max(0.0, began + (n + 1) / per_second - time.perf_counter()))
        os.environ["RATE_LIMIT_PER_SECOND"] = "0"
        get_settings.cache_clear()
        return {
            "identifier_dates_30d": round((self.meter.read + RCU_PER_WCU * self.meter.write) / calls, 3),
            "rcu_per_call": round(self.meter.read / calls, 3),
            "wcu_per_call": round(self.meter.write / calls, 4),
            "calls_per_second": per_second,
        }

    # -- reads ---------------------------------------------------------------------------------
    def rcu(self, call: Callable[[], Any]) -> float:
        self.meter.reset()
        try:
            call()
        except Exception as error:  # a 404 for an empty window still costs its reads
            if type(error).__name__ != "NotFound":
                raise
        return round(self.meter.read, 2)

    def reads(self) -> dict[str, dict[str, dict[str, float]]]:
        """RCU per query: ours, the floor (the aggregate items the answer needs), naive (raw records)."""
        from meter.api import agentsgt, chatbotkit, gradient
        from meter.core.timerange import DAY_MS, now_ms
        from meter.dal import keys
        from meter.dal.dimensions import AGENT, IDENTIFIER
        from meter.dal.dimensions import TENANT as WHOLE
        from meter.dal.keys import day_key
        from meter.reading.queries import aggregate_items, tenant_records

        top_user, top_agent, end = identifier(1), agent(1), now_ms()
        values = {IDENTIFIER: top_user, AGENT: top_agent, WHOLE: ""}
        endpoints: dict[str, tuple[Any, Callable[[dict], Any]]] = {
            "identifier_dates": (IDENTIFIER, lambda q: agentsgt.identifier_dates(TENANT, top_user, q)),
            "agent_dates": (AGENT, lambda q: agentsgt.agent_dates(TENANT, top_agent, q)),
            "agent_models": (AGENT, lambda q: agentsgt.agent_models(TENANT, top_agent, q)),
            "organization_summary": (WHOLE, lambda q: agentsgt.organization_summary(TENANT, TENANT, q)),
            "organization_agents": (WHOLE, lambda q: agentsgt.organization_agents(TENANT, TENANT, q)),
            "gradient_agent_usage": (
                AGENT,
                lambda q: gradient.agent_usage(TENANT, top_agent, {"start": q["from"], "stop": q["to"]}),
            ),
            "bot_usage": (AGENT, lambda q: chatbotkit.bot_snapshot(TENANT, top_agent, q)),
        }
        result: dict[str, dict[str, dict[str, float]]] = {name: {} for name in endpoints}
        naive_by_window: dict[int, float] = {}
        for days in WINDOWS:
            # Whole days, as AgentsGT documents its queries: from=…T00:00:00Z&to=…T23:59:59Z.
            start = (end // DAY_MS - days + 1) * DAY_MS
            stop = (end // DAY_MS + 1) * DAY_MS
            query = {"from": f"{day_key(start)}T00:00:00Z", "to": f"{day_key(end)}T23:59:59Z"}
            # Naive: no aggregates, every raw record of the window (any filter still reads them all).
            naive = naive_by_window[days] = self.rcu(lambda start=start, stop=stop: tenant_records(TENANT, start, stop))
            floor = {
                d: self.rcu(
                    lambda d=d, start=start: aggregate_items(
                        d.pk(TENANT, values[d]), keys.day_sk(day_key(start)), keys.day_sk(day_key(end))
                    )
                )
                for d in values
            }
            for name, (dimension, call) in endpoints.items():
                result[name][f"{days}d"] = {
                    "ours": self.rcu(lambda call=call, query=query: call(query)),
                    "floor": floor[dimension],
                    "naive": naive,
                }
        result["identifier_dates_rolling"] = self.rolling_reads(TENANT, naive_by_window)
        result["identifier_dates_rolling_100th_user"] = self.rolling_reads(TENANT, naive_by_window, rank=100)
        result["usage_series"] = {
            "90d": {
                "ours": self.rcu(lambda: chatbotkit.series(TENANT)),
                "floor": self.rcu(
                    lambda: aggregate_items(
                        WHOLE.pk(TENANT, ""), keys.day_sk(day_key(end - 89 * DAY_MS)), keys.day_sk(day_key(end))
                    )
                ),
                "naive": naive,  # the data set's 30 days are all there is of the 90
            }
        }
        page = self.rcu(lambda: chatbotkit.list_records(TENANT, {}))
        result["usage_list_page"] = {"page": {"ours": page, "floor": page, "naive": page}}
        result["usage_list_page_filtered_by_bot"] = {
            "page": {
                "ours": self.rcu(lambda: chatbotkit.list_records(TENANT, {"botId": top_agent})),
                "floor": page,
                "naive": self.rcu(lambda: chatbotkit.list_records(TENANT, {"type": "conversation"})),
            }
        }
        return result

    def rolling_reads(
        self, tenant: str, naive: dict[int, float] | None = None, rank: int = 1
    ) -> dict[str, dict[str, float]]:
        """The end user of this rank (1: the top one) over the last N*24 hours to this millisecond (a
        ragged ``from``: raw records for the part of its quarter hour, where the user's hour item counts
        any there): ours, the floor (the user's day items of those days) and naive (the tenant's raw
        records of those days, unless given)."""
        from meter.api import agentsgt
        from meter.core.timerange import DAY_MS, iso, now_ms
        from meter.dal import keys
        from meter.dal.dimensions import IDENTIFIER
        from meter.dal.keys import day_key
        from meter.reading.queries import aggregate_items, tenant_records

        user, end, found = identifier(rank), now_ms(), {}
        for days in WINDOWS:
            start, stop = (end // DAY_MS - days + 1) * DAY_MS, (end // DAY_MS + 1) * DAY_MS
            low, high = keys.day_sk(day_key(start)), keys.day_sk(day_key(end))
            found[f"{days}d"] = {
                "ours": self.rcu(
                    lambda d=days: agentsgt.identifier_dates(tenant, user, {"from": iso(end - d * DAY_MS)})
                ),
                "floor": self.rcu(lambda low=low, high=high: aggregate_items(IDENTIFIER.pk(tenant, user), low, high)),
                "naive": (naive or {}).get(days)
                or self.rcu(lambda start=start, stop=stop: tenant_records(tenant, start, stop)),
            }
        return found

    def native_queries(self) -> dict[str, dict[str, float]]:
        """``GET /v1/usage/query`` over the last 30 local days in Asia/Kolkata (+05:30), DAY windows:
        read units as measured, as AWS would bill them (0.5 at least per read call), the calls, rows,
        and the naive recount of the raw events."""
        from zoneinfo import ZoneInfo

        from meter.api.usage_query import answer, parse_query
        from meter.core.localtime import local_midnight, wall
        from meter.core.timerange import now_ms
        from meter.reading.queries import tenant_records

        zone = ZoneInfo("Asia/Kolkata")
        today = wall(now_ms(), zone).date()
        first = today.fromordinal(today.toordinal() - 29).isoformat()
        last = today.fromordinal(today.toordinal() + 1).isoformat()  # 30 local days, today included
        base = {"from": [first], "to": [last], "windowSize": ["DAY"], "timeZone": [zone.key]}
        cases = {
            "one identifier": {"identifier": [identifier(1)]},
            "one agent, by model": {"agentId": [agent(1)], "groupBy": ["model"]},
            "tenant, by agent": {"groupBy": ["agentId"]},
        }
        cases["dashboard page load"] = {}  # the dashboard's calls for "last 30 days", below
        start, end = local_midnight(first, zone), local_midnight(last, zone)
        naive = self.rcu(lambda: tenant_records(TENANT, start, end))
        naive_billed = self.meter.read_billed
        result = {}
        for name, extra in cases.items():
            answered: list[dict] = []
            if name == "dashboard page load":
                self.rcu(lambda out=answered: out.extend(self._dashboard_load(base)))
            else:
                self.rcu(
                    lambda extra=extra, out=answered: out.extend(answer(parse_query(TENANT, {**base, **extra}))["data"])
                )
            result[name] = {
                "rcu": round(self.meter.read, 2),
                "rcu_billed": round(self.meter.read_billed, 2),
                "read_calls": sum(self.meter.calls[c] for c in ("Query", "GetItem", "BatchGetItem")),
                "rows": len(answered),
                "naive_rcu": naive,
                "naive_billed": round(naive_billed, 2),
            }
        return result

    def alert_status(self) -> dict[str, dict[str, float]]:
        """``GET /v1/alerts/{id}/status`` (what a platform asks before running an agent) on the
        backfill data set: read units measured and billed, and the read calls, per kind of alert."""
        from meter.api.alerts import alert_status, create_alert

        cases = {
            "end user, day, UTC": {"subject": {"identifier": identifier(1)}, "period": "day"},
            "agent, day, Asia/Kolkata": {"subject": {"agentId": agent(1)}, "period": "day", "timeZone": "Asia/Kolkata"},
            "tenant, month, America/New_York": {"period": "month", "timeZone": "America/New_York"},
        }
        result = {}
        for name, fields in cases.items():
            made = create_alert(TENANT, {"name": name, "measure": "credits", "thresholds": [10**12], **fields})
            self.rcu(lambda made=made: alert_status(TENANT, made["id"]))
            result[name] = {
                "rcu": round(self.meter.read, 2),
                "rcu_billed": round(self.meter.read_billed, 2),
                "read_calls": sum(self.meter.calls[c] for c in ("Query", "GetItem", "BatchGetItem")),
            }
        return result

    @staticmethod
    def _dashboard_load(base: dict[str, list[str]]) -> list[dict]:
        """The calls the dashboard makes for a range (functions/dashboard/static/dashboard.js)."""
        from meter.api import chatbotkit, credits
        from meter.api.usage_query import answer, parse_query

        whole = {k: v for k, v in base.items() if k != "windowSize"}
        calls = [{**whole, "measure": [m]} for m in ("credits", "tokens", "messages", "conversations")]
        calls += [base, {**whole, "groupBy": ["identifier"]}, {**whole, "groupBy": ["agentId", "model"]}]
        rows = [row for params in calls for row in answer(parse_query(TENANT, params))["data"]]
        shown = [credits.get_balance(TENANT, {}), *credits.list_grants(TENANT, {})["data"]]
        return rows + chatbotkit.list_records(TENANT, {"take": "20"})["items"] + shown

    def routes(self, tenant: str, runs: int) -> dict[str, dict[str, Any]]:
        """Every GET route through the in-process gateway, warm, as a client asks it (ranged routes over
        the last 30 days): the read units of one call, the floor (the answer's own bytes read once: 0.5
        RCU per 4 KB, at least one 0.5 read; none for static files) and p50/p95/p99 milliseconds."""
        from urllib.parse import urlencode

        from local.gateway import Gateway
        from meter.api.alerts import create_alert
        from meter.api.credits import create_grant, create_reservation
        from tools.admin import create_key

        gateway, token = Gateway(self.stack), create_key(tenant, ["read", "ingest"])  # ingest: a reservation's GET
        alert = create_alert(tenant, {"name": "top user", "measure": "credits", "thresholds": [10**12],
                                      "subject": {"identifier": identifier(1)}, "period": "month"})  # fmt: skip
        create_grant(tenant, {"id": "monthly", "subject": {"identifier": identifier(1)}, "amount": 10**9,
                              "recurrence": {"period": "month", "timeZone": "Asia/Kolkata"}})  # fmt: skip
        create_reservation(tenant, {"id": "run", "subjects": [{"identifier": identifier(1)}], "credits": 1})
        first = datetime.fromtimestamp(self.now.timestamp() - 29 * 86_400, tz=UTC).strftime("%Y-%m-%d")
        last = self.now.strftime("%Y-%m-%d")
        tomorrow = datetime.fromtimestamp(self.now.timestamp() + 86_400, tz=UTC).strftime("%Y-%m-%d")
        month = {"from": f"{first}T00:00:00Z", "to": f"{last}T23:59:59Z"}
        ranged = {
            "/v2/gen-ai/agents/{uuid}/usage": {"start": month["from"], "stop": month["to"]},
            "/v1/usage/query": {"identifier": identifier(1), "from": first, "to": tomorrow, "windowSize": "DAY",
                                "timeZone": "Asia/Kolkata"},
            "/v1/balance": {"identifier": identifier(1)},
            "/v1/grants": {"identifier": identifier(1)},
        }  # fmt: skip
        values = {"identifier": identifier(1), "agentId": agent(1), "uuid": agent(1), "botId": agent(1),
                  "orgId": tenant, "conversationId": self.conversation[tenant], "alertId": alert["id"],
                  "grantId": "monthly", "reservationId": "run", "file": "dashboard.js"}  # fmt: skip
        result = {}
        for route in sorted(self.stack.routes(), key=lambda r: r.function):
            if route.method != "GET":
                continue
            path = route.path
            for name, value in values.items():
                path = path.replace("{" + name + "}", quote(value, safe=""))
            query = urlencode(ranged.get(route.path) or (month if route.path in _RANGED else {}))
            headers = {"Authorization": f"Bearer {token}"}
            warm = gateway.handle("GET", path, query, headers)
            assert warm.status in (200, 404), (route.path, warm.status, warm.body[:200])
            self.meter.reset()
            gateway.handle("GET", path, query, headers)
            rcu = round(self.meter.read, 2)
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                gateway.handle("GET", path, query, headers)
                samples.append((time.perf_counter() - started) * 1000)
            cut = statistics.quantiles(sorted(samples), n=100, method="inclusive")
            static = route.function == "DashboardFunction"
            floor = None if static else max(0.5, 0.5 * -(-len(warm.body) // 4096))
            result[route.path] = {
                "function": route.function,
                "rcu": rcu,
                "floor": floor,
                "of_floor": round(rcu / floor, 1) if floor else None,
                "answer_bytes": len(warm.body),
                "p50": round(cut[49], 2),
                "p95": round(cut[94], 2),
                "p99": round(cut[98], 2),
            }
        return result


# Routes a client asks for a range (from/to); the others answer a fixed period, a page or an alert.
_RANGED = frozenset(
    {
        "/api/v1/consumption/identifier/{identifier}/dates",
        "/api/v1/consumption/agent/{agentId}/dates",
        "/api/v1/consumption/agent/{agentId}/models",
        "/api/v1/consumption/organization/{orgId}/summary",
        "/api/v1/consumption/organization/{orgId}/agents",
        "/api/v1/bot/{botId}/usage/fetch",
    }
)


def _short(place: str) -> str:
    """``<stack>-RecordsTable.ByTenant`` → ``RecordsTable.ByTenant``."""
    return place.rsplit("-", 1)[-1]


def _table(rows: list[list[Any]], header: list[str]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(map(str, r)) + " |" for r in rows),
    ]


def _report(results: dict[str, Any]) -> str:
    """The markdown report of whichever sections ran."""
    took = ", ".join(f"{name} {seconds} s" for name, seconds in results["section_seconds"].items())
    lines = [f"# Benchmark ({results['mode']}, {results['date']}, {results['bench_seconds']} s: {took})"]
    for wanted, render in _RENDERERS:
        if any(key in results for key in wanted):
            lines += ["", *render(results)]
    return "\n".join(lines) + "\n"


def _writes_report(results: dict[str, Any]) -> list[str]:
    """Write units per event of the live and backfill workloads, by table and index."""
    rows, by_table = [], {}
    if "live" in results:
        live = results["live"]
        label = (
            f"live: {live['events']} events at {live['events_per_second']}/s for {live['seconds']} s, "
            f"window {live['window_s']} s, after each end user's first event of the day"
        )
        rows.append([label, live["wcu_per_event"], _usd(live)])
        by_table["live"] = live["wcu_per_event_by_table"]
    if "backfill" in results:
        backfill = results["backfill"]
        label = f"backfill: {backfill['events']} events over 30 days in time order, batches of 100"
        rows.append([label, backfill["wcu_per_event"], _usd(backfill)])
        by_table["backfill"] = backfill["wcu_per_event_by_table"]
    lines = ["## Write capacity per event (ingest + aggregation)", ""]
    lines += _table(rows, ["workload", "WCU/event", "USD per million events (writes)"])
    places = sorted({p for spread in by_table.values() for p in spread})
    lines += ["", "Where it goes (WCU per event, by table and index):", ""]
    lines += _table(
        [[name, *(spread.get(p, 0) for p in places)] for name, spread in by_table.items()], ["workload", *places]
    )
    failed = {
        name: results[name].get("failed_conditions_per_event") for name in ("live", "backfill") if name in results
    }
    if any(n is not None for n in failed.values()):
        shown = ", ".join(f"{name} {n}" for name, n in failed.items() if n is not None)
        lines += [
            "",
            f"Writes whose condition failed, per event (each counted above at 1 WCU, as AWS bills it): {shown}.",
        ]
    lines += _backfill_runs_line(results)
    first = results.get("live", {}).get("first_of_day")
    if first:
        lines += [
            "",
            "Before the live traffic is metered, each of its end users sends the day's first event "
            f"({first['events']:,} events, one a user, counted before metering starts): "
            f"**{first['wcu_per_event']} WCU each**, measured on its own. Beside the record and its indexes, it "
            "moves the user's last-seen mark, and creates its day and hour items and their list entries; a user "
            "pays it once a day, among all its events.",
        ]
    return lines


def _live_runs_line(runs: list[dict[str, Any]]) -> list[str]:
    """The live figures of every run, the median's being the ones reported (nothing for a single run)."""
    if len(runs) < 2:
        return []
    each = "; ".join(f"{run['wcu_per_event']} WCU/event, hottest key {run['hottest_wcu_per_s']} WCU/s" for run in runs)
    median = f"The live figures are the median of {len(runs)} runs of the same traffic, each on a tenant of its own"
    return [f"{median}: {each}.", ""]


def _backfill_runs_line(results: dict[str, Any]) -> list[str]:
    """Every load's write units per event, the median's being the ones reported (nothing for single loads)."""
    named = {"1x": results.get("backfill_runs", []), "10x": results.get("backfill_10x_population_runs", [])}
    each = "; ".join(f"{size}: {', '.join(map(str, runs))}" for size, runs in named.items() if len(runs) > 1)
    if not each:
        return []
    return [
        "",
        "The backfill figures are the median of loads of the same data set, each on a tenant of its own "
        f"({each} WCU/event).",
    ]


def _swarm_report(results: dict[str, Any]) -> list[str]:
    """A tenant with thousands of agents at 10,000 events/s: its busiest keys, roster sharded."""
    w = results["swarm"]
    rows = [
        ["busiest key of any kind", f"`{w['busiest']['key']}`", w["busiest"]["wcu_per_s"]],
        [f"roster: busiest of its {w['roster_partitions']} partitions", f"`{w['roster_busiest']['key']}`",
         w["roster_busiest"]["wcu_per_s"]],
        ["roster: the same writes on one partition (unsharded)", "-", w["roster_unsharded_wcu_per_s"]],
    ]  # fmt: skip
    return [
        f"## Hottest keys of a tenant with {w['agents']:,} active agents at {w['events_per_second']:,} events/s",
        "",
        f"One stream shard's {w['window_s']} s window of its traffic ({w['window_events']:,} events, "
        f"{w['agents_in_window']:,} agents, {w['identifiers']:,} end users) went through the aggregator as the "
        f"stream mapping delivers it ({w['aggregation_s']} s, {w['transactions']:,} transactions, "
        f"{w['aggregation_wcu_per_event']} WCU per event for aggregation alone). A record "
        f"costs {w['record_wcu']} WCU, so the Records table needs {w['stream_shards']} partition(s) and as many "
        "stream shards, each with such a window: a key takes what the window wrote to it, times the shards, "
        "per second of window.",
        "",
        *_table(rows, ["", "key", "WCU/s"]),
        *_swarm_crowd_report(results),
    ]


def _swarm_crowd_report(results: dict[str, Any]) -> list[str]:
    """The same window over a crowd of end users, every one of them already on that day's items."""
    if "swarm_crowd" not in results:
        return []
    c = results["swarm_crowd"]
    rows = [
        ["busiest key of any kind", f"`{c['busiest']['key']}`", c["busiest"]["wcu_per_s"]],
        ["the end users' board", f"`{c['end_user_board']['key']}`", c["end_user_board"]["wcu_per_s"]],
    ]
    index = c["busiest_index"]
    rows.append(
        ["busiest index key", f"`{index['key']}`", index["wcu_per_s"]] if index else ["an index", "none written", 0]
    )
    return [
        "",
        f"The same window with {c['identifiers']:,} end users and {c['agents']:,} agents ({c['window_events']:,} "
        f"events, {c['identifiers_in_window']:,} end users among them; {c['aggregation_s']} s, "
        f"{c['aggregation_wcu_per_event']} WCU per event for aggregation alone), after a window that brought "
        "every end user in that day already: their items and board entries exist, so the boards weigh what "
        "they would by then and no listing entry is new.",
        "",
        *_table(rows, ["", "key", "WCU/s"]),
    ]


def _usd(workload: dict[str, Any]) -> float:
    return round(workload["wcu_per_event"] * USD_PER_MILLION_WRITE_UNITS, 3)


def _live_report(results: dict[str, Any]) -> list[str]:
    """How soon live traffic is counted, and the hottest key at 10,000 events/s."""
    live, hottest = results["live"], results["hottest_key_at_10k_eps"]
    lines = [
        f"Live: aggregates caught up {live['aggregation_delay_s']} s after the last event was sent (the window is "
        f"{live['window_s']} s); {live['reads_per_second']} reads/s alongside.",
        "",
        *_live_runs_line(results.get("live_runs", [])),
        "## Hottest partition key of each table and index, if one tenant sent 10,000 events/s with the live mix",
        "",
        f"Hottest overall: `{hottest['key']}`: {hottest['wcu_per_s']} WCU/s, {hottest['rcu_per_s']} RCU/s "
        "(limits per key: 1,000 WCU/s, 3,000 RCU/s).",
        "",
    ]
    lines += _table(
        [
            [place, f"`{row['key']}`", row["wcu_per_s"], row["rcu_per_s"]]
            for place, row in live["hot_keys_at_10k_eps"].items()
        ],
        ["table / index", "busiest key", "WCU/s", "RCU/s"],
    )
    return lines


def _reads_report(results: dict[str, Any]) -> list[str]:
    """Read units of the all-in query, every platform endpoint, the native query and alert status
    (each that ran: a section alone may have run only some)."""
    lines: list[str] = []
    if "rcu_equivalent_all_in" in results:
        all_in = results["rcu_equivalent_all_in"]
        lines += [
            "## A 30-day identifier query, all in (authentication, rate limit, query)",
            "",
            f"{all_in['identifier_dates_30d']} read-unit equivalents per call ({all_in['rcu_per_call']} RCU + "
            f"{all_in['wcu_per_call']} WCU x {RCU_PER_WCU}), at {all_in['calls_per_second']} calls/s on one key.",
            "",
        ]
    if "rcu_per_query" in results:
        lines += ["## Read capacity per query (RCU, backfill data set; rows ending in _10x: the 10x population's)", ""]
        rows = []
        for endpoint, windows in results["rcu_per_query"].items():
            for window, f in windows.items():
                ratio = round(f["naive"] / f["ours"], 1) if f["ours"] else "-"
                rows.append([endpoint, window, f["ours"], f["floor"], f["naive"], ratio])
        lines += [*_table(rows, ["endpoint", "window", "ours", "floor", "naive", "naive / ours"]), ""]
    if "native_query_rcu" in results:
        lines += [
            "## Native query API: 30 local days in Asia/Kolkata, DAY windows (backfill data set)",
            "",
            "Measured RCU; billed: what AWS would charge (at least 0.5 per read call; DynamoDB Local reports",
            "0 for an empty one); naive: reading the raw events of those 30 days.",
            "",
        ]
        lines += _table(
            [
                [q, f["rcu"], f["rcu_billed"], f["read_calls"], f["rows"], f["naive_rcu"]]
                for q, f in results["native_query_rcu"].items()
            ],
            ["query", "RCU", "RCU billed", "read calls", "rows", "naive RCU"],
        )
    if "alert_status_rcu" in results:
        lines += ["", "## Alert status: the current period's exact value (backfill data set)", ""]
        lines += _table(
            [[q, f["rcu"], f["rcu_billed"], f["read_calls"]] for q, f in results["alert_status_rcu"].items()],
            ["alert", "RCU", "RCU billed", "read calls"],
        )
    return lines


def _throughput_report(results: dict[str, Any]) -> list[str]:
    """Events per second of each workload that ran."""
    rates = {}
    if "live" in results:
        rates["live_sustained"] = results["live"]["events_per_second"]
    for name in ("backfill", "backfill_10x_population"):
        if name in results:
            rates[f"{name}_ingest"] = results[name]["ingest_events_per_second"]
            rates[f"{name}_aggregated"] = results[name]["aggregated_events_per_second"]
    lines = ["## Throughput (events/s)", ""]
    if len(results["section_seconds"]) > 1:
        lines += ["Each load ran with another section's load beside it (docs/performance.md).", ""]
    return lines + [f"- {k}: {v}" for k, v in rates.items()]


def _routes_report(results: dict[str, Any]) -> list[str]:
    """Every GET route's read units and warm latency, at 1x and 10x the population (either that ran)."""
    sizes = {"1x": results.get("backfill"), "10x": results.get("backfill_10x_population")}
    ran = [size for size in ("1x", "10x") if size in results["routes"]]
    described = [
        f"{size}: {sizes[size]['identifiers']:,} end users, {sizes[size]['agents']} agents, "
        f"{sizes[size]['events']:,} events over 30 days (its backfill: {sizes[size]['wcu_per_event']} WCU/event)"
        for size in ran
    ]
    lines = [
        "## Every route: read units and warm latency at two population sizes",
        "",
        "; ".join(described) + ". Ranged routes ask for the last 30 days; floor: the answer's own bytes read "
        "once (0.5 RCU per 4 KB, at least 0.5); latency in process over DynamoDB Local, warm, ms.",
        "",
    ]
    header = ["route"]
    for size in ran:
        header += [f"RCU {size}", "floor", "x floor", "p50"]
    paths = results["routes"][ran[0]]
    rows = []
    for path in paths:
        row = [f"`{path}`"]
        for size in ran:
            a = results["routes"][size][path]
            row += [a["rcu"], a["floor"] or "-", a["of_floor"] or "-", a["p50"]]
        rows.append(row)
    return lines + _table(rows, header)


def _credits_report(results: dict[str, Any]) -> list[str]:
    """What a reservation, a settlement and a balance read cost, and how fast they answer."""
    c = results["credits"]
    lat, hot = c.get("latency", {}), c["hottest_key_at_10k_reservations_per_s"]
    lines = [
        "## Credits: reservations, settlements, balances",
        "",
        "Once each slice of the tenant's budget has lent its share (the first hold on each, measured apart): "
        f"a reservation on an end user and the tenant ({c['reservations']} held, each released), "
        f"{c['settled_events']} events carrying a reservation counted beside the same events on a tenant "
        "that never granted credits, and a balance read of an end user holding 20 grants.",
        "",
    ]
    rows = [
        ["reservation (2 subjects)", c["wcu_per_reservation"], c["rcu_per_reservation"],
         c["transaction_items_per_reservation"], lat.get("reservation", {}).get("p50", "-"),
         lat.get("reservation", {}).get("p99", "-")],
        ["release", c["wcu_per_release"], "-", "-", "-", "-"],
        ["a slice's first hold (lends it its share)", c.get("wcu_per_first_hold_on_a_slice", "-"),
         c.get("rcu_per_first_hold_on_a_slice", "-"), "-", "-", "-"],
        ["settlement, per settled event", c["settlement_wcu_per_event"], "-", "-", "-", "-"],
        ["balance, 20 grants", "-", c["balance_rcu_20_grants"], "-", lat.get("balance", {}).get("p50", "-"),
         lat.get("balance", {}).get("p99", "-")],
        ["identifier route, same run", "-", "-", "-", lat.get("identifier_dates", {}).get("p50", "-"),
         lat.get("identifier_dates", {}).get("p99", "-")],
    ]  # fmt: skip
    lines += _table(rows, ["operation", "WCU", "RCU", "transaction items", "p50 ms", "p99 ms"])
    lines += [
        "",
        f"Pipeline WCU per event: {c['wcu_per_event_settled']} carrying a reservation, "
        f"{c['wcu_per_event_without_credits']} on a tenant without credits. "
        f"Reservation p50 is {lat.get('reservation', {}).get('of_identifier_p50', '-')}x the identifier route's, "
        f"a balance {lat.get('balance', {}).get('of_identifier_p50', '-')}x. One tenant-wide budget at "
        f"10,000 reservations/s (measured over {c['budget_reservations']:,} reservations on the tenant alone, each "
        f"released): its hottest key, `{hot['key']}`, would take {hot['wcu_per_s']:,} WCU/s.",
    ]
    return lines


def _sending_report(results: dict[str, Any]) -> list[str]:
    """The Python client: what track() costs its caller, delivery rate, and events lost at exit and fork."""
    o, e = results["sending"]["overhead"], results["sending"]["exits"]
    return [
        "## Sending: the Python client (agentmeter)",
        "",
        f"`track()` took **{o['track_us']} µs** a call as its caller saw it ({o['events']:,} calls, the sender "
        f"thread sending beside them), against {o['list_append_us']} µs for a plain `list.append` of the same "
        f"event in the same run. One Meter delivered them to the local stack over HTTP at "
        f"{o['events_per_second']:,} events/s ({o['delivered']:,} delivered, {o['stored']:,} records stored), "
        f"where the same events POSTed by hand in batches of 100 went at {o['direct_events_per_second']:,} events/s: "
        "the stack (one DynamoDB Local) sets the pace.",
        "",
        f"**{e['events_lost_at_exit']} events lost** across {e['processes']} processes that tracked "
        f"{e['events_per_process']} events each and exited without a flush (all at once; "
        f"{e['exit_codes_nonzero']} exited non-zero), and **{e['events_lost_across_fork']} lost** across a fork "
        f"of {e['fork_children']} workers that each tracked {e['events_per_process']} and exited, beside their "
        "parent's own (the exit hook sends; the child starts an empty queue).",
    ]


def _coldstart_report(results: dict[str, Any]) -> list[str]:
    """Import + init of every function beside the floor (boto3 alone)."""
    floor = results["cold_start_ms"]["floor"]
    lines = ["## Cold start: import + init, median of fresh processes (ms)", ""]
    return lines + _table(
        [[f, v, round(v / floor, 2)] for f, v in results["cold_start_ms"].items()], ["function", "ms", "/ floor"]
    )


def _hostile_report(results: dict[str, Any]) -> list[str]:
    """A hostile tenant's cost to others: bounded reads, many alerts, a trickling receiver (``bench.hostile``)."""
    hostile = results["hostile"]
    lines = ["## A hostile tenant costs only itself"]
    if "reads" in hostile:
        lines += [
            "",
            "Each request on the backfill data set beside the same request by a tenant with no data "
            "(read units of one warm call, and DynamoDB calls):",
            "",
            *_table(
                [
                    [r["route"], r["form"], r["status"], r["rcu"], r["calls"], r["rcu_without_data"],
                     r["calls_without_data"], r["of_without_data"]]
                    for r in hostile["reads"]
                ],
                ["route", "form", "status", "RCU", "calls", "RCU, no data", "calls, no data", "x no data"],
            ),
        ]  # fmt: skip
    if "alerts" not in hostile:
        return lines
    alerts, slow = hostile["alerts"], hostile["slow_receiver"]
    lines += [
        "",
        f"Another tenant's 1,000 events were counted {alerts['bystander_totals_s_alone']} s after sending began "
        f"alone, and {alerts['bystander_totals_s_alongside_alerts']} s while a tenant holding {alerts['alerts']:,} "
        f"alerts of {alerts['thresholds_each']} thresholds (every zone, day and month periods) sent events on "
        f"the same shards: **{alerts['delay_s']} s of delay** (window {alerts['window_s']} s). That tenant's "
        f"totals: {alerts['alerting_tenant_counted']} of {alerts['alerting_tenant_sent']} events counted. Creating "
        f"its alerts took {alerts['create_s']} s.",
        "",
        f"A firing's webhook reached another tenant's receiver {slow['bystander_delivered_ms']['alone']} ms after "
        f"its delivery batch began alone, and {slow['bystander_delivered_ms']['beside a trickling receiver']} ms "
        f"when the batch also held a firing for a receiver that trickles a byte every 0.5 s (median of "
        f"{slow['rounds']}); that batch ended after {slow['batch_ms_with_trickling']} ms, the first-attempt deadline.",
    ]
    return lines


def _poison_report(results: dict[str, Any]) -> list[str]:
    """One tenant's poison: its cost to the shard and to another tenant's totals (``bench.poison``)."""
    poison = results["poison"]
    lines = ["## One tenant's poison (set aside, the shard moves on)", ""]
    lines += [
        f"A window of 100 healthy events and one event of the poisoned tenant, median of {poison['rounds']} "
        f"commits: {poison['commit_ms_clean']} ms when nothing is poisoned. With the event's item poisoned:",
        "",
    ]
    with_one, held, sent = poison["commit_ms_with_one_poison"], poison["held_ms"], poison["transactions_per_commit"]
    lines += _table(
        [[kind, with_one[kind], held[kind], sent[kind], sent["clean"]] for kind in with_one],
        ["poison", "commit ms", "held the shard ms (goal <= 50)", "transactions", "transactions, clean"],
    )
    lines += [
        "",
        f"1,000 healthy events with 1,000 poison events among them (each refused on an item of its own), "
        f"window {poison['window_s']} s: the healthy tenant's totals were complete "
        f"{poison['healthy_totals_s_with_1000_poison']} s after sending began, against "
        f"{poison['healthy_totals_s_alone']} s with no poison: **{poison['delay_s']} s of delay**. "
        f"The failure queue then held {poison['set_aside_messages']} messages (set-aside notices); windows the "
        f"stream gave up on in this section: {poison['windows_given_up']}.",
    ]
    return lines


def _time_report(steps: dict[str, float]) -> list[str]:
    """How long each step took (a section's total also holds starting its DynamoDB Local)."""
    lines = ["## Bench time (s)", ""]
    return lines + _table([[step, seconds] for step, seconds in steps.items()], ["section: step", "s"])


# Each part of the report, and the results it renders (any one present).
_RENDERERS: list[tuple[tuple[str, ...], Callable[[dict[str, Any]], list[str]]]] = [
    (("live", "backfill"), _writes_report),
    (("live",), _live_report),
    (("swarm",), _swarm_report),
    (("credits",), _credits_report),
    (("sending",), _sending_report),
    (("rcu_per_query",), _reads_report),
    (("live", "backfill", "backfill_10x_population"), _throughput_report),
    (("poison",), _poison_report),
    (("hostile",), _hostile_report),
    (("routes",), _routes_report),
    (("cold_start_ms",), _coldstart_report),
    (("step_seconds",), lambda results: _time_report(results["step_seconds"])),
]


def _load(row: dict[str, Any]) -> float:
    """How close a key is to a partition's limits."""
    return max(row["wcu_per_s"] / 1000, row["rcu_per_s"] / 3000)


def _hottest(hot: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The one key closest to a partition's limits, of every table and index."""
    place, row = max(hot.items(), key=lambda item: _load(item[1]))
    return {"key": f"{place} {row['key']}", "wcu_per_s": row["wcu_per_s"], "rcu_per_s": row["rcu_per_s"]}


def with_last_run(page: str, results: dict[str, Any]) -> str:
    """``page`` (docs/performance.md) with its last-run block replaced by ``results``' report."""
    title, _, body = _report(results).partition("\n")
    body = "\n".join(("#" + line if line.startswith("## ") else line) for line in body.strip().splitlines())
    block = f"{RUN_BEGIN}\n\n{title.removeprefix('# ')}.\n\n{body}\n\n{RUN_END}"
    before, _, rest = page.partition(RUN_BEGIN)
    _, _, after = rest.partition(RUN_END)
    return before + block + after


SECTIONS = ("live", "backfill", "swarm", "crowd", "poison", "hostile", "credits", "sending", "coldstart")


Step = tuple[str, str, Callable[[], dict[str, Any]]]  # name, how it uses the machine (bench.lanes), what it returns


def _steps(name: str, bench: Bench, quick: bool) -> list[Step]:
    """The steps of one section, in order, each with how it uses the machine (``bench.lanes``): a
    latency or commit time alone, loads and capacity units shared, window-bound delays beside."""
    runs = 5 if quick else 30
    if name == "live":  # three runs (one quick), each on a tenant of its own: the median, and the spread
        done: list[dict[str, Any]] = []

        def traffic(n: int) -> dict[str, Any]:
            done.append(bench.live(15 if quick else 120, 100, f"{LIVE_TENANT}{n}"))
            return _live_results(done)

        return [(f"traffic {n}", SHARED, lambda n=n: traffic(n)) for n in range(1, 2 if quick else LIVE_RUNS + 1)]
    loads = range(2, 2 if quick else BACKFILL_RUNS + 1)  # after the reads: each on a tenant of its own
    if name == "backfill":
        backfills: list[dict[str, Any]] = []

        def backfill(n: int) -> dict[str, Any]:
            backfills.append(
                bench.backfill(Shape(events=3000 if quick else 100_000), f"{TENANT}{n}" if n > 1 else TENANT)
            )
            return _median_backfill("backfill", backfills)

        return [
            ("load", SHARED, lambda: backfill(1)),
            ("all-in query", SHARED, lambda: {"rcu_equivalent_all_in": bench.all_in(40 if quick else 200, 50)}),
            ("platform reads", SHARED, lambda: {"rcu_per_query": bench.reads()}),
            ("native query", SHARED, lambda: {"native_query_rcu": bench.native_queries()}),
            ("alert status", SHARED, lambda: {"alert_status_rcu": bench.alert_status()}),
            ("hostile reads", SHARED, lambda: {"hostile": {"reads": bench.hostile_reads()}}),
            ("routes", ALONE, lambda: {"routes": {"1x": bench.routes(TENANT, runs)}}),
            *[(f"load {n}", SHARED, lambda n=n: backfill(n)) for n in loads],
        ]
    if name == "crowd":  # the same reads over 10x the end users and agents: what grows with the population
        shape = Shape(events=500 if quick else 50_000, identifiers=10 * Shape.identifiers, agents=10 * Shape.agents)
        crowds: list[dict[str, Any]] = []

        def crowd(n: int) -> dict[str, Any]:
            crowds.append(bench.backfill(shape, f"{CROWD_TENANT}{n}" if n > 1 else CROWD_TENANT))
            return _median_backfill("backfill_10x_population", crowds)

        return [
            ("load", SHARED, lambda: crowd(1)),
            (
                "rolling reads",
                SHARED,
                lambda: {"rcu_per_query": {"identifier_dates_rolling_10x": bench.rolling_reads(CROWD_TENANT)}},
            ),
            ("routes", ALONE, lambda: {"routes": {"10x": bench.routes(CROWD_TENANT, runs)}}),
            *[(f"load {n}", SHARED, lambda n=n: crowd(n)) for n in loads],
        ]
    if name == "swarm":  # thousands of agents at 10,000 events/s: one stream shard's window of it
        from bench import swarm

        load = (300, 200) if quick else (swarm.AGENTS, swarm.EVENTS_PER_SECOND)  # agents, events/s
        crowd = (swarm.CROWD_AGENTS, load[1], 2_000 if quick else swarm.CROWD)  # agents, events/s, end users
        return [
            ("window", SHARED, lambda: {"swarm": swarm.busiest_keys(bench, *load)}),
            ("crowd window", SHARED, lambda: {"swarm_crowd": swarm.busiest_keys(bench, *crowd, "swarmcrowd", True)}),
        ]
    if name == "poison":
        return [
            ("delay", BESIDE, lambda: {"poison": bench.poison_delay()}),
            ("shard hold", ALONE, lambda: {"poison": bench.poison_hold(3 if quick else 20)}),
        ]
    if name == "hostile":
        return [
            ("many alerts", BESIDE, lambda: {"hostile": {"alerts": bench.alerts_delay(100 if quick else 1000)}}),
            ("slow receiver", ALONE, lambda: {"hostile": {"slow_receiver": bench.slow_receiver(3 if quick else 10)}}),
        ]
    if name == "credits":
        from bench import credits

        return [
            ("units", SHARED, lambda: {"credits": credits.units(bench, quick)}),
            ("latency", ALONE, lambda: {"credits": {"latency": credits.latency(bench, quick)}}),
        ]
    if name == "sending":
        from bench import sending

        return [
            ("track overhead", ALONE, lambda: {"sending": {"overhead": sending.overhead(bench, quick)}}),
            ("exits and forks", SHARED, lambda: {"sending": {"exits": sending.exits(bench, quick)}}),
        ]
    raise ValueError(f"no bench section {name!r}: one of {', '.join(SECTIONS)}")


def _live_results(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The live run of median write units per event stands for the section; every run's figures beside it."""
    live = _median_run(runs)
    return {
        "live": live,
        "wcu_per_event_live": live["wcu_per_event"],
        "hottest_key_at_10k_eps": _hottest(live["hot_keys_at_10k_eps"]),
        "live_runs": [
            {"wcu_per_event": r["wcu_per_event"], "hottest_wcu_per_s": _hottest(r["hot_keys_at_10k_eps"])["wcu_per_s"]}
            for r in runs
        ],
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median write units per event (the upper one of an even number)."""
    return sorted(runs, key=lambda run: run["wcu_per_event"])[len(runs) // 2]


def _median_backfill(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The load of median write units per event stands for ``name``; every run's figure beside it."""
    median = _median_run(runs)
    found = {name: median, f"{name}_runs": [run["wcu_per_event"] for run in runs]}
    return {**found, "wcu_per_event_backfill": median["wcu_per_event"]} if name == "backfill" else found


def _section(name: str, quick: bool, seed: int, stack: Stack, results: dict[str, Any]) -> None:
    """Run one section into ``results``, timing each of its steps (``step_seconds``)."""
    if name == "coldstart":
        configure_environment(stack, 0, 0)  # the functions' settings; no endpoint is called
        lean_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
        coldstart.lean_python()  # created once, before the machine is taken
        with _timed(results, name, "fresh processes", ALONE):
            results["cold_start_ms"] = coldstart.measure(2 if quick else 5, lean_env)
        return
    with _fresh_services(stack):
        bench = Bench(quick, seed, stack)
        for step, use, run in _steps(name, bench, quick):
            with _timed(results, name, step, use):
                _merged(results, run())


@contextmanager
def _timed(results: dict[str, Any], section: str, step: str, use: str) -> Iterator[None]:
    """Time a step once it has the machine as ``use`` says (``bench.lanes``)."""
    with lanes.machine(use):
        started = time.perf_counter()
        yield
        took = round(time.perf_counter() - started, 1)
    results.setdefault("step_seconds", {})[f"{section}: {step}"] = took
    print(f"bench: {section}: {step} took {took} s ({use})", flush=True)


@contextmanager
def _fresh_services(stack: Stack) -> Iterator[None]:
    """A DynamoDB Local and an SQS endpoint of the section's own, with the template's tables: DynamoDB
    Local slows as stream-enabled tables accumulate in one process, so no section pays for another's."""
    from local.queues import create_queues
    from meter.core import caches
    from meter.core.config import get_settings
    from meter.dal.sqs import client as sqs_client

    port, sqs_port = services.free_port(), services.free_port()
    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]
    configure_environment(stack, port, sqs_port)
    caches.forget_all()
    get_settings.cache_clear()
    dynamodb = services.start_dynamodb_local(port, None, RESULTS / "dynamodb.log.tmp")
    sqs = services.start_sqs(sqs_port, RESULTS / "sqs.log.tmp")  # where the aggregator sets poison aside
    try:
        ensure_tables(stack)
        create_queues(stack, sqs_client())
        yield
    finally:
        services.stop(dynamodb)
        services.stop(sqs)


def _merged(into: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """``into`` with ``part``'s keys, nested dicts merged (sections share ``routes`` and ``hostile``)."""
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merged(into[key], value)
        else:
            into[key] = value
    return into


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (every section, or one); print the report and write it under bench/results:
    latest.{json,md} for a full run, quick.* with --quick, <section>.* for one section."""
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--quick", action="store_true", help="a short live run and 3,000 events (make test)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--section", choices=SECTIONS, help="run this section alone (make bench SECTION=…)")
    parser.add_argument("--part", type=Path, help=argparse.SUPPRESS)  # a lane's section writes its results here
    args = parser.parse_args(argv)
    began = time.perf_counter()
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "section_seconds": {},
    }
    if args.section:
        _section(args.section, args.quick, args.seed, _bench_stack(args.quick), results)
        results["section_seconds"][args.section] = round(time.perf_counter() - began)
        if args.part:
            args.part.write_text(json.dumps(results))
            return 0
    else:
        options = [*(["--quick"] if args.quick else []), "--seed", str(args.seed)]
        done = lanes.run_all(options, RESULTS / ".parts")
        for name in SECTIONS:  # merged in the report's order, whichever lane finished first
            part, seconds = done[name]
            steps = part.pop("step_seconds", {})
            for key in ("mode", "date", "section_seconds"):
                part.pop(key, None)
            _merged(results, part)
            results.setdefault("step_seconds", {}).update(steps)
            results["section_seconds"][name] = round(seconds)
    results["bench_seconds"] = round(time.perf_counter() - began)
    RESULTS.mkdir(parents=True, exist_ok=True)
    # latest.* is the last full run, committed; docs/performance.md and the README cite it
    name = args.section or ("quick" if args.quick else "latest")
    if args.section and args.quick:
        name += "-quick"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    report = _report(results)
    (RESULTS / f"{name}.md").write_text(report)
    if name == "latest":
        PERFORMANCE_DOC.write_text(with_last_run(PERFORMANCE_DOC.read_text(), results))
    print(report)
    return 0


def _bench_stack(quick: bool) -> Stack:
    """The template's stack with its production settings, and the environment the bench runs in; the
    quick run shortens the window so make test need not wait."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["RATE_LIMIT_PER_SECOND"] = "0"  # latency runs call each handler back to back
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    return Stack(parameters={"AggregationWindowSeconds": "5"} if quick else None)
