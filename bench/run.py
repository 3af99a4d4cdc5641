"""``make bench``: capacity per event and per query, throughput, latency and cold start.

Starts DynamoDB Local in memory, loads a seeded Zipf-skewed data set through the real ingest and
aggregation code, and measures every figure in this run (nothing is typed in by hand). Writes
bench/results/latest.json and latest.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

import requests

from bench import coldstart
from bench.capacity import CapacityMeter
from bench.dataset import Shape, agent, events, identifier
from local import services
from local.run import _http_handler, configure_environment, ensure_tables
from local.template import ROOT, Stack

RESULTS = ROOT / "bench" / "results"
TENANT = "bench"
WINDOWS = (1, 7, 30, 90)
BATCH_SIZES = (1, 25, 100, 500)


class Bench:
    """One benchmark run against one in-memory DynamoDB Local."""

    def __init__(self, quick: bool, seed: int):
        self.quick, self.seed = quick, seed
        self.stack = Stack()
        self.now = datetime.now(UTC)
        from meter import dynamo

        self.meter = CapacityMeter().attach(dynamo.client())
        source = self.stack.stream_sources()[0]
        from local.streams import StreamMapping

        self.mapping = StreamMapping(
            source, self.stack.functions()[source.function], self.stack.physical_name(source.table), lambda _: None
        )

    # -- writes --------------------------------------------------------------------------------
    def ingest(self, batch: list[dict]) -> None:
        from meter.ingest import ingest, parse_events

        ingest(TENANT, parse_events(json.dumps({"events": batch})))

    def drain(self, batch_size: int) -> None:
        self.mapping.source = dataclasses.replace(self.mapping.source, batch_size=batch_size)
        self.mapping.drain(timeout=3600)

    def writes(self) -> dict[str, Any]:
        """WCU per event, ingest plus aggregation, at each batch size; and without exactly-once."""
        per_event, without, where = {}, {}, {}
        for size in BATCH_SIZES:
            shape = Shape(events=max(size * (2 if self.quick else 4), 200), days=1)
            # Arriving in time order within the last day, as live traffic does.
            sample = sorted(events(shape, seed=self.seed + size, now=self.now), key=lambda e: e["timestamp"])
            self.meter.reset()
            for start in range(0, len(sample), size):
                self.ingest(sample[start : start + size])
            ingest_wcu = self.meter.write
            self.drain(size)
            per_event[str(size)] = round(self.meter.write / len(sample), 3)
            # Same coalesced counter updates as plain UpdateItems (1 WCU), no markers: what
            # exactness costs is the difference.
            counters = self.meter.transact_items - len(sample)
            without[str(size)] = round((ingest_wcu + counters) / len(sample), 3)
            where[str(size)] = {
                _short(place): round(units / len(sample), 3) for place, units in sorted(self.meter.write_by.items())
            }
        return {
            "wcu_per_event": per_event,
            "wcu_per_event_without_exactly_once": without,
            "wcu_per_event_by_table": where,
        }

    def load(self, shape: Shape) -> dict[str, float]:
        """Load the data set; events per second through the aggregator."""
        data = events(shape, seed=self.seed, now=self.now)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self.ingest, [data[i : i + 500] for i in range(0, len(data), 500)]))
        started = time.perf_counter()
        self.drain(100)
        return {"aggregator": round(len(data) / (time.perf_counter() - started), 1)}

    def http_throughput(self, total: int) -> float:
        """Events per second through the local HTTP API (100-event batches, 4 clients)."""
        from local.gateway import Gateway
        from meter.auth import create_key

        token = create_key(TENANT, ["ingest", "read"])
        server = ThreadingHTTPServer(("127.0.0.1", services.free_port()), _http_handler(Gateway(self.stack)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/events"
        data = events(Shape(events=total), seed=self.seed + 1000, now=self.now)
        batches = [data[i : i + 100] for i in range(0, total, 100)]

        def post(batch: list[dict]) -> None:
            response = requests.post(
                url, json={"events": batch}, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            response.raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(post, batches))
        elapsed = time.perf_counter() - started
        server.shutdown()
        self.drain(100)
        return round(total / elapsed, 1)

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
        from meter import agentsgt, chatbotkit, gradient
        from meter.dimensions import AGENT, IDENTIFIER
        from meter.dimensions import TENANT as WHOLE
        from meter.queries import aggregate_items, record_range
        from meter.timerange import DAY_MS, day_key, iso, now_ms

        top_user, top_agent, end = identifier(1), agent(1), now_ms()
        raw_index = {
            IDENTIFIER: ("ByIdentifier", "ik", f"{TENANT}#{top_user}"),
            AGENT: ("ByAgent", "ak", f"{TENANT}#{top_agent}"),
            WHOLE: ("ByTenant", "tk", TENANT),
        }
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
        result["identifier_dates_rolling"] = {}
        for days in WINDOWS:
            # Whole days, as AgentsGT documents its queries: from=…T00:00:00Z&to=…T23:59:59Z.
            start = (end // DAY_MS - days + 1) * DAY_MS
            stop = (end // DAY_MS + 1) * DAY_MS
            query = {"from": f"{day_key(start)}T00:00:00Z", "to": f"{day_key(end)}T23:59:59Z"}
            naive = {
                d: self.rcu(lambda d=d, start=start, stop=stop: record_range(*raw_index[d], start, stop))
                for d in raw_index
            }
            floor = {
                d: self.rcu(
                    lambda d=d, start=start: aggregate_items(
                        d.pk(TENANT, values[d]), f"D#{day_key(start)}", f"D#{day_key(end)}"
                    )
                )
                for d in raw_index
            }
            for name, (dimension, call) in endpoints.items():
                result[name][f"{days}d"] = {
                    "ours": self.rcu(lambda call=call, query=query: call(query)),
                    "floor": floor[dimension],
                    "naive": naive[dimension],
                }
            # The same user over the last N*24 hours to this millisecond: ragged edges read raw records.
            rolling = {"from": iso(end - days * DAY_MS)}
            result["identifier_dates_rolling"][f"{days}d"] = {
                "ours": self.rcu(lambda q=rolling: agentsgt.identifier_dates(TENANT, top_user, q)),
                "floor": floor[IDENTIFIER],
                "naive": self.rcu(lambda d=days: record_range(*raw_index[IDENTIFIER], end - d * DAY_MS, end + 1)),
            }
        result["usage_series"] = {
            "90d": {
                "ours": self.rcu(lambda: chatbotkit.series(TENANT)),
                "floor": self.rcu(
                    lambda: aggregate_items(
                        WHOLE.pk(TENANT, ""), f"D#{day_key(end - 89 * 86_400_000)}", f"D#{day_key(end)}"
                    )
                ),
                "naive": self.rcu(lambda: record_range("ByTenant", "tk", TENANT, end - 90 * 86_400_000, end + 1)),
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

    def latency(self, runs: int) -> dict[str, dict[str, float]]:
        """p50/p95/p99 milliseconds of each query handler through the in-process gateway, warm."""
        from local.gateway import Gateway
        from meter.auth import create_key

        gateway, token = Gateway(self.stack), create_key(TENANT, ["read"])
        paths = {
            route.function: route.path.replace("{identifier}", identifier(1))
            .replace("{agentId}", agent(1))
            .replace("{uuid}", agent(1))
            .replace("{botId}", agent(1))
            .replace("{orgId}", TENANT)
            .replace("{conversationId}", "conv-1-0")
            for route in self.stack.routes()
            if route.method == "GET"
        }
        result = {}
        for function, path in sorted(paths.items()):
            samples = []
            for _ in range(runs + 1):
                started = time.perf_counter()
                gateway.handle("GET", path, "", {"Authorization": f"Bearer {token}"})
                samples.append((time.perf_counter() - started) * 1000)
            samples = sorted(samples[1:])  # the first call warms the handler
            cut = statistics.quantiles(samples, n=100, method="inclusive")
            result[function] = {"p50": round(cut[49], 2), "p95": round(cut[94], 2), "p99": round(cut[98], 2)}
        return result


def _short(place: str) -> str:
    """``<stack>-RecordsTable.ByTenant`` → ``RecordsTable.ByTenant``."""
    return place.rsplit("-", 1)[-1]


def _report(results: dict[str, Any]) -> str:
    lines = [f"# Benchmark ({results['mode']}, {results['events']} events, {results['date']})", ""]
    lines += [
        "## Write capacity per event (ingest + aggregation)",
        "",
        "| batch | WCU/event | without exactly-once | floor |",
        "| --- | --- | --- | --- |",
    ]
    for size, value in results["wcu_per_event"].items():
        lines.append(f"| {size} | {value} | {results['wcu_per_event_without_exactly_once'][size]} | 1.0 |")
    breakdown = results["wcu_per_event_by_table"]
    places = sorted({place for sizes in breakdown.values() for place in sizes})
    lines += ["", "Where it goes (WCU per event, by table and index):", ""]
    lines += ["| batch | " + " | ".join(places) + " |", "| --- |" + " --- |" * len(places)]
    lines += [f"| {size} | " + " | ".join(str(row.get(p, 0)) for p in places) + " |" for size, row in breakdown.items()]
    lines += [
        "",
        "## Read capacity per query (RCU)",
        "",
        "| endpoint | window | ours | floor | naive | naive / ours |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for endpoint, windows in results["rcu_per_query"].items():
        for window, figures in windows.items():
            ratio = round(figures["naive"] / figures["ours"], 1) if figures["ours"] else "-"
            lines.append(
                f"| {endpoint} | {window} | {figures['ours']} | {figures['floor']} | {figures['naive']} | {ratio} |"
            )
    lines += ["", "## Throughput (events/s)", "", *[f"- {k}: {v}" for k, v in results["events_per_second"].items()]]
    lines += ["", "## Latency, in process, warm (ms)", "", "| handler | p50 | p95 | p99 |", "| --- | --- | --- | --- |"]
    lines += [f"| {f} | {v['p50']} | {v['p95']} | {v['p99']} |" for f, v in results["latency_ms"].items()]
    lines += [
        "",
        "## Cold start: import + init, median of fresh processes (ms)",
        "",
        "| function | ms | / floor |",
        "| --- | --- | --- |",
    ]
    floor = results["cold_start_ms"]["floor"]
    lines += [f"| {f} | {v} | {round(v / floor, 2)} |" for f, v in results["cold_start_ms"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the report and write bench/results/latest.{json,md}."""
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--quick", action="store_true", help="a few thousand events, fewer repetitions")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    shape = Shape(events=3000 if args.quick else 100_000)
    port = services.free_port()
    stack = Stack()
    configure_environment(stack, port, services.free_port())
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["RATE_LIMIT_PER_SECOND"] = "0"  # latency runs call each handler back to back
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    dynamodb = services.start_dynamodb_local(port, None, RESULTS / "dynamodb.log.tmp")
    try:
        ensure_tables(stack)
        bench = Bench(args.quick, args.seed)
        results: dict[str, Any] = {
            "mode": "quick" if args.quick else "full",
            "events": shape.events,
            "date": bench.now.strftime("%Y-%m-%d %H:%M UTC"),
        }
        results.update(bench.writes())
        throughput = bench.load(shape)
        throughput["http"] = bench.http_throughput(500 if args.quick else 5000)
        results["events_per_second"] = throughput
        results["rcu_per_query"] = bench.reads()
        results["latency_ms"] = bench.latency(10 if args.quick else 100)
    finally:
        services.stop(dynamodb)
    lean_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    results["cold_start_ms"] = coldstart.measure(3 if args.quick else 10, lean_env)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    report = _report(results)
    (RESULTS / "latest.md").write_text(report)
    print(report)
    return 0
