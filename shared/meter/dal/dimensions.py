"""What usage is aggregated by: each dimension's keys, granularity and listing.

Aggregate items are keyed ``pk = <tenant>#<code>[#<value>]``, ``sk = D#<day>`` or
``H#<day>T<hour>``. Day items of *listed* dimensions also carry ``lk`` (list key) and ``v`` (the
value), which the Aggregates table's ``ByList`` index uses to list, say, every agent of a tenant
active in a date range without knowing their ids.

Hour items also split each counter by quarter hour: ``credits@1``, ``@2`` and ``@3`` hold what
fell in minutes 15-29, 30-44 and 45-59 (the first quarter is the rest). Every time zone's offset
is a whole number of quarter hours, so local hours, days and months are exact sums of items.

Day items of hourly dimensions may also hold **cut** parts, for the tenant's day cuts (the quarters
of the UTC day where its zones' local midnights fall, ``meter.dal.tenants.day_cuts``):
``credits>74`` is what fell from quarter 74 (18:30 UTC, midnight in Asia/Kolkata) to the day's
end, and ``>74`` counts the events the cut was kept for. A day item whose ``>74`` equals its
``events`` holds the cut for every event it counts, so a local day is two day items' reads, not a
day item and an hour Query per local midnight. The parts ride on writes the day item takes anyway.

Hour items of *itemized* dimensions (end users) also list each event of a quarter while it holds
few: ``each@2`` is a string set of ``<ms into the quarter>/<count>/<credits>/<kind>``, up to
``ITEMIZED_CAP`` members (``meter.counting.aggregation`` stops adding at the cap). A quarter whose set
has as many members as the quarter counts events is *complete*: a ragged range edge in it is summed
from the set, to the millisecond, with no raw record read. A set that stopped at the cap, or merged
two identical events into one member, is short, and is never used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from meter.dal import keys
from meter.dal.keys import agent_scoped_key

if TYPE_CHECKING:
    from meter.dal.records import UsageRecord


TYPE_PREFIX = "n:"  # the counter of one well-known type: n:tokens.input
WELL_KNOWN_TYPES = frozenset(
    {"tokens", "tokens.input", "tokens.output", "log_insights", "log_insights.input", "log_insights.output"}
)
SPLIT_FAMILIES = ("tokens", "log_insights")  # types whose per-type totals an API answers
QUARTER_MS = 15 * 60_000
QUARTER_MARK = "@"  # credits@2: the hour's third quarter
CUT_MARK = ">"  # credits>74: what fell from quarter 74 of the UTC day to its end
QUARTERS_PER_DAY = 96
EACH_MARK = "each@"  # each@2: the hour's third quarter's events, one set member each
ITEMIZED_CAP = 10  # members a quarter's set holds at most (an end user's busy quarter has more)


def quarter_of(ms: int) -> int:
    """Which quarter of its UTC hour an instant falls in (0-3)."""
    return ms % (4 * QUARTER_MS) // QUARTER_MS


def quarter_counter(name: str, quarter: int) -> str:
    """The attribute of a counter's part in one quarter (1-3) of an hour item."""
    return f"{name}{QUARTER_MARK}{quarter}"


def is_part_counter(name: str) -> bool:
    """Whether an attribute is a quarter or cut part rather than a total."""
    return QUARTER_MARK in name or CUT_MARK in name


def cut_counter(name: str, cut: int) -> str:
    """The attribute of a counter's part from quarter ``cut`` of the UTC day to its end."""
    return f"{name}{CUT_MARK}{cut}"


def cut_marker(cut: int) -> str:
    """The attribute counting the events a day item kept cut ``cut`` for."""
    return f"{CUT_MARK}{cut}"


def quarter_of_day(ms: int) -> int:
    """Which quarter of its UTC day an instant falls in (0-95)."""
    return ms % (QUARTERS_PER_DAY * QUARTER_MS) // QUARTER_MS


