"""A sharded agents' roster: a tenant with thousands of agents moves its agents' credits from its
boards to a roster spread over several partitions, from an event time on, and every total stays
the brute-force sum of the raw events: the stored buckets, organization agents over any range
(whatever boards miss), and reconciliation's recount."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from meter.core.config import get_settings
from meter.core.timerange import DAY_MS, now_ms, to_ms
from meter.counting.reconcile import HORIZON_MS, reconcile_window
from meter.dal import dynamo, store, tenants
from meter.dal.records import record_from_item
from meter.reading import agents
from tests.conftest import STACK
from tests.helpers import aggregator, call, recount, stored_aggregates

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
SHARDED_FROM = DAY + timedelta(hours=13, minutes=20)  # the roster is sharded from 13:20 UTC of that day on
AGENTS = [f"bot-{n}" for n in range(24)]
# Before the shard start, at it to the millisecond, after it, and on the next day.
MOMENTS = [timedelta(hours=2), timedelta(hours=13, minutes=19, seconds=59, milliseconds=999)]
MOMENTS += [timedelta(hours=13, minutes=20), timedelta(hours=13, minutes=20, milliseconds=1), timedelta(hours=20)]
MOMENTS += [timedelta(days=1, hours=3)]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _events(prefix: str, agents: list[str]) -> list[dict]:
    return [
        {
            "id": f"{prefix}-{a}-{m}",
            "type": "message",
            "count": 1,
            "credits": 1 + (a + m) % 5,
            "agentId": agent,
            "identifier": f"user-{a % 3}",
            "timestamp": iso(DAY + moment),
        }
        for a, agent in enumerate(agents)
        for m, moment in enumerate(MOMENTS)
    ]


def _send(gateway, token: str, events: list[dict]) -> None:
    for start in range(0, len(events), 100):
        response = call(gateway, "POST", "/v1/events", token, {"events": events[start : start + 100]})
        assert response.status == 200, response.body
    aggregator(STACK).drain()


def _records(tenant: str) -> list:
    items = dynamo.client().scan(TableName=get_settings().records_table)["Items"]
    return [r for r in map(record_from_item, map(dynamo.deserialize, items)) if r.tenant == tenant]


def _roster_partitions(tenant: str) -> dict[str, set[str]]:
    """Sort key → the partitions holding an entry with that sort key (from the documented formats)."""
    found: dict[str, set[str]] = {}
    for item in dynamo.client().scan(TableName=get_settings().aggregates_table)["Items"]:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk == f"{tenant}#AC" or pk.startswith(f"{tenant}#AC#"):
            found.setdefault(sk, set()).add(pk)
    return found


@pytest.fixture
def sharded(gateway, tokens) -> list[dict]:
    assert store.tenants().shard_roster("acme", to_ms(SHARDED_FROM))
    tenants.forget_tenant_settings("acme")
    events = _events("e", AGENTS)
    _send(gateway, tokens["acme"], events)
    return events


def test_a_sharded_roster_holds_the_rules_totals_spread_from_its_start(sharded):
    stored = stored_aggregates(dynamo.client(), get_settings().aggregates_table, "acme")
    assert stored == recount(_records("acme"), roster_sharded_from=to_ms(SHARDED_FROM))  # no agent boards from then

    partitions = _roster_partitions("acme")
    assert partitions and all(sk >= SHARDED_FROM.strftime("H#%Y-%m-%dT%H") or sk.startswith("D#") for sk in partitions)
    for bucket in (SHARDED_FROM.strftime("H#%Y-%m-%dT%H#"), DAY.strftime("D#%Y-%m-%d#")):
        holding = [sk for sk in partitions if sk.startswith(bucket)]
        assert len({pk for sk in holding for pk in partitions[sk]}) > 2  # spread by agent
    next_day = [sk for sk in partitions if sk.startswith("D#" + (DAY + timedelta(days=1)).strftime("%Y-%m-%d#"))]
    assert len({pk for sk in next_day for pk in partitions[sk]}) > 1


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (timedelta(0), timedelta(days=2)),  # whole days, across the shard start
        (timedelta(hours=1, minutes=7), timedelta(hours=13, minutes=20)),  # ragged, ending at the start
        (timedelta(hours=12), timedelta(hours=14)),  # whole hours around the start
        (timedelta(hours=13, minutes=19, seconds=59), timedelta(hours=13, minutes=20, milliseconds=1)),  # to the ms
        (timedelta(hours=13, minutes=20), timedelta(days=1, hours=4)),  # from the start on, into the next day
    ],
)
def test_organization_agents_equal_the_events_in_any_range(gateway, tokens, sharded, start, end):
    _agents_in("acme", tokens["acme"], gateway, sharded, start, end)


def _delete_board_items(tenant: str, prefix: str) -> int:
    table = get_settings().aggregates_table
    query = {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": f"{tenant}#BOARD#A"}}}
    pages = dynamo.client().get_paginator("query").paginate(TableName=table, **query)
    items = [item for page in pages for item in page["Items"] if item["sk"]["S"].startswith(prefix)]
    for item in items:
        dynamo.client().delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    return len(items)


def _agents_in(tenant: str, token: str, gateway, events: list[dict], start: timedelta, end: timedelta) -> None:
    """Organization agents over ``[DAY + start, DAY + end)`` equal the events' sums."""
    low, high = DAY + start, DAY + end
    want: Counter[str] = Counter()
    for e in events:
        if low <= datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) < high:
            want[e["agentId"]] += e["credits"]
    query = {"from": iso(low), "to": iso(high - timedelta(milliseconds=1))}
    response = call(gateway, "GET", f"/api/v1/consumption/organization/{tenant}/agents", token, query=query)
    assert response.status == 200, response.body
    ranked = sorted(want.items(), key=lambda pair: (-pair[1], pair[0]))
    assert response.json()["data"] == [{"agent_id": a, "total_credits": n} for a, n in ranked]


