"""Exact values of aggregate series over local windows: the engine behind the native query and alerts.

How a value is read. Each group is a *series*: one aggregate partition (the tenant, an end user,
an agent, an agent's model, a type). A window ``[a, b)`` is summed from the series' day items
for the UTC days it covers, and hour items for the rest: a day item minus the hours outside the
window when that reads fewer hours. Hour items hold their quarter hours, and every zone's offset
is whole quarter hours, so a local window never needs raw records; only a ``from`` or ``to`` that
is not on a quarter hour reads the raw records of that part of one quarter.

Combinations no aggregate holds (an end user by agent, by model or by type, or a model by type)
are summed from raw records, at most ``MAX_RAW_RECORDS`` of them.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from meter.core.errors import BadRequest
from meter.core.localtime import HOUR, windows
from meter.core.logs import with_log_keys
from meter.core.timerange import DAY_MS, HOUR_MS
from meter.dal import keys, store
from meter.dal.dimensions import (
    AGENT,
    AGENT_MODEL,
    AGENT_TYPE,
    IDENTIFIER,
    QUARTER_MS,
    TENANT,
    TYPE,
    Dimension,
    complete_cuts,
    cut_counter,
    has_own_items,
    quarter_sum,
    type_counter,
)
from meter.dal.records import UsageRecord
from meter.dal.tenants import keep_zone_cuts, layout
from meter.reading.plan import Piece, Slice, Split, signed_pieces, split
from meter.reading.queries import in_parallel, listed_values, record_totals, tenant_records
from meter.reading.ranking import board_sums

MAX_ROWS = 10_000  # rows of one answer (windows x groups with a value)
# Raw records one answer may sum (combinations no aggregate holds): 100,000 did not finish within
# the function's 15 s on DynamoDB Local (the bench's hostile section), 20,000 does.
MAX_RAW_RECORDS = 20_000
GROUPS = ("identifier", "agentId", "model", "type")
MEASURES = ("credits", "tokens", "events", "messages", "conversations")
COUNT_OF = "count:"
HOUR_ITEM_BYTES = 500  # an hour item with quarter parts, to choose between one Query and several
RAW_RECORD_BYTES = 250  # a usage record on ByTenant, as the bench measures it (3,015 RCU per 100,000)
RAW_CHECK_SERIES = 8  # with more groups than this, compare their reads with the raw events'

_READERS = 8


@dataclass(frozen=True)
class UsageQuery:
    """A parsed, valid query."""

    tenant: str
    start: int
    end: int
    size: str | None
    zone: ZoneInfo
    measure: str
    group_by: tuple[str, ...] = ()
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def counted_type(self) -> str | None:
        """The type of a ``count:<type>`` measure."""
        return self.measure[len(COUNT_OF) :] if self.measure.startswith(COUNT_OF) else None

    @property
    def fields(self) -> set[str]:
        """Every field the query groups or filters by."""
        return set(self.group_by) | set(self.filters)


# -- where each group's numbers live ---------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One aggregate partition and the group it adds to."""

    dimension: Dimension
    value: str
    group: tuple[tuple[str, str], ...]

    def matches(self, record: UsageRecord) -> bool:
        """Whether a raw record adds to this series."""
        if self.dimension is TENANT:
            return True
        if self.dimension in (AGENT_MODEL, AGENT_TYPE):
            agent, second = keys.split_agent_scoped_key(self.value)
            field_name = "model" if self.dimension is AGENT_MODEL else "type"
            return record.agent_id == agent and record.value_of(field_name) == second
        field_name = {IDENTIFIER: "identifier", AGENT: "agentId", TYPE: "type"}[self.dimension]
        return record.value_of(field_name) == self.value


def _counter(query: UsageQuery, dimension: Dimension) -> str:
    """The counter holding the measure on this dimension's items."""
    counted = query.counted_type
    if counted is None:
        return query.measure
    own = type_counter(counted)
    return "count" if dimension in (TYPE, AGENT_TYPE) or own is None else own


def _label(query: UsageQuery, **values: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, values[name]) for name in GROUPS if name in query.group_by)


def _values(query: UsageQuery, name: str, dimension: Dimension, scope: str = "") -> list[str]:
    """A filter's values, or the dimension's values active in the range."""
    if name in query.filters:
        return list(query.filters[name])
    return sorted(listed_values(query.tenant, dimension, query.start, query.end, scope))


def plan_series(query: UsageQuery) -> list[Series] | None:
    """The series that answer the query, or None when no aggregate holds the combination."""
    fields, counted = query.fields, query.counted_type
    if "type" in fields or (counted is not None and type_counter(counted) is None):
        return _typed_series(query)
    if not fields:
        return [Series(TENANT, "", ())]
    if fields == {"identifier"}:
        return [Series(IDENTIFIER, v, _label(query, identifier=v)) for v in _values(query, "identifier", IDENTIFIER)]
    if fields == {"agentId"}:
        return [Series(AGENT, v, _label(query, agentId=v)) for v in _values(query, "agentId", AGENT)]
    if fields <= {"agentId", "model"}:
        return _model_series(query)
    return None


