"""The sending side in ``make bench``: what ``Meter.track`` costs its caller, how fast one Meter
delivers to the local stack, and how many events are lost when processes exit or fork without an
explicit flush. The stack is the shipped gateway and handlers over HTTP on this section's DynamoDB
Local; every figure is counted in the run (events lost = tracked - records stored)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

from local.template import ROOT

TENANT = "sender"
EXIT_SCRIPT = """
import sys
from agentmeter import Meter
meter = Meter(sys.argv[1], sys.argv[2], flush_interval=60)  # only the exit hook sends
for n in range(int(sys.argv[4])):
    meter.track("tokens.input", 1, identifier="exiting", id=f"{sys.argv[3]}-{n}")
"""
FORK_SCRIPT = """
import os, sys
from agentmeter import Meter
meter = Meter(sys.argv[1], sys.argv[2], flush_interval=60)
children, per = int(sys.argv[3]), int(sys.argv[4])
for n in range(per):
    meter.track("message", 1, identifier="forking", id=f"parent-{n}")
pids = []
for child in range(children):
    pid = os.fork()
    if pid == 0:
        for n in range(per):
            meter.track("message", 1, identifier="forking", id=f"child-{child}-{n}")
        sys.exit(0)  # as a pre-fork server's worker ends: the exit hook runs in the child
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""


class _Stack:
    """The gateway over HTTP on a free port, and a key of the section's tenant."""

    def __init__(self, bench: Any):
        from local.gateway import Gateway
        from local.run import http_server
        from tools.admin import create_key

        self.server = http_server(Gateway(bench.stack), 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.token = create_key(TENANT, ["ingest", "read"], rate_limit=0)

    def stored(self, prefix: str) -> int:
        """Records of the tenant whose id starts with ``prefix`` (a scan: the bench's table is small)."""
        from meter.dal import dynamo
        from meter.dal.keys import record_pk

        pages = (
            dynamo.client()
            .get_paginator("scan")
            .paginate(
                TableName=_records_table(),
                FilterExpression="begins_with(pk, :p)",
                ExpressionAttributeValues={":p": {"S": record_pk(TENANT, prefix)}},
                Select="COUNT",
            )
        )
        return sum(page["Count"] for page in pages)


def _records_table() -> str:
    from meter.core.config import get_settings

    return get_settings().records_table


def overhead(bench: Any, quick: bool) -> dict[str, Any]:
    """µs per ``track`` call as its caller sees it (the sender thread sending beside it), and a plain
    ``list.append`` of the same event in the same run; then events per second delivered end to end."""
    from agentmeter import Meter

    stack, calls = _Stack(bench), 500 if quick else 5_000
    event = {"identifier": "user-1", "agent_id": "agent-1", "model": "gpt-4o"}
    kept: list[dict[str, Any]] = []
    began = time.perf_counter()
    for n in range(calls):
        kept.append({"type": "tokens.input", "count": n, **event})
    append_us = (time.perf_counter() - began) / calls * 1e6
    meter = Meter(stack.url, stack.token, max_queue=calls + 1)
    began = time.perf_counter()
    for n in range(calls):
        meter.track("tokens.input", n, id=f"t-{n}", **event)
    track_us = (time.perf_counter() - began) / calls * 1e6
    assert meter.flush(timeout=600)
    delivered_in = time.perf_counter() - began
    meter.close()
    stored = stack.stored("t-")
    direct = _direct_posts(stack, [{"id": f"d-{n}", "type": "tokens.input", "count": n, "identifier": "user-1",
                                    "agentId": "agent-1", "model": "gpt-4o"} for n in range(calls)])  # fmt: skip
    stack.server.shutdown()
    return {
        "direct_events_per_second": direct,
        "track_us": round(track_us, 2),
        "list_append_us": round(append_us, 3),
        "events": calls,
        "delivered": meter.stats.delivered,
        "stored": stored,
        "events_per_second": round(calls / delivered_in),
        "requests_seconds": round(delivered_in, 2),
    }


def _direct_posts(stack: _Stack, events: list[dict[str, Any]]) -> int:
    """Events per second of the same events POSTed by hand in batches of 100, one after another: the
    stack's own pace, beside which the client's is read."""
    import json
    from http.client import HTTPConnection

    connection = HTTPConnection(stack.url.removeprefix("http://"), timeout=60)
    headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"}
    began = time.perf_counter()
    for start in range(0, len(events), 100):
        connection.request("POST", "/v1/events", json.dumps({"events": events[start : start + 100]}), headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    return round(len(events) / (time.perf_counter() - began))


def _run(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT)


def exits(bench: Any, quick: bool) -> dict[str, Any]:
    """Processes that track and exit without flushing, all at once; then a process that forks workers."""
    stack = _Stack(bench)
    processes, per = (20, 10) if quick else (100, 10)
    started = [_run(EXIT_SCRIPT, stack.url, stack.token, f"exit{p}", str(per)) for p in range(processes)]
    codes = [process.wait(timeout=600) for process in started]
    exited = stack.stored("exit")
    children = 4 if quick else 10
    forked = _run(FORK_SCRIPT, stack.url, stack.token, str(children), str(per))
    fork_code = forked.wait(timeout=600)
    stored_forked = stack.stored("parent-") + stack.stored("child-")
    stack.server.shutdown()
    return {
        "processes": processes,
        "events_per_process": per,
        "exit_codes_nonzero": sum(code != 0 for code in codes),
        "events_lost_at_exit": processes * per - exited,
        "fork_children": children,
        "fork_exit_code": fork_code,
        "events_lost_across_fork": (children + 1) * per - stored_forked,
    }