def complete_cuts(item: dict) -> set[int]:
    """The cuts a day item holds for every event it counts."""
    events = item.get("events", 0)
    return {int(name[1:]) for name, n in item.items() if name[:1] == CUT_MARK and n == events}


def cut_parts(added: Counter[str], ms: int, cuts: frozenset[int]) -> Counter[str]:
    """What an event at ``ms`` adds to a day item: its totals, each cut's marker, and its totals
    under every cut it falls at or after."""
    if not cuts:
        return added
    daily, quarter = Counter(added), quarter_of_day(ms)
    for cut in cuts:
        daily[cut_marker(cut)] += added["events"]
        if quarter >= cut:
            daily.update({cut_counter(name, cut): n for name, n in added.items()})
    return daily


def has_own_items(event_type: str) -> bool:
    """Whether a type's per-agent totals live on items of their own (not a well-known counter)."""
    return event_type not in WELL_KNOWN_TYPES and event_type.partition(".")[0] in SPLIT_FAMILIES


def each_attribute(quarter: int) -> str:
    """The attribute of an hour item listing the events of one quarter (0-3)."""
    return f"{EACH_MARK}{quarter}"


def is_each_attribute(name: str) -> bool:
    """Whether an item's attribute is a quarter's set of events."""
    return name.startswith(EACH_MARK)


# One event of each kind that adds to a different set of counters (``contribution_of``): an
# itemized event keeps its kind's index, and adds what that one would, with its count and credits.
KINDS = (
    "other",
    "message",
    "conversation",
    "file",
    "tokens.other",
    *sorted(WELL_KNOWN_TYPES),
)


@lru_cache(maxsize=4096)
def kind_of(event_type: str) -> int | None:
    """The index in ``KINDS`` of the kind that adds to the same counters as ``event_type`` (None if
    none does: such an event leaves its quarter's set short)."""
    touched = set(contribution_of(event_type, 1, 1))
    return next((index for index, kind in enumerate(KINDS) if set(contribution_of(kind, 1, 1)) == touched), None)


def each_member(ms: int, event_type: str, count: int, credits: int) -> str | None:
    """An event's member in its quarter's set (None if its kind has none)."""
    kind = kind_of(event_type)
    return None if kind is None else f"{ms % QUARTER_MS}/{count}/{credits}/{kind}"


def each_event(member: str) -> tuple[int, Counter[str]]:
    """A set member's ms into its quarter, and what its event adds (as ``contribution_of``)."""
    offset, count, credits, kind = (int(part) for part in member.split("/"))
    return offset, contribution_of(KINDS[kind], count, credits)


def complete_quarter(item: dict, quarter: int) -> set[str] | None:
    """An hour item's set of one quarter's events, if it holds every event the quarter counts."""
    members = item.get(each_attribute(quarter), set())
    return members if len(members) == quarter_sum(item, "events", quarter, quarter + 1) else None


def quarter_sum(item: dict, counter: str, first: int, last: int) -> int:
    """One counter's sum over quarters ``first..last-1`` (0-3) of an hour item."""
    parts = [item.get(quarter_counter(counter, q), 0) for q in (1, 2, 3)]
    return sum([item.get(counter, 0) - sum(parts), *parts][first:last])


@dataclass(frozen=True)
class Dimension:
    """One way of slicing usage (``itemized``: its hour items list a quarter's few events)."""

    code: str
    value_of: Callable[[UsageRecord], str | None]
    hourly: bool
    listed: bool
    list_scope: Callable[[UsageRecord], str] = lambda _: ""
    itemized: bool = False

    def pk(self, tenant: str, key: str) -> str:
        """Partition key of this dimension's aggregates for one value key."""
        return keys.aggregate_pk(tenant, self.code, key)

    def list_key(self, tenant: str, scope: str = "") -> str:
        """The ``ByList`` partition listing this dimension's values (within ``scope``)."""
        return keys.list_key(tenant, self.code, scope)


