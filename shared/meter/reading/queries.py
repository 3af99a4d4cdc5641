"""Exact range reads shared by every usage API: aggregates for whole days and hours, raw
records only for the ragged partial hours at a range's edges."""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import chain, islice
from typing import Any

from meter.core.logs import with_log_keys
from meter.core.timerange import DAY_MS, HOUR_MS, now_ms
from meter.dal import keys, store
from meter.dal.dimensions import (
    AGENT,
    AGENT_MODEL,
    AGENT_TYPE,
    IDENTIFIER,
    QUARTER_MS,
    TENANT,
    Dimension,
    complete_quarter,
    contribution_of,
    each_event,
    is_part_counter,
    quarter_sum,
)
from meter.dal.keys import day_key
from meter.dal.records import UsageRecord
from meter.dal.tenants import layout
from meter.reading.plan import ReadPlan, Slice, hour_runs, plan_range, signed_pieces, split

Totals = Counter[str]

SETTLED_MS = HOUR_MS  # a quarter hour over this long ago has had its records counted, bar a late one


def aggregate_items(pk: str, low: str, high: str) -> list[dict[str, Any]]:
    """Aggregate items of one partition with ``low <= sk <= high``."""
    return store.aggregates().between(pk, low, high)


_shard_readers = ThreadPoolExecutor(max_workers=keys.TENANT_SHARDS, thread_name_prefix="shard-reader")


def started(read: Callable[[Any], list[dict]], arguments: Iterable[Any]) -> Callable[[], list[list[dict]]]:
    """Start ``read`` of each argument at once, for reads that do not themselves read in parallel;
    call what it returns for their answers, in order (the caller may read something else meanwhile)."""
    futures = [_shard_readers.submit(with_log_keys(read), argument) for argument in arguments]
    return lambda: [future.result() for future in futures]


def in_parallel(read: Callable[[Any], list[dict]], arguments: Iterable[Any]) -> list[list[dict]]:
    """``read`` of each argument, all at once (independent reads wait for one round trip, not one
    each); for reads that do not themselves read in parallel."""
    return started(read, arguments)()


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


def _edge_where(dimension: Dimension, values: list[str]) -> dict[str, str]:
    """The record fields all of ``values`` share, to read the raw records at a range's edges by."""
    if dimension is TENANT:
        return {}
    if dimension in (IDENTIFIER, AGENT):
        return {("identifier" if dimension is IDENTIFIER else "agentId"): values[0]} if len(values) == 1 else {}
    if dimension in (AGENT_MODEL, AGENT_TYPE):
        scoped = [keys.split_agent_scoped_key(value) for value in values]
        where = {"agentId": scoped[0][0]} if len({agent for agent, _ in scoped}) == 1 else {}
        if len(values) == 1 and where:
            where["model" if dimension is AGENT_MODEL else "type"] = scoped[0][1]
        return where
    raise ValueError(f"dimension {dimension.code} has no hourly items")


