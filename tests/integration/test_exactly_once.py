"""Exactly once, whatever Lambda and DynamoDB do: aggregates always equal a recount from the rules.

Each example stores random records, spreads them over two stream shards, and delivers each shard
the way a tumbling-window mapping does (random window and batch boundaries, state handed from
invocation to invocation, a final invocation per window, some windows ended early), while it:

* crashes the aggregator before or after any write (an item's, the pending item, the ledger, a
  commit slot, a distinct mark's transaction),
* throws throttling and transaction conflicts at any write (as ``ClientError``s),
* retries every failed invocation with the same input state and records, as Lambda does,
* replays earlier invocations after later ones succeeded (at-least-once delivery),
* delivers some batches with every record twice (a redelivery inside one batch),
* forces mid-window commits (a small state limit) in some examples,
* and runs reconciliation, a second writer, between invocations: it recounts hours whose records
  the stream dropped (past its horizon), and at the end, once every record is past the horizon,
  every day.

Distinct counts ride along: at the end, the end users, datasets, skillsets and abilities seen
from each day on equal a count over the records.

Alerts ride along (on the tenant, an end user and an agent, in three time zones): whatever the
faults, each (alert, threshold, period) the records reach fires exactly once, never one they do not
reach, and never before the value counted reached it.

Bisect is not exercised because the mapping does not use it (template.yaml says why).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from local.template import Stack
from meter.core.timerange import DAY_MS, HOUR_MS, to_ms
from meter.counting import aggregation
from meter.counting.aggregation import handle_window
from meter.counting.distinct import seen_since
from meter.counting.reconcile import HORIZON_MS, reconcile_window
from meter.dal import dynamo, store
from meter.dal.keys import day_key
from meter.dal.records import UsageRecord
from meter.dal.tenants import placed_record_item
from tests.conftest import STACK, create_tables, reset_caches
from tests.helpers import boards_within, distinct_since, recount, stored_aggregates, without_boards

BASE = datetime(2026, 3, 1, tzinfo=UTC)
NOW = to_ms(BASE) + 10 * DAY_MS  # the clock of the run: "live" records were received just now
_examples = itertools.count()
WRITES = ("PutItem", "UpdateItem", "TransactWriteItems")


def _record(n, tenant, who, agent, model, dataset, skillset, ability, kind, count, credits, minutes, dropped):
    relations = {
        "identifier": who,
        "agentId": agent,
        "model": model,
        "datasetId": dataset,
        "skillsetId": skillset,
        "abilityId": ability,
    }
    return UsageRecord(
        tenant=tenant,
        id=f"ev-{n}",
        type=kind,
        count=count,
        ts=to_ms(BASE + timedelta(minutes=minutes)),
        credits=credits,
        credits_source="event",
        received_at=0 if dropped else NOW,  # dropped: so old that the stream gave up on it
        fingerprint="f",
        relations={k: v for k, v in relations.items() if v},
    )


records_strategy = st.lists(
    st.builds(
        _record,
        st.integers(0, 10**6),
        st.sampled_from(["acme", "globex"]),
        st.sampled_from([None, "ana", "bo", "ché"]),
        st.sampled_from([None, "bot-1", "bot#2"]),
        st.sampled_from([None, "gpt-4o", "claude"]),
        st.sampled_from([None, "ds-1"]),
        st.sampled_from([None, "sk-1", "sk-2"]),
        st.sampled_from([None, "ab-1"]),
        st.sampled_from(["tokens.input", "tokens.output", "message", "conversation", "tool/call"]),
        st.integers(0, 5000),
        st.integers(0, 50),
        st.integers(0, 3 * 24 * 60),
        st.sampled_from([False] * 7 + [True]),  # one in eight was dropped by the stream
    ),
    min_size=1,
    max_size=120,
    unique_by=lambda r: (r.tenant, r.id),
)


ALERTS = [
    {"tenant": "acme", "sk": "al_tenant", "subject": {}, "measure": "credits", "period": "day",
     "timeZone": "UTC", "thresholds": [5, 50, 500]},
    {"tenant": "acme", "sk": "al_ana", "subject": {"identifier": "ana"}, "measure": "events", "period": "month",
     "timeZone": "Asia/Kolkata", "thresholds": [1, 3, 10]},
    {"tenant": "globex", "sk": "al_bot", "subject": {"agentId": "bot-1"}, "measure": "tokens", "period": "day",
     "timeZone": "America/New_York", "thresholds": [10, 1000, 10000]},
]  # fmt: skip


def store_alerts() -> None:
    for alert in ALERTS:
        item = {**alert, "pk": f"ALERT#{alert['tenant']}", "name": alert["sk"], "createdAt": to_ms(BASE) - DAY_MS}
        store.alerts().put({**item, "updatedAt": item["createdAt"]})


def _period_start(alert: dict, ts: int) -> int:
    """From the rules: the local midnight (day) or first of the month (month) in the alert's zone
    on or before ``ts``, as an instant (zoneinfo does the zone's arithmetic, not our code)."""
    local = datetime.fromtimestamp(ts / 1000, ZoneInfo(alert["timeZone"]))
    first = local.replace(day=1) if alert["period"] == "month" else local
    return to_ms(first.replace(hour=0, minute=0, second=0, microsecond=0))


def _adds(alert: dict, record: UsageRecord) -> int:
    """From the rules: what one event adds to an alert of its tenant (its subject's events only)."""
    subject = alert["subject"]
    if any(record.relations.get(field) != value for field, value in subject.items()):
        return 0
    measure = alert["measure"]
    if measure == "credits":
        return record.credits
    if measure == "events":
        return 1
    prefix = {"tokens": "tokens", "messages": "message", "conversations": "conversation"}[measure]
    return record.count if record.type.startswith(prefix) and (measure == "tokens" or record.type == prefix) else 0


def expected_firings(records: list[UsageRecord]) -> dict[str, dict[tuple[int, int], int]]:
    """From the rules: per alert, each (period start, threshold) the records reach, with the period's value."""
    expected = {}
    for alert in ALERTS:
        values: dict[int, int] = {}
        for record in records:
            if record.tenant == alert["tenant"]:
                start = _period_start(alert, record.ts)
                values[start] = values.get(start, 0) + _adds(alert, record)
        expected[alert["sk"]] = {(p, t): v for p, v in values.items() for t in alert["thresholds"] if v >= t}
    return expected


def check_firings(records: list[UsageRecord]) -> None:
    for alert_id, want in expected_firings(records).items():
        tenant = next(a["tenant"] for a in ALERTS if a["sk"] == alert_id)
        found = store.alerts().triggers_before(tenant, alert_id, None, 1000)
        keys = [(t.period_start, t.threshold) for t in found]
        assert sorted(keys) == sorted(want), alert_id  # each reached threshold once, no other
        for trigger in found:
            assert trigger.threshold <= trigger.value <= want[(trigger.period_start, trigger.threshold)]  # never early


class Crash(Exception):
    """A simulated process crash."""


class Faults:
    """Throws a planned fault at the n-th write the aggregator (or reconciliation) makes."""

    def __init__(self, plan: dict[int, str]):
        self.plan, self.calls = plan, itertools.count()
        self.after: str | None = None

    def before(self, model, **_):
        if model.name not in WRITES:
            return
        fault = self.plan.get(next(self.calls))
        if fault == "crash before":
            raise Crash(fault)
        if fault == "throttle":
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, model.name)
        if fault == "conflict" and model.name == "TransactWriteItems":
            error = {"Code": "TransactionCanceledException", "Message": "conflict"}
            raise ClientError({"Error": error, "CancellationReasons": [{"Code": "TransactionConflict"}]}, model.name)
        if fault == "conflict":  # a single write that met a transaction on its item
            error = {"Code": "TransactionConflictException", "Message": "conflict"}
            raise ClientError({"Error": error}, model.name)
        self.after = fault

    def after_call(self, model, **_):
        fault, self.after = self.after, None
        if model.name in WRITES and fault == "crash after":
            raise Crash(fault)


