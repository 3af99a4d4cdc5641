"""Exactly-once roll-up of stored records into hourly and daily totals, per stream shard.

The stream mapping uses a tumbling window, so each invocation names its ``shardId`` and carries
the ``state`` the previous invocation of the window returned. Invocations fold their records
into that state (coalesced deltas per aggregate item); the window's final invocation commits it.

Exactness rests on the shard's **ledger** (one small Control item per shard): ``seq`` is the last
sequence number whose record is committed. A shard delivers its records in sequence order, so
"committed" is always a prefix of the shard, and every invocation drops records at or below
``seq`` before folding.

A commit leases a **commit slot** (one of ``keys.COMMIT_SLOTS`` Control items) with a token no
earlier lease of it had, writes its deltas ahead as a **pending** item, and points the ledger at
it (slot and token included) under a condition on the ledger; then it adds each item's deltas
with one plain conditional write that also sets the item's mark of that slot to the token,
unless the item holds the token already; then it moves ``seq`` past the commit and frees the
slot. Whoever finds a pending commit (the retry, the next window) finishes it from the pending
item with the same token, never from its own records: what the crashed attempt wrote is
skipped, the rest written. No other commit writes a slot's mark while the slot is leased, so
an item holds the token exactly when this commit added to it. A replay, a retried window, a
crash between any two writes, or a second copy of an invocation therefore adds each record once,
at one write unit per item where a transaction costs two; and an item carries at most
``COMMIT_SLOTS`` marks, however many stream shards write it.

A commit's writers stop ``WRITE_MARGIN_MS`` before reconciliation may recount the buckets of its
oldest record (``HORIZON_MS`` after that record was received): about 70 minutes for live traffic,
never less than about 7 (the stream delivers nothing older than ``STREAM_MAX_AGE_MS``, and a window
holds it ``MAX_WINDOW_MS`` more at most). Every bucket a commit writes holds one of its records, so
none is recounted before then. Until then whoever finds the pending commit finishes it. Found later
(the shard went quiet after a crash), it is **voided**: the ledger moves past it and what it left is
left to reconciliation, which may have raised those buckets to their recount by then, so finishing
it could count them twice. The slot's lease ends a few minutes after the writers' stop, and the slot
is free to any shard: no write under its token can still land.

Credits ride along (``meter.credits.booking``): what a record adds to its subjects' credit
accounts is folded into the same deltas, so it is committed exactly once with the counts.

Before a commit, the distinct values of its deltas move their last-seen marks (``meter.counting.distinct``):
an idempotent maximum, so a commit that fails after it only repeats it.

Nothing one tenant's data holds can stall the shard (``meter.counting.set_aside``): a record that is not a
usage record is set aside as it is read, and an item DynamoDB refuses to write for good (too large,
a counter of another type) is named by its own write's refusal, set aside, and left out of the
commit, which then moves the ledger as any other. Only retrying what retrying
can fix (throttling, conflicts) takes time; an invocation fails only when storage itself fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from meter.alerts import rules
from meter.core import caches
from meter.core.logs import logger, metrics
from meter.core.timerange import HOUR_MS, now_ms
from meter.counting import distinct, set_aside
from meter.credits.booking import Book
from meter.dal import boards, dynamo, keys, store, tenants, transactions
from meter.dal.credits import credits
from meter.dal.dimensions import (
    AGENT,
    DIMENSIONS,
    ITEMIZED_CAP,
    complete_quarter,
    contribution_of,
    cut_parts,
    display_value,
    each_member,
    quarter_of,
    quartered,
)
from meter.dal.models import Ledger, PendingCommit
from meter.dal.records import UsageRecord, record_from_item
from meter.dal.store import adding
from meter.dal.tenants import Layout
from meter.dal.transactions import Refused

MAX_STATE_ITEMS = 20_000  # commit mid-window past this many items (about 250 KB compressed)
# ...or past this size of compressed deltas (base64), whatever the keys' lengths: the state then stays
# below Lambda's 1 MB, and the pending item (the same bytes, unencoded) below DynamoDB's 400 KB.
MAX_STATE_CHARS = 400_000
MAX_ATTEMPTS = 8  # invocation-level rounds when the ledger moves under a commit
# The stream counts a record only while it is younger than the mapping's MaximumRecordAgeInSeconds
# (template.yaml); reconciliation recounts a bucket only once every record in it is older than
# HORIZON_MS (meter.counting.reconcile), so no commit of the stream can still add to it.
STREAM_MAX_AGE_MS = 3_600_000
MAX_WINDOW_MS = 300_000  # the longest tumbling window (AggregationWindowSeconds' MaxValue)
HORIZON_MS = STREAM_MAX_AGE_MS + 15 * 60_000  # plus the longest tumbling window and its commit's writes
# A commit's writers stop WRITE_MARGIN_MS before reconciliation may recount the buckets of its
# oldest record (received HORIZON_MS before that): a write started by then has landed (retries and
# clock skew included) before any recount, so no event is counted by both.
WRITE_MARGIN_MS = 3 * 60_000
VOID_AFTER_MS = 60_000  # a pending commit found this long past its writers' stop is voided, not finished
SLOT_FREE_AFTER_MS = 3 * 60_000  # ...and its slot is free to any shard this long after it
# What an earlier version left: a pending commit with a token but no stop (its writers stopped 8
# minutes after writing it), a slot lease with no end (stale after 12), a window state with no oldest receipt.
EARLIER_STOP_MS, EARLIER_STALE_MS = 8 * 60_000, 12 * 60_000
APPLY_THREADS = 16  # item writes of one commit at a time (meter.dal.dynamo keeps enough connections)

AggregateKey = tuple[str, str]
UNSHARDED = Layout()  # no day cuts, no roster: a tenant's layout until it keeps either


class LedgerMoved(Exception):
    """The shard's ledger changed under a commit (another copy of the invocation got there first)."""