def read_plan(start: int | None, end: int | None) -> ReadPlan:
    """How to read ``[start, end)`` (None = open) exactly. An open end reads whole day items up to
    today's: they hold everything aggregated so far."""
    open_end = (now_ms() // DAY_MS + 1) * DAY_MS
    return plan_range(0 if start is None else start, open_end if end is None else end)


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

    Whole days come from day items; a partial day from its hour items (which hold their quarters),
    or from its day item less the hour items outside the range, whichever reads fewer; only the
    part of a quarter hour at a ragged ``from`` or ``to`` from raw records. An open end includes
    events timestamped up to 5 minutes ahead (the accepted clock skew).
    """
    return daily_totals_of(tenant, dimension, [value], start, end)[value]


def daily_totals_of(
    tenant: str, dimension: Dimension, values: list[str], start: int | None, end: int | None
) -> dict[str, dict[str, Totals]]:
    """``daily_totals`` of each of a few values of one dimension: their items read at once, and the
    raw records at the edges once for all (the models of one agent share its records). A ragged edge
    in a quarter hour over ``SETTLED_MS`` ago is summed from the values' hour items where their
    quarter's set lists every event it counts (an end user's few, or none), and read from raw
    records only where it does not: the tenant's records of those minutes cost a Query per
    ``ByTenant`` shard."""
    found: dict[str, dict[str, Totals]] = {value: defaultdict(Counter) for value in values}
    days, slots, edges = _day_plan(start, end)
    settled = _settled(edges) if values else []
    watched = {quarter for edge in settled for quarter in _quarters_of(edge)}
    for quarter in watched:
        slots.setdefault(quarter - quarter % HOUR_MS, (0, 0, 0))  # read only to see what the quarter holds
    if start is None and end is None:
        spans = [(keys.DAY_PREFIX, keys.day_sk("~"))]
    else:
        spans = [tuple(keys.day_sk(day_key(day)) for day in (min(days), max(days)))] if days else []
    spans += [(keys.hour_sk(keys.hour_key(low)), keys.hour_sk(keys.hour_key(high))) for low, high in hour_runs(slots)]
    reads = [(dimension.pk(tenant, value), value, span) for value in values for span in spans]
    answers = started(lambda read: aggregate_items(read[0], *read[2]), reads)  # items and fresh edges at once
    add_edges = partial(_add_edge_records, found, tenant, dimension, _edge_where(dimension, values))
    add_edges([edge for edge in edges if edge not in settled] if values else [])
    items_read = answers()
    watched_items = _watched_items(reads, items_read, watched)
    unlisted = []
    for edge in settled:
        listed = _listed_events(watched_items, values, edge)
        if listed is None:
            unlisted.append(edge)
        for value, ms, added in listed or []:
            found[value][day_key(ms)].update(added)
    add_edges(unlisted)
    for (pk, value, _), items in zip(reads, items_read, strict=True):
        for item in items:
            if keys.is_hour_sk(item["sk"]):
                sign, first, last = slots[keys.parse_aggregate(pk, item["sk"]).bucket_start]
                if first < last:
                    part = hour_part(item, first, last)
                    found[value][keys.bucket_day(item["sk"])].update({name: sign * n for name, n in part.items()})
            else:
                found[value][keys.bucket_day(item["sk"])].update(counters(item))
    return {value: {day: _nonzero(t) for day, t in by_day.items()} for value, by_day in found.items()}


def _quarters_of(edge: Slice) -> range:
    """The quarter hours (their starts) a raw slice touches: one, or two where it crosses a quarter
    line without reaching the next (``split`` of 12:10 to 12:20)."""
    low, high = edge
    return range(low - low % QUARTER_MS, high, QUARTER_MS)


def _settled(edges: list[Slice]) -> list[Slice]:
    """The raw slices whose last quarter hour ended ``SETTLED_MS`` or more ago."""
    settled_before = now_ms() - SETTLED_MS
    return [edge for edge in edges if _quarters_of(edge)[-1] + QUARTER_MS <= settled_before]


def _watched_items(
    reads: list[tuple[str, str, Any]], answers: list[list[dict[str, Any]]], watched: set[int]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The hour items read of the ``watched`` quarter hours (their starts), by value and sort key."""
    hours = {keys.hour_sk(keys.hour_key(quarter)) for quarter in watched}
    return {
        (value, item["sk"]): item
        for (_, value, _), items in zip(reads, answers, strict=True)
        for item in items
        if item["sk"] in hours
    }


def _listed_events(
    items: dict[tuple[str, str], dict[str, Any]], values: list[str], edge: Slice
) -> list[tuple[str, int, Totals]] | None:
    """Each value's events in a raw slice (value, instant, what it adds), from its hour items'
    quarter sets; None if a quarter it touches counts an event its set does not list (a value with
    no hour item there has no event in it)."""
    low, high = edge
    found = []
    for quarter in _quarters_of(edge):
        hour = quarter - quarter % HOUR_MS
        sk = keys.hour_sk(keys.hour_key(hour))
        for value in (value for value in values if (value, sk) in items):
            members = complete_quarter(items[value, sk], (quarter - hour) // QUARTER_MS)
            if members is None:
                return None
            events = (each_event(member) for member in members)
            found += [(value, quarter + offset, added) for offset, added in events if low <= quarter + offset < high]
    return found


def _add_edge_records(
    found: dict[str, dict[str, Totals]], tenant: str, dimension: Dimension, where: dict[str, str], edges: list[Slice]
) -> None:
    """Add the raw records of each slice to the day totals of the value they belong to."""
    for low, high in edges:
        for record in tenant_records(tenant, low, high, where):
            if (value := dimension.value_of(record)) in found:
                found[value][day_key(record.ts)].update(record_totals(record))


def _day_plan(start: int | None, end: int | None) -> tuple[list[int], dict[int, tuple[int, int, int]], list[Slice]]:
    """How ``daily_totals`` reads ``[start, end)`` (None = open): the days whose day items count,
    each hour item's sign and quarters, and the raw slices to add. Fully open: every day item."""
    if start is None and end is None:
        return [], {}, []
    open_end = (now_ms() // DAY_MS + 1) * DAY_MS
    days, pieces = signed_pieces(0 if start is None else start, open_end if end is None else end)
    slots, edges = {}, []
    for sign, low, high in pieces:
        cut = split(low, high, QUARTER_MS)
        slots.update({hour: (sign, first, last) for hour, first, last in cut.hours})
        edges += cut.raw  # always added: signed_pieces takes only items away
    return days, slots, edges


def _nonzero(totals: Totals) -> Totals:
    """Totals without the counters that came to zero (a day item less the hours outside a range)."""
    return Counter({name: n for name, n in totals.items() if n})


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
