"""Rankings from boards: every value's credits over local windows in a few Queries.

``board_sums`` answers the native query's ``groupBy=identifier`` (``agentId``, or ``agentId``
and ``model``) of credits from the tenant's boards (``meter.dal.boards``) when it can, else says
None and the query reads value by value; ``agent_credits`` (AgentsGT's organization agents) reads
its whole days from the agents' boards. A window is a sum of signed *terms*: a UTC day's board,
or its part from a day cut on (a local midnight the tenant's day items are cut at), and a UTC
month's board less the days of the month the window leaves out, where that reads fewer boards.
Every board read must hold all of the tenant's events of its period (its ``events`` against the
tenant's own day items), and every cut its part is read from must be kept for all of them.
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from meter.core.timerange import DAY_MS, now_ms
from meter.dal import boards, keys, store
from meter.dal.dimensions import AGENT, AGENT_MODEL, IDENTIFIER, QUARTER_MS, TENANT, Dimension
from meter.dal.tenants import layout
from meter.reading.plan import signed_pieces
from meter.reading.queries import in_parallel, read_plan, started, tenant_records

if TYPE_CHECKING:
    from meter.reading.series import UsageQuery

Term = tuple[str, int | None]  # a period (D#YYYY-MM-DD or M#YYYY-MM) and a day cut, or None for all of it
Group = tuple[tuple[str, str], ...]


def _boarded(query: UsageQuery) -> Dimension | None:
    """The board that answers the query, if one does."""
    if query.measure != "credits" or query.filters or query.size == "HOUR":
        return None
    return {("identifier",): IDENTIFIER, ("agentId",): AGENT, ("agentId", "model"): AGENT_MODEL}.get(
        tuple(sorted(query.group_by))
    )


def _day_terms(start: int, end: int, cuts: frozenset[int]) -> Counter[Term] | None:
    """``[start, end)`` as signed day terms; None if an edge is not a day's start or a kept cut."""
    days, pieces = signed_pieces(start, end)
    terms: Counter[Term] = Counter({(keys.day_sk(keys.day_key(day)), None): 1 for day in days})
    for sign, low, high in pieces:  # a piece is what fell from ``low`` on, less what fell from ``high`` on
        day = low // DAY_MS * DAY_MS
        for moment, side in ((low, sign), (high, -sign)):
            quarter, off_grid = divmod(moment - day, QUARTER_MS)
            if moment == day + DAY_MS:
                continue
            if off_grid or (quarter and quarter not in cuts):
                return None
            terms[(keys.day_sk(keys.day_key(day)), quarter or None)] += side
    return Counter({term: n for term, n in terms.items() if n})


def _month_days(month: str) -> list[str]:
    """Every ``D#YYYY-MM-DD`` of a month (``M#YYYY-MM``)."""
    year, number = int(month[2:6]), int(month[7:9])
    return [keys.day_sk(f"{year:04d}-{number:02d}-{d:02d}") for d in range(1, calendar.monthrange(year, number)[1] + 1)]


def _with_months(terms: Counter[Term], today: str, incomplete: set[str]) -> Counter[Term]:
    """Whole days of a month as the month's board less its other days, where that reads fewer
    boards (days after ``today`` hold nothing yet: reading them costs nothing), unless the month's
    board is ``incomplete``."""
    whole_by_month: dict[str, set[str]] = defaultdict(set)
    for (period, cut), n in terms.items():
        if cut is None and n == 1 and keys.MONTH_PREFIX + period[2:9] not in incomplete:
            whole_by_month[keys.MONTH_PREFIX + period[2:9]].add(period)
    for month, whole in whole_by_month.items():
        read = {period for period, _ in terms if period[2:9] == month[2:]}  # this month's days, as they stand
        others = [day for day in _month_days(month) if day not in whole]
        if 1 + len((read - whole) | {day for day in others if day <= today}) >= len(read):
            continue
        terms[(month, None)] += 1
        for day in _month_days(month):
            terms[(day, None)] -= 1
    return Counter({term: n for term, n in terms.items() if n})


def _runs(periods: list[str], prefix: str) -> list[tuple[str, str]]:
    """Sorted periods of one kind as runs of consecutive ones (first, last): one Query a run."""
    runs: list[list[str]] = []
    for period in sorted(p for p in periods if p.startswith(prefix)):
        if runs and _next(runs[-1][1]) == period:
            runs[-1][1] = period
        else:
            runs.append([period, period])
    return [(first, last) for first, last in runs]


def _next(period: str) -> str:
    if period.startswith(keys.DAY_PREFIX):
        return keys.day_sk(keys.day_key(keys.day_start(period[2:]) + DAY_MS))
    year, month = int(period[2:6]), int(period[7:9])
    return f"{keys.MONTH_PREFIX}{year + month // 12:04d}-{month % 12 + 1:02d}"


def _tenant_events(tenant: str, periods: set[str]) -> dict[str, int]:
    """The tenant's own events in each period (its day items; a month: its days' sum)."""
    days = {day for p in periods for day in ([p] if p.startswith(keys.DAY_PREFIX) else _month_days(p))}
    items = store.aggregates().between(TENANT.pk(tenant, ""), min(days), max(days), only="events")
    by_day = {item["sk"]: int(item.get("events", 0)) for item in items}
    return {
        p: by_day.get(p, 0) if p.startswith(keys.DAY_PREFIX) else sum(by_day.get(d, 0) for d in _month_days(p))
        for p in periods
    }


