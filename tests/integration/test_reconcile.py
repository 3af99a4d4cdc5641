"""Reconciliation restores exact totals after lost aggregates and events the stream dropped, by when
every record was received, and never lowers a count."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from meter.core.config import get_settings
from meter.core.timerange import DAY_MS, HOUR_MS, now_ms, to_ms
from meter.counting import reconcile
from meter.counting.reconcile import DUE_AFTER_MS, HORIZON_MS, _raise_to, due_hour, reconcile_due, reconcile_window
from meter.dal import dynamo, keys, store
from meter.dal.dimensions import AGENT, IDENTIFIER, TENANT
from meter.dal.records import record_from_item
from meter.ingest.batch import ingest, parse_events
from meter.reading.queries import listed_values
from tests.conftest import STACK
from tests.helpers import aggregator, meaning, recount, stored_aggregates, without_boards

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
START, END = to_ms(DAY), to_ms(DAY) + DAY_MS


def later() -> int:
    """A moment when every record stored so far is past the stream's horizon."""
    return now_ms() + HORIZON_MS + 60_000


def _key(dimension, value: str, sk: str) -> dict:
    return {"pk": {"S": dimension.pk("acme", value)}, "sk": {"S": sk}}


DAY_SK, HOUR_10 = keys.day_sk(f"{DAY:%Y-%m-%d}"), keys.hour_sk(f"{DAY:%Y-%m-%d}T10")


def _ingest(tenant: str, count: int, prefix: str = "e") -> None:
    events = [
        {
            "id": f"{prefix}-{n}",
            "type": ("tokens.input", "message", "conversation")[n % 3],
            "count": 1 + n,
            "credits": n % 4,
            "identifier": f"user-{n % 3}",
            "agentId": f"bot-{n % 2}",
            "model": f"m-{n % 2}",
            "datasetId": "ds-1" if n % 5 == 0 else None,
            "timestamp": (DAY + timedelta(hours=10, minutes=7 * n)).isoformat(),
        }
        for n in range(count)
    ]
    body = {"events": [{k: v for k, v in e.items() if v is not None} for e in events]}
    ingest(tenant, parse_events(json.dumps(body)))


def _truth(tenant: str) -> dict:
    items = dynamo.client().scan(TableName=get_settings().records_table)["Items"]
    return without_boards(
        recount([r for r in map(record_from_item, map(dynamo.deserialize, items)) if r.tenant == tenant])
    )


def _stored(tenant: str) -> dict:
    """The tenant's aggregates but its boards (readers check a board against the tenant's day items)."""
    return without_boards(stored_aggregates(dynamo.client(), get_settings().aggregates_table, tenant))


def _aggregates() -> str:
    return get_settings().aggregates_table


@pytest.fixture
def counted(tokens):
    _ingest("acme", 20)
    _ingest("globex", 5)
    aggregator(STACK).drain()
    assert _stored("acme") == _truth("acme")


def test_lost_and_lowered_aggregates_are_restored_exactly(counted):
    table = _aggregates()
    dynamo.client().delete_item(TableName=table, Key=_key(IDENTIFIER, "user-1", DAY_SK))
    dynamo.client().update_item(
        TableName=table,
        Key=_key(TENANT, "", HOUR_10),
        UpdateExpression="ADD credits :minus",
        ExpressionAttributeValues={":minus": {"N": "-5"}},
    )
    globex_before = _stored("globex")

    report = reconcile_window("acme", START, END, later())

    assert report.drifted == report.repaired == 2 and report.deferred == report.overcounted == 0
    assert _stored("acme") == _truth("acme")
    assert _stored("globex") == globex_before
    assert reconcile_window("acme", START, END, later()).drifted == 0  # nothing left to repair


def test_a_count_above_the_recount_is_reported_and_never_lowered(counted):
    """The recount reads an eventually consistent index: an event counted while the index lagged
    looked like drift, and was repaired away for good."""
    truth = _truth("acme")
    real_records = reconcile._records

    def lagging_index(tenant, start, end):  # the index does not show one counted record yet
        found, unreadable = real_records(tenant, start, end)
        return found[1:], unreadable

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconcile, "_records", lagging_index)
        report = reconcile_window("acme", START, END, later())

    assert report.overcounted > 0 and report.repaired == 0
    assert _stored("acme") == truth  # nothing was taken away


def test_events_the_stream_dropped_are_counted_once(counted):
    _ingest("acme", 6, prefix="dropped")  # stored, but the stream gave up on them past its record age

    report = reconcile_window("acme", START, END, later())

    assert report.repaired > 0 and report.uncounted == 6
    assert _stored("acme") == _truth("acme")
    again = reconcile_window("acme", START, END, later())
    assert again.drifted == again.repaired == 0
    assert _stored("acme") == _truth("acme")


