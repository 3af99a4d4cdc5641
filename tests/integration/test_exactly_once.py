"""Exactly once: any replay, any batch boundaries, crashes between writes → aggregates = recount."""

from __future__ import annotations

import itertools
import os
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
from tests.helpers import recount, stored_aggregates

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

        assert stored_aggregates(dynamo.client(), stack.physical_name("AggregatesTable")) == recount(records)
    os.environ.update(Stack().environment())
    reset_caches()
