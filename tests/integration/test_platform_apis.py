"""The AgentsGT, DigitalOcean Gradient and ChatBotKit usage APIs, in process over moto."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from meter.core.timerange import to_ms
from meter.dal.tenants import billing_period_start
from tests.conftest import STACK
from tests.helpers import aggregator, call

NOW = datetime.now(UTC)
DAY0 = NOW.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event(n: int, at: timedelta, **fields) -> dict:
    return {"id": f"e{n:02d}", "timestamp": iso(DAY0 + at), "count": 1, "type": "message", **fields}


EVENTS = [
    event(
        1,
        timedelta(hours=1),
        type="tokens.input",
        count=100,
        credits=1,
        agentId="bot-1",
        model="m-1",
        conversationId="c-1",
        identifier="ana",
        datasetId="ds-1",
        meta={"channel": "web", "vip": True},
    ),
    event(
        2,
        timedelta(hours=1, minutes=30),
        type="tokens.output",
        count=40,
        credits=2,
        agentId="bot-1",
        model="m-1",
        conversationId="c-1",
        identifier="ana",
        skillsetId="sk-1",
        meta={"channel": "api", "vip": False},
    ),
    event(
        3,
        timedelta(hours=2),
        type="conversation",
        credits=4,
        agentId="bot-1",
        model="m-2",
        conversationId="c-2",
        identifier="bo",
        abilityId="ab-1",
    ),
    event(
        4,
        timedelta(days=1, hours=5),
        type="message",
        credits=8,
        agentId="bot-2",
        model="m-3",
        conversationId="c-3",
        identifier="bo",
        datasetId="ds-2",
        messageId="msg-4",
    ),
    event(5, timedelta(days=1, hours=6), type="log_insights.input", count=7, credits=16, agentId="bot-1", model="m-2"),
    event(6, timedelta(days=2, hours=1), type="file", credits=32, agentId="bot-2", datasetId="ds-1"),
    event(
        7,
        timedelta(days=2, hours=1),
        type="tokens.input",
        count=5,
        credits=64,
        agentId="bot-1",
        model="m-1",
        conversationId="c-1",
        taskId="t-7",
    ),
]


@pytest.fixture
def api(gateway, tokens):
    response = call(gateway, "POST", "/v1/events", tokens["acme"], {"events": EVENTS})
    assert response.status == 200, response.body
    call(gateway, "POST", "/v1/events", tokens["globex"], {"events": [event(1, timedelta(hours=1), agentId="bot-1")]})
    aggregator(STACK).drain()

    def get(path: str, token: str = tokens["acme"], **query):
        return call(gateway, "GET", path, token, query=query)

    return get


# -- AgentsGT --------------------------------------------------------------------------------
def day(offset: int) -> str:
    return (DAY0 + timedelta(days=offset)).strftime("%Y-%m-%d")


def test_agent_dates(api):
    assert api("/api/v1/consumption/agent/bot-1/dates").json() == {
        "data": [
            {"date": day(0), "total_credits": 7},
            {"date": day(1), "total_credits": 16},
            {"date": day(2), "total_credits": 64},
        ]
    }
    assert api("/api/v1/consumption/agent/nobody/dates").status == 404


def test_agent_models_most_credits_first_and_exact(api):
    assert api("/api/v1/consumption/agent/bot-1/models").json() == {
        "data": [
            {"model_id": "m-1", "name": "m-1", "total_credits": 67},
            {"model_id": "m-2", "name": "m-2", "total_credits": 20},
        ]
    }
    mid_hour = {"from": iso(DAY0 + timedelta(hours=1, minutes=15)), "to": iso(DAY0 + timedelta(hours=2))}
    assert api("/api/v1/consumption/agent/bot-1/models", **mid_hour).json()["data"] == [
        {"model_id": "m-2", "name": "m-2", "total_credits": 4},
        {"model_id": "m-1", "name": "m-1", "total_credits": 2},
    ]


def test_organization_summary_and_agents(api):
    summary = api("/api/v1/consumption/organization/acme/summary").json()["data"]
    assert summary["organization_id"] == "acme" and summary["total_consumption"] == 127
    assert summary["period"]["from"] == f"{day(0)}T00:00:00Z"
    ranged = api("/api/v1/consumption/organization/acme/summary", **{"from": day(1), "to": day(1)}).json()["data"]
    assert ranged["total_consumption"] == 24
    assert ranged["period"] == {"from": f"{day(1)}T00:00:00Z", "to": f"{day(1)}T23:59:59.999Z"}
    assert api("/api/v1/consumption/organization/acme/agents").json() == {
        "data": [{"agent_id": "bot-1", "total_credits": 87}, {"agent_id": "bot-2", "total_credits": 40}]
    }
    assert api("/api/v1/consumption/organization/globex/summary").status == 404


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (timedelta(0), timedelta(days=3)),  # whole days
        (timedelta(hours=1, minutes=15), timedelta(days=1, hours=5, minutes=30)),  # ragged to the minute
        (timedelta(hours=1), timedelta(hours=2)),  # one whole hour
        (timedelta(days=1), timedelta(days=2, hours=1, milliseconds=1)),  # a day, an hour and a millisecond
    ],
)
def test_organization_agents_equal_the_events_in_any_range(api, start, end):
    low, high = DAY0 + start, DAY0 + end
    want: dict[str, int] = {}
    for e in EVENTS:
        if "agentId" in e and low <= datetime.fromisoformat(e["timestamp"]) < high:
            want[e["agentId"]] = want.get(e["agentId"], 0) + e["credits"]
    query = {"from": iso(low), "to": iso(high - timedelta(milliseconds=1))}
    got = api("/api/v1/consumption/organization/acme/agents", **query).json()["data"]
    assert got == [{"agent_id": a, "total_credits": n} for a, n in sorted(want.items(), key=lambda p: (-p[1], p[0]))]


# -- DigitalOcean Gradient -----------------------------------------------------------------------
def test_gradient_usage_types(api):
    body = api("/v2/gen-ai/agents/bot-1/usage").json()
    assert body["usage"]["measurements"] == [
        {"tokens": 105, "usage_type": "INPUT"},
        {"tokens": 40, "usage_type": "OUTPUT"},
    ]
    assert body["log_insights_usage"]["measurements"] == [{"tokens": 7, "usage_type": "INPUT"}]
    assert body["usage"]["resource_uuid"] == "bot-1"
    datetime.fromisoformat(body["usage"]["stop"])  # RFC 3339


def test_gradient_range_is_exact_and_stop_defaults_to_now(api):
    start = iso(DAY0 + timedelta(hours=1, minutes=10))
    body = api("/v2/gen-ai/agents/bot-1/usage", start=start, stop=iso(DAY0 + timedelta(days=1))).json()
    assert body["usage"]["measurements"] == [{"tokens": 40, "usage_type": "OUTPUT"}]
    assert body["usage"]["start"] == start
    assert api("/v2/gen-ai/agents/bot-1/usage", start=start).json()["usage"]["measurements"][0]["tokens"] == 5


def test_gradient_errors_use_digitaloceans_shape(api):
    missing = api("/v2/gen-ai/agents/nobody/usage")
    assert missing.status == 404 and missing.json()["id"] == "not_found" and "request_id" in missing.json()
    bad = api("/v2/gen-ai/agents/bot-1/usage", start="soon")
    assert bad.status == 400 and "'start'" in bad.json()["message"]


# -- ChatBotKit ------------------------------------------------------------------------------------
def ids(response) -> list[str]:
    return [item["id"] for item in response.json()["items"]]


def test_list_newest_first_with_unix_ms_and_relations(api):
    response = api("/api/v1/usage/list")
    assert ids(response) == ["e07", "e06", "e05", "e04", "e03", "e02", "e01"]
    assert "cursor" not in response.json()
    first = response.json()["items"][-1]
    assert first["createdAt"] == to_ms(DAY0 + timedelta(hours=1)) == first["updatedAt"]
    assert (
        first["botId"] == "bot-1"
        and first["conversationId"] == "c-1"
        and first["meta"] == {"channel": "web", "vip": True}
    )
    assert "agentId" not in first and "identifier" not in first


@pytest.mark.parametrize(("take", "expected"), [("2", 2), ("0", 7), ("abc", 7), ("-3", 1), ("500", 7)])
def test_take_is_clamped(api, take, expected):
    assert len(ids(api("/api/v1/usage/list", take=take))) == expected


@pytest.mark.parametrize("order", ["asc", "desc", "sideways"])
def test_cursor_pages_cover_everything_once_and_never_end_empty(api, order):
    seen, cursor, pages = [], None, 0
    while True:
        query = {"take": "3", "order": order, **({"cursor": cursor} if cursor else {})}
        body = api("/api/v1/usage/list", **query).json()
        assert body["items"], "an empty page before the end"
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body.get("cursor")
        if cursor is None:
            break
        assert isinstance(cursor, str)
    expected = sorted(e["id"] for e in EVENTS)
    assert seen == (expected if order == "asc" else expected[::-1]) and pages == 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"type": "message"}, ["e04"]),
        ({"type": "tokens.input,file"}, ["e07", "e06", "e01"]),
        ({"botId": "bot-2"}, ["e06", "e04"]),
        ({"botId": "bot-2,bot-1", "order": "asc"}, ["e01", "e02", "e03", "e04", "e05", "e06", "e07"]),
        ({"conversationId": "c-1"}, ["e07", "e02", "e01"]),
        ({"conversationId": "c-1,c-3", "botId": "bot-2"}, ["e04"]),
        ({"messageId": "msg-4"}, ["e04"]),
        ({"taskId": "t-7"}, ["e07"]),
        ({"datasetId": "ds-1"}, ["e06", "e01"]),
        ({"meta.channel": "web"}, ["e01"]),
        ({"meta[channel]": "api"}, ["e02"]),
        ({"meta.vip": "true"}, ["e01"]),
        ({"meta[vip]": "false"}, ["e02"]),
        ({"meta.vip": "maybe"}, []),
    ],
)
def test_list_filters(api, query, expected):
    assert ids(api("/api/v1/usage/list", **query)) == expected


def test_filtered_pages_are_full_and_cursor_only_when_more_follow(api):
    first = api("/api/v1/usage/list", botId="bot-1", take="2").json()
    assert [i["id"] for i in first["items"]] == ["e07", "e05"] and first["cursor"]
    second = api("/api/v1/usage/list", botId="bot-1", take="2", cursor=first["cursor"]).json()
    assert [i["id"] for i in second["items"]] == ["e03", "e02"] and second["cursor"]
    third = api("/api/v1/usage/list", botId="bot-1", take="2", cursor=second["cursor"]).json()
    assert third == {"items": [{**third["items"][0]}]} and third["items"][0]["id"] == "e01"


def test_cursors_are_bound_to_their_tenant(api, tokens):
    cursor = api("/api/v1/usage/list", take="1").json()["cursor"]
    stolen = api("/api/v1/usage/list", tokens["globex"], cursor=cursor)
    assert stolen.status == 400 and "cursor" in stolen.json()["error"]
    assert api("/api/v1/usage/list", cursor="garbage!").status == 400


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_cursors_are_tamper_evident(api):
    cursor = api("/api/v1/usage/list", take="1").json()["cursor"]
    payload, mac = cursor.split(".")
    position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["o"]
    # Skip ahead by editing the position: the MAC no longer matches.
    edited = _b64(json.dumps({"o": position[:-1] + "~"}).encode())
    assert api("/api/v1/usage/list", cursor=f"{edited}.{mac}").status == 400
    forged = ("B" if mac[0] == "A" else "A") + mac[1:]  # always another MAC (its last characters may be "AA")
    assert api("/api/v1/usage/list", cursor=f"{payload}.{forged}").status == 400
    assert api("/api/v1/usage/list", cursor=payload).status == 400
    assert "cursor" in api("/api/v1/usage/list", cursor=f"{payload}.{mac}x").json()["error"]
    assert api("/api/v1/usage/list", cursor=f"{payload}.{mac[:-1]}é").status == 400  # found by schemathesis as a 500
    assert api("/api/v1/usage/list", cursor=cursor).status == 200


def test_list_as_csv(gateway, tokens, api):
    response = call(gateway, "GET", "/api/v1/usage/list", tokens["acme"], query={"botId": "bot-2"})
    assert response.headers["Content-Type"] == "application/json"
    headers = {"Authorization": f"Bearer {tokens['acme']}", "Accept": "text/csv"}
    as_csv = gateway.handle("GET", "/api/v1/usage/list", "botId=bot-2", headers)
    assert as_csv.status == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.body.decode())))
    assert [r["id"] for r in rows] == ["e06", "e04"] and rows[1]["messageId"] == "msg-4" and rows[1]["botId"] == "bot-2"


def test_series_last_90_days(api):
    body = api("/api/v1/usage/series/fetch").json()
    midnight = [to_ms(DAY0 + timedelta(days=d)) for d in range(3)]
    assert body["tokens"] == [{"date": midnight[0], "total": 140}, {"date": midnight[2], "total": 5}]
    assert body["conversations"] == [{"date": midnight[0], "total": 1}]
    assert body["messages"] == [{"date": midnight[1], "total": 1}]


def test_current_period_snapshot(api):
    start = billing_period_start(1, to_ms(NOW))
    in_period = [e for e in EVENTS if to_ms(datetime.fromisoformat(e["timestamp"])) >= start]

    def distinct(field: str) -> int:
        return len({e[field] for e in in_period if field in e})

    def count(kind) -> int:
        return sum(e["count"] for e in in_period if kind(e["type"]))

    assert api("/api/v1/usage/fetch").json() == {
        "tokens": count(lambda t: t.startswith("tokens")),
        "conversations": count(lambda t: t == "conversation"),
        "messages": count(lambda t: t == "message"),
        "database": {
            "datasets": distinct("datasetId"),
            "records": len(in_period),
            "skillsets": distinct("skillsetId"),
            "abilities": distinct("abilityId"),
            "files": count(lambda t: t.startswith("file")),
            "users": distinct("identifier"),
        },
    }


@pytest.mark.parametrize(
    ("anchor", "now", "start"),
    [
        (1, datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        (20, datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 2, 20, tzinfo=UTC)),
        (20, datetime(2026, 1, 5, tzinfo=UTC), datetime(2025, 12, 20, tzinfo=UTC)),
        (15, datetime(2026, 3, 15, 8, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)),
    ],
)
def test_billing_periods(anchor, now, start):
    assert billing_period_start(anchor, to_ms(now)) == to_ms(start)


def test_bot_and_conversation_snapshots(api):
    assert api("/api/v1/bot/bot-1/usage/fetch").json() == {"tokens": 145, "conversations": 1, "messages": 0}
    ranged = api("/api/v1/bot/bot-1/usage/fetch", **{"from": iso(DAY0 + timedelta(hours=1, minutes=1))})
    assert ranged.json() == {"tokens": 45, "conversations": 1, "messages": 0}
    assert api("/api/v1/conversation/c-1/usage/fetch").json() == {"tokens": 145, "conversations": 0, "messages": 0}
    window = {"from": day(0), "to": day(0)}
    assert api("/api/v1/conversation/c-1/usage/fetch", **window).json()["tokens"] == 140


# -- a list's cost is bounded by the request, not by the tenant's history -------------------------
def _record_reads(gateway, token, query: dict) -> tuple[int, object]:
    from meter.dal import dynamo

    reads = []

    def record(params, model, **_):
        if model.name == "Query" and params["TableName"].endswith("RecordsTable"):
            reads.append(1)

    dynamo.client().meta.events.register("provide-client-params.dynamodb", record)
    response = call(gateway, "GET", "/api/v1/usage/list", token, query=query)
    dynamo.client().meta.events.unregister("provide-client-params.dynamodb", record)
    return len(reads), response


def test_a_filter_that_matches_little_or_nothing_reads_within_a_budget(gateway, tokens, monkeypatch):
    from meter.api import chatbotkit

    monkeypatch.setattr(chatbotkit, "LIST_SCAN_BUDGET", 200)
    monkeypatch.setattr(chatbotkit, "FILTERED_SHARD_PAGE", 50)
    base = datetime.now(UTC) - timedelta(days=2)
    events = [
        {
            "id": f"r{n:03d}",
            "type": "message",
            "count": 1,
            "timestamp": iso(base + timedelta(minutes=n)),
            "meta": {"rare": n % 40 == 0},  # a match in every budget's worth of records
        }
        for n in range(240)
    ]
    for start in (0, 120):
        assert (
            call(gateway, "POST", "/v1/events", tokens["acme"], {"events": events[start : start + 120]}).status == 200
        )
    aggregator(STACK).drain()
    empty_reads, _ = _record_reads(gateway, tokens["globex"], {"meta.rare": "nope", "take": "1"})

    reads, response = _record_reads(gateway, tokens["acme"], {"type": "nope", "take": "1"})
    assert (reads, response.status, response.json()) == (0, 200, {"items": []})  # the aggregates know
    reads, response = _record_reads(gateway, tokens["acme"], {"meta.rare": "nope", "take": "1"})
    assert response.status == 400 and "'meta.rare'" in response.json()["error"]
    assert reads <= empty_reads + 200 // 50 + 2  # the budget in pages of 50, not in pages of 4

    seen, cursor = [], None
    while True:  # every match once, in order, and never an empty page with a cursor
        query = {"meta.rare": "true", "take": "100", **({"cursor": cursor} if cursor else {})}
        body = call(gateway, "GET", "/api/v1/usage/list", tokens["acme"], query=query).json()
        assert body["items"] or "cursor" not in body
        seen += [item["id"] for item in body["items"]]
        cursor = body.get("cursor")
        if cursor is None:
            break
    assert seen == [f"r{n:03d}" for n in range(239, -1, -1) if n % 40 == 0]
