"""A commit writes each item once under a leased slot's token: what the slots and marks promise.

The property test (``test_exactly_once.py``) proves the counts under any crash, retry and replay;
these pin what it cannot see: the write a commit costs per item, that an item's marks stay bounded
however many commits and shards write it, how slots are leased and freed, and what happens to a
pending commit left by the previous version (chunks of transactions, no token).
"""

from __future__ import annotations

import os

import pytest

from meter.counting import aggregation
from meter.counting.aggregation import CommitFailed, handle_window
from meter.dal import dynamo, keys, store
from meter.dal.dimensions import AGENT, IDENTIFIER, ITEMIZED_CAP, each_member
from meter.dal.expressions import Update
from meter.dal.models import PendingCommit
from meter.dal.records import UsageRecord
from tests.helpers import recount, stored_aggregates
from tests.integration.test_exactly_once import NOW, Crash, _record, crash_after, stream_record


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> None:
    """The aggregator's clock is the records' world: they were received just now (``NOW``)."""
    monkeypatch.setattr(aggregation, "now_ms", lambda: NOW + 60_000)


def _window(shard: str, records: list, first_sequence: int) -> None:
    stream = [stream_record(first_sequence + i, r) for i, r in enumerate(records)]
    handle_window({"Records": stream, "shardId": shard, "state": {}, "isFinalInvokeForWindow": True})


def _records(first: int, n: int, users: int = 3) -> list:
    return [
        _record(first + i, "acme", f"user-{i % users}", "bot", "m", None, None, None, "message", 1, 2, 30, False)
        for i in range(n)
    ]


def _transactions(monkeypatch) -> list[list[dict]]:
    """The actions of every transaction made from now on (each still made)."""
    made: list[list[dict]] = []
    client = dynamo.client()
    real = client.transact_write_items

    def spy(**kwargs):
        made.append(kwargs["TransactItems"])
        return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", spy)
    return made


def _marks(pk: str, sk: str) -> dict:
    item = store.aggregates().get(store.Aggregates.key(pk, sk), consistent=True)
    return {name: value for name, value in item.items() if keys.is_commit_mark(name)}


def test_a_commit_writes_its_items_outside_transactions_and_marks_each_with_its_token(aws, monkeypatch):
    records = _records(0, 6)
    made = _transactions(monkeypatch)
    _window("shard-a", records, 1000)
    assert stored_aggregates(dynamo.client(), os.environ["AGGREGATES_TABLE"]) == recount(records)
    # Only the distinct marks move in a transaction (a mark and its tally together); no counter does.
    written = [next(iter(action.values()))["Key"] for actions in made for action in actions]
    assert written and all(k["sk"]["S"] == keys.SEEN_SK or k["pk"]["S"] == keys.seen_tally_pk("acme") for k in written)
    ledger = aggregation.read_ledger("shard-a")
    assert ledger.seq == keys.sequence_key("1005") and not ledger.pending_last and not ledger.token
    day = keys.day_sk(keys.day_key(records[0].ts))
    assert list(_marks("acme#I#user-0", day).values()) == ["1"]  # the first lease of its slot


def test_an_items_marks_stay_one_per_slot_however_many_commits_and_shards_write_it(aws):
    records, sequence = [], 1000
    for _ in range(5):
        for shard in ("shard-a", "shard-b", "shard-c"):
            batch = _records(100 * len(records) + 1, 4, users=1)
            _window(shard, batch, sequence)
            records += batch
            sequence += 10
    assert stored_aggregates(dynamo.client(), os.environ["AGGREGATES_TABLE"]) == recount(records)
    day = keys.day_sk(keys.day_key(records[0].ts))
    marks = _marks("acme#I#user-0", day)
    # Each shard leases its own slot again and again: the item holds one mark per shard that wrote
    # it, never one per commit (15 commits here), and never more than the slots.
    assert 1 <= len(marks) <= 3 <= keys.COMMIT_SLOTS


def _holder(slot: int) -> str | None:
    return (store.control().get({"pk": {"S": keys.commit_slot_pk(slot)}}, consistent=True) or {}).get("holder")


