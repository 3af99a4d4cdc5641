"""Boards: every value's credits of one UTC day or month, for one tenant, in a few items.

A ranking (the native query's ``groupBy=identifier``, ``agentId``, or ``agentId`` and ``model``, of credits)
needs every value's total over its range. Read value by value, that is a Query per end user; a
board holds the credits of all of a tenant's values of one period in ``BUCKETS`` items of one
partition, so a range is a few Queries: its months, and the days at its ends. Agents also have
hour boards (one bucket): organization agents read a range's ragged hours from them.

Items (``meter.dal.keys``): ``pk = <tenant>#BOARD#<code>``, ``sk = <period>#<bucket>`` with the
period ``D#YYYY-MM-DD``, ``M#YYYY-MM`` or ``H#YYYY-MM-DDTHH`` and the bucket a hash of the value.
Attributes:

* ``=<value>``: the value's credits in the period;
* on day boards, ``<q>=<value>``: its credits from quarter ``q`` of the UTC day on, for each of
  the tenant's day cuts (``meter.dal.dimensions``);
* ``events``: every event of the tenant in the period, with a value or without (bucket 0), and
  ``>q``: those the cut ``q`` was kept for. A period whose boards' ``events`` equal the tenant's own
  day items' is complete: readers use no other (a board misses what was counted before boards
  existed, and what reconciliation raised on the tenant's items; readers then read value by value).

A tenant's agents' credits are on its boards alone until it gets a roster (``meter.dal.tenants``:
hundreds of agents live); from the roster's start on, its events add to no agent or agent-model
board: readers find those periods incomplete and read the roster, or every model's items.

A window that adds more than ``MAX_ENTRIES`` entries to one item spreads them over sub-items
(``<bucket>.<n>``), so no write's expression outgrows DynamoDB's 4 KB. Readers sum every item
of a period, whatever its bucket.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meter.dal import keys
from meter.dal.dimensions import AGENT, AGENT_MODEL, CUT_MARK, IDENTIFIER, Dimension, cut_marker, quarter_of_day

if TYPE_CHECKING:
    from meter.dal.records import UsageRecord
    from meter.dal.tenants import Layout

BUCKETS = {IDENTIFIER: 32, AGENT: 8, AGENT_MODEL: 8}  # about 1 KB items for 1,000 end users, 150 agents' models
BOARDED = tuple(BUCKETS)
HOURLY = (AGENT,)  # hour boards: one item per hour (spread past MAX_ENTRIES agents)
HOUR_BUCKET = "00"
MAX_ENTRIES = 200  # value entries one write adds to one item (each about 12 characters of expression)
ENTRY_MARK = "="

AggregateKey = tuple[str, str]


def entry_name(value: str, cut: int | None = None) -> str:
    """The attribute of a value's credits (from quarter ``cut`` of the day on, if given)."""
    return f"{'' if cut is None else cut}{ENTRY_MARK}{value}"


def parse_entry(name: str) -> tuple[int | None, str] | None:
    """(cut or None, value) of a value's entry; None for a period's own counters."""
    prefix, mark, value = name.partition(ENTRY_MARK)
    if not mark or not (prefix == "" or prefix.isdigit()):
        return None
    return (int(prefix) if prefix else None), value


def _bucket(dimension: Dimension, value: str | None) -> str:
    return f"{keys.stable_shard(value, BUCKETS[dimension]) if value else 0:02d}"


def boarded(record: UsageRecord, layout: Layout) -> tuple[Dimension, ...]:
    """The boards a record adds to: not its agents' once its tenant's roster is sharded (hundreds of
    agents live: every commit would rewrite boards of thousands of agents on one partition)."""
    return (IDENTIFIER,) if layout.rostered(record.ts) else BOARDED


def additions(record: UsageRecord, layout: Layout) -> list[tuple[AggregateKey, Counter[str]]]:
    """What one record adds to its tenant's boards: its day's (with the ``layout``'s day cuts) and
    its month's, and its hour's for an agent."""
    quarter, found, cuts = quarter_of_day(record.ts), [], layout.cuts
    periods = keys.periods(record.ts)
    for dimension in boarded(record, layout):
        value = dimension.value_of(record)
        pk, bucket = keys.board_pk(record.tenant, dimension.code), _bucket(dimension, value)
        monthly = Counter(events=1)
        if value is not None and record.credits:
            monthly[entry_name(value)] = record.credits
        daily = monthly + Counter({cut_marker(cut): 1 for cut in cuts})
        if value is not None and record.credits:
            daily.update({entry_name(value, cut): record.credits for cut in cuts if quarter >= cut})
        found += [
            ((pk, keys.board_sk(periods.day, bucket)), daily),
            ((pk, keys.board_sk(periods.month, bucket)), monthly),
        ]
        if dimension in HOURLY:
            found.append(((pk, keys.board_sk(periods.hour, HOUR_BUCKET)), monthly))
    return found


def spread(counters: dict[AggregateKey, Counter[str]]) -> dict[AggregateKey, Counter[str]]:
    """The items a commit writes: a board item with more than ``MAX_ENTRIES`` entries to add
    keeps its own counters, and its entries go, ``MAX_ENTRIES`` at a time in name order, to
    sub-items ``<sk>.<n>`` (the same for the same deltas: a pending commit finished later writes
    the same items)."""
    written: dict[AggregateKey, Counter[str]] = {}
    for (pk, sk), added in counters.items():
        entries = sorted(name for name in added if ENTRY_MARK in name) if keys.is_board_pk(pk) else []
        if len(entries) <= MAX_ENTRIES:
            written[(pk, sk)] = added
            continue
        written[(pk, sk)] = Counter({name: n for name, n in added.items() if ENTRY_MARK not in name})
        for part, first in enumerate(range(0, len(entries), MAX_ENTRIES)):
            chunk = entries[first : first + MAX_ENTRIES]
            written[(pk, f"{sk}.{part}")] = Counter({name: added[name] for name in chunk})
    return written


@dataclass
class PeriodTotals:
    """One period's boards, summed over their items."""

    events: int = 0
    kept: Counter[int] = field(default_factory=Counter)  # events each day cut was kept for
    credits: Counter[str] = field(default_factory=Counter)  # value → credits
    after: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # cut → value → credits

    def add(self, item: dict) -> None:
        for name, n in item.items():
            if not isinstance(n, int) or keys.is_commit_mark(name):
                continue
            entry = parse_entry(name)
            if entry is None:
                if name == "events":
                    self.events += n
                elif name.startswith(CUT_MARK) and name[1:].isdigit():
                    self.kept[int(name[1:])] += n
            elif entry[0] is None:
                self.credits[entry[1]] += n
            else:
                self.after[entry[0]][entry[1]] += n


def summed(items: Iterable[dict]) -> dict[str, PeriodTotals]:
    """Board items by period (``D#YYYY-MM-DD``, ``M#YYYY-MM`` or ``H#YYYY-MM-DDTHH``), summed."""
    periods: dict[str, PeriodTotals] = defaultdict(PeriodTotals)
    for item in items:
        periods[keys.board_period(item["sk"])].add(item)
    return periods
