"""GET /v1/usage/query against a brute-force oracle over the raw events.

The records sit around DST transitions (New York, St John's and Adelaide, both directions) and
on the quarter hours where half- and 45-minute zones start their hours and days, a millisecond
either side. They are stored directly (ingestion accepts 35 days back; these are months old)
and their aggregate items are written as the aggregator's ``coalesce`` computes them (the
pipeline and exactly-once tests hold the stream's items to the same recount); under moto,
committing thousands of items through the stream or reconciliation takes minutes.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from meter.core.config import get_settings
from meter.core.timerange import to_ms
from meter.counting.aggregation import coalesce, listing_attributes
from meter.dal import dynamo, store, tenants
from meter.dal.records import UsageRecord
from meter.dal.tenants import Layout, placed_record_item
from meter.reading.series import MAX_ROWS

ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "America/St_Johns", "America/New_York"]
# Three days around each transition: US and Newfoundland spring forward on Mar 8 and fall back
# on Nov 1; Adelaide falls back on Apr 5 and springs forward on Oct 4 (2026).
STRETCHES = [datetime(2026, 3, 7, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC),
             datetime(2026, 10, 30, tzinfo=UTC)]  # fmt: skip
TYPES = ["tokens.input", "tokens.output", "message", "conversation", "tool/call", "tokens.cached"]
GROUPS = ("identifier", "agentId", "model", "type")
RECEIVED = to_ms(datetime(2026, 11, 10, tzinfo=UTC))  # long before the reconciliation below


def _moment(rng: random.Random, stretch: datetime) -> int:
    base = to_ms(stretch) + rng.randrange(3 * 24) * 3_600_000
    quarter = rng.choice([0, 15, 30, 45]) * 60_000
    return base + quarter + rng.choice([0, 1, -1, rng.randrange(15 * 60_000)])  # on, or a ms either side


def _records(seed: int = 11, n: int = 240) -> list[UsageRecord]:
    rng, found = random.Random(seed), []
    for i in range(n):
        agent = rng.choice(["bot-a", "bot-b", "bot#c", None])
        relations = {
            "identifier": rng.choice(["ana@example.com", "bo", "ché", None]),
            "agentId": agent,
            "model": rng.choice(["gpt-4o", "claude", None]),  # a model without an agent is no agent's model
        }
        found.append(
            UsageRecord(
                tenant="acme",
                id=f"q-{i}",
                type=rng.choice(TYPES),
                count=rng.randrange(1, 900),
                ts=_moment(rng, rng.choice(STRETCHES)),
                credits=rng.randrange(0, 30),
                credits_source="event",
                received_at=RECEIVED,
                fingerprint="f",
                relations={k: v for k, v in relations.items() if v},
            )
        )
    other = UsageRecord("globex", "g-1", "message", 5, found[0].ts, 99, "event", found[0].received_at, "f", {})
    return [*found, other]


# Day cuts (meter.dal.dimensions) at the local midnights of Kolkata, New York (EDT, EST), St John's
# (NDT); "partly cut" day items hold them for all their events but one, and wrong parts besides,
# so an answer that read them would be wrong: those days are read from hour items.
CUTS = frozenset({74, 16, 20, 10})


def _partly(totals: dict) -> dict:
    for n, ((_, sk), added) in enumerate(sorted(totals.items())):
        if sk.startswith("D#") and n % 2:
            for name in [k for k in added if ">" in k]:
                added[name] += -1 if name.startswith(">") else 1000
    return totals


@pytest.fixture
def counted(gateway, tokens, request) -> list[UsageRecord]:
    cuts = getattr(request, "param", "uncut")  # how the day items hold day cuts (parametrized where asked)
    records = _records()
    settings = get_settings()
    listing = {key: value for record in records for key, value in listing_attributes(record).items()}
    items = [placed_record_item(record) for record in records]
    totals = coalesce(records, lambda tenant: Layout() if cuts == "uncut" else Layout(CUTS))
    totals = _partly(totals) if cuts == "partly cut" else totals
    items += [{"pk": pk, "sk": sk, **added, **listing.get((pk, sk), {})} for (pk, sk), added in totals.items()]
    for item in items:
        table = settings.records_table if "ord" in item else settings.aggregates_table
        dynamo.client().put_item(TableName=table, Item=dynamo.serialize(item))
    return [r for r in records if r.tenant == "acme"]


def _field(record: UsageRecord, name: str) -> str | None:
    """A model is an agent's model: an event without an agent has none (docs/api.md, the query API)."""
    if name == "model" and "agentId" not in record.relations:
        return None
    return record.type if name == "type" else record.relations.get(name)


