"""Every key format of every table, each built and parsed here and nowhere else.

Records (``pk = <tenant>#<id>``): the idempotency key. Index keys: ``tk = <tenant>#<shard>``
(``ByTenant``, write-sharded by a hash of the event id so one tenant's records spread over
``TENANT_SHARDS`` partitions), ``ck = <tenant>#<conversation>`` (``ByConversation``), and the sort
key ``ord = <13-digit ms>#<id>`` shared by both.

Aggregates (``pk = <tenant>#<dimension code>[#<value>]``, ``sk = D#YYYY-MM-DD`` or
``H#YYYY-MM-DDTHH``); ``lk`` lists a dimension's values on the ``ByList`` index. The agents'
credits roster of a tenant whose roster is sharded (``<tenant>#AC[#<shard>]``;
``<bucket sk>#<agent>``); a dimension's boards (``<tenant>#BOARD#<code>``; ``<period sk>#<bucket>``,
the period a day's, an hour's or ``M#YYYY-MM``); a value's last-seen mark (its own partition,
``SEEN``) and the tenant's tally of values per last-seen day (``<tenant>#SEEN``, ``M#YYYY-MM``).

Control: the aggregator's per-shard ledger (``SHARD#<shard>``), its pending commits
(``PENDING#<shard>#<first>#<last>``), the commit slots it leases (``COMMITSLOT#<nn>``; a commit
marks each item it adds to with its token in the slot's attribute ``~<n>``), late arrivals by
received hour (``LATE#<hour ms>#<shard>``), reconciliation's checkpoint and retries
(``RECONCILE#…``), the probe key that is never written (``PROBE#never-written``), rate-limit
windows (``RATE#<key>#<second>``) and the cursor and API-key signing secrets.
Tenants: ``TENANT#<name>`` and ``KEY#<public id>``.

Credits (``pk``, ``sk``): a subject's account (``<tenant>#CR``, ``<tenant>#CR#i#<identifier>`` or
``<tenant>#CR#a#<agent>``; ``ACCOUNT``), a slice of the tenant's budget (``<tenant>#CR#s#<nn>``,
``ACCOUNT``), the mark of a tenant that grants credits (``<tenant>#CR``,
``GRANTING``), a grant (``<tenant>#GRANT#<id>``, ``GRANT``) and a reservation
(``<tenant>#HOLD#<id>``, ``HOLD``).

Alerts (``pk``, ``sk``): an alert (``ALERT#<tenant>``, ``<alert id>``), the once-only mark of a
threshold fired in a period (``FIRED#<tenant>#<alert id>``, ``<period start ms>#<threshold>``) and
the firing itself, newest last (``TRIGGER#<tenant>#<alert id>``, ``<triggered ms>#<period start
ms>#<threshold>``); only firings reach the delivery function (its stream filter is the prefix).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

TENANT_SHARDS = 16
DAY_PREFIX, HOUR_PREFIX = "D#", "H#"
_HOUR_MS = 3_600_000


# -- records and their indexes -------------------------------------------------------------
def record_pk(tenant: str, event_id: str) -> str:
    """The Records-table key of one event: unique per tenant and client id."""
    return f"{tenant}#{event_id}"


def stable_shard(text: str, shards: int) -> int:
    """Which of ``shards`` a string falls in: the same for the same string in every process, uniform."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") % shards


def tenant_shard(event_id: str) -> int:
    """Which ``ByTenant`` partition an event's record is indexed under (stable, uniform)."""
    return stable_shard(event_id, TENANT_SHARDS)


def tenant_index_key(tenant: str, shard: int) -> str:
    """``ByTenant`` partition key of one of the tenant's shards."""
    return f"{tenant}#{shard:02d}"


def tenant_index_keys(tenant: str) -> list[str]:
    """Every ``ByTenant`` partition of a tenant (readers query all and merge by ``ord``)."""
    return [tenant_index_key(tenant, shard) for shard in range(TENANT_SHARDS)]


def conversation_index_key(tenant: str, conversation_id: str) -> str:
    """``ByConversation`` partition key."""
    return f"{tenant}#{conversation_id}"