@pytest.mark.parametrize(
    ("board", "start", "end"),
    [("D#%Y-%m-%d", timedelta(0), timedelta(days=2)), ("H#%Y-%m-%dT02", timedelta(minutes=67), timedelta(hours=13))],
)
def test_organization_agents_read_every_agent_where_a_board_misses_events(
    gateway, tokens, monkeypatch, board, start, end
):
    events = _events("g", AGENTS[:6])
    _send(gateway, tokens["globex"], events)  # a tenant whose roster is not sharded: its agents are on boards
    spans: list[tuple[int, int]] = []
    every_agent = agents._every_agent
    monkeypatch.setattr(agents, "_every_agent", lambda tenant, span: spans.append(span) or every_agent(tenant, span))
    _agents_in("globex", tokens["globex"], gateway, events, start, end)
    assert not spans  # every board holds all of the tenant's events
    assert _delete_board_items("globex", DAY.strftime(board)) > 0  # a day's board, or an hour's
    _agents_in("globex", tokens["globex"], gateway, events, start, end)
    assert spans  # the boards' part was read agent by agent


def test_organization_agents_read_boards_before_the_start_and_the_roster_after(gateway, tokens, sharded):
    queried: list[str] = []

    def note(params, **_):
        values = params.get("ExpressionAttributeValues", {}).values()
        queried.extend(value["S"] for value in values if value.get("S", "").startswith("acme#"))

    events = dynamo.client().meta.events
    events.register("provide-client-params.dynamodb.Query", note)
    try:
        query = {"from": iso(DAY + timedelta(hours=1)), "to": iso(SHARDED_FROM - timedelta(minutes=20, milliseconds=1))}
        call(gateway, "GET", "/api/v1/consumption/organization/acme/agents", tokens["acme"], query=query)
        assert "acme#BOARD#A" in queried and not any(pk.startswith("acme#AC") for pk in queried)
        queried.clear()
        query = {"from": iso(SHARDED_FROM + timedelta(minutes=40)), "to": iso(DAY + timedelta(days=1, hours=4))}
        call(gateway, "GET", "/api/v1/consumption/organization/acme/agents", tokens["acme"], query=query)
        assert len({pk for pk in queried if pk.startswith("acme#AC")}) > 1 and "acme#BOARD#A" not in queried
    finally:
        events.unregister("provide-client-params.dynamodb.Query", note)


def test_reconciliation_recounts_a_sharded_roster_and_repairs_a_lost_entry(sharded):
    later = now_ms() + HORIZON_MS + 60_000
    day = to_ms(DAY)
    assert reconcile_window("acme", day, day + DAY_MS, later).drifted == 0

    partitions = _roster_partitions("acme")
    entry = next(sk for sk in sorted(partitions) if sk.startswith("D#"))
    table = get_settings().aggregates_table
    dynamo.client().delete_item(TableName=table, Key={"pk": {"S": min(partitions[entry])}, "sk": {"S": entry}})

    report = reconcile_window("acme", day, day + DAY_MS, later)
    assert report.repaired == 1 and report.overcounted == 0
    assert stored_aggregates(dynamo.client(), table, "acme") == recount(
        _records("acme"), roster_sharded_from=to_ms(SHARDED_FROM)
    )


def _live_events(prefix: str, agents: list[str]) -> list[dict]:
    moment = datetime.now(UTC) - timedelta(minutes=1)
    return [
        {"id": f"{prefix}-{agent}", "type": "message", "count": 1, "credits": 2, "agentId": agent,
         "timestamp": iso(moment)}
        for agent in agents
    ]  # fmt: skip


def test_a_commit_with_live_traffic_from_many_agents_shards_its_tenants_roster_past_every_cached_setting(
    gateway, tokens, monkeypatch
):
    monkeypatch.setattr(tenants, "ROSTER_SHARD_AT", 4)
    _send(gateway, tokens["globex"], _events("history", AGENTS))  # many agents, two days ago: a backfill
    _send(gateway, tokens["globex"], _live_events("calm", AGENTS[:3]))
    sent_at = now_ms()
    _send(gateway, tokens["acme"], _live_events("busy", AGENTS[:4]))
    tenants.forget_tenant_settings("acme")
    tenants.forget_tenant_settings("globex")

    start = tenants.layout("acme").roster_sharded_from
    settings = get_settings()
    horizon = (settings.rate_card_cache_seconds + settings.max_future_skew_seconds) * 1000
    assert start is not None and sent_at + horizon < start < now_ms() + horizon + 120_000
    assert tenants.layout("globex").roster_sharded_from is None

    tenants.shard_roster("acme", now_ms() + 10 * DAY_MS)  # sharded once: the first start stands
    tenants.forget_tenant_settings("acme")
    assert tenants.layout("acme").roster_sharded_from == start
