"""Exact range reads shared by every usage API: aggregates for whole days and hours, raw
records only for the ragged partial hours at a range's edges."""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, islice
from typing import Any

from meter.core.logs import with_log_keys
from meter.core.timerange import DAY_MS, now_ms
from meter.dal import keys, store
from meter.dal.dimensions import (
    AGENT,
    AGENT_MODEL,
    AGENT_TYPE,
    IDENTIFIER,
    QUARTER_MS,
    TENANT,
    Dimension,
    contribution_of,
    is_part_counter,
    quarter_counter,
)
from meter.dal.keys import day_key
from meter.dal.records import UsageRecord
from meter.dal.tenants import layout
from meter.reading.plan import ReadPlan, hour_runs, plan_range, split

Totals = Counter[str]


def aggregate_items(pk: str, low: str, high: str) -> list[dict[str, Any]]:
    """Aggregate items of one partition with ``low <= sk <= high``."""
    return store.aggregates().between(pk, low, high)


_shard_readers = ThreadPoolExecutor(max_workers=keys.TENANT_SHARDS, thread_name_prefix="shard-reader")


def in_parallel(read: Callable[[Any], list[dict]], arguments: Iterable[Any]) -> list[list[dict]]:
    """``read`` of each argument, all at once (independent reads wait for one round trip, not one
    each); for reads that do not themselves read in parallel."""
    return list(_shard_readers.map(with_log_keys(read), arguments))


_value_readers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="value-reader")


def for_each_value(read: Callable[[Any], Any], values: Iterable[Any]) -> list[Any]:
    """``read`` of each of a few dimension values at once, for reads that may use ``in_parallel``
    themselves (a pool of their own, so an outer read never waits on a pool it fills); never nest it."""
    return list(_value_readers.map(with_log_keys(read), values))


def concurrently(sources: list[Iterator[dict]], first: int | None = None) -> list[Iterator[dict]]:
    """Start reading every source at once: each one's first ``first`` items (all, if None) are fetched
    in parallel, so a tenant's shards cost one round trip's wait instead of one per shard."""
    heads = in_parallel(lambda source: list(islice(source, first)), sources)
    return [chain(head, source) for head, source in zip(heads, sources, strict=True)]


def tenant_records(
    tenant: str, start: int, end: int, where: dict[str, str] | None = None, unreadable: list[str] | None = None
) -> list[UsageRecord]:
    """The tenant's records created in ``[start, end)``, oldest first, optionally only those whose
    fields equal ``where`` (every ``ByTenant`` shard, read concurrently, merged by time then id);
    the keys of items that are not records go to ``unreadable``, if given."""
    if start >= end:  # e.g. a future ``from`` with an open end: nothing yet, and no inverted key range
        return []
    records = store.records()
    shards = [
        records.created_between("ByTenant", key, start, end, where, unreadable)
        for key in layout(tenant).index_keys(tenant)
    ]
    return list(heapq.merge(*concurrently(shards), key=lambda record: record.position))


def conversation_records(tenant: str, conversation_id: str, start: int, end: int) -> list[UsageRecord]:
    """One conversation's records created in ``[start, end)``, oldest first (``ByConversation``)."""
    if start >= end:
        return []
    partition = keys.conversation_index_key(tenant, conversation_id)
    return list(store.records().created_between("ByConversation", partition, start, end))


def counters(item: dict[str, Any], parts: bool = False) -> Totals:
    """The numeric totals of an aggregate item (with its quarter and cut parts if asked)."""
    return Counter(
        {
            k: v
            for k, v in item.items()
            if isinstance(v, int) and k not in ("pk", "sk") and (parts or not is_part_counter(k))
        }
    )


def record_totals(record: UsageRecord) -> Totals:
    """What one raw record adds, as an aggregate would count it."""
    return contribution_of(record.type, record.count, record.credits)


def _raw_edge(tenant: str, dimension: Dimension, value: str, start: int, end: int) -> Iterable[UsageRecord]:
    if dimension is TENANT:
        return tenant_records(tenant, start, end)
    if dimension is IDENTIFIER:
        return tenant_records(tenant, start, end, {"identifier": value})
    if dimension is AGENT:
        return tenant_records(tenant, start, end, {"agentId": value})
    if dimension is AGENT_MODEL:
        agent, model = keys.split_agent_scoped_key(value)
        return tenant_records(tenant, start, end, {"agentId": agent, "model": model})
    if dimension is AGENT_TYPE:
        agent, event_type = keys.split_agent_scoped_key(value)
        return tenant_records(tenant, start, end, {"agentId": agent, "type": event_type})
    raise ValueError(f"dimension {dimension.code} has no hourly items")


