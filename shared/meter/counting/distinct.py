"""Distinct end users, datasets, skillsets and abilities since any day: exact, read as one item.

Each value of a distinct dimension has a **mark** holding the last UTC day it was seen on, and the
tenant's **tally** counts its values per last-seen day (one small item per month). The values seen
on or after day ``s`` are exactly those whose last-seen day is ``s`` or later, so the distinct count
of a period that runs from ``s`` to now is the tally's sum over days ``>= s``, whatever ``s`` is: a
billing anchor changed mid-period needs nothing recomputed.

A mark only ever moves forward (to the latest day), in one transaction with the tally (the old
day -1, the new day +1), conditional on the mark still holding the day it was read with. A
maximum is idempotent: a replay, a retried invocation or a second writer finds the mark already
there and writes nothing, and a late event (older than the mark) changes nothing. A value costs a
write the first time it is seen on a new day, not per event; a container remembers the marks it
has read or moved (marks never move back, so a remembered day is a lower bound and safe to trust).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from meter.core.caches import Cache
from meter.counting import set_aside
from meter.dal import keys, store
from meter.dal.dimensions import ABILITY, DATASET, IDENTIFIER, SKILLSET
from meter.dal.records import UsageRecord
from meter.dal.transactions import Refused, reasons_of

DISTINCT = (IDENTIFIER, DATASET, SKILLSET, ABILITY)
MAX_TRANSACT_ACTIONS = 100  # marks and the tally items they touch, per transaction
MAX_REMEMBERED = 200_000  # marks a container remembers (about 40 MB at most)
MAX_ROUNDS = 20

Mark = tuple[str, str, str]  # (tenant, dimension code, aggregate pk of the value)
Transact = Callable[[list[dict[str, Any]]], None]

_remembered = Cache(MAX_REMEMBERED)  # aggregate pk → a day its mark is known to be at or after


def forget() -> None:
    """Drop what this container remembers of the marks (tests start from fresh tables)."""
    _remembered.clear()


def latest_days(records: Iterable[UsageRecord]) -> dict[Mark, str]:
    """The latest UTC day each distinct value of the records was seen on."""
    latest: dict[Mark, str] = {}
    for record in records:
        day = keys.day_key(record.ts)
        for dimension in DISTINCT:
            value = dimension.value_of(record)
            if value is not None:
                mark = (record.tenant, dimension.code, dimension.pk(record.tenant, value))
                latest[mark] = max(day, latest.get(mark, day))
    return latest


def latest_of_items(item_keys: Iterable[tuple[str, str]]) -> dict[Mark, str]:
    """The latest day each distinct value has a day item among ``item_keys`` (an aggregator's deltas)."""
    codes = {dimension.code for dimension in DISTINCT}
    latest: dict[Mark, str] = {}
    for pk, sk in item_keys:
        tenant, code = keys.owner_of_aggregate(pk)
        if code in codes and sk.startswith(keys.DAY_PREFIX):  # every commit: no date parsing here
            mark, day = (tenant, code, pk), keys.bucket_day(sk)
            latest[mark] = max(day, latest.get(mark, day))
    return latest


def note(records: Iterable[UsageRecord], transact: Transact = store.transact) -> int:
    """Move the marks of the records' values to their latest days, with the tally; the marks moved."""
    return note_latest(latest_days(records), transact)


def note_latest(latest: dict[Mark, str], transact: Transact = store.transact) -> int:
    """Move each mark to its day unless it is there or later, with the tally; the marks moved.

    Raises if a write fails for good (the caller's retry repeats it: marking twice changes nothing).
    """
    wanted = {mark: day for mark, day in latest.items() if _remembered.get(mark[2], "") < day}
    moved, consistent = 0, False
    for _ in range(MAX_ROUNDS):
        if not wanted:
            return moved
        stored = store.aggregates().last_seen([mark[2] for mark in wanted], consistent=consistent)
        moves = {}
        for mark, day in wanted.items():
            known = stored.get(mark[2], "")
            if known >= day:
                _remember(mark[2], known)
            else:
                moves[mark] = (known, day)
        failed: dict[Mark, str] = {}
        for chunk in _chunks(moves):
            unmoved, refused = _move(chunk, moves, transact)
            done = [mark for mark in chunk if mark not in unmoved and mark not in refused]
            moved += len(done)
            for mark in done:
                _remember(mark[2], moves[mark][1])
            failed.update({mark: moves[mark][1] for mark in unmoved})  # read again, strongly consistent
        wanted, consistent = failed, True
    raise RuntimeError(f"distinct marks kept moving under {len(wanted)} writes")


def _remember(pk: str, day: str) -> None:
    _remembered.put(pk, max(day, _remembered.get(pk, day)))


def _chunks(moves: dict[Mark, tuple[str, str]]) -> list[list[Mark]]:
    """Marks cut into transactions of at most 100 actions: the marks and their tally items."""
    chunks: list[list[Mark]] = []
    tallies: set[tuple[str, str]] = set()
    for mark in sorted(moves):  # by tenant: a tenant's marks share its tally items
        touched = {(mark[0], keys.seen_tally_sk(day)) for day in moves[mark] if day}
        if not chunks or len(chunks[-1]) + len(tallies | touched) >= MAX_TRANSACT_ACTIONS:
            chunks.append([])
            tallies = set()
        chunks[-1].append(mark)
        tallies |= touched
    return chunks


def _move(chunk: list[Mark], moves: dict[Mark, tuple[str, str]], transact: Transact) -> tuple[list[Mark], list[Mark]]:
    """Move a chunk of marks and their tally counts in one transaction. Returns the marks to move
    again (all if a mark had moved under it; the others if DynamoDB refused some) and the marks
    refused for good, which are set aside."""
    tally: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    actions = []
    for mark in chunk:
        tenant, code, pk = mark
        old, new = moves[mark]
        actions.append(store.aggregates().move_last_seen(pk, old, new))
        tally[(tenant, keys.seen_tally_sk(new))][keys.seen_counter(code, new)] += 1
        if old:
            tally[(tenant, keys.seen_tally_sk(old))][keys.seen_counter(code, old)] -= 1
    tally_keys = sorted(tally)
    for tenant, month in tally_keys:
        actions.append(store.aggregates().add_to_tally(tenant, month, tally[(tenant, month)]))
    try:
        transact(actions)
    except Refused as refused:
        tenants = {tally_keys[i - len(chunk)][0] for i in refused.indexes if i >= len(chunk)}
        left_out = [m for i, m in enumerate(chunk) if i in refused.indexes or m[0] in tenants]
        set_aside.refused_items("", "", "", [(m[2], keys.SEEN_SK, moves[m][1]) for m in left_out], refused.reason)
        return [mark for mark in chunk if mark not in left_out], left_out
    except ClientError as error:
        if "ConditionalCheckFailed" in reasons_of(error):
            return chunk, []
        raise
    return [], []


def seen_since(tenant: str, day: str) -> dict[str, int]:
    """How many values of each distinct dimension (by code) were seen on ``day`` (UTC) or later."""
    found: Counter[str] = Counter({dimension.code: 0 for dimension in DISTINCT})
    for item in store.aggregates().tallies_from(tenant, day):
        for name, count in item.items():
            if isinstance(count, int) and name not in ("pk", "sk"):
                code, seen_on = keys.parse_seen_counter(item["sk"], name)
                if seen_on >= day:
                    found[code] += count
    return dict(found)