class CommitFailed(Exception):
    """A commit could not be written after retries; the invocation fails and Lambda retries it."""


# -- what a record adds ------------------------------------------------------------------------
def aggregate_keys(record: UsageRecord) -> list[tuple[AggregateKey, bool]]:
    """Every (pk, sk) item the record adds to, each with whether its dimension keeps hours: a day
    item per dimension, an hour item where kept."""
    periods = keys.periods(record.ts)
    found = []
    for dimension in DIMENSIONS:
        value = dimension.value_of(record)
        if value is None:
            continue
        pk = dimension.pk(record.tenant, value)
        found.append(((pk, periods.day), dimension.hourly))
        if dimension.hourly:
            found.append(((pk, periods.hour), True))
    return found


def listing_attributes(record: UsageRecord) -> dict[AggregateKey, dict[str, str]]:
    """``lk`` and ``v`` of the record's day items in listed dimensions (what ByList indexes)."""
    day = keys.periods(record.ts).day
    attributes = {}
    for dimension in DIMENSIONS:
        value = dimension.value_of(record)
        if dimension.listed and value is not None:
            key = (dimension.pk(record.tenant, value), day)
            list_key = dimension.list_key(record.tenant, dimension.list_scope(record))
            attributes[key] = {"lk": list_key, "v": display_value(dimension, record)}
    return attributes


def itemized(record: UsageRecord) -> list[tuple[AggregateKey, int, str | None]]:
    """The record's member of its quarter's set (``meter.dal.dimensions.each_member``) in its hour
    item of each itemized dimension, with the quarter."""
    values = [(d, v) for d in DIMENSIONS if d.itemized and (v := d.value_of(record)) is not None]
    if not values:  # most records of a tenant without end users: no member to build
        return []
    hour, quarter = keys.periods(record.ts).hour, quarter_of(record.ts)
    member = each_member(record.ts, record.type, record.count, record.credits)
    return [((dimension.pk(record.tenant, value), hour), quarter, member) for dimension, value in values]


