"""A tenant with 5,000 active agents sending 10,000 events/s: what its busiest keys would take.

DynamoDB Local has one stream shard and takes a few hundred writes a second, so that rate is not
run; one stream shard's share of it is. A table taking 10,000 record writes a second has at least
one partition, and so one stream shard, per 1,000 of them (a partition's limit), and each shard's
tumbling window holds its share of the events: every agent, several times. One such window goes
through the aggregator as the template's stream mapping delivers it (its batch size, the state
carried between invocations, a commit mid-window when the state grows), on DynamoDB Local,
metered per partition key. What a key would take at the full rate is what that window wrote to
it, times the shards, per second of window: every shard's window writes the same keys.

The same window over a crowd of ``CROWD`` end users runs ``warmed``: after a window that brought every one
of them in already that day, since a board costs what its items weigh, and by then every end user is on them.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

AGENTS, IDENTIFIERS, MODELS, EVENTS_PER_SECOND = 5_000, 1_000, 3, 10_000  # the live mix, with 5,000 agents
CROWD = 10_000  # end users of the crowd window (with the live mix's agents)
CROWD_AGENTS = 50
PARTITION_WCU_PER_SECOND = 1_000
TENANT = "swarm"


def _record_wcu(bench: Any, record: Any) -> float:
    """What storing one of these records costs, measured: a real put of it, metered."""
    from meter.dal import store
    from meter.dal.records import record_item

    bench.meter.reset()
    store.records().put_record(record_item(record, _index_key(record)))
    return bench.meter.write_by[bench.stack.physical_name("RecordsTable")]


def _index_key(record: Any) -> str:
    """The record's ``ByTenant`` partition at this rate: spread over the shards."""
    from meter.dal.tenants import Layout

    return Layout(records_sharded_from=0).index_key(record.tenant, record.id, record.received_at)


def _records(
    count: int, agents: int, start_ms: int, spacing_ms: float, identifiers: int = IDENTIFIERS, tenant: str = TENANT
) -> list[Any]:
    """``count`` events of the tenant, ``spacing_ms`` apart: every agent among them, end users Zipf-like,
    received now (a commit writes until reconciliation's horizon from its oldest receipt)."""
    from meter.dal.records import UsageRecord

    received = int(time.time() * 1000)
    rng = random.Random(7)
    weights = [1 / rank for rank in range(1, identifiers + 1)]
    users = rng.choices(range(identifiers), weights=weights, k=count)
    found = []
    for n in range(count):
        agent = n % agents  # every agent, in turn
        ts = start_ms + int(n * spacing_ms)
        relations = {"identifier": _user(users[n]), "agentId": f"agent-{agent:04d}",
                     "model": f"model-{(agent + n // agents) % MODELS}"}  # fmt: skip
        count, credits = 1 + n % 900, n % 20
        found.append(
            UsageRecord(tenant, f"{tenant}-{n}", "tokens.input", count, ts, credits, "event", received, "", relations)
        )
    return found


def _user(rank: int) -> str:
    return f"user{rank:04d}"


def _everyone(agents: int, identifiers: int, start_ms: int, tenant: str) -> list[Any]:
    """One event of every end user (and every agent), at ``start_ms``: their items and board entries
    of that day and month made, as a day's earlier traffic would have."""
    from dataclasses import replace

    records = _records(max(agents, identifiers), agents, start_ms, 0, identifiers, tenant)
    return [
        replace(record, id=f"{record.id}-early", relations={**record.relations, "identifier": _user(n % identifiers)})
        for n, record in enumerate(records)
    ]


def _stream_records(records: list[Any], arn: str) -> list[dict[str, Any]]:
    """The records as the stream delivers them to Lambda, in sequence order."""
    from meter.dal import dynamo
    from meter.dal.records import record_item

    return [
        {
            "eventID": str(n),
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "ApproximateCreationDateTime": record.ts // 1000,
                "SequenceNumber": f"{n + 1:021d}",
                "NewImage": dynamo.serialize(record_item(record, _index_key(record))),
            },
            "eventSourceARN": arn,
        }
        for n, record in enumerate(records)
    ]