def order_key(ts: int, event_id: str = "") -> str:
    """Sort key of every Records index: creation time, then id."""
    return f"{ts:013d}#{event_id}"


def order_bounds(start: int, end: int) -> tuple[str, str]:
    """Inclusive ``ord`` bounds of the records created in ``[start, end)``."""
    return order_key(start), f"{end - 1:013d}$"  # '$' sorts right after the '#' that follows the time


# -- aggregates ----------------------------------------------------------------------------
def day_key(ms: int) -> str:
    """``YYYY-MM-DD`` of the UTC day holding ``ms``."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%d")


def day_start(day: str) -> int:
    """The instant (Unix ms) a ``YYYY-MM-DD`` UTC day starts: ``day_key`` back."""
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


def is_hour_sk(sk: str) -> bool:
    """Whether a sort key is an hour bucket's (roster entries of an hour included)."""
    return sk.startswith(HOUR_PREFIX)


def granularity_of(sk: str) -> str:
    """``day`` or ``hour``: what an aggregate bucket's sort key holds."""
    return "day" if sk.startswith(DAY_PREFIX) else "hour"


def hour_key(ms: int) -> str:
    """``YYYY-MM-DDTHH`` of the UTC hour holding ``ms``."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H")


def hour_start(hour: str) -> int:
    """The instant (Unix ms) a ``YYYY-MM-DDTHH`` UTC hour starts: ``hour_key`` back."""
    return int(datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC).timestamp() * 1000)


def day_sk(day: str) -> str:
    """Sort key of a day item (``day`` as ``YYYY-MM-DD``)."""
    return DAY_PREFIX + day


def hour_sk(hour: str) -> str:
    """Sort key of an hour item (``hour`` as ``YYYY-MM-DDTHH``)."""
    return HOUR_PREFIX + hour


def aggregate_pk(tenant: str, code: str, value: str = "") -> str:
    """Partition key of one dimension value's aggregates (the tenant itself has no value)."""
    return f"{tenant}#{code}" if code == "T" else f"{tenant}#{code}#{value}"


def list_key(tenant: str, code: str, scope: str = "") -> str:
    """``ByList`` partition listing a dimension's values (within ``scope``, e.g. one agent's models)."""
    return f"{tenant}#{code}" + (f"#{scope}" if scope else "")


def agent_scoped_key(agent: str, value: str) -> str:
    """Unambiguous value key of one agent's model or event type (agent ids may contain '#')."""
    return f"{len(agent)}:{agent}#{value}"


def split_agent_scoped_key(value: str) -> tuple[str, str]:
    """``(agent, value)`` back from ``agent_scoped_key``."""
    length, rest = value.split(":", 1)
    return rest[: int(length)], rest[int(length) + 1 :]


def bucket_day(sk: str) -> str:
    """The ``YYYY-MM-DD`` a day or hour item's sort key falls on."""
    return sk[2:12]


# -- the agents' credits roster: every agent's totals of a bucket in a few tenant partitions ----
ROSTER_CODE = "AC"
ROSTER_SHARDS = 64  # a tenant with thousands of agents spreads its roster over this many partitions


def roster_pk(tenant: str, shard: int = 0) -> str:
    """One of the ``ROSTER_SHARDS`` partitions of every agent's credits per day and hour (sort key:
    bucket, then agent) of a tenant whose roster is sharded (shard 0 is ``<tenant>#AC``, the one
    partition an earlier version kept every tenant's roster in)."""
    return f"{tenant}#{ROSTER_CODE}" + (f"#{shard}" if shard else "")


def roster_pks(tenant: str) -> list[str]:
    """Every partition of a sharded roster."""
    return [roster_pk(tenant, shard) for shard in range(ROSTER_SHARDS)]


def roster_shard(agent: str) -> int:
    """Which partition of a sharded roster holds an agent's entries (stable, uniform)."""
    return stable_shard(agent, ROSTER_SHARDS)


def roster_sk(bucket_sk: str, agent: str) -> str:
    """One agent's entry in one bucket (``bucket_sk`` a day or hour item's sort key)."""
    return f"{bucket_sk}#{agent}"