def _group(dimension: Dimension, value: str) -> Group:
    if dimension is not AGENT_MODEL:
        return (("identifier" if dimension is IDENTIFIER else "agentId", value),)
    agent, model = keys.split_agent_scoped_key(value)
    return (("agentId", agent), ("model", model))


def board_sums(query: UsageQuery, spans: list[tuple[int, int]]) -> dict[tuple[int, Group], int] | None:
    """Every value's credits in each window (``spans``) from the boards, by (window index, group);
    None when no board answers the query, or a day's board it needs misses some of the tenant's
    events (a month's board that does is read around by its days)."""
    dimension = _boarded(query)
    if dimension is None or not spans:
        return None
    cuts = layout(query.tenant).cuts
    days = [_day_terms(start, end, cuts) for start, end in spans]
    if any(terms is None for terms in days):
        return None
    by_window = _credits(query.tenant, dimension, [terms for terms in days if terms is not None])
    if by_window is None:
        return None
    return {
        (index, _group(dimension, value)): n for index, values in enumerate(by_window) for value, n in values.items()
    }


def agent_credits(tenant: str, start: int | None, end: int | None) -> Counter[str]:
    """Credits per agent over ``[start, end)`` (None = open), exact: its whole days from the agents'
    boards (the roster's day entries where a board misses events, or for all time), the hours at
    ragged edges from the roster (every agent of a bucket in one read), raw records only off the hour
    grid."""
    plan, partitions = read_plan(start, end), layout(tenant).roster_pks(tenant, end)

    def roster(spans: list[tuple[str, str]]) -> Callable[[], list[list[dict]]]:
        reads = [(pk, *keys.roster_bounds(low, high)) for pk in partitions for low, high in spans]
        return started(lambda read: store.aggregates().between(*read, only="credits"), reads)

    hours = roster([(keys.hour_sk(low), keys.hour_sk(high)) for low, high in plan.hours])  # while the days are read
    credits: Counter[str] = Counter()
    boarded = None
    if plan.days and start is not None:
        first, last = (keys.day_start(day) for day in plan.days)
        boarded = days_credits(tenant, AGENT, first, last + DAY_MS)
    days = roster([(keys.day_sk(plan.days[0]), keys.day_sk(plan.days[1]))] if plan.days and boarded is None else [])
    credits.update(boarded or {})
    for low, high in plan.raw:
        for record in tenant_records(tenant, low, high):
            if record.agent_id is not None:
                credits[record.agent_id] += record.credits
    for items in [*hours(), *days()]:
        for item in items:  # an agent's entry of a bucket may be in two partitions (sharded mid-bucket)
            credits[keys.roster_agent(item["sk"])] += item.get("credits", 0)
    return +credits


def days_credits(tenant: str, dimension: Dimension, first_day: int, end_day: int) -> Counter[str] | None:
    """Every value's credits over the whole UTC days ``[first_day, end_day)`` from the boards; None
    when a day's board it needs misses some of the tenant's events."""
    found = _credits(tenant, dimension, [Counter(_day_terms(first_day, end_day, frozenset()))])
    return None if found is None else found[0]


def _credits(tenant: str, dimension: Dimension, days: list[Counter[Term]]) -> list[Counter[str]] | None:
    """Each window's (its day terms') credits per value, months' boards read where they save reads."""
    today, incomplete = keys.day_sk(keys.day_key(now_ms())), set()
    while True:
        windows = [_with_months(Counter(terms), today, incomplete) for terms in days]
        totals, wrong = _read_boards(tenant, dimension, windows)
        if not wrong:
            return [_summed(terms, totals) for terms in windows]
        if any(period.startswith(keys.DAY_PREFIX) for period in wrong):
            return None  # counted before boards existed, or raised by reconciliation: read value by value
        incomplete |= wrong


def _read_boards(
    tenant: str, dimension: Dimension, windows: list[Counter[Term]]
) -> tuple[dict[str, boards.PeriodTotals], set[str]]:
    """The boards of every period the windows read, and the periods whose boards miss some of the
    tenant's events, or a cut part the windows read."""
    periods = {period for terms in windows for period, _ in terms}
    if not periods:
        return {}, set()
    pk = keys.board_pk(tenant, dimension.code)
    runs = _runs(list(periods), keys.DAY_PREFIX) + _runs(list(periods), keys.MONTH_PREFIX)
    reads = [lambda run=run: store.aggregates().between(pk, *keys.board_bounds(*run)) for run in runs]
    reads.append(lambda: [_tenant_events(tenant, periods)])
    *found, (events,) = in_parallel(lambda read: read(), reads)
    totals = boards.summed(item for items in found for item in items)
    wrong = {period for period in periods if totals[period].events != events[period]}
    read_from_cuts = {(period, cut) for terms in windows for period, cut in terms if cut is not None}
    wrong |= {period for period, cut in read_from_cuts if totals[period].kept[cut] != totals[period].events}
    return totals, wrong


def _summed(terms: Counter[Term], totals: dict[str, boards.PeriodTotals]) -> Counter[str]:
    sums: Counter[str] = Counter()
    for (period, cut), sign in terms.items():
        board = totals[period]
        for value, n in (board.credits if cut is None else board.after[cut]).items():
            sums[value] += sign * n
    return sums