def busiest_keys(
    bench: Any,
    agents: int = AGENTS,
    events_per_second: int = EVENTS_PER_SECOND,
    identifiers: int = IDENTIFIERS,
    tenant: str = TENANT,
    warmed: bool = False,
) -> dict[str, Any]:
    """One stream shard's window of the tenant's traffic through the aggregator; each key's load at
    the full rate, with the roster sharded (as the aggregator shards it on a busy commit) and as its
    one unsharded partition would take the same writes. ``warmed``: after a window with an event of
    every end user and agent, earlier that hour."""
    from meter.dal import store
    from meter.dal.tenants import ensure_tenant

    window_s = bench.source.tumbling_seconds
    start = (int(time.time()) // 3600 * 3600 - 3600) * 1000  # a whole past hour: the window fits inside it
    ensure_tenant(tenant)
    store.tenants().shard_roster(tenant, start - 3_600_000)  # the aggregator sharded it an hour before
    probe = _records(1, agents, start, 1.0, identifiers, tenant)[0]
    per_record = _record_wcu(bench, probe)
    shards = math.ceil(events_per_second * per_record / PARTITION_WCU_PER_SECOND)
    per_window = events_per_second // shards * window_s
    records = _records(per_window, agents, start, window_s * 1000 / per_window, identifiers, tenant)
    mapping = bench._mapping()
    arn = f"{bench.stack.physical_name('RecordsTable')}/stream/{tenant}"
    if warmed:
        mapping.deliver_window(
            f"shardId-{tenant}-early", _stream_records(_everyone(agents, identifiers, start, tenant), arn)
        )
    stream = _stream_records(records, arn)
    bench.meter.reset()
    began = time.perf_counter()
    mapping.deliver_window(f"shardId-{tenant}-1", stream)
    took = time.perf_counter() - began
    scale = shards / window_s
    table = bench.stack.physical_name("AggregatesTable")
    on = {key: units for (place, key), units in bench.meter.write_on.items() if place == table}
    roster = {key: units for key, units in on.items() if key == f"{tenant}#AC" or key.startswith(f"{tenant}#AC#")}
    busiest, units = max(on.items(), key=lambda pair: pair[1])
    roster_key, roster_units = max(roster.items(), key=lambda pair: pair[1])
    indexed = {place: units for place, units in bench.meter.write_on.items() if place[0].startswith(f"{table}.")}
    (index, index_key), index_units = max(indexed.items(), key=lambda pair: pair[1], default=(("", ""), 0.0))
    board = f"{tenant}#BOARD#I"
    return {
        "agents": agents,
        "identifiers": identifiers,
        "events_per_second": events_per_second,
        "record_wcu": per_record,
        "stream_shards": shards,
        "window_events": per_window,
        "window_s": window_s,
        "aggregation_s": round(took, 1),
        "transactions": bench.meter.calls["TransactWriteItems"],
        "aggregation_wcu_per_event": round(bench.meter.write / per_window, 3),
        "roster_partitions": len(roster),
        "roster_busiest": {"key": roster_key, "wcu_per_s": round(roster_units * scale, 1)},
        "roster_unsharded_wcu_per_s": round(sum(roster.values()) * scale, 1),
        "busiest": {"key": busiest, "wcu_per_s": round(units * scale, 1)},
        "end_user_board": {"key": board, "wcu_per_s": round(on.get(board, 0) * scale, 1)},
        "busiest_index": {"key": f"{index.rsplit('.', 1)[-1]} {index_key}", "wcu_per_s": round(index_units * scale, 1)}
        if indexed
        else None,
        "identifiers_in_window": len({r.relations["identifier"] for r in records}),
        "agents_in_window": len({r.agent_id for r in records}),
    }