def _agent_model(record: UsageRecord) -> str | None:
    agent, model = record.agent_id, record.relations.get("model")
    return agent_scoped_key(agent, model) if agent is not None and model is not None else None


def _agent_type(record: UsageRecord) -> str | None:
    if record.agent_id is None or not has_own_items(record.type):
        return None
    return agent_scoped_key(record.agent_id, record.type)


def _of_agent(record: UsageRecord) -> str:
    return record.agent_id or ""


TENANT = Dimension("T", lambda r: "", hourly=True, listed=False)
IDENTIFIER = Dimension("I", lambda r: r.identifier, hourly=True, listed=True, itemized=True)
AGENT = Dimension("A", lambda r: r.agent_id, hourly=True, listed=True)
AGENT_MODEL = Dimension("M", _agent_model, hourly=True, listed=True, list_scope=_of_agent)
# Per-type token totals of an agent (DigitalOcean's measurements). Event types are free-form, so
# beyond the few well-known ones (counters on every item, a fixed set) each type has items of its
# own: a counter per type would grow an item past DynamoDB's 400 KB with enough distinct types.
AGENT_TYPE = Dimension("AY", _agent_type, hourly=True, listed=True, list_scope=_of_agent)
# Every type's own totals, tenant-wide (the query API's ``groupBy=type``): one item per type and
# bucket, so any number of types keeps items small.
TYPE = Dimension("TY", lambda r: r.type, hourly=True, listed=True)
DATASET = Dimension("DS", lambda r: r.relations.get("datasetId"), hourly=False, listed=True)
SKILLSET = Dimension("SK", lambda r: r.relations.get("skillsetId"), hourly=False, listed=True)
ABILITY = Dimension("AB", lambda r: r.relations.get("abilityId"), hourly=False, listed=True)

DIMENSIONS = (TENANT, IDENTIFIER, AGENT, AGENT_MODEL, AGENT_TYPE, TYPE, DATASET, SKILLSET, ABILITY)
AGENT_SCOPED = (AGENT_MODEL, AGENT_TYPE)  # listed per agent: value keys are agent_scoped_key(agent, …)
BY_CODE = {dimension.code: dimension for dimension in DIMENSIONS}


def display_value(dimension: Dimension, record: UsageRecord) -> str:
    """The human value stored as ``v`` on listed day items (the model or type for agent-scoped ones)."""
    if dimension is AGENT_MODEL:
        return record.relations.get("model", "")
    if dimension is AGENT_TYPE:
        return record.type
    return dimension.value_of(record) or ""


def type_counter(event_type: str) -> str | None:
    """The counter every item keeps for this one type's count, if any: ``n:<type>`` for a
    well-known type, ``messages`` for ``message``, ``conversations`` for ``conversation``."""
    if event_type in WELL_KNOWN_TYPES:
        return TYPE_PREFIX + event_type
    return {"message": "messages", "conversation": "conversations"}.get(event_type)


def contribution_of(event_type: str, count: int, credits: int) -> Counter[str]:
    """What an event of this type, count and credits adds to an aggregate.

    ``count`` is the sum of counts whatever the type; a type with a counter of its own
    (``type_counter``: a fixed set, so items stay small; other types' splits are ``TYPE`` and
    ``AGENT_TYPE`` items) adds to it; ``tokens`` sums every type starting with ``tokens``
    (``tokens.input``, ``tokens.output``…); ``files`` sums types starting with ``file``.
    """
    added: Counter[str] = Counter(events=1, credits=credits, count=count)
    own = type_counter(event_type)
    if own:
        added[own] += count
    if event_type.startswith("file"):
        added["files"] += count
    if event_type.startswith("tokens"):
        added["tokens"] += count
    return added


def quartered(added: Counter[str], ms: int) -> Counter[str]:
    """What an event at ``ms`` adds to its hour item: its totals, and the same under its quarter."""
    quarter = quarter_of(ms)
    hourly = Counter(added)
    if quarter:
        hourly.update({quarter_counter(name, quarter): n for name, n in added.items()})
    return hourly
