"""Exactly once: any replay, any batch boundaries, crashes between writes → aggregates = recount."""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from local.template import Stack
from meter import aggregation, dynamo
from meter.aggregation import handle_stream_records
from meter.records import UsageRecord, record_item
from meter.timerange import to_ms
from tests.conftest import create_tables, reset_caches

BASE = datetime(2026, 3, 1, tzinfo=UTC)
_examples = itertools.count()

records_strategy = st.lists(
    st.builds(
        lambda n, tenant, who, agent, model, dataset, kind, count, credits, minutes: UsageRecord(
            tenant=tenant,
            id=f"ev-{n}",
            type=kind,
            count=count,
            ts=to_ms(BASE + timedelta(minutes=minutes)),
            credits=credits,
            credits_source="event",
            received_at=0,
            fingerprint="f",
            relations={
                k: v
                for k, v in (("identifier", who), ("agentId", agent), ("model", model), ("datasetId", dataset))
                if v
            },
        ),
        st.integers(0, 10**6),
        st.sampled_from(["acme", "globex"]),
        st.sampled_from([None, "ana", "bo", "ché"]),
        st.sampled_from([None, "bot-1", "bot-2"]),
        st.sampled_from([None, "gpt-4o", "claude"]),
        st.sampled_from([None, "ds-1"]),
        st.sampled_from(["tokens.input", "tokens.output", "message", "conversation", "tool/call"]),
        st.integers(0, 5000),
        st.integers(0, 50),
        st.integers(0, 3 * 24 * 60),
    ),
    min_size=1,
    max_size=120,
    unique_by=lambda r: (r.tenant, r.id),
)


def recount(records: list[UsageRecord]) -> dict[tuple[str, str], dict[str, int]]:
    """Independent recount of what every aggregate item must hold."""
    totals: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in records:
        moment = datetime.fromtimestamp(r.ts / 1000, tz=UTC)
        model, dataset = r.relations.get("model"), r.relations.get("datasetId")
        dims = [f"{r.tenant}#T"]
        dims += [f"{r.tenant}#I#{r.identifier}"] if r.identifier else []
        dims += [f"{r.tenant}#A#{r.agent_id}"] if r.agent_id else []
        dims += [f"{r.tenant}#M#{len(r.agent_id)}:{r.agent_id}#{model}"] if r.agent_id and model else []
        day_only = [f"{r.tenant}#DS#{dataset}"] if dataset else []
        added = Counter({"events": 1, "credits": r.credits, f"n:{r.type}": r.count})
        added["tokens"] += r.count if r.type.startswith("tokens") else 0
        added["messages"] += r.count if r.type == "message" else 0
        added["conversations"] += r.count if r.type == "conversation" else 0
        for pk in dims:
            for sk in (moment.strftime("D#%Y-%m-%d"), moment.strftime("H#%Y-%m-%dT%H")):
                totals[(pk, sk)].update(added)
        for pk in day_only:
            totals[(pk, moment.strftime("D#%Y-%m-%d"))].update(added)
    return {key: {k: v for k, v in c.items() if v} for key, c in totals.items()}


def stored_aggregates(table: str) -> dict[tuple[str, str], dict[str, int]]:
    items, kwargs = [], {"TableName": table}
    while True:
        page = dynamo.client().scan(**kwargs)
        items += [dynamo.deserialize(i) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return {(i.pop("pk"), i.pop("sk")): {k: v for k, v in i.items() if v and isinstance(v, int)} for i in items}


def stream_record(sequence: int, record: UsageRecord) -> dict:
    return {
        "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": f"{sequence:021d}", "NewImage": dynamo.serialize(record_item(record))},
    }


class Crash(Exception):
    """A simulated process crash."""


def deliver(batch: list[dict]) -> None:
    """Lambda's stream semantics: retry a crashed batch whole, a partial failure from the first failed record."""
    while batch:
        try:
            failures = handle_stream_records(batch)["batchItemFailures"]
        except Crash:
            continue
        if not failures:
            return
        first = min(
            r["dynamodb"]["SequenceNumber"]
            for r in batch
            if {"itemIdentifier": r["dynamodb"]["SequenceNumber"]} in failures
        )
        batch = [r for r in batch if r["dynamodb"]["SequenceNumber"] >= first]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=records_strategy,
    cuts=st.lists(st.integers(1, 119), max_size=12),
    replays=st.lists(st.tuples(st.integers(0, 119), st.integers(1, 60)), max_size=6),
    crashes=st.sets(st.tuples(st.integers(0, 40), st.booleans()), max_size=8),
)
def test_replays_and_crashes_never_change_the_totals(records, cuts, replays, crashes):
    with mock_aws():
        reset_caches()
        stack = Stack(table_prefix=f"x{next(_examples)}")
        os.environ.update(stack.environment())
        reset_caches()
        create_tables(stack)
        for record in records:
            dynamo.client().put_item(
                TableName=stack.physical_name("RecordsTable"), Item=dynamo.serialize(record_item(record))
            )

        stream = [stream_record(i, r) for i, r in enumerate(records)]
        bounds = sorted({0, len(stream), *[c for c in cuts if c < len(stream)]})
        batches = [stream[a:b] for a, b in itertools.pairwise(bounds)]
        batches += [stream[start : start + size] for start, size in replays if start < len(stream)]

        calls = itertools.count()
        real = aggregation.transact

        def crashing(actions):
            n = next(calls)
            if (n, False) in crashes:
                raise Crash("before the write")
            real(actions)
            if (n, True) in crashes:
                raise Crash("after the write")

        aggregation.transact = crashing
        try:
            for batch in batches:
                deliver(batch)
        finally:
            aggregation.transact = real

        assert stored_aggregates(stack.physical_name("AggregatesTable")) == recount(records)
    os.environ.update(Stack().environment())
    reset_caches()