def roster_additions(record: UsageRecord, layout: Layout = UNSHARDED) -> list[tuple[AggregateKey, Counter[str]]]:
    """The record's credits in its agent's entries of the tenant's roster (its day and its hour), once
    the roster is sharded (before that, the agents' boards hold them)."""
    if record.agent_id is None or not record.credits or not layout.rostered(record.ts):
        return []
    pk = keys.roster_pk(record.tenant, keys.roster_shard(record.agent_id))
    credits = Counter(credits=record.credits)
    periods = keys.periods(record.ts)
    return [((pk, keys.roster_sk(period, record.agent_id)), credits) for period in (periods.day, periods.hour)]


def additions(record: UsageRecord, layout: Layout = UNSHARDED) -> list[tuple[AggregateKey, Counter[str]]]:
    """What one record adds to each of its aggregates: hour items also under its quarter, day items
    of hourly dimensions also under the day cuts of its tenant's ``layout`` it falls after; and to
    its tenant's boards (``meter.dal.boards``)."""
    daily = contribution_of(record.type, record.count, record.credits)
    hourly = quartered(daily, record.ts)
    cut = cut_parts(daily, record.ts, layout.cuts)
    own = []
    for key, hourly_dimension in aggregate_keys(record):
        own.append((key, hourly if keys.is_hour_sk(key[1]) else cut if hourly_dimension else daily))
    return own + roster_additions(record, layout) + boards.additions(record, layout)


def coalesce(
    records: Iterable[UsageRecord], layout_of: Callable[[str], Layout] = lambda tenant: UNSHARDED
) -> dict[AggregateKey, Counter[str]]:
    """Sum the contributions of many records per aggregate item, laid out as ``layout_of`` their
    tenant says (``meter.dal.tenants.layout`` for what is stored)."""
    totals: dict[AggregateKey, Counter[str]] = defaultdict(Counter)
    for record in records:
        for key, added in additions(record, layout_of(record.tenant)):
            totals[key].update(added)
    return totals