def stream_record(sequence: int, record: UsageRecord) -> dict:
    return {
        "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": str(sequence), "NewImage": dynamo.serialize(placed_record_item(record))},
    }


def invocations(stream: list[dict], cuts: set[int], window_cuts: set[int], early: bool, carry: bool) -> list:
    """(records, final, terminated early) of every invocation of one shard, windows in order.

    A window's final invocation carries its last batch when ``carry``, else no records.
    """
    bounds = sorted({0, len(stream), *[c for c in window_cuts if c < len(stream)]})
    plan = []
    for a, b in itertools.pairwise(bounds):
        inner = sorted({a, b, *[c for c in cuts if a < c < b]})
        batches = [(stream[x:y], False, False) for x, y in itertools.pairwise(inner)]
        if carry and batches:
            batches[-1] = (batches[-1][0], True, early and a % 2 == 1)
        else:
            batches.append(([], True, early and a % 2 == 1))
        plan += batches
    return plan


def invoke_until_done(shard: str, records: list[dict], state: dict, final: bool, early: bool) -> dict:
    """Lambda: retry a failed invocation with the same input state and records until it succeeds."""
    event = {"Records": records, "shardId": shard, "state": state}
    event["isFinalInvokeForWindow"], event["isWindowTerminatedEarly"] = final and not early, early
    for _ in range(200):
        try:
            return handle_window(event)["state"]
        except (Crash, ClientError, aggregation.CommitFailed):
            continue
    raise AssertionError("an invocation never succeeded")