def _read_plan(start: int | None, end: int | None) -> ReadPlan:
    """How to read ``[start, end)`` (None = open) exactly. An open end reads whole day items up to
    today's: they hold everything aggregated so far."""
    open_end = (now_ms() // DAY_MS + 1) * DAY_MS
    return plan_range(0 if start is None else start, open_end if end is None else end)


def quarter_sum(item: dict[str, Any], counter: str, first: int, last: int) -> int:
    """One counter's sum over quarters ``first..last-1`` (0-3) of an hour item."""
    parts = [item.get(quarter_counter(counter, q), 0) for q in (1, 2, 3)]
    return sum([item.get(counter, 0) - sum(parts), *parts][first:last])


def hour_part(item: dict[str, Any], first: int, last: int) -> Totals:
    """What an hour item holds in its quarters ``first..last-1`` (0-3), per counter."""
    whole = counters(item)
    if (first, last) == (0, 4):
        return whole
    return +Counter({name: quarter_sum(item, name, first, last) for name in whole})


def daily_totals(
    tenant: str, dimension: Dimension, value: str, start: int | None, end: int | None
) -> dict[str, Totals]:
    """Per-day totals of one dimension value over ``[start, end)`` (None = open), exact.

    Whole days come from day items, whole quarter hours from hour items (which hold their
    quarters), and only the part of a quarter hour at a ragged ``from`` or ``to`` from raw records.
    An open end includes events timestamped up to 5 minutes ahead (the accepted clock skew).
    """
    pk = dimension.pk(tenant, value)
    days: dict[str, Totals] = defaultdict(Counter)
    if start is None and end is None:
        for item in aggregate_items(pk, keys.DAY_PREFIX, keys.day_sk("~")):
            days[keys.bucket_day(item["sk"])].update(counters(item))
        return days
    open_end = (now_ms() // DAY_MS + 1) * DAY_MS
    cut = split(0 if start is None else start, open_end if end is None else end, QUARTER_MS)
    if cut.days:
        low, high = (keys.day_sk(day_key(day)) for day in (cut.days[0], cut.days[-1]))
        for item in aggregate_items(pk, low, high):
            days[keys.bucket_day(item["sk"])].update(counters(item))
    slots = {hour: (first, last) for hour, first, last in cut.hours}
    for low, high in hour_runs(slots):
        for item in aggregate_items(pk, keys.hour_sk(keys.hour_key(low)), keys.hour_sk(keys.hour_key(high))):
            hour = keys.parse_aggregate(pk, item["sk"]).bucket_start
            days[keys.bucket_day(item["sk"])].update(hour_part(item, *slots[hour]))
    for low, high in cut.raw:
        for record in _raw_edge(tenant, dimension, value, low, high):
            days[day_key(record.ts)].update(record_totals(record))
    return days


def agent_credits(tenant: str, start: int | None, end: int | None) -> Counter[str]:
    """Credits per agent over ``[start, end)`` (None = open), exact: the roster's day and hour
    entries (every agent of a bucket in one read), raw records only at ragged edges."""
    plan = _read_plan(start, end)
    spans = [(keys.day_sk(plan.days[0]), keys.day_sk(plan.days[1]))] if plan.days else []
    spans += [(keys.hour_sk(low), keys.hour_sk(high)) for low, high in plan.hours]
    partitions = layout(tenant).roster_pks(tenant, end)
    reads = [(pk, *keys.roster_bounds(low, high)) for pk in partitions for low, high in spans]
    credits: Counter[str] = Counter()
    for items in in_parallel(lambda read: store.aggregates().between(*read), reads):
        for item in items:  # an agent's entry of a bucket may be in two partitions (sharded mid-bucket)
            credits[keys.roster_agent(item["sk"])] += item.get("credits", 0)
    for low, high in plan.raw:
        for record in tenant_records(tenant, low, high):
            if record.agent_id is not None:
                credits[record.agent_id] += record.credits
    return +credits


def total(days: dict[str, Totals]) -> Totals:
    """The sum of per-day totals."""
    result: Totals = Counter()
    for day in days.values():
        result.update(day)
    return result


def listed_items(tenant: str, dimension: Dimension, start: int | None, end: int | None, scope: str = "") -> list:
    """``ByList`` entries (``pk``, ``sk``, ``v``) of a listed dimension's day items touching ``[start, end)``."""
    low = keys.day_sk(day_key(start)) if start is not None else keys.DAY_PREFIX
    high = keys.day_sk(day_key((end if end is not None else now_ms() + 1) - 1))
    return store.aggregates().listed_between(dimension.list_key(tenant, scope), low, high)  # none if in the future


def listed_values(tenant: str, dimension: Dimension, start: int | None, end: int | None, scope: str = "") -> dict:
    """Values of a listed dimension active on any day touching ``[start, end)``: key → display value.

    Keyed by the ``ByList`` index (never a scan); it holds keys and values only, so callers that
    need totals read each value with ``daily_totals``.
    """
    items = listed_items(tenant, dimension, start, end, scope)
    return {keys.value_of_pk(item["pk"]): item.get("v", "") for item in items}


def has_any(tenant: str, dimension: Dimension, value: str) -> bool:
    """Whether this dimension value was ever aggregated (one keyed read of one item)."""
    return store.aggregates().any_in(dimension.pk(tenant, value))
