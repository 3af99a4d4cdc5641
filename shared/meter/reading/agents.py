"""Organization agents: every agent's credits over a range, exact, in a few reads.

A tenant's agents' credits are on its agent boards (``meter.dal.boards``: per UTC day, month and
hour) until its roster is sharded, and on the roster's partitions from then on
(``meter.dal.tenants.Layout``). A range is read as whole UTC days and the whole hours at its
ragged edges, and raw records for the parts of an hour at a ``from`` or ``to`` off the hour. Hours
before the sharding read the boards, hours after it the roster. The hour holding the sharding
moment, and a part whose boards miss some of the tenant's events (counted before boards existed,
a board item DynamoDB refused, events reconciliation added), read every agent's own items: the
native query's ``groupBy=agentId``, value by value.
"""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

from meter.core.timerange import DAY_MS, HOUR_MS, now_ms
from meter.dal import keys, store
from meter.dal.dimensions import AGENT, TENANT
from meter.dal.tenants import layout
from meter.reading.plan import plan_range
from meter.reading.queries import in_parallel, tenant_records
from meter.reading.ranking import credits_between
from meter.reading.series import UsageQuery, run_query

Span = tuple[int, int]
UTC = ZoneInfo("UTC")


def agent_credits(tenant: str, start: int | None, end: int | None) -> Counter[str]:
    """Credits per agent over ``[start, end)``: None for ``start`` is the tenant's first day, for
    ``end`` the end of today (what is aggregated so far)."""
    start = _first_day(tenant) if start is None else start
    end = (now_ms() // DAY_MS + 1) * DAY_MS if end is None else end
    if start is None or start >= end:
        return Counter()
    low, high = -(-start // HOUR_MS) * HOUR_MS, end // HOUR_MS * HOUR_MS
    credits: Counter[str] = Counter()
    for a, b in [(start, end)] if low >= high else [(start, low), (high, end)]:
        for record in tenant_records(tenant, a, b) if a < b else []:
            if record.agent_id is not None:
                credits[record.agent_id] += record.credits
    if low < high:
        boarded, straddling, rostered = _eras(low, high, layout(tenant).roster_sharded_from)
        for span, read in ((boarded, _from_boards), (straddling, _every_agent), (rostered, _from_roster)):
            credits.update(read(tenant, span) if span else {})
    return +credits


def _first_day(tenant: str) -> int | None:
    """When the tenant's first day with an aggregated event starts."""
    first = store.aggregates().first_sk(TENANT.pk(tenant, ""), keys.DAY_PREFIX)
    return None if first is None else keys.day_start(keys.bucket_day(first))


def _eras(low: int, high: int, sharded_from: int | None) -> tuple[Span | None, Span | None, Span | None]:
    """``[low, high)`` (on the hour grid) as its hours before the roster's sharding, the hour holding
    it (unless it is on the hour) and its hours from it on; each None where empty."""
    if sharded_from is None or sharded_from >= high:
        return (low, high), None, None
    if sharded_from <= low:
        return None, None, (low, high)
    hour = sharded_from // HOUR_MS * HOUR_MS
    rostered_from = hour if hour == sharded_from else hour + HOUR_MS
    return (
        (low, hour) if low < hour else None,
        None if hour == sharded_from else (hour, hour + HOUR_MS),
        (rostered_from, high) if rostered_from < high else None,
    )


def _from_boards(tenant: str, span: Span) -> Counter[str]:
    found = credits_between(tenant, AGENT, *span)
    return _every_agent(tenant, span) if found is None else found


def _every_agent(tenant: str, span: Span) -> Counter[str]:
    """Every agent's own items (``series``: listed, then read value by value): exact, more reads."""
    rows = run_query(UsageQuery(tenant, *span, None, UTC, "credits", ("agentId",)))
    return Counter({dict(group)["agentId"]: value for _, _, group, value in rows})


def _from_roster(tenant: str, span: Span) -> Counter[str]:
    """Every partition of the sharded roster, for the span's days and hours."""
    plan = plan_range(*span)
    buckets = [(keys.day_sk(plan.days[0]), keys.day_sk(plan.days[1]))] if plan.days else []
    buckets += [(keys.hour_sk(first), keys.hour_sk(last)) for first, last in plan.hours]
    reads = [(pk, *keys.roster_bounds(*bucket)) for pk in keys.roster_pks(tenant) for bucket in buckets]
    credits: Counter[str] = Counter()
    for items in in_parallel(lambda read: store.aggregates().between(*read, only="credits"), reads):
        for item in items:
            credits[keys.roster_agent(item["sk"])] += item.get("credits", 0)
    return credits