def roster_bounds(low_bucket_sk: str, high_bucket_sk: str) -> tuple[str, str]:
    """Inclusive sort-key bounds of every agent's entries in buckets ``low..high``."""
    return f"{low_bucket_sk}#", f"{high_bucket_sk}$"  # '$' sorts right after the '#' before the agent


def _bucket_of(sk: str) -> tuple[str, str]:
    """(bucket sort key, roster agent or "") of an aggregate item's sort key."""
    width = 12 if sk.startswith(DAY_PREFIX) else 15  # D#YYYY-MM-DD, H#YYYY-MM-DDTHH
    return sk[:width], sk[width + 1 :]


def roster_agent(sk: str) -> str:
    """The agent a roster entry's sort key names."""
    return _bucket_of(sk)[1]


def owner_of_aggregate(pk: str) -> tuple[str, str]:
    """(tenant, dimension code) of an aggregate partition, without parsing its bucket."""
    tenant, _, rest = pk.partition("#")
    return tenant, rest.partition("#")[0]


# -- boards: every value's credits of one day or month in a few items (meter.dal.boards) ---------
BOARD_CODE = "BOARD"
MONTH_PREFIX = "M#"


def board_pk(tenant: str, code: str) -> str:
    """The partition of a tenant's boards of one dimension (``code``: the dimension's)."""
    return f"{tenant}#{BOARD_CODE}#{code}"


def is_board_pk(pk: str) -> bool:
    """Whether an aggregate partition holds boards."""
    return owner_of_aggregate(pk)[1] == BOARD_CODE


def month_sk(day: str) -> str:
    """``M#YYYY-MM`` of the UTC month holding ``day`` (``YYYY-MM-DD``): a month board's period."""
    return MONTH_PREFIX + day[:7]


@dataclass(frozen=True)
class Periods:
    """The sort keys of the UTC day, hour and month one instant falls in."""

    day: str
    hour: str
    month: str