# -- the window state ----------------------------------------------------------------------------
@dataclass
class Deltas:
    """Coalesced counter deltas of a run of records of one shard, ``first``..``last`` (sequence keys)."""

    first: str = ""
    last: str = ""
    events: int = 0
    counters: dict[AggregateKey, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    listing: dict[AggregateKey, dict[str, str]] = field(default_factory=dict)
    oldest: int = 0  # the earliest receipt (ms) among the records: it bounds when a commit may write
    # Per hour item of an itemized dimension, per quarter: its events' set members, or None once
    # the quarter has more than ITEMIZED_CAP here (its set would be short whatever this commit adds).
    each: dict[AggregateKey, dict[int, set[str] | None]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, sequence: str, record: UsageRecord, booked: Book | None = None) -> None:
        """Fold one record in (records arrive in sequence order), with what it adds to the credit
        accounts ``booked`` holds; nothing changes if it raises."""
        added, listing = additions(record, tenants.layout(record.tenant)), listing_attributes(record)
        members = itemized(record)
        if booked is not None:
            added += booked.additions(record)
        self.first = self.first or sequence
        self.last = sequence
        self.events += 1
        self.oldest = min(self.oldest or record.received_at, record.received_at)
        for key, counters in added:
            self.counters[key].update(counters)
        self.listing.update(listing)
        for key, quarter, member in members:
            self._list(key, quarter, member)

    def _list(self, key: AggregateKey, quarter: int, member: str | None) -> None:
        listed = self.each[key].get(quarter, set())
        if listed is not None and member is not None and len(listed | {member}) <= ITEMIZED_CAP:
            listed.add(member)
            self.each[key][quarter] = listed
        else:
            self.each[key][quarter] = None

    def compressed(self) -> bytes:
        """The counters and listings, compressed (the window's state and a pending commit hold them)."""
        rows = [
            [pk, sk, dict(c), self.listing.get((pk, sk)), *self._each_row((pk, sk))]
            for (pk, sk), c in sorted(self.counters.items())
        ]
        return zlib.compress(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode(), 6)

    def _each_row(self, key: AggregateKey) -> list[dict[str, list[str] | None]]:
        """An item's sets as a row's optional last column (none for an item with no sets)."""
        if key not in self.each:
            return []
        return [{str(q): None if m is None else sorted(m) for q, m in self.each[key].items()}]

    @classmethod
    def decompressed(cls, first: str, last: str, events: int, blob: bytes) -> Deltas:
        """The deltas of ``(first, last]`` back from ``compressed``'s bytes."""
        deltas = cls(first=first, last=last, events=events)
        for pk, sk, counters, listing, *each in json.loads(zlib.decompress(blob)):
            deltas.counters[(pk, sk)] = Counter(counters)
            if listing:
                deltas.listing[(pk, sk)] = listing
            for quarter, members in (each[0] if each else {}).items():
                deltas.each[(pk, sk)][int(quarter)] = None if members is None else set(members)
        return deltas

    def drop_sets(self) -> bool:
        """Forget every set member (the quarters they were for are left short); whether any was held."""
        held = any(members for quarters in self.each.values() for members in quarters.values())
        for quarters in self.each.values():
            quarters.update(dict.fromkeys(quarters))
        return held

    def listed(self, key: AggregateKey) -> dict[int, set[str] | None]:
        """The set members this commit adds to an item, per quarter it adds events to (None where
        the quarter has too many)."""
        return dict(self.each.get(key, {}))

    def encode(self) -> dict[str, str]:
        """A compact JSON-safe form (Lambda keeps the state between invocations of a window)."""
        if not self.events:
            return {}
        deltas = base64.b64encode(self.compressed()).decode()
        return {
            "first": self.first,
            "last": self.last,
            "events": str(self.events),
            "oldest": str(self.oldest),
            "deltas": deltas,
        }

    @classmethod
    def decode(cls, state: dict[str, Any] | None) -> Deltas:
        """The deltas back from ``encode``'s form (an empty state is empty deltas)."""
        if not state or not state.get("deltas"):
            return cls()
        blob = base64.b64decode(state["deltas"])
        deltas = cls.decompressed(state["first"], state["last"], int(state["events"]), blob)
        deltas.oldest = int(state.get("oldest", 0))
        return deltas

    def writers_stop(self, now: int) -> int:
        """When a commit of these deltas must stop writing: ``WRITE_MARGIN_MS`` before reconciliation
        may recount the buckets of the oldest record. A receipt older than the stream ever delivers
        (a sample event, an earlier version's state that does not say) counts as that old."""
        oldest = max(self.oldest, now - STREAM_MAX_AGE_MS - MAX_WINDOW_MS)
        return oldest + HORIZON_MS - WRITE_MARGIN_MS


# -- the shard ledger and the commit -----------------------------------------------------------
def read_ledger(shard: str) -> Ledger:
    """The shard's ledger, strongly consistent."""
    return store.control().ledger(shard)


def transact(actions: list[dict[str, Any]]) -> None:
    """Commit one transaction (a seam tests use to inject failures)."""
    store.transact(actions)


def transact_retrying(actions: list[dict[str, Any]]) -> None:
    """Commit, retrying what retrying can fix; LedgerMoved if the ledger's condition failed,
    ``Refused`` naming the actions DynamoDB refuses for good."""
    try:
        transactions.retrying(actions, transact)
    except transactions.NotCommitted as error:
        raise CommitFailed(str(error)) from None
    except ClientError as error:
        reasons = transactions.reasons_of(error)
        if reasons and reasons[-1] == "ConditionalCheckFailed":
            raise LedgerMoved from None
        raise


# The quarters of hour items whose sets this container saw full or short: it adds no more members
# to them (a write whose condition fails costs a write unit; each container pays it once at most).
_closed_sets = caches.Cache(maxsize=50_000)


def add_once(
    key: AggregateKey,
    added: Counter[str],
    listing: dict[str, str] | None,
    mark: str,
    token: str,
    each: dict[int, set[str] | None] | None = None,
) -> bool:
    """Add one item's deltas unless it holds ``token`` in ``mark`` already (a seam tests use);
    False if it did. ``each``: per quarter the deltas add events to, the members for its set (None:
    too many). They are added while every set stays within ``ITEMIZED_CAP``; a quarter's set that
    this write leaves short (too many, or full) is removed instead: it would never be read, and an
    item over 1 KB costs a write unit more per write."""
    if keys.is_credit_pk(key[0]):
        return credits().apply_once(store.Aggregates.key(*key), adding(dict(added)), mark, token)
    aggregates, item_key, quarters = store.aggregates(), store.Aggregates.key(*key), each or {}
    opened = {q: members for q, members in quarters.items() if members and (key, q) not in _closed_sets}
    if opened:
        change = store.Aggregates.adding_counters(dict(added), listing, [q for q in quarters if q not in opened])
        after = aggregates.applied_once(item_key, change, mark, token, store.Aggregates.listing_events(change, opened))
        closed = opened if after is None else [q for q in range(4) if not _open_set(after, q)]
        for quarter in closed:  # or the token was there (a replay): the plain write below says so
            _closed_sets.put((key, quarter), True)
        if after is not None:
            return True
    return aggregates.apply_once(
        item_key, store.Aggregates.adding_counters(dict(added), listing, quarters), mark, token
    )


def _open_set(item: dict[str, Any], quarter: int) -> bool:
    """Whether a quarter's set may take another member and still be read: complete, below the cap."""
    members = complete_quarter(item, quarter)
    return members is not None and len(members) < ITEMIZED_CAP


def _day_of(key: AggregateKey) -> str:
    if keys.is_credit_pk(key[0]):  # credits have no bucket: the day it was refused
        return keys.day_key(now_ms())
    if keys.is_board_pk(key[0]):
        return keys.board_day(key[1])
    return keys.day_key(keys.parse_aggregate(*key).bucket_start)


def _take_slot(shard: str, until: int) -> tuple[int, str]:
    for attempt in range(MAX_ATTEMPTS):
        lease = store.control().take_slot(shard, now_ms(), until + SLOT_FREE_AFTER_MS, now_ms() - EARLIER_STALE_MS)
        if lease is not None:
            return lease
        transactions.backoff(attempt)
    raise CommitFailed(f"shard {shard}: every commit slot is held")


def commit(shard: str, deltas: Deltas, ledger: Ledger) -> None:
    """Add ``deltas`` (records after ``ledger.seq`` up to ``deltas.last``) and move the ledger there."""
    if not deltas.events:
        return
    # Distinct values first: marking is idempotent, so a commit that fails after it only repeats it.
    distinct.note_latest(distinct.latest_of_items(deltas.counters), transact=transact_retrying)
    until = deltas.writers_stop(now_ms())
    slot, token = _take_slot(shard, until)
    pending = PendingCommit(deltas.first, deltas.last, deltas.events, deltas.compressed(), now_ms(), until)
    store.control().write_pending(shard, pending)
    if not store.control().point_at_pending(ledger, deltas.first, deltas.last, slot, token):
        raise LedgerMoved
    pointed = replace(ledger, pending_first=deltas.first, pending_last=deltas.last, slot=slot, token=token)
    _finish(pointed, deltas, until)


def _finish(ledger: Ledger, deltas: Deltas, until: int) -> None:
    """Apply the pending commit the ledger points at, move the ledger past it, free its slot."""
    _apply(ledger, deltas, until)
    if not store.control().move_past_pending(ledger, deltas.events):
        raise LedgerMoved
    store.control().release_slot(ledger.slot, ledger.shard, ledger.token)


def _apply(ledger: Ledger, deltas: Deltas, until: int) -> None:
    """Add every item's deltas once, under the commit's token, several at a time, until ``until``.
    Items DynamoDB refuses for good are set aside (durably, before the ledger moves) and left out."""
    mark, refused = keys.commit_mark(ledger.slot), defaultdict(list)
    written = boards.spread(deltas.counters)

    def add(key: AggregateKey) -> None:
        if now_ms() > until:  # past it, reconciliation may soon recount, and the commit is voided: write nothing
            raise CommitFailed(f"shard {ledger.shard}: a commit ran past its time; it is voided next")
        try:
            added, listing = +written[key], deltas.listing.get(key)
            transactions.writing(lambda: add_once(key, added, listing, mark, ledger.token, deltas.listed(key)))
        except Refused as error:
            refused[error.reason].append(key)
        except transactions.NotCommitted as error:
            raise CommitFailed(str(error)) from None

    with ThreadPoolExecutor(APPLY_THREADS) as pool:
        list(pool.map(add, sorted(key for key, added in written.items() if +added)))
    for reason, left_out in sorted(refused.items()):
        set_aside.refused_items(ledger.shard, deltas.first, deltas.last, [(*k, _day_of(k)) for k in left_out], reason)


def _read_pending(ledger: Ledger) -> tuple[Deltas, int]:
    """A pending commit's deltas, and when its writers stop (ms)."""
    pending = store.control().pending(ledger)
    if pending is None:
        raise CommitFailed(f"pending commit of shard {ledger.shard} is missing")
    deltas = Deltas.decompressed(pending.first, pending.last, pending.events, pending.deltas)
    return deltas, pending.until if pending.until is not None else pending.written_at + EARLIER_STOP_MS


def finish_pending(ledger: Ledger) -> Ledger:
    """Complete a commit a previous invocation started, or void it if found ``VOID_AFTER_MS`` past
    its writers' stop (or written by an earlier version, without a token); the ledger after it."""
    while ledger.pending_last:
        deltas, until = _read_pending(ledger)
        with contextlib.suppress(LedgerMoved):  # another copy moved it: read where it stands
            if not ledger.token or now_ms() > until + VOID_AFTER_MS:
                _void_pending(ledger, len(deltas.counters))
            else:
                _finish(ledger, deltas, until)
        ledger = read_ledger(ledger.shard)
    return ledger


def _void_pending(ledger: Ledger, items: int) -> None:
    """Move the ledger past an abandoned commit without applying what it left (no write of it can
    still land: its writers stopped a minute ago at least), and free its slot."""
    if not store.control().move_past_pending(ledger, 0):
        raise LedgerMoved
    if ledger.token:
        store.control().release_slot(ledger.slot, ledger.shard, ledger.token)
    logger.error(
        "abandoned commit voided; reconciliation counts what it left",
        extra={"shard": ledger.shard, "items": items, "slot": ledger.slot},
    )
    metrics.add_metric(name="PendingCommitsVoided", unit="Count", value=1)


# -- one invocation --------------------------------------------------------------------------
Parsed = tuple[str, UsageRecord, dict[str, Any]]  # sequence key, record, the stream record


def _parse(shard: str, raw_records: list[dict[str, Any]]) -> list[Parsed]:
    parsed = []
    for raw in raw_records:
        if raw.get("eventName") != "INSERT":
            continue
        sequence = keys.sequence_key(raw["dynamodb"]["SequenceNumber"])
        try:
            parsed.append((sequence, record_from_item(dynamo.deserialize(raw["dynamodb"]["NewImage"])), raw))
        except Exception as error:  # a poison pill holds back nothing: it is set aside durably
            set_aside.unreadable_record(shard, raw, f"{type(error).__name__}: {error}")
    return sorted(parsed, key=lambda parsed_record: parsed_record[0])


def handle_window(event: dict[str, Any]) -> dict[str, Any]:
    """One invocation of a tumbling window: fold its records into the state; commit on the final one.

    Returns ``{"state": ...}`` for Lambda to hand to the window's next invocation (empty after a
    commit). A failure raises, and Lambda retries the invocation with the same input state.
    """
    shard = event.get("shardId") or "unsharded"
    records = _parse(shard, event.get("Records") or [])
    booked = Book.of(record for _, record, _ in records)
    for attempt in range(MAX_ATTEMPTS):
        ledger = finish_pending(read_ledger(shard))
        deltas = carried = Deltas.decode(event.get("state"))
        if deltas.events and deltas.last <= ledger.seq:
            deltas = Deltas()  # this window's earlier records were committed (a retried final invoke)
        elif deltas.events and deltas.first <= ledger.seq:
            raise CommitFailed(f"state {deltas.first}..{deltas.last} straddles the ledger at {ledger.seq}")
        folded = []
        for sequence, record, raw in records:
            if sequence > max(ledger.seq, deltas.last):  # a record delivered twice is folded once
                try:
                    deltas.add(sequence, record, booked)
                except Exception as error:  # whatever a record holds, it must not stall the shard
                    set_aside.unreadable_record(shard, raw, f"{type(error).__name__}: {error}")
                    continue
                folded.append(record)
        final = event.get("isFinalInvokeForWindow") or event.get("isWindowTerminatedEarly") or "shardId" not in event
        if not final and len(deltas.counters) <= MAX_STATE_ITEMS:
            state = _carried_state(deltas)
            if state is not None:
                _check_alerts(deltas.counters, folded, deltas.counters)
                return {"state": state, "batchItemFailures": []}
        try:
            commit(shard, deltas, ledger)
        except LedgerMoved:
            logger.warning("ledger moved during commit; re-reading", extra={"shard": shard, "attempt": attempt})
            continue
        metrics.add_metric(name="EventsCounted", unit="Count", value=deltas.events)
        _shard_busy_rosters(deltas.counters)
        _check_alerts({**carried.counters, **deltas.counters}, folded, None)
        return {"state": {}, "batchItemFailures": []}
    raise CommitFailed(f"shard {shard}: the ledger kept moving")


def _carried_state(deltas: Deltas) -> dict[str, str] | None:
    """The window's state for its next invocation, if it fits in ``MAX_STATE_CHARS``; without the
    quarters' sets where only they would not fit (sets are worth no extra commit: a commit rewrites
    every item the window touched, and the quarters are then read from raw records instead)."""
    state = deltas.encode()
    if len(state.get("deltas", "")) > MAX_STATE_CHARS and deltas.drop_sets():
        state = deltas.encode()
    return state if len(state.get("deltas", "")) <= MAX_STATE_CHARS else None


def _shard_busy_rosters(counters: dict[AggregateKey, Counter]) -> None:
    """Shard the roster of every tenant whose commit writes the hour items of ``ROSTER_SHARD_AT`` or
    more agents for the current and the last hour: live traffic from that many agents in one stream
    shard's window puts, across a table's many stream shards, more writes on the agents' boards than
    one partition takes. A backfill does not count (its entries stay where its events' time puts
    them). A failure is logged: the next busy commit tries again."""
    recent = keys.hour_sk(keys.hour_key(now_ms() - HOUR_MS))
    entries: Counter[str] = Counter()
    for pk, sk in counters:
        tenant, code = keys.owner_of_aggregate(pk)
        if code == AGENT.code and keys.is_hour_sk(sk) and sk >= recent:
            entries[tenant] += 1
    for tenant in (tenant for tenant, count in entries.items() if count >= tenants.ROSTER_SHARD_AT):
        try:
            tenants.shard_roster(tenant, now_ms())
        except Exception:
            logger.exception("sharding a roster failed; the next busy commit tries again", extra={"tenant": tenant})


def _check_alerts(touched: dict[AggregateKey, Counter], folded: list[UsageRecord], open_window: dict | None) -> None:
    """Fire the alerts these counts reached: mid-window with the open window's deltas added to what
    is committed (a lower bound: other shards' open windows are not seen), after a commit with a
    fresh view of the alerts. A failure is logged, never fails the window: the next check of the
    subject, or the next commit, evaluates again (evaluation compares levels, so nothing is lost)."""
    try:
        rules.check_touched(touched, folded, open_window, fresh=open_window is None)
        if open_window is None:  # balances move only with what is committed
            rules.check_accounts(touched)
    except Exception:
        logger.exception("alert check failed; the next check of these subjects repeats it")
        metrics.add_metric(name="AlertChecksFailed", unit="Count", value=1)