def _measured(record: UsageRecord, measure: str) -> int:
    """The measure from its definition, never from the code under test."""
    if measure.startswith("count:"):
        return record.count if record.type == measure[6:] else 0
    return {
        "credits": record.credits,
        "events": 1,
        "tokens": record.count if record.type.startswith("tokens") else 0,
        "messages": record.count if record.type == "message" else 0,
        "conversations": record.count if record.type == "conversation" else 0,
    }[measure]


def _window_of(ms: int, zone: ZoneInfo, size: str | None):
    local = datetime.fromtimestamp(ms / 1000, zone)
    if size == "HOUR":
        return local.date(), local.hour, local.utcoffset()
    if size == "DAY":
        return local.date()
    if size == "MONTH":
        return local.year, local.month
    return "all"


def oracle(records, *, zone, size, start, end, measure, group_by, filters) -> Counter:
    """Brute force: every raw event in range, in its local window and group."""
    totals: Counter = Counter()
    for r in records:
        if not start <= r.ts < end or any(_field(r, name) not in values for name, values in filters.items()):
            continue
        group = tuple((name, _field(r, name)) for name in GROUPS if name in group_by)
        if any(value is None for _, value in group):
            continue
        totals[(_window_of(r.ts, zone, size), group)] += _measured(r, measure)
    return +totals


def answered(body: dict, zone: ZoneInfo, size: str | None) -> Counter:
    totals: Counter = Counter()
    for row in body["data"]:
        start = datetime.fromisoformat(row["windowStart"])
        assert start.utcoffset() == start.astimezone(zone).utcoffset()  # written in the zone's offset then
        key = (_window_of(to_ms(start), zone, size), tuple(row["groupBy"].items()))
        assert key not in totals and row["value"] != 0
        totals[key] = row["value"]
    return totals


def get(gateway, token: str, params: list[tuple[str, str]], accept: str = "application/json"):
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}
    return gateway.handle("GET", "/v1/usage/query", urlencode(params), headers, b"")


def _random_query(rng: random.Random) -> tuple[list[tuple[str, str]], dict]:
    zone = rng.choice(ZONES)
    size = rng.choice(["HOUR", "DAY", "MONTH", None])
    stretch = rng.choice(STRETCHES)
    if rng.random() < 0.5:  # bare local dates
        first = stretch.date() + timedelta(days=rng.choice([-1, 0, 1]))
        last = first + timedelta(days=rng.choice([1, 2, 4]))
        texts = first.isoformat(), last.isoformat()
        start = to_ms(datetime.combine(first, datetime.min.time(), ZoneInfo(zone)))
        end = to_ms(datetime.combine(last, datetime.min.time(), ZoneInfo(zone)))
    else:  # instants anywhere, mid-hour, to the millisecond
        start = to_ms(stretch) + rng.randrange(-6 * 3_600_000, 48 * 3_600_000)
        end = start + rng.randrange(1, 70 * 3_600_000)
        texts = tuple(datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds") for ms in (start, end))
    measure = rng.choice(["credits", "tokens", "events", "messages", "conversations", "count:tool/call",
                          "count:tokens.input", "count:tokens.cached", "count:message"])  # fmt: skip
    group_by = rng.sample(GROUPS, rng.choice([0, 0, 1, 1, 1, 2]))
    filters = {}
    if rng.random() < 0.4:
        name = rng.choice(GROUPS)
        filters[name] = rng.sample(
            {"identifier": ["ana@example.com", "bo", "ché", "nobody"], "agentId": ["bot-a", "bot#c", "bot-b"],
             "model": ["gpt-4o", "claude"], "type": TYPES}[name], 2)  # fmt: skip
    params = [("from", texts[0]), ("to", texts[1]), ("timeZone", zone), ("measure", measure)]
    params += [("windowSize", size)] if size else []
    params += [("groupBy", g) for g in group_by] + [(n, v) for n, values in filters.items() for v in values]
    expected = dict(zone=ZoneInfo(zone), size=size, start=start, end=end, measure=measure, group_by=group_by,
                    filters=filters)  # fmt: skip
    return params, expected


@pytest.mark.parametrize("counted", ["uncut", "cut", "partly cut"], indirect=True)
def test_every_answer_equals_the_brute_force_sum_in_every_zone_window_and_grouping(gateway, tokens, counted):
    rng = random.Random(5)
    for _ in range(60):
        params, q = _random_query(rng)
        response = get(gateway, tokens["acme"], params)
        assert response.status == 200, (params, response.body)
        expected = oracle(counted, **q)
        assert answered(response.json(), q["zone"], q["size"]) == expected, params


def test_dst_days_last_23_and_25_hours_and_rows_are_ordered(gateway, tokens, counted):
    params = [("from", "2026-10-30"), ("to", "2026-11-02"), ("timeZone", "America/New_York"), ("windowSize", "DAY"),
              ("measure", "events")]  # fmt: skip
    body = get(gateway, tokens["acme"], params).json()
    assert body["from"] == "2026-10-30T00:00:00-04:00" and body["to"] == "2026-11-02T00:00:00-05:00"
    lengths = {
        row["windowStart"][:10]: datetime.fromisoformat(row["windowEnd"]) - datetime.fromisoformat(row["windowStart"])
        for row in body["data"]
    }
    assert lengths["2026-11-01"] == timedelta(hours=25) and lengths["2026-10-31"] == timedelta(hours=24)
    starts = [row["windowStart"] for row in body["data"]]
    assert starts == sorted(starts, key=datetime.fromisoformat)

    spring = [("from", "2026-04-04T12:00:00+10:30"), ("to", "2026-04-06T00:00:00+09:30"),
              ("timeZone", "Australia/Adelaide"), ("windowSize", "DAY"), ("measure", "events")]  # fmt: skip
    rows = get(gateway, tokens["acme"], spring).json()["data"]
    assert rows[0]["windowStart"] == "2026-04-04T12:00:00+10:30"  # clipped to from, and says so
    assert [r["windowEnd"] for r in rows][-1] == "2026-04-06T00:00:00+09:30"


def test_csv_carries_the_same_rows(gateway, tokens, counted):
    params = [("from", "2026-03-07"), ("to", "2026-03-10"), ("timeZone", "Asia/Kathmandu"), ("windowSize", "DAY"),
              ("groupBy", "agentId"), ("groupBy", "model")]  # fmt: skip
    body = get(gateway, tokens["acme"], params).json()
    response = get(gateway, tokens["acme"], params, accept="text/csv")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.body.decode())))
    assert rows and [
        {"windowStart": r["windowStart"], "windowEnd": r["windowEnd"], "value": int(r["value"]),
         "groupBy": {"agentId": r["agentId"], "model": r["model"]}}
        for r in rows
    ] == body["data"]  # fmt: skip