def _model_series(query: UsageQuery) -> list[Series]:
    found = []
    for agent in _values(query, "agentId", AGENT):
        models = listed_values(query.tenant, AGENT_MODEL, query.start, query.end, agent).values()
        wanted = query.filters.get("model")
        for model in sorted(set(models)):
            if wanted is None or model in wanted:
                value = keys.agent_scoped_key(agent, model)
                found.append(Series(AGENT_MODEL, value, _label(query, agentId=agent, model=model)))
    return found


def _typed_series(query: UsageQuery) -> list[Series] | None:
    """Series of type items: tenant-wide (``TY``), or an agent's (``AY``) for types that have them."""
    counted, fields = query.counted_type, query.fields
    if "type" in fields:
        types = _values(query, "type", TYPE)
        types = [t for t in types if counted is None or t == counted]
    else:
        types = [counted] if counted is not None else []
    if fields <= {"type"}:
        return [Series(TYPE, t, _label(query, type=t)) for t in types]
    by_agent = fields == {"agentId", "type"} or (fields == {"agentId"} and counted is not None)
    if by_agent and all(has_own_items(t) for t in types):
        return [
            Series(AGENT_TYPE, keys.agent_scoped_key(agent, t), _label(query, agentId=agent, type=t))
            for agent in _values(query, "agentId", AGENT)
            for t in types
        ]
    return None


# -- reading one series ------------------------------------------------------------------------
Plan = tuple[list[int], list[Piece]]  # one window: whole UTC days (starts) and signed pieces


def _on_quarters(piece: Piece) -> Split:
    """A piece's hour items, with the quarters of each it covers, and its raw slices off the quarter grid."""
    _, start, end = piece
    return split(start, end, QUARTER_MS)


def _hours(piece: Piece) -> list[int]:
    """The hour items a piece reads when its day item cannot answer it."""
    return [hour for hour, _, _ in _on_quarters(piece).hours]