def periods(ms: int) -> Periods:
    """The day, hour and month sort keys of the instant ``ms`` (formatted once per hour: every item
    an event adds to is keyed by them)."""
    return _hour_periods(ms // _HOUR_MS)


@lru_cache(maxsize=4096)
def _hour_periods(hour: int) -> Periods:
    start = hour * _HOUR_MS
    day = day_key(start)
    return Periods(day_sk(day), hour_sk(hour_key(start)), month_sk(day))


def board_sk(period_sk: str, bucket: str) -> str:
    """One item of a board (``period_sk`` a day's, month's or hour's sort key)."""
    return f"{period_sk}#{bucket}"


def board_period(sk: str) -> str:
    """The period (``D#YYYY-MM-DD``, ``M#YYYY-MM`` or ``H#YYYY-MM-DDTHH``) a board item's sort key holds."""
    return sk[: sk.index("#", 2)]


def board_bounds(low_period_sk: str, high_period_sk: str) -> tuple[str, str]:
    """Inclusive sort-key bounds of every item of the periods ``low..high`` (of one kind)."""
    return f"{low_period_sk}#", f"{high_period_sk}$"  # '$' sorts right after the '#' before the bucket


def board_day(sk: str) -> str:
    """The first ``YYYY-MM-DD`` of a board item's period."""
    period = board_period(sk)
    return f"{period[2:]}-01" if period.startswith(MONTH_PREFIX) else period[2:12]


# -- distinct values: each value's last-seen day, and the tally of values per last-seen day ----
SEEN_SK = "SEEN"  # in a value's own aggregate partition: the last UTC day it was seen on (``day``)
SEEN_MONTH_PREFIX = "M#"


def seen_tally_pk(tenant: str) -> str:
    """The partition counting a tenant's values by the day they were last seen on."""
    return f"{tenant}#SEEN"


def seen_tally_sk(day: str) -> str:
    """The tally item of the month ``day`` (``YYYY-MM-DD``) falls in."""
    return SEEN_MONTH_PREFIX + day[:7]


def seen_counter(code: str, day: str) -> str:
    """The tally counter of one dimension's values last seen on ``day``."""
    return f"{code}#{day[8:10]}"


def parse_seen_counter(tally_sk: str, name: str) -> tuple[str, str]:
    """(dimension code, day) back from a tally item's sort key and counter name."""
    code, _, day_of_month = name.partition("#")
    return code, f"{tally_sk.removeprefix(SEEN_MONTH_PREFIX)}-{day_of_month}"


def is_bucket_sk(sk: str) -> bool:
    """Whether an Aggregates sort key is a day or hour bucket (not a last-seen mark or a tally)."""
    return sk.startswith((DAY_PREFIX, HOUR_PREFIX))


@dataclass(frozen=True)
class AggregateKey:
    """An aggregate item's key, parsed: whose totals, which bucket."""

    tenant: str
    code: str
    value: str
    granularity: str  # "day" or "hour"
    bucket_start: int  # Unix ms

    @property
    def bucket_ms(self) -> int:
        return 24 * _HOUR_MS if self.granularity == "day" else _HOUR_MS


def parse_aggregate(pk: str, sk: str) -> AggregateKey:
    """An aggregate item's ``(pk, sk)`` back as what it means."""
    tenant, _, rest = pk.partition("#")
    code, _, value = rest.partition("#")
    bucket, agent = _bucket_of(sk)
    if code == ROSTER_CODE:
        value = agent
    daily = sk.startswith(DAY_PREFIX)
    moment = datetime.strptime(bucket[2:], "%Y-%m-%d" if daily else "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return AggregateKey(tenant, code, value, "day" if daily else "hour", int(moment.timestamp() * 1000))


def tenant_of_aggregate(pk: str) -> str:
    """The tenant an aggregate partition belongs to."""
    return pk.partition("#")[0]


def value_of_pk(pk: str) -> str:
    """The dimension value an aggregate partition key names."""
    return pk.split("#", 2)[2]


# -- credits -----------------------------------------------------------------------------------
CREDIT_CODE = "CR"
ACCOUNT_SK, GRANTING_SK, GRANT_SK, RESERVATION_SK = "ACCOUNT", "GRANTING", "GRANT", "HOLD"
_SUBJECT_CODES = {"identifier": "i", "agent": "a", "slice": "s"}  # a slice of the tenant's budget


def account_pk(tenant: str, kind: str, value: str = "") -> str:
    """The partition of one subject's credit account (``kind``: tenant, identifier or agent)."""
    base = f"{tenant}#{CREDIT_CODE}"
    return base if kind == "tenant" else f"{base}#{_SUBJECT_CODES[kind]}#{value}"


def slice_pk(tenant: str, index: int) -> str:
    """The partition of one slice of a tenant's credit budget."""
    return account_pk(tenant, "slice", f"{index:02d}")


def is_account_pk(pk: str) -> bool:
    """Whether a partition key is a credit account's or a slice's."""
    return owner_of_aggregate(pk)[1] == CREDIT_CODE


def is_credit_pk(pk: str) -> bool:
    """Whether a partition key is of the Credits table (what the aggregator adds to there)."""
    return owner_of_aggregate(pk)[1] in (CREDIT_CODE, RESERVATION_CODE)


def parse_account_pk(pk: str) -> tuple[str, str, str]:
    """(tenant, kind, value) of a credit account's partition key: ``account_pk`` back."""
    tenant, _, rest = pk.partition(f"#{CREDIT_CODE}")
    if not rest:
        return tenant, "tenant", ""
    code, _, value = rest[1:].partition("#")
    return tenant, {v: k for k, v in _SUBJECT_CODES.items()}[code], value


def grant_pk(tenant: str, grant_id: str) -> str:
    """The partition of one grant (its id is the idempotency key, unique in the tenant)."""
    return f"{tenant}#GRANT#{grant_id}"


RESERVATION_CODE = "HOLD"


def reservation_pk(tenant: str, reservation_id: str) -> str:
    """The partition of one reservation (its id is the idempotency key, unique in the tenant)."""
    return f"{tenant}#{RESERVATION_CODE}#{reservation_id}"


# -- control and tenants -------------------------------------------------------------------
def sequence_key(sequence: str) -> str:
    """A stream sequence number, zero-padded so string order is numeric order."""
    return sequence.rjust(40, "0")


def ledger_pk(shard_id: str) -> str:
    """The aggregator's ledger of one stream shard (what it has committed)."""
    return f"SHARD#{shard_id}"


def pending_pk(shard_id: str, first: str, last: str) -> str:
    """A write-ahead copy of one multi-transaction commit."""
    return f"PENDING#{shard_id}#{first}#{last}"


COMMIT_SLOTS = 16  # commits applying at once, across every stream shard (meter.counting.aggregation)
COMMIT_MARK = "~"


def commit_slot_pk(slot: int) -> str:
    """One of the ``COMMIT_SLOTS`` leases a commit holds while it applies its items."""
    return f"COMMITSLOT#{slot:02d}"


def commit_mark(slot: int) -> str:
    """The attribute of an aggregate item holding the token of the last commit of ``slot`` that
    added to it (a string, never a counter)."""
    return f"{COMMIT_MARK}{slot}"


def is_commit_mark(name: str) -> bool:
    """Whether an item's attribute is a commit mark rather than data."""
    return name.startswith(COMMIT_MARK)


def parked_pk(message_id: str) -> str:
    """A queue message that could not be ingested, kept with its reason."""
    return f"PARKED#{message_id}"


PARKED_PREFIX = parked_pk("")


PROBE_PK = "PROBE#never-written"  # the condition check of probe transactions (meter.dal.transactions)


def late_arrivals_pk(received_hour: int, tenant: str) -> str:
    """The (tenant, day) pairs that received late events in one hour, in one of 16 items by tenant."""
    return _late_pk(received_hour, tenant_shard(tenant))


def late_arrivals_pks(received_hour: int) -> list[str]:
    """Every item of one hour's late arrivals."""
    return [_late_pk(received_hour, shard) for shard in range(TENANT_SHARDS)]


def _late_pk(received_hour: int, shard: int) -> str:
    return f"LATE#{received_hour}#{shard:02d}"


RECONCILE_CHECKPOINT = "RECONCILE#checkpoint"  # the last hour reconciliation has covered
RECONCILE_RETRIES = "RECONCILE#retries"  # windows a run could not settle, retried by every run


def rate_pk(key_id: str, second: int) -> str:
    """One API key's request count in one second."""
    return f"RATE#{key_id}#{second}"


CURSOR_SIGNING_KEY = "CONFIG#cursor-signing-key"
API_KEY_SIGNING_KEY = "CONFIG#api-key-signing-key"


def tenant_pk(name: str) -> str:
    """A tenant's item (its rate card and billing anchor)."""
    return f"TENANT#{name}"


def api_key_pk(public_id: str) -> str:
    """An API key's item."""
    return f"KEY#{public_id}"


def api_key_id(pk: str) -> str:
    """The public id back from an API key's item key."""
    return pk.removeprefix("KEY#")


# -- alerts ----------------------------------------------------------------------------------
TRIGGER_PREFIX = "TRIGGER#"


def alerts_pk(tenant: str) -> str:
    """The partition of one tenant's alerts (sort key: the alert id)."""
    return f"ALERT#{tenant}"


def fired_pk(tenant: str, alert_id: str) -> str:
    """The partition of an alert's once-only firing marks."""
    return f"FIRED#{tenant}#{alert_id}"


def fired_period_prefix(period_start: int) -> str:
    """What every firing mark of one period starts with."""
    return f"{period_start:013d}#"


def fired_sk(period_start: int, threshold: int) -> str:
    """The mark of one threshold fired in the period starting at ``period_start``."""
    return f"{fired_period_prefix(period_start)}{threshold}"


def period_of_fired_sk(sk: str) -> tuple[int, int]:
    """(period start, threshold) back from a firing mark."""
    start, threshold = sk.split("#")
    return int(start), int(threshold)


def triggers_pk(tenant: str, alert_id: str) -> str:
    """The partition of an alert's firings."""
    return f"{TRIGGER_PREFIX}{tenant}#{alert_id}"


def trigger_sk(triggered_at: int, period_start: int, threshold: int) -> str:
    """One firing: ordered by when it fired."""
    return f"{triggered_at:013d}#{period_start:013d}#{threshold}"


def trigger_id(pk: str, sk: str) -> str:
    """A firing's public id (what webhook receivers deduplicate by)."""
    alert_id = pk.rsplit("#", 1)[1]
    return f"{alert_id}.{sk.replace('#', '.')}"