def test_a_recreated_day_item_is_listed_again(counted):
    dynamo.client().delete_item(TableName=_aggregates(), Key=_key(AGENT, "bot-1", DAY_SK))
    assert "bot-1" not in listed_values("acme", AGENT, START, END)
    reconcile_window("acme", START, END, later())
    assert listed_values("acme", AGENT, START, END)["bot-1"] == "bot-1"


def test_windows_with_records_the_stream_may_still_count_are_left_to_it(counted):
    _ingest("acme", 3, prefix="fresh")  # received now: the stream may still be counting them
    dynamo.client().delete_item(TableName=_aggregates(), Key=_key(IDENTIFIER, "user-1", DAY_SK))
    report = reconcile_window("acme", START, END, now_ms())
    assert report.deferred == 1 and report.repaired == 0


def test_a_repair_never_overwrites_an_aggregate_that_moved_since_it_was_read(counted):
    from collections import Counter

    key = (TENANT.pk("acme", ""), DAY_SK)
    stored = _stored("acme")[meaning(*key)]
    stale = {**stored, "credits": stored["credits"] - 1}

    assert _raise_to(key, Counter(stale), Counter({"events": stored["events"] + 1})) is False
    assert _stored("acme")[meaning(*key)] == stored


def _ingest_received_at(received: int, tenant: str, events: list[dict]) -> None:
    """Ingest as if the request arrived at ``received`` (the stream then drops the records)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("meter.ingest.batch.now_ms", lambda: received)
        ingest(tenant, parse_events(json.dumps({"events": events}), now=received))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


@pytest.mark.parametrize(
    ("event_time", "received"),
    [
        pytest.param(START + 10 * HOUR_MS, END + 20 * HOUR_MS, id="a day late (a backfill)"),
        pytest.param(END - 10 * 60_000, END + 20 * 60_000, id="23:50 received at 00:20"),
        pytest.param(END - 10 * 60_000, END - 5 * 60_000, id="received minutes before the day's end"),
    ],
)
def test_every_event_the_stream_dropped_is_counted_within_a_bounded_time_of_its_receipt(tokens, event_time, received):
    """Reconciliation once chose buckets by event time only, an hour at a time: late events, and
    records too fresh at the day's pass, were never recounted."""
    event_time, received = event_time - 2 * DAY_MS, received - 2 * DAY_MS  # well inside the accepted past
    store.control().set_reconcile_checkpoint(due_hour(received) - 2 * HOUR_MS)  # runs so far were on time
    event = {"id": "dropped", "type": "message", "count": 1, "credits": 2, "identifier": "ana"}
    _ingest_received_at(received, "acme", [{**event, "timestamp": _iso(event_time)}])  # never streamed

    bound = received + DUE_AFTER_MS + HOUR_MS  # due, plus the wait for the next hourly run
    for run in range(received, bound + 1, HOUR_MS):
        reconcile_due(run)
    assert _stored("acme") == _truth("acme") != {}


def test_one_tenants_failure_never_stops_the_others_and_its_windows_are_retried(counted):
    for tenant in ("acme", "globex"):
        dynamo.client().delete_item(
            TableName=_aggregates(), Key={"pk": {"S": TENANT.pk(tenant, "")}, "sk": {"S": DAY_SK}}
        )
    real_window = reconcile.reconcile_window

    def acme_fails(tenant, *args):
        if tenant == "acme":
            raise RuntimeError("injected")
        return real_window(tenant, *args)

    run = now_ms() // HOUR_MS * HOUR_MS + DUE_AFTER_MS  # when the hour the events arrived in is due
    store.control().set_reconcile_checkpoint(due_hour(run) - HOUR_MS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconcile, "reconcile_window", acme_fails)
        report = reconcile_due(run)
    assert report.failed > 0 and _stored("globex") == _truth("globex")
    assert any(window.startswith("acme ") for window in store.control().reconcile_retries())

    retried = reconcile_due(run + 1)  # the fault is gone; the next run retries what was kept
    assert retried.failed == 0 and _stored("acme") == _truth("acme")
    assert store.control().reconcile_retries() == set()


def test_hours_missed_by_skipped_runs_are_caught_up_from_the_checkpoint(tokens):
    event = {"id": "on-time", "type": "message", "count": 1, "credits": 2, "identifier": "ana"}
    at_ten = START + 10 * HOUR_MS
    _ingest_received_at(at_ten + 60_000, "acme", [{**event, "timestamp": _iso(at_ten)}])  # never streamed
    store.control().set_reconcile_checkpoint(START + 5 * HOUR_MS)  # then no run for hours
    reconcile_due(START + 14 * HOUR_MS + DUE_AFTER_MS)
    assert store.control().reconcile_checkpoint() == START + 14 * HOUR_MS
    hours = {bucket: totals for bucket, totals in _truth("acme").items() if bucket[3] == "hour"}
    assert _stored("acme") == hours != {}  # days are recounted with their last hour