class SeriesReader:
    """Reads one series' items once and answers any window of it."""

    def __init__(
        self,
        query: UsageQuery,
        series: Series,
        plans: list[Plan],
        raw: dict[Slice, list[UsageRecord]],
        consistent: bool = False,
    ):
        self.query, self.series, self.plans, self.consistent = query, series, plans, consistent
        self.pk = series.dimension.pk(query.tenant, series.value)
        self.counter = _counter(query, series.dimension)
        self.raw = {piece: [r for r in records if series.matches(r)] for piece, records in raw.items()}
        self.day_items: dict[int, dict] = {}
        self.hour_items: dict[int, dict] = {}

    def read(self, every_hour: bool = False) -> None:
        """Fetch every day item the windows touch, then the hour items of the pieces no day item
        answers (of every piece with ``every_hour``: uncommitted deltas to ``add`` may lack a cut)."""
        days = {day for day_starts, _ in self.plans for day in day_starts}
        pieces = {piece for _, window_pieces in self.plans for piece in window_pieces}
        touched = days | {piece[1] // DAY_MS * DAY_MS for piece in pieces}
        if touched:
            low, high = (keys.day_sk(keys.day_key(day)) for day in (min(touched), max(touched)))
            for item in store.aggregates().between(self.pk, low, high, consistent=self.consistent):
                self.day_items[keys.parse_aggregate(self.pk, item["sk"]).bucket_start] = item
        unanswered = [piece for piece in pieces if every_hour or self._from_day(piece) is None]
        self._read_hours(sorted({hour for piece in unanswered for hour in _hours(piece)}))

    def add(self, deltas: dict[tuple[str, str], Counter[str]]) -> None:
        """Add counters not yet committed (an aggregator's open window) to the items read."""
        for (pk, sk), added in deltas.items():
            if pk != self.pk:
                continue
            bucket = keys.parse_aggregate(pk, sk).bucket_start
            items = self.day_items if sk.startswith(keys.DAY_PREFIX) else self.hour_items
            merged = dict(items.get(bucket, {}))
            for name, n in added.items():
                merged[name] = merged.get(name, 0) + n
            items[bucket] = merged

    def _read_hours(self, hours: list[int]) -> None:
        if not hours:
            return
        runs: list[list[int]] = []
        for hour in hours:
            if runs and hour - runs[-1][-1] <= HOUR_MS:
                runs[-1].append(hour)
            else:
                runs.append([hour])
        if len(runs) > 1 and self._one_query_is_cheaper(runs):
            runs = [[hours[0], hours[-1]]]

        def read(run: list[int]) -> list[dict]:
            low, high = keys.hour_sk(keys.hour_key(run[0])), keys.hour_sk(keys.hour_key(run[-1]))
            return store.aggregates().between(self.pk, low, high, consistent=self.consistent)

        for items in in_parallel(read, runs):
            for item in items:
                self.hour_items[keys.parse_aggregate(self.pk, item["sk"]).bucket_start] = item

    def _one_query_is_cheaper(self, runs: list[list[int]]) -> bool:
        """One Query over every hour between the runs, or one per run (0.5 RCU at least each)?
        A day item's event count bounds how many hour items that day can have."""
        first, last = runs[0][0], runs[-1][-1]
        expected = 0
        for day in range(first // DAY_MS * DAY_MS, last + 1, DAY_MS):
            item = self.day_items.get(day)
            expected += min(24, int(item.get("events", 0))) if item else 0  # no day item: no hours
        one = max(1, -(-expected * HOUR_ITEM_BYTES // 4096)) * 0.5
        return one < 0.5 * len(runs)

    def _from_day(self, piece: Piece) -> int | None:
        """A piece's value from its day item alone: none without one (no events counted that day; a
        piece off the quarter grid still reads its raw events), its cut parts where both ends are
        the day's ends or cuts the item holds for all its events; None when hour items must say."""
        _, start, end = piece
        day = start // DAY_MS * DAY_MS
        item = self.day_items.get(day)
        if item is None:
            return 0 if (start - day) % QUARTER_MS == (end - day) % QUARTER_MS == 0 else None
        cuts = complete_cuts(item)

        def after(moment: int) -> int | None:  # what fell from ``moment`` to the day's end
            if moment == day:
                return item.get(self.counter, 0)
            quarter, off_grid = divmod(moment - day, QUARTER_MS)
            if moment == day + DAY_MS:
                return 0
            return item.get(cut_counter(self.counter, quarter), 0) if not off_grid and quarter in cuts else None

        low, high = after(start), after(end)
        return None if low is None or high is None else low - high

    def value(self, index: int) -> int:
        """The series' total in window ``index``."""
        days, pieces = self.plans[index]
        total = sum(self.day_items.get(day, {}).get(self.counter, 0) for day in days)
        for piece in pieces:
            known = self._from_day(piece)
            if known is not None:
                total += piece[0] * known
                continue
            cut = _on_quarters(piece)
            part = sum(
                quarter_sum(self.hour_items.get(hour, {}), self.counter, first, last) for hour, first, last in cut.hours
            )
            for raw_slice in cut.raw:
                part += sum(measure_of(self.query, record) for record in self.raw[raw_slice])
            total += piece[0] * part
        return total


def measure_of(query: UsageQuery, record: UsageRecord) -> int:
    """What one raw record adds to the query's measure."""
    counted = query.counted_type
    if counted is not None:
        return record.count if record.type == counted else 0
    return int(record_totals(record).get(query.measure, 0))


def series_total(
    query: UsageQuery, series: Series, consistent: bool = False, deltas: dict[tuple[str, str], Counter] | None = None
) -> int:
    """One series' exact total over the query's whole range (strongly consistent reads, and
    uncommitted ``deltas`` added, when asked: what alerts compare with their thresholds)."""
    plans = [signed_pieces(query.start, query.end)]
    slices = {raw for _, pieces in plans for piece in pieces for raw in _on_quarters(piece).raw}
    raw = {piece: tenant_records(query.tenant, *piece) for piece in slices}
    reader = SeriesReader(query, series, plans, raw, consistent)
    reader.read(every_hour=bool(deltas))
    reader.add(deltas or {})
    return reader.value(0)


# -- the answer ------------------------------------------------------------------------------
def _check_windows(query: UsageQuery) -> list[tuple[int, int]]:
    """The query's windows; 400 past ``MAX_ROWS`` of them, or for a window edge off the quarter-hour
    grid (a zone's historical offset such as Monrovia's -0:44:30 until 1972): each such edge would
    be a raw read, so their number would set the request's cost, whatever the tenant holds."""
    spans = []
    for span in windows(query.start, query.end, query.size, query.zone):
        if spans and span[0] % QUARTER_MS:
            offset = datetime.fromtimestamp(span[0] / 1000, query.zone).utcoffset()
            raise BadRequest(
                f"Invalid 'timeZone' parameter: {query.zone.key} was UTC{_offset(offset)} at "
                f"{datetime.fromtimestamp(span[0] / 1000, UTC):%Y-%m-%dT%H:%M:%SZ}, off the quarter-hour grid "
                "that windows are counted on; use one window for the range, or another zone"
            )
        spans.append(span)
        if len(spans) > MAX_ROWS:
            raise BadRequest(
                f"Invalid 'windowSize' parameter: the range holds more than {MAX_ROWS:,} windows; "
                "use a larger window or a shorter range"
            )
    return spans


def _offset(offset: timedelta | None) -> str:
    seconds = int((offset or timedelta()).total_seconds())
    sign, seconds = ("-" if seconds < 0 else "+"), abs(seconds)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_query(query: UsageQuery) -> list[tuple[int, int, tuple[tuple[str, str], ...], int]]:
    """(window start, window end, group, value) rows, ascending, non-zero only."""
    spans = _check_windows(query)
    if not spans:
        return []
    if query.size != HOUR:
        keep_zone_cuts(query.tenant, query.zone)  # the next reads of its local days: day items alone
    boarded = board_sums(query, spans)  # a ranking of credits: a few boards, not a Query per value
    sums: dict[tuple[int, tuple], int] = defaultdict(int, boarded or {})
    if boarded is None:
        _sum_series(query, spans, sums)
    rows = [(spans[i][0], spans[i][1], group, v) for (i, group), v in sums.items() if v]
    if len(rows) > MAX_ROWS:
        raise BadRequest(
            f"Invalid 'groupBy' parameter: the answer has more than {MAX_ROWS:,} rows; "
            "filter, group by fewer fields, or use a larger window"
        )
    return sorted(rows, key=lambda row: (row[0], row[2]))


def _sum_series(query: UsageQuery, spans: list[tuple[int, int]], sums: dict) -> None:
    """Sum each group's series (or the raw events, where no aggregate holds the combination or
    they read less) into ``sums`` by (window index, group)."""
    series = plan_series(query)
    plans = [signed_pieces(a, b) for a, b in spans]
    if series is None or (len(series) > RAW_CHECK_SERIES and _raw_is_cheaper(query, series, plans)):
        _sum_raw(query, spans, sums)
    elif series:
        slices = {raw for _, pieces in plans for piece in pieces for raw in _on_quarters(piece).raw}
        raw = {piece: tenant_records(query.tenant, *piece) for piece in slices}  # once for every series
        readers = [SeriesReader(query, s, plans, raw) for s in series]
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            list(pool.map(with_log_keys(SeriesReader.read), readers))
        for reader in readers:
            for index in range(len(spans)):
                sums[(index, reader.series.group)] += reader.value(index)


def _raw_is_cheaper(query: UsageQuery, series: list[Series], plans: list[Plan]) -> bool:
    """Would the tenant's raw events in the range cost fewer reads than one Query (or more) per group?

    Many small groups (every end user of a quiet tenant) can cost more in per-Query minimums than
    the events themselves; the tenant's day items say how many events the range can hold.
    """
    pieces = {(a, b) for _, window_pieces in plans for _, a, b in window_pieces}  # each: one hour Query at most
    by_items = len(series) * 0.5 * (1 + len(pieces))
    events = _events_within(query)
    partitions = len(layout(query.tenant).index_keys(query.tenant))
    by_records = max(partitions * 0.5, events * RAW_RECORD_BYTES / 4096 * 0.5)
    return events <= MAX_RAW_RECORDS and by_records < by_items


def _events_within(query: UsageQuery) -> int:
    """How many events the UTC days the range touches hold (the tenant's day items): at least
    the raw records the range holds."""
    first, last = keys.day_key(query.start), keys.day_key(query.end - 1)
    days = store.aggregates().between(TENANT.pk(query.tenant, ""), keys.day_sk(first), keys.day_sk(last))
    return sum(int(day.get("events", 0)) for day in days)


def _field(record: UsageRecord, name: str) -> str:
    """A record's value of a groupBy field; a model counts only as an agent's model, as its items do."""
    if name == "model" and not record.agent_id:
        return ""
    return record.value_of(name) or ""


def _sum_raw(query: UsageQuery, spans: list[tuple[int, int]], sums: dict) -> None:
    """Sum raw records (combinations no aggregate holds, or fewer reads), at most ``MAX_RAW_RECORDS``."""
    starts = [a for a, _ in spans]
    too_many = BadRequest(
        f"Invalid 'from' parameter: grouping or filtering by {' and '.join(sorted(query.fields))} "
        f"together sums raw events, at most {MAX_RAW_RECORDS:,}; narrow the range"
    )
    if _events_within(query) > MAX_RAW_RECORDS:  # refused from the day items, before any record is read
        raise too_many
    for seen, record in enumerate(tenant_records(query.tenant, query.start, query.end), start=1):
        if seen > MAX_RAW_RECORDS:
            raise too_many
        if any(_field(record, name) not in values for name, values in query.filters.items()):
            continue
        group = tuple((name, _field(record, name)) for name in GROUPS if name in query.group_by)
        if any(value == "" for _, value in group):
            continue  # an event without the grouped field belongs to no group
        sums[(bisect.bisect_right(starts, record.ts) - 1, group)] += measure_of(query, record)