def test_open_range_holds_everything_and_another_tenant_sees_nothing(gateway, tokens, counted):
    body = get(gateway, tokens["acme"], [("measure", "events")]).json()
    assert body["data"][0]["value"] == len(counted)
    assert datetime.fromisoformat(body["from"]) <= datetime.fromtimestamp(min(r.ts for r in counted) / 1000, UTC)
    globex = get(gateway, tokens["globex"], [("measure", "credits"), ("groupBy", "identifier")]).json()
    assert globex["data"] == []  # its one event has no identifier; acme's never appear
    assert get(gateway, tokens["globex"], [("measure", "credits")]).json()["data"][0]["value"] == 99


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ([("timeZone", "Mars/Olympus_Mons")], "timeZone"),
        ([("windowSize", "WEEK")], "windowSize"),
        ([("measure", "joules")], "measure"),
        ([("groupBy", "color")], "groupBy"),
        ([("agent", "bot-a")], "agent"),
        ([("from", "2026-03-08"), ("to", "2026-03-08")], "from"),
        ([("from", "2026-03-08T00:00:00")], "from"),
        ([("to", "tomorrow")], "to"),
        ([("identifier", "")], "identifier"),
        ([("timeZone", "UTC"), ("timeZone", "Asia/Kolkata")], "timeZone"),
        ([("from", "2024-01-01"), ("to", "2026-01-01"), ("windowSize", "HOUR")], "windowSize"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(gateway, tokens, params, named):
    response = get(gateway, tokens["acme"], params)
    assert response.status == 400, response.body
    assert f"'{named}'" in response.json()["error"]


def test_row_limit_is_stated_in_the_error(gateway, tokens):
    response = get(gateway, tokens["acme"], [("from", "2020-01-01"), ("to", "2026-01-01"), ("windowSize", "HOUR")])
    assert response.status == 400 and f"{MAX_ROWS:,}" in response.json()["error"]


def test_billing_period_starts_at_the_tenants_anchor_day(gateway, tokens):
    from meter.core.timerange import iso, now_ms
    from meter.dal.tenants import billing_period_start
    from tools.admin import set_billing_anchor

    set_billing_anchor("acme", 15)
    body = get(gateway, tokens["acme"], [("period", "billing")]).json()
    assert body["from"] == iso(billing_period_start(15, now_ms())).replace("Z", "+00:00")
    both = get(gateway, tokens["acme"], [("period", "billing"), ("from", "2026-01-01")])
    assert both.status == 400 and "'period'" in both.json()["error"]


def test_many_groups_may_be_summed_from_raw_events_when_that_reads_less_and_stay_exact(
    gateway, tokens, counted, monkeypatch
):
    from meter.reading import series

    decided, real = [], series._raw_is_cheaper
    monkeypatch.setattr(series, "RAW_CHECK_SERIES", 0)  # weigh the two ways for every query
    monkeypatch.setattr(series, "_raw_is_cheaper", lambda *a: decided.append(real(*a)) or decided[-1])
    rng = random.Random(9)
    for n in range(26):
        if n == 13:  # raw events cost more once spread over the 16 shards (the records stay where they are)
            assert store.tenants().shard_records("acme", 0)
            tenants.forget_tenant_settings("acme")
        params, q = _random_query(rng)
        response = get(gateway, tokens["acme"], params)
        assert response.status == 200, (params, response.body)
        assert answered(response.json(), q["zone"], q["size"]) == oracle(counted, **q), params
    assert True in decided and False in decided  # both ways were taken, and both were exact


def test_too_many_raw_events_are_refused_from_the_day_items_before_any_record_is_read(
    gateway, tokens, counted, monkeypatch
):
    from meter.reading import series

    monkeypatch.setattr(series, "MAX_RAW_RECORDS", len(counted) // 2)
    record_reads = []

    def record(params, model, **_):
        if model.name == "Query" and params["TableName"].endswith("RecordsTable"):
            record_reads.append(1)

    dynamo.client().meta.events.register("provide-client-params.dynamodb", record)
    response = get(gateway, tokens["acme"], [("groupBy", "identifier"), ("groupBy", "agentId")])
    dynamo.client().meta.events.unregister("provide-client-params.dynamodb", record)
    assert response.status == 400 and "'from'" in response.json()["error"], response.json()
    assert record_reads == []


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [("Africa/Monrovia", "1971-03-01", "1971-03-15"), ("Pacific/Kiritimati", "1975-06-01", "1975-06-03")],
)
def test_windows_off_the_quarter_hour_grid_are_refused_naming_the_zone(gateway, tokens, zone, start, end):
    record_reads = []

    def record(params, model, **_):
        if model.name == "Query" and params["TableName"].endswith("RecordsTable"):
            record_reads.append(1)

    dynamo.client().meta.events.register("provide-client-params.dynamodb", record)
    params = [("from", start), ("to", end), ("timeZone", zone)]
    hourly = get(gateway, tokens["acme"], [*params, ("windowSize", "HOUR")])
    whole = get(gateway, tokens["acme"], params)  # one window: its two edges are the caller's own
    dynamo.client().meta.events.unregister("provide-client-params.dynamodb", record)
    assert hourly.status == 400 and "'timeZone'" in hourly.json()["error"], hourly.json()
    assert whole.status == 200 and whole.json()["data"] == []
    assert len(record_reads) <= 2 * 16  # the two edges' raw slices at most, never one per window


def _ranking_query(rng: random.Random) -> tuple[list[tuple[str, str]], dict]:
    """A ranking of credits (by end user, agent, or agent and model) over local dates, a day to two months."""
    zone = rng.choice(["UTC", "Asia/Kolkata", "America/New_York", "Asia/Kathmandu"])
    first = rng.choice(STRETCHES).date() - timedelta(days=rng.choice([0, 1, 3, 20, 40]))
    last = first + timedelta(days=rng.choice([1, 3, 30, 45, 62]))
    size = rng.choice([None, None, "MONTH", "DAY"] if (last - first).days < 40 else [None, "MONTH"])
    group_by = rng.choice([["identifier"], ["agentId"], ["agentId", "model"]])
    start, end = (to_ms(datetime.combine(day, datetime.min.time(), ZoneInfo(zone))) for day in (first, last))
    params = [("from", first.isoformat()), ("to", last.isoformat()), ("timeZone", zone), ("measure", "credits")]
    params += [("windowSize", size)] if size else []
    params += [("groupBy", g) for g in group_by]
    expected = dict(zone=ZoneInfo(zone), size=size, start=start, end=end, measure="credits", group_by=group_by,
                    filters={})  # fmt: skip
    return params, expected


@pytest.mark.parametrize("counted", ["uncut", "cut", "partly cut"], indirect=True)
def test_rankings_of_credits_read_from_boards_equal_the_brute_force_sum(gateway, tokens, counted, monkeypatch):
    from meter.reading import series

    boarded, real = [], series.board_sums
    monkeypatch.setattr(series, "board_sums", lambda *a: boarded.append(real(*a) is not None) or real(*a))
    rng = random.Random(3)
    for _ in range(24):
        params, q = _ranking_query(rng)
        response = get(gateway, tokens["acme"], params)
        assert response.status == 200, (params, response.body)
        assert answered(response.json(), q["zone"], q["size"]) == oracle(counted, **q), params
    assert True in boarded  # UTC days, and the local days of the cuts the boards keep for every event
    assert False in boarded  # a zone whose local midnights the boards are not cut at: value by value


@pytest.fixture
def read_items():
    """(pk, sk) of every item a Query returns while the test runs."""
    seen: list[tuple[str, str]] = []

    def note(parsed, model, **_):
        seen.extend((item["pk"]["S"], item["sk"]["S"]) for item in parsed.get("Items", []) if "pk" in item)

    events = dynamo.client().meta.events
    events.register("after-call.dynamodb.Query", note)
    yield seen
    events.unregister("after-call.dynamodb.Query", note)


def test_a_board_missing_events_is_not_read(gateway, tokens, counted, read_items):
    params = [("from", "2026-03-01"), ("to", "2026-05-01"), ("groupBy", "identifier"), ("measure", "credits")]
    expected = oracle(counted, zone=ZoneInfo("UTC"), size=None, start=to_ms(datetime(2026, 3, 1, tzinfo=UTC)),
                      end=to_ms(datetime(2026, 5, 1, tzinfo=UTC)), measure="credits", group_by=["identifier"],
                      filters={})  # fmt: skip
    assert answered(get(gateway, tokens["acme"], params).json(), ZoneInfo("UTC"), None) == expected
    boards = {sk[:2] for pk, sk in read_items if pk == "acme#BOARD#I"}
    assert boards == {"M#"} and not any(pk.startswith("acme#I#") for pk, _ in read_items)  # two months' boards

    table = get_settings().aggregates_table
    month = dynamo.client().query(  # a month's board misses an event (as after a repair): read by its days
        TableName=table, KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
        ExpressionAttributeValues={":pk": {"S": "acme#BOARD#I"}, ":m": {"S": "M#2026-03#"}},
    )["Items"][0]  # fmt: skip
    dynamo.client().delete_item(TableName=table, Key={"pk": month["pk"], "sk": month["sk"]})
    read_items.clear()
    assert answered(get(gateway, tokens["acme"], params).json(), ZoneInfo("UTC"), None) == expected
    assert {sk[:2] for pk, sk in read_items if pk == "acme#BOARD#I"} == {"M#", "D#"}  # April's board, March's days
    day = next(sk for pk, sk in read_items if pk == "acme#BOARD#I" and sk.startswith("D#2026-03"))
    dynamo.client().delete_item(TableName=table, Key={"pk": {"S": "acme#BOARD#I"}, "sk": {"S": day}})
    read_items.clear()  # and a day's board misses one too: value by value
    assert answered(get(gateway, tokens["acme"], params).json(), ZoneInfo("UTC"), None) == expected
    assert any(pk.startswith("acme#I#") for pk, _ in read_items)


@pytest.mark.parametrize("counted", ["uncut", "cut"], indirect=True)
def test_a_ranking_ending_after_the_last_event_a_day_counts_reads_that_days_board(gateway, tokens, counted, read_items):
    last = max(r.ts for r in counted)  # the tenant's last event: an open `to` is the same, a quarter hour after it
    quarter = 15 * 60_000
    quiet, busy = (last // quarter + 1) * quarter, last // quarter * quarter
    start = to_ms(datetime(2026, 10, 1, tzinfo=UTC))
    for end, from_boards in ((quiet, True), (busy, False)):
        to = datetime.fromtimestamp(end / 1000, UTC).isoformat()
        params = [("from", "2026-10-01"), ("to", to), ("groupBy", "identifier"), ("measure", "credits")]
        expected = oracle(counted, zone=ZoneInfo("UTC"), size=None, start=start, end=end, measure="credits",
                          group_by=["identifier"], filters={})  # fmt: skip
        read_items.clear()
        assert answered(get(gateway, tokens["acme"], params).json(), ZoneInfo("UTC"), None) == expected
        assert any(pk.startswith("acme#I#") for pk, _ in read_items) is not from_boards  # else value by value