def test_a_slot_is_leased_to_one_shard_at_a_time_freed_by_its_last_lease_and_taken_over_when_its_lease_ends(aws):
    control, ends, stale = store.control(), NOW + 10 * 60_000, NOW - aggregation.EARLIER_STALE_MS
    slot, first = control.take_slot("shard-a", NOW, ends, stale)
    again = control.take_slot("shard-a", NOW, ends, stale)
    assert again == (slot, str(int(first) + 1))  # its own slot again, with a token never handed out
    others = [control.take_slot(f"shard-{n}", NOW, ends, stale) for n in range(40)]
    assert slot not in {lease[0] for lease in others if lease}  # held: no other shard gets it
    assert others.count(None) == 40 - (keys.COMMIT_SLOTS - 1)  # 16 slots: the pool runs out
    control.release_slot(slot, "shard-a", first)  # an older lease's release: the slot stays held
    assert _holder(slot) == "shard-a"
    control.release_slot(slot, "shard-a", again[1])
    assert _holder(slot) is None
    assert control.take_slot("shard-a", NOW, ends, stale)[0] == slot  # every slot held again, until `ends`
    assert control.take_slot("shard-new", ends, ends + 60_000, ends - aggregation.EARLIER_STALE_MS) is None
    taken = control.take_slot("shard-new", ends + 1, ends + 60_000, ends + 1 - aggregation.EARLIER_STALE_MS)
    assert taken is not None and _holder(taken[0]) == "shard-new"


def test_a_lease_of_the_previous_version_without_an_end_is_taken_over_when_stale(aws):
    for slot in range(keys.COMMIT_SLOTS):  # every slot held the previous version's way: since, no end
        store.control().update(
            {"pk": {"S": keys.commit_slot_pk(slot)}},
            Update().set("holder", f"old-{slot}").set("since", NOW).add("n", 1),
        )
    control, stale = store.control(), NOW + aggregation.EARLIER_STALE_MS
    assert control.take_slot("shard-a", stale, stale + 60_000, stale - aggregation.EARLIER_STALE_MS) is None
    taken = control.take_slot("shard-a", stale + 1, stale + 60_000, stale + 1 - aggregation.EARLIER_STALE_MS)
    assert taken is not None and _holder(taken[0]) == "shard-a"


def test_a_commit_waits_for_a_slot_and_fails_if_none_frees(aws, monkeypatch):
    for n in range(keys.COMMIT_SLOTS * 3):  # every slot held by some other shard
        store.control().take_slot(f"busy-{n}", aggregation.now_ms(), aggregation.now_ms() + 600_000, 0)
    monkeypatch.setattr(aggregation.transactions, "backoff", lambda attempt: None)
    with pytest.raises(CommitFailed, match="every commit slot is held"):
        _window("shard-a", _records(0, 2), 1000)
    assert not aggregation.read_ledger("shard-a").seq  # nothing committed: Lambda retries the window


def test_a_pending_commit_of_the_previous_version_is_voided_and_left_to_reconciliation(aws, caplog):
    records = _records(0, 4)
    deltas = aggregation.Deltas()
    for i, record in enumerate(records):
        deltas.add(keys.sequence_key(str(1000 + i)), record)
    ledger = aggregation.read_ledger("shard-a")
    pending = PendingCommit(deltas.first, deltas.last, deltas.events, deltas.compressed(), NOW)
    store.control().write_pending("shard-a", pending)
    # The previous version pointed the ledger at its pending commit with a chunk counter, no token.
    dynamo.client().update_item(
        TableName=os.environ["CONTROL_TABLE"],
        Key={"pk": {"S": keys.ledger_pk("shard-a")}},
        UpdateExpression="SET pf = :f, pl = :l, pd = :d",
        ExpressionAttributeValues={":f": {"S": deltas.first}, ":l": {"S": deltas.last}, ":d": {"N": "0"}},
    )
    assert aggregation.read_ledger("shard-a").pending_last == deltas.last
    assert not aggregation.read_ledger("shard-a").token
    later = _records(100, 2)
    _window("shard-a", later, 2000)
    after = aggregation.read_ledger("shard-a")
    assert not after.pending_last and after.seq == keys.sequence_key("2001")
    assert after.events == ledger.events + len(later)  # the voided commit's events are reconciliation's
    assert stored_aggregates(dynamo.client(), os.environ["AGGREGATES_TABLE"]) == recount(later)
    assert "abandoned commit voided" in caplog.text


def _at(monkeypatch, ms: int) -> None:
    monkeypatch.setattr(aggregation, "now_ms", lambda: ms)


