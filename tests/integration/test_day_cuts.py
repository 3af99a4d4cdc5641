"""Day cuts: a tenant that reads local days in a zone off UTC gets day items that hold the part of
each UTC day after its zones' local midnights, so a local day is read from day items alone, and
every answer stays the brute-force sum of the raw events."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from meter.core.config import get_settings
from meter.core.localtime import local_midnight
from meter.core.timerange import DAY_MS, now_ms, to_ms
from meter.counting.aggregation import coalesce
from meter.counting.reconcile import HORIZON_MS, reconcile_window
from meter.dal import dynamo, store
from meter.dal.dimensions import IDENTIFIER
from meter.dal.records import UsageRecord, record_from_item
from meter.dal.tenants import MAX_DAY_CUTS, day_cuts, forget_tenant_settings, keep_day_cuts, keep_zone_cuts
from meter.ingest.batch import ingest, parse_events
from meter.reading.series import Series, UsageQuery, series_total
from tests.conftest import STACK
from tests.helpers import aggregator, recount, stored_aggregates, without_boards

KOLKATA, NEW_YORK = ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")
CUTS = frozenset({74, 16, 20})  # 18:30 UTC (Kolkata's midnight); 04:00 and 05:00 (New York's, EDT and EST)
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
# Either side of each cut, to the millisecond, and the ends of the UTC day.
MOMENTS = [timedelta(hours=h, minutes=m, milliseconds=ms) for h, m in ((4, 0), (5, 0), (18, 30)) for ms in (-1, 0, 1)]
MOMENTS += [timedelta(0), timedelta(hours=12, minutes=7), timedelta(days=1, milliseconds=-1)]


def _send(tenant: str, prefix: str) -> None:
    events = [
        {
            "id": f"{prefix}-{day}-{n}",
            "type": ("tokens.input", "message", "tool/call")[n % 3],
            "count": 1 + n,
            "credits": 1 + n % 4,
            "identifier": f"user-{n % 2}",
            "agentId": "bot-1",
            "model": "m-1",
            "timestamp": (DAY + timedelta(days=day) + moment).isoformat(timespec="milliseconds"),
        }
        for day in (0, 1)
        for n, moment in enumerate(MOMENTS)
    ]
    ingest(tenant, parse_events(json.dumps({"events": events})))


def _records(tenant: str) -> list:
    items = dynamo.client().scan(TableName=get_settings().records_table)["Items"]
    return [r for r in map(record_from_item, map(dynamo.deserialize, items)) if r.tenant == tenant]


def _stored(tenant: str) -> dict:
    return stored_aggregates(dynamo.client(), get_settings().aggregates_table, tenant)


def _stored_but_boards(tenant: str) -> dict:
    return without_boards(_stored(tenant))


def _keep_cuts(tenant: str) -> None:
    keep_zone_cuts(tenant, KOLKATA)
    keep_zone_cuts(tenant, NEW_YORK)
    assert day_cuts(tenant) == CUTS


@pytest.fixture
def read_items():
    """The sort keys of every aggregate bucket a Query returns while the test runs."""
    seen: list[str] = []

    def note(parsed, model, **_):
        found = (item.get("sk", {}).get("S", "") for item in parsed.get("Items", []))
        seen.extend(sk for sk in found if sk.startswith(("D#", "H#")))

    events = dynamo.client().meta.events
    events.register("after-call.dynamodb.Query", note)
    yield seen
    events.unregister("after-call.dynamodb.Query", note)


def _local_days(gateway, token: str, zone: ZoneInfo, **filters: str) -> dict[str, int]:
    first, last = DAY.date().isoformat(), (DAY + timedelta(days=3)).date().isoformat()
    query = {"from": first, "to": last, "timeZone": zone.key, "windowSize": "DAY", "measure": "credits", **filters}
    response = gateway.handle("GET", "/v1/usage/query", urlencode(query), {"Authorization": f"Bearer {token}"})
    assert response.status == 200, response.body
    return {row["windowStart"][:10]: row["value"] for row in response.json()["data"]}


def _oracle(records, zone: ZoneInfo, identifier: str) -> dict[str, int]:
    totals: Counter = Counter()
    for r in records:
        if r.relations.get("identifier") == identifier:
            totals[datetime.fromtimestamp(r.ts / 1000, zone).date().isoformat()] += r.credits
    first, last = DAY.date(), (DAY + timedelta(days=3)).date()
    return {day: n for day, n in totals.items() if first.isoformat() <= day < last.isoformat() and n}


def test_the_aggregator_cuts_the_day_items_of_a_tenant_that_keeps_cuts_and_no_one_elses(tokens):
    _keep_cuts("acme")
    _send("acme", "a")
    _send("globex", "g")
    aggregator(STACK).drain()

    assert _stored("acme") == recount(_records("acme"), CUTS)
    assert _stored("globex") == recount(_records("globex"))


@pytest.mark.parametrize("zone", [KOLKATA, NEW_YORK], ids=lambda zone: zone.key)
def test_local_days_read_day_items_alone_and_equal_the_raw_sum(gateway, tokens, read_items, zone):
    _keep_cuts("acme")
    _send("acme", "a")
    aggregator(STACK).drain()
    read_items.clear()

    answered = _local_days(gateway, tokens["acme"], zone, identifier="user-1")

    assert answered == _oracle(_records("acme"), zone, "user-1") and answered
    assert read_items and all(sk.startswith("D#") for sk in read_items)


def test_without_cuts_local_days_are_as_exact_from_hour_items(gateway, tokens, read_items):
    _send("globex", "g")
    aggregator(STACK).drain()
    forget_tenant_settings("globex")
    store.tenants().add_day_cuts("globex", {1}, MAX_DAY_CUTS)  # a cut its stored days do not hold
    read_items.clear()

    answered = _local_days(gateway, tokens["globex"], KOLKATA, identifier="user-0")

    assert answered == _oracle(_records("globex"), KOLKATA, "user-0") and answered
    assert any(sk.startswith("H#") for sk in read_items)  # the hours around each local midnight


def test_reconciliation_completes_the_cuts_of_days_counted_before_they_were_kept(gateway, tokens, read_items):
    _send("acme", "a")
    aggregator(STACK).drain()
    _keep_cuts("acme")
    _send("acme", "b")  # counted with the cuts, on day items that hold older events without them
    aggregator(STACK).drain()
    assert _stored("acme") != recount(_records("acme"), CUTS)
    assert _local_days(gateway, tokens["acme"], KOLKATA, identifier="user-0") == _oracle(
        _records("acme"), KOLKATA, "user-0"
    )

    later = now_ms() + HORIZON_MS + 60_000
    for day in (0, 1):
        report = reconcile_window("acme", to_ms(DAY) + day * DAY_MS, to_ms(DAY) + (day + 1) * DAY_MS, later)
        assert report.overcounted == 0 and report.refused == 0

    assert _stored_but_boards("acme") == without_boards(recount(_records("acme"), CUTS))
    read_items.clear()
    assert _local_days(gateway, tokens["acme"], KOLKATA, identifier="user-0") == _oracle(
        _records("acme"), KOLKATA, "user-0"
    )
    assert read_items and all(sk.startswith("D#") for sk in read_items)


def test_a_query_keeps_its_zones_cuts_and_a_tenant_keeps_a_bounded_number(gateway, tokens):
    _local_days(gateway, tokens["acme"], KOLKATA, identifier="nobody")
    assert day_cuts("acme") == {74}
    _local_days(gateway, tokens["acme"], ZoneInfo("UTC"), identifier="nobody")
    assert day_cuts("acme") == {74}  # UTC's days are the day items themselves

    for zone in ("America/New_York", "Asia/Kathmandu", "Australia/Adelaide", "America/St_Johns"):
        _local_days(gateway, tokens["acme"], ZoneInfo(zone), identifier="nobody")
    assert len(day_cuts("acme")) <= MAX_DAY_CUTS
    keep_day_cuts("acme", {1, 2, 3, 5, 6})  # past the bound: nothing is added
    forget_tenant_settings("acme")
    assert len(day_cuts("acme")) <= MAX_DAY_CUTS


def test_uncommitted_deltas_counted_without_a_cut_are_added_exactly(tokens):
    """An aggregator whose cached settings predate the cut adds deltas without its parts to day
    items that hold it: the alert check that adds them reads the hours, and stays exact."""
    _keep_cuts("acme")
    _send("acme", "a")
    aggregator(STACK).drain()
    start = local_midnight((DAY + timedelta(days=1)).date().isoformat(), KOLKATA)  # 18:30 UTC the day before
    end = to_ms(DAY) + DAY_MS + 12 * 3_600_000  # noon UTC: the second day's part is read from hour items
    extra = [
        UsageRecord("acme", f"open-{n}", "message", 1, ts, 5, "event", now_ms(), "f", {"identifier": "user-1"})
        for n, ts in enumerate((start + 1, start + 3_600_000, end - 1))
    ]
    query = UsageQuery("acme", start, end, None, KOLKATA, "credits")

    total = series_total(query, Series(IDENTIFIER, "user-1", ()), consistent=True, deltas=coalesce(extra))

    every = _records("acme") + extra
    assert total == sum(r.credits for r in every if start <= r.ts < end and r.relations.get("identifier") == "user-1")


def test_a_ragged_edge_on_a_day_not_yet_counted_reads_its_raw_events(gateway, tokens):
    _send("acme", "a")  # stored; the aggregator has not run
    start = DAY + timedelta(hours=12)
    query = {"from": start.isoformat(), "to": (start + timedelta(minutes=10)).isoformat(), "measure": "events"}
    response = gateway.handle("GET", "/v1/usage/query", urlencode(query), {"Authorization": f"Bearer {tokens['acme']}"})

    assert response.status == 200, response.body
    raw = [r for r in _records("acme") if to_ms(start) <= r.ts < to_ms(start) + 600_000]
    assert raw and [row["value"] for row in response.json()["data"]] == [len(raw)]
