"""Rankings from boards: every value's credits over local windows in a few Queries.

``board_sums`` answers the native query's ``groupBy=identifier`` (``agentId``, or ``agentId``
and ``model``) of credits from the tenant's boards (``meter.dal.boards``) when it can, else says
None and the query reads value by value; ``credits_between`` is the same over UTC days and hours
(AgentsGT's organization agents, ``meter.reading.agents``). A window is a sum of signed *terms*: a
UTC day's or hour's board, or a day's part from a day cut on (a local midnight the tenant's day
items are cut at), and a UTC month's board less the days of the month the window leaves out, where
that reads fewer boards. Every board read must hold all of the tenant's events of its period (its
``events`` against the tenant's own day and hour items), and every cut its part is read from must
be kept for all of them.
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from meter.core.timerange import DAY_MS, HOUR_MS, now_ms
from meter.dal import boards, keys, store
from meter.dal.dimensions import AGENT, AGENT_MODEL, IDENTIFIER, QUARTER_MS, TENANT, Dimension, quarter_of, quarter_sum
from meter.dal.tenants import layout
from meter.reading.plan import signed_pieces, split
from meter.reading.queries import in_parallel

if TYPE_CHECKING:
    from meter.reading.series import UsageQuery

Term = tuple[str, int | None]  # a period (a day's, hour's or month's sort key) and a day cut, or None for all of it
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
    days = {term: n for term, n in terms.items() if term[0][:2] == keys.DAY_PREFIX}
    whole_by_month: dict[str, set[str]] = defaultdict(set)
    for (period, cut), n in days.items():
        month = keys.month_sk(period[2:])
        if cut is None and n == 1 and month not in incomplete:
            whole_by_month[month].add(period)
    for month, whole in whole_by_month.items():
        read = {period for period, _ in days if period[2:9] == month[2:]}  # this month's days, as they stand
        others = [day for day in _month_days(month) if day not in whole]
        if 1 + len((read - whole) | {day for day in others if day <= today}) >= len(read):
            continue
        terms[(month, None)] += 1
        for day in _month_days(month):
            terms[(day, None)] -= 1
    return Counter({term: n for term, n in terms.items() if n})


def _runs(periods: Iterable[str]) -> list[tuple[str, str]]:
    """Periods as runs of consecutive ones of one kind (first, last): one Query a run."""
    runs: list[list[str]] = []
    for period in sorted(periods):
        if runs and _next(runs[-1][1]) == period:
            runs[-1][1] = period
        else:
            runs.append([period, period])
    return [(first, last) for first, last in runs]


def _next(period: str) -> str:
    if period.startswith(keys.DAY_PREFIX):
        return keys.day_sk(keys.day_key(keys.day_start(period[2:]) + DAY_MS))
    if period.startswith(keys.HOUR_PREFIX):
        return keys.hour_sk(keys.hour_key(keys.hour_start(period[2:]) + HOUR_MS))
    year, month = int(period[2:6]), int(period[7:9])
    return f"{keys.MONTH_PREFIX}{year + month // 12:04d}-{month % 12 + 1:02d}"


def _tenant_spans(periods: set[str]) -> list[tuple[str, str]]:
    """Sort-key ranges of the tenant's own day and hour items that count the periods' events."""
    days = [day for p in periods if p[:2] != keys.HOUR_PREFIX for day in (_month_days(p) if _is_month(p) else [p])]
    return ([(min(days), max(days))] if days else []) + _runs(p for p in periods if p[:2] == keys.HOUR_PREFIX)


def _tenant_events(periods: set[str], items: Iterable[dict]) -> dict[str, int]:
    """The tenant's own events in each period, from its day and hour items (a month: its days' sum)."""
    counted = {item["sk"]: int(item.get("events", 0)) for item in items}
    return {p: sum(counted.get(d, 0) for d in _month_days(p)) if _is_month(p) else counted.get(p, 0) for p in periods}


def _is_month(period: str) -> bool:
    return period[:2] == keys.MONTH_PREFIX


def _group(dimension: Dimension, value: str) -> Group:
    if dimension is not AGENT_MODEL:
        return (("identifier" if dimension is IDENTIFIER else "agentId", value),)
    agent, model = keys.split_agent_scoped_key(value)
    return (("agentId", agent), ("model", model))


def board_sums(query: UsageQuery, spans: list[tuple[int, int]]) -> dict[tuple[int, Group], int] | None:
    """Every value's credits in each window (``spans``) from the boards, by (window index, group);
    None when no board answers the query, or a day's board it needs misses some of the tenant's
    events (a month's board that does is read around by its days). The last window may end off the
    day's cuts (an open ``to``) if the tenant counted nothing from its end to the day's end: it then
    reads the day's whole board."""
    dimension = _boarded(query)
    if dimension is None or not spans:
        return None
    cuts = layout(query.tenant).cuts
    days = [_day_terms(start, end, cuts) for start, end in spans]
    start, end = spans[-1]
    quiet_from = None  # the last window read to its UTC day's end, if the tenant counted nothing after it
    if days[-1] is None and end % QUARTER_MS == 0:  # an open end (the current quarter hour), say
        days[-1], quiet_from = _day_terms(start, -(-end // DAY_MS) * DAY_MS, cuts), end
    if any(terms is None for terms in days):
        return None
    by_window = _credits(query.tenant, dimension, [terms for terms in days if terms is not None])
    if by_window is None or (quiet_from is not None and _counted_from(query.tenant, quiet_from)):
        return None
    return {
        (index, _group(dimension, value)): n for index, values in enumerate(by_window) for value, n in values.items()
    }


def _counted_from(tenant: str, moment: int) -> bool:
    """Whether the tenant's own hour items count an event from ``moment`` (on the quarter grid) to
    the end of its UTC day. Read after the boards, strongly consistent: counts only grow, so a board
    read before holds no event there when this says none."""
    first = keys.hour_sk(keys.hour_key(moment))
    last = keys.hour_sk(keys.hour_key(moment // DAY_MS * DAY_MS + DAY_MS - 1))
    items = store.aggregates().between(TENANT.pk(tenant, ""), first, last, consistent=True)
    return any(
        quarter_sum(item, "events", quarter_of(moment), 4) if item["sk"] == first else item.get("events", 0)
        for item in items
    )


def credits_between(tenant: str, dimension: Dimension, low: int, high: int) -> Counter[str] | None:
    """Every value's credits over ``[low, high)`` (on the hour grid) from the boards: whole UTC days
    from day and month boards, the hours at its edges from hour boards; None when a board it needs
    misses some of the tenant's events."""
    cut = split(low, high)
    terms = _day_terms(cut.days[0], cut.days[-1] + DAY_MS, frozenset()) if cut.days else Counter()
    terms.update({(keys.hour_sk(keys.hour_key(hour)), None): 1 for hour, _, _ in cut.hours})
    found = _credits(tenant, dimension, [terms])
    return None if found is None else found[0]


def _credits(tenant: str, dimension: Dimension, days: list[Counter[Term]]) -> list[Counter[str]] | None:
    """Each window's (its day terms') credits per value, months' boards read where they save reads."""
    today, incomplete = keys.day_sk(keys.day_key(now_ms())), set()
    while True:
        windows = [_with_months(Counter(terms), today, incomplete) for terms in days]
        totals, wrong = _read_boards(tenant, dimension, windows)
        if not wrong:
            return [_summed(terms, totals) for terms in windows]
        if any(not period.startswith(keys.MONTH_PREFIX) for period in wrong):
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
    board, own = keys.board_pk(tenant, dimension.code), TENANT.pk(tenant, "")
    on_boards = [(board, *keys.board_bounds(*run), "") for run in _runs(periods)]
    reads = on_boards + [(own, *span, "events") for span in _tenant_spans(periods)]
    found = in_parallel(lambda read: store.aggregates().between(*read[:3], only=read[3]), reads)
    totals = boards.summed(item for items in found[: len(on_boards)] for item in items)
    events = _tenant_events(periods, (item for items in found[len(on_boards) :] for item in items))
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