def test_a_crashed_commit_is_finished_by_whoever_finds_it_until_its_writers_stop(aws, monkeypatch):
    """Its writers stop by its oldest record's receipt, not by when it began: found 40 minutes
    later, it is finished with its token (no item twice), never voided."""
    records = _records(0, 12, users=6)
    real = crash_after(monkeypatch, 5)
    with pytest.raises(Crash):
        _window("shard-a", records, 1000)
    assert aggregation.read_ledger("shard-a").pending_last
    monkeypatch.setattr(aggregation, "add_once", real)
    _at(monkeypatch, NOW + 40 * 60_000)
    later = _records(100, 1)
    _window("shard-a", later, 2000)
    ledger = aggregation.read_ledger("shard-a")
    assert not ledger.pending_last and ledger.events == len(records) + len(later)  # a void adds none
    assert stored_aggregates(dynamo.client(), os.environ["AGGREGATES_TABLE"]) == recount([*records, later[0]])


def test_a_commit_past_its_writers_stop_writes_nothing_and_is_voided_after(aws, monkeypatch):
    records = _records(0, 12, users=6)
    real = crash_after(monkeypatch, 5)
    with pytest.raises(Crash):
        _window("shard-a", records, 1000)
    written = stored_aggregates(dynamo.client(), os.environ["AGGREGATES_TABLE"])
    monkeypatch.setattr(aggregation, "add_once", real)
    stop = NOW + aggregation.HORIZON_MS - aggregation.WRITE_MARGIN_MS  # the records were received at NOW
    _at(monkeypatch, stop + 1)
    with pytest.raises(CommitFailed, match="ran past its time"):
        _window("shard-a", _records(100, 1), 2000)  # finishing it is not allowed, voiding it not yet
    assert stored_aggregates(dynamo.client(), os.environ["AGGREGATES_TABLE"]) == written
    voiding = stop + aggregation.VOID_AFTER_MS + 1
    _at(monkeypatch, voiding)
    (later,) = _records(100, 1)
    _window("shard-a", [UsageRecord(**{**later.__dict__, "received_at": voiding})], 2000)
    ledger = aggregation.read_ledger("shard-a")
    assert not ledger.pending_last and ledger.events == 1  # voided: reconciliation counts what it left
    assert ledger.seq == keys.sequence_key("2000")


def test_a_commits_sets_stop_at_the_cap_and_survive_its_pending_form(aws):
    """An end user's hour item gets one member per event of a quarter, none for a quarter with more
    than a set holds; the deltas' compressed form (window state, pending commit) keeps them."""
    deltas = aggregation.Deltas()
    user = ("user-0", "bot", "m", None, None, None, "message")
    busy = [_record(n, "acme", *user, n + 1, 2, 30, False) for n in range(ITEMIZED_CAP + 1)]  # minute 30
    few = [_record(100 + n, "acme", *user, n + 1, 2, 47, False) for n in range(3)]  # minute 47
    for sequence, record in enumerate(busy + few):
        deltas.add(keys.sequence_key(str(1000 + sequence)), record)
    hour = keys.periods(few[0].ts).hour
    assert deltas.listed((IDENTIFIER.pk("acme", "user-0"), hour)) == {
        2: None,  # too many: the commit adds none of them, and removes the set
        3: {each_member(r.ts, r.type, r.count, r.credits) for r in few},
    }
    assert not deltas.listed((AGENT.pk("acme", "bot"), hour))  # agents' items list nothing
    back = aggregation.Deltas.decompressed(deltas.first, deltas.last, deltas.events, deltas.compressed())
    assert back.each == deltas.each and back.counters == deltas.counters


def test_a_window_state_that_fits_only_without_its_sets_drops_them_instead_of_committing(aws, monkeypatch):
    """Sets never cost a commit: a mid-window commit rewrites every item the window touched."""
    records = [
        _record(n, "acme", f"user-{n}", "bot", "m", None, None, None, "message", 1, 2, 30, False) for n in range(300)
    ]
    deltas = aggregation.Deltas()
    for i, record in enumerate(records):
        deltas.add(keys.sequence_key(str(1000 + i)), record)
    with_sets = len(deltas.encode()["deltas"])
    assert deltas.drop_sets() and not deltas.drop_sets()
    monkeypatch.setattr(aggregation, "MAX_STATE_CHARS", (with_sets + len(deltas.encode()["deltas"])) // 2)
    stream = [stream_record(1000 + i, r) for i, r in enumerate(records)]
    answer = handle_window({"Records": stream, "shardId": "shard-a", "state": {}, "isFinalInvokeForWindow": False})
    carried = aggregation.Deltas.decode(answer["state"])
    assert carried.events == 300 and not aggregation.read_ledger("shard-a").seq  # carried, not committed
    assert {members for quarters in carried.each.values() for members in quarters.values()} == {None}