def reconcile_quietly(tenant: str, start: int, end: int, now: int) -> None:
    for _ in range(50):
        try:
            reconcile_window(tenant, start, end, now)
            return
        except (Crash, ClientError):
            continue


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=records_strategy,
    shard_of=st.lists(st.integers(0, 1), min_size=120, max_size=120),
    cuts=st.sets(st.integers(1, 119), max_size=12),
    window_cuts=st.sets(st.integers(1, 119), max_size=4),
    early=st.booleans(),
    carry=st.booleans(),
    small_state=st.booleans(),
    replays=st.lists(st.integers(0, 40), max_size=8),
    doubled=st.sets(st.integers(0, 40), max_size=4),
    faults=st.dictionaries(
        st.integers(0, 60), st.sampled_from(["crash before", "crash after", "throttle", "conflict"]), max_size=12
    ),
    reconcile_at=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3 * 24)), max_size=4),
)
def test_any_delivery_any_fault_counts_every_event_exactly_once(
    records, shard_of, cuts, window_cuts, early, carry, small_state, replays, doubled, faults, reconcile_at
):
    # The aggregator's clock is the run's: its live records were received just now.
    with mock_aws(), mock.patch.object(aggregation, "now_ms", lambda: NOW + 60_000):
        reset_caches()
        stack = Stack(STACK.template, table_prefix=f"x{next(_examples)}")
        os.environ.update(stack.environment())
        reset_caches()
        create_tables(stack)
        store_alerts()
        for record in records:
            dynamo.client().put_item(
                TableName=stack.physical_name("RecordsTable"), Item=dynamo.serialize(placed_record_item(record))
            )
        injected = Faults(faults)
        dynamo.client().meta.events.register("before-call.dynamodb.*", injected.before)
        dynamo.client().meta.events.register("after-call.dynamodb.*", injected.after_call)
        limit, threads = aggregation.MAX_STATE_ITEMS, aggregation.APPLY_THREADS
        aggregation.MAX_STATE_ITEMS = 30 if small_state else limit
        aggregation.APPLY_THREADS = 1  # the n-th write is the same write in every run of an example

        # The stream carries what was received recently; dropped records never reach it.
        live = [(i, r) for i, r in enumerate(records) if r.received_at == NOW]
        shards = {
            name: [stream_record(1000 + i, r) for i, r in live if shard_of[i] == n]
            for n, name in enumerate(["shard-a", "shard-b"])
        }
        plans = {name: invocations(stream, cuts, window_cuts, early, carry) for name, stream in shards.items()}
        done: list[tuple] = []
        states = {key: {} for key in shards}
        reconciles = dict(reconcile_at)
        reconciled: set[tuple[str, int]] = set()
        try:
            for step, planned in enumerate(itertools.zip_longest(*plans.values())):
                for shard, invocation in zip(plans, planned, strict=True):
                    if invocation is None:
                        continue
                    batch, final, terminated = invocation
                    batch = batch * 2 if step in doubled else batch
                    before = states[shard]
                    states[shard] = invoke_until_done(shard, batch, before, final, terminated)
                    done.append((shard, batch, before, final, terminated))
                    if final:
                        states[shard] = {}
                for index in replays:
                    if index == step and done:
                        shard, batch, before, final, terminated = done[index % len(done)]
                        invoke_until_done(shard, batch, before, final, terminated)  # output ignored
                if step in reconciles:
                    hour = to_ms(BASE) + reconciles[step] * HOUR_MS
                    for tenant in ("acme", "globex"):
                        reconcile_quietly(tenant, hour, hour + HOUR_MS, NOW)
                        reconciled.add((tenant, hour))
            # The stream alone counted every live record once; reconciliation touched only hours it
            # could (no live record of that tenant in them), setting them to their recount (not boards').
            live_records = [r for r in records if r.received_at == NOW]
            live_hours = {(r.tenant, r.ts // HOUR_MS * HOUR_MS) for r in live_records}
            expected = recount(live_records)
            for bucket, found in without_boards(recount(records)).items():
                tenant, _, _, granularity, start = bucket
                if granularity == "hour" and (tenant, start) in reconciled and (tenant, start) not in live_hours:
                    expected[bucket] = found
            stored = stored_aggregates(dynamo.client(), stack.physical_name("AggregatesTable"))
            assert stored == expected
            # Later: every record is past the stream's horizon, and the hourly runs reconcile every day.
            for day in range(to_ms(BASE), to_ms(BASE) + 4 * DAY_MS, DAY_MS):
                for tenant in ("acme", "globex"):
                    reconcile_quietly(tenant, day, day + DAY_MS, NOW + HORIZON_MS + 1)
        finally:
            aggregation.MAX_STATE_ITEMS, aggregation.APPLY_THREADS = limit, threads

        # Reconciliation raised what the stream dropped; boards keep what the stream counted.
        counted = without_boards(expected)
        boards = {bucket: found for bucket, found in expected.items() if bucket not in counted}
        stored = stored_aggregates(dynamo.client(), stack.physical_name("AggregatesTable"))
        assert stored == {**without_boards(recount(records)), **boards}
        check_firings(records)
        for day in range(to_ms(BASE) - DAY_MS, to_ms(BASE) + 5 * DAY_MS, DAY_MS):
            for tenant in ("acme", "globex"):
                assert seen_since(tenant, day_key(day)) == distinct_since(records, tenant, day), (tenant, day)
    os.environ.update(STACK.environment())
    reset_caches()


def crash_after(monkeypatch, items: int) -> Callable[..., bool]:
    """Make the aggregator crash after writing ``items`` items; the real ``add_once``, to put back."""
    written, real = itertools.count(), aggregation.add_once

    def add_once(*args, **kwargs):
        if next(written) >= items:
            raise Crash("crash between item writes")
        return real(*args, **kwargs)

    monkeypatch.setattr(aggregation, "add_once", add_once)
    return real


def test_a_commit_abandoned_mid_way_is_voided_after_reconciliation_never_finished_twice(aws, monkeypatch):
    """A crash between a pending commit's item writes, the shard quiet, reconciliation (past the
    horizon) raising the buckets it left, then a new record on the shard: counted once each."""
    received = NOW - HORIZON_MS - 1
    records = [
        _record(n, "acme", f"user-{n}", "bot", "m", None, None, None, "message", 1, 2, n % 50, False)
        for n in range(150)  # 150 end users: some of their items written, some not
    ]
    records = [UsageRecord(**{**r.__dict__, "received_at": received}) for r in records]
    for record in records:
        dynamo.client().put_item(
            TableName=os.environ["RECORDS_TABLE"], Item=dynamo.serialize(placed_record_item(record))
        )
    add_once = crash_after(monkeypatch, 100)
    monkeypatch.setattr(aggregation, "now_ms", lambda: received + 60_000)
    stream = [stream_record(1000 + i, r) for i, r in enumerate(records)]
    event = {"Records": stream, "shardId": "shard-a", "state": {}, "isFinalInvokeForWindow": True}
    with contextlib.suppress(Crash):
        handle_window(event)
    assert aggregation.read_ledger("shard-a").pending_last  # partly applied, and the shard goes quiet
    monkeypatch.setattr(aggregation, "add_once", add_once)
    day = to_ms(BASE)
    reconcile_window("acme", day, day + DAY_MS, NOW)  # past the horizon: raises what the crash left
    stored = stored_aggregates(dynamo.client(), os.environ["AGGREGATES_TABLE"])
    assert without_boards(stored) == without_boards(recount(records))
    assert boards_within(stored, recount(records))  # boards keep what the commit wrote before its crash

    later = _record(999, "acme", "user-0", "bot", "m", None, None, None, "message", 1, 5, 30, False)
    monkeypatch.setattr(aggregation, "now_ms", lambda: NOW)
    handle_window({**event, "Records": [stream_record(5000, later)]})
    assert not aggregation.read_ledger("shard-a").pending_last
    stored = stored_aggregates(dynamo.client(), os.environ["AGGREGATES_TABLE"])
    assert without_boards(stored) == without_boards(recount([*records, later]))
    assert boards_within(stored, recount([*records, later]))
