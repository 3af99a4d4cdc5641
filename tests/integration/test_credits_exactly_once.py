"""Reservations never over-admit and settled credits count exactly once, whatever happens between.

Each example runs one tenant through a random interleaving of reservations (on an end user and the
tenant, or the tenant alone), usage carrying a reservation (within what is left of the hold), usage
carrying none, releases, the clock moving on (holds expire, a daily allowance in Asia/Kolkata
renews, a pack expires), new and voided grants, reconciliation, and counting: the stream delivered
in random windows and batches, batches delivered twice, invocations replayed, the aggregator
crashed before or after any write, throttled, and conflicted, each failure retried as Lambda does.

After every step, for the tenant and each end user:

* ``consumed + reserved <= granted``, but for what was counted outside a hold (usage carrying no
  reservation, or carrying one that had ended when it was counted), while the subject's granted
  credits never fell (a void or an expiry can leave holds above what remains: that is no admission);
* each hold's settled credits are exactly the credits of the counted events that carry its id
  (once each, whatever the redeliveries), a released or expired hold holds nothing, and an open one
  holds what is left of it;
* ``granted``, ``consumed`` and ``overage`` equal a brute-force recount of the counted usage
  (``tests.credits_oracle``);
* the tenant's budget, split into three slices here so that they run short and rebalance often,
  never lends more than the tenant has (the same allowance for what was counted outside a hold).
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from local.template import Stack
from meter.core.timerange import HOUR_MS, to_ms
from meter.counting import aggregation
from meter.credits import grants as grant_cases
from meter.credits import reservations, slices
from meter.credits.rules import credit_time, held
from meter.dal import dynamo
from meter.dal.credits import credits
from meter.dal.models import TENANT_SUBJECT, Grant, GrantTerms, Subject
from meter.dal.records import UsageRecord
from meter.dal.tenants import placed_record_item
from tests.conftest import STACK, create_tables, reset_caches
from tests.credits_oracle import recount
from tests.integration.test_exactly_once import Faults, invocations, invoke_until_done, reconcile_quietly, stream_record

START = to_ms(datetime(2026, 3, 10, 17, 0, tzinfo=UTC))  # 22:30 in Kolkata: its midnight comes soon
USERS = {"ana": Subject("identifier", "ana"), "bo": Subject("identifier", "bo")}
SUBJECTS = {"tenant": TENANT_SUBJECT, **USERS}
_examples = itertools.count()


@dataclass
class World:
    """What the test knows: the clock, the grants it made, the holds, every event and when it counted."""

    clock: int = START
    grants: dict[Subject, list[GrantTerms]] = field(default_factory=lambda: defaultdict(list))
    holds: dict[str, tuple[tuple[Subject, ...], int, int]] = field(default_factory=dict)  # subjects, credits, expiry
    released: set[str] = field(default_factory=set)
    settled_at_release: dict[str, int] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # sent under each hold
    pending: list[UsageRecord] = field(default_factory=list)
    counted: list[UsageRecord] = field(default_factory=list)
    outside: dict[Subject, int] = field(default_factory=lambda: defaultdict(int))  # counted outside a hold
    highest_granted: dict[Subject, int] = field(default_factory=dict)
    fell: set[Subject] = field(default_factory=set)
    sequence: itertools.count = field(default_factory=lambda: itertools.count(1000))
    ids: itertools.count = field(default_factory=itertools.count)

    def open(self, rid: str) -> bool:
        return rid not in self.released and self.clock < self.holds[rid][2]


def make_grant(world: World, subject: Subject, gid: str, amount: int, **terms) -> None:
    grant = GrantTerms(gid, amount, terms.pop("priority", 100), world.clock, **terms)
    stored, created = grant_cases.create_grant(Grant("acme", subject, grant, world.clock, gid, None))
    assert created
    world.grants[subject].append(stored.terms)


def reserve(world: World, who: str, amount: int, ttl: int) -> None:
    subjects = (USERS[who], TENANT_SUBJECT) if who in USERS else (TENANT_SUBJECT,)
    rid = f"r{next(world.ids)}"
    request = reservations.ReservationRequest("acme", rid, subjects, amount, ttl, rid)
    try:
        answer, created = reservations.reserve(request)
    except Exception as refused:  # 402: each subject's balance is checked below, as always
        assert getattr(refused, "status", None) == 402, refused
        assert refused.fields["available"] < amount
        return
    assert created
    world.holds[rid] = (subjects, amount, answer["expiresAt"])


def use(world: World, rid: str | None, who: str | None, amount: int) -> None:
    n = next(world.ids)
    relations = {"identifier": who} if who else {}
    if rid is not None:
        relations["reservationId"] = rid
        world.used[rid] += amount
    record = UsageRecord(
        "acme", f"e{n}", "message", 1, world.clock - n % 3, amount, "event", world.clock, "f", relations
    )
    dynamo.client().put_item(TableName=os.environ["RECORDS_TABLE"], Item=dynamo.serialize(placed_record_item(record)))
    world.pending.append(record)


def count(world: World, cuts: set[int], doubled: bool, replay: bool, faults: dict[int, str]) -> None:
    """Deliver every pending record in windows of one shard, with the faults; all are then counted."""
    stream = [stream_record(next(world.sequence), r) for r in world.pending]
    injected = Faults(faults)
    dynamo.client().meta.events.register("before-call.dynamodb.*", injected.before)
    dynamo.client().meta.events.register("after-call.dynamodb.*", injected.after_call)
    try:
        state, done = {}, []
        for batch, final, early in invocations(stream, cuts, set(), False, True):
            batch = batch * 2 if doubled else batch
            done.append((batch, state, final))
            state = invoke_until_done("shard-a", batch, state, final, early)
            if final:
                state = {}
        if replay and done:
            invoke_until_done("shard-a", done[0][0], done[0][1], done[0][2], False)
    finally:
        dynamo.client().meta.events.unregister("before-call.dynamodb.*", injected.before)
        dynamo.client().meta.events.unregister("after-call.dynamodb.*", injected.after_call)
    for record in world.pending:
        rid = record.value_of("reservationId")
        for subject in subjects_of(record):
            within = rid is not None and world.open(rid) and subject in world.holds[rid][0]
            world.outside[subject] += 0 if within else record.credits
    world.counted += world.pending
    world.pending = []
    # Counting takes time: a void or a grant made after it is made later than every credit it counted
    # (the rules' premise, meter.credits.rules); on the world's frozen clock they could share a millisecond.
    world.clock += 1


def subjects_of(record: UsageRecord) -> list[Subject]:
    return [TENANT_SUBJECT] + ([Subject("identifier", record.identifier)] if record.identifier else [])


def check(world: World) -> None:
    for name, subject in SUBJECTS.items():
        found = grant_cases.balance_of("acme", subject, world.clock)
        if found.granted < world.highest_granted.get(subject, 0):
            world.fell.add(subject)
        world.highest_granted[subject] = max(found.granted, world.highest_granted.get(subject, 0))
        uses = [(credit_time(r.ts, r.received_at), r.credits) for r in world.counted if subject in subjects_of(r)]
        expected = recount(world.grants[subject], uses, world.clock)
        assert (found.granted, found.consumed, found.overage) == (
            expected.granted,
            expected.consumed,
            expected.overage,
        ), name
        if subject not in world.fell:
            assert found.consumed + found.reserved <= found.granted + world.outside[subject], name
    tenant = grant_cases.balance_of("acme", TENANT_SUBJECT, world.clock)
    lent = sum(s.free(world.clock) for s in credits().slices("acme", list(range(slices.SLICES))).values())
    if TENANT_SUBJECT not in world.fell:  # the slices never lend more than the tenant has
        assert lent <= tenant.available + world.outside[TENANT_SUBJECT], (lent, tenant)
    for rid, (subjects, amount, _) in world.holds.items():
        settled = sum(r.credits for r in world.counted if r.value_of("reservationId") == rid)
        stored = reservations.stored_reservation("acme", rid)
        assert stored.settled == settled, rid  # the tenant's hold, on a slice: counted once each
        shown = reservations.standing(stored, world.clock)
        if rid in world.released:  # dropped from its accounts; it consumed what was counted by then
            assert (shown.state, shown.held, shown.consumed) == ("released", 0, world.settled_at_release[rid])
            continue
        for subject in (s for s in subjects if s != TENANT_SUBJECT):
            hold = credits().account("acme", subject, consistent=True).holds.get(rid)
            if hold is None:  # dropped with a later hold on the account: only once ended for that long
                assert world.holds[rid][2] < world.clock - reservations.KEEP_ENDED_MS, (rid, subject)
                continue
            assert hold.settled == settled, (rid, subject)
            expected_held = max(0, amount - settled) if world.open(rid) else 0
            assert held(hold, world.clock) == expected_held, (rid, subject)
        assert (shown.held, shown.consumed) == (max(0, amount - settled) if world.open(rid) else 0, settled)


step = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from(["ana", "bo", "tenant"]), st.integers(1, 90), st.integers(30, 900)),
    st.tuples(st.just("use"), st.integers(0, 30), st.floats(0.1, 1.0)),
    st.tuples(st.just("plain"), st.sampled_from(["ana", "bo", None]), st.integers(1, 40)),
    st.tuples(st.just("release"), st.integers(0, 30)),
    st.tuples(st.just("tick"), st.integers(1, 2400)),
    st.tuples(
        st.just("count"),
        st.sets(st.integers(1, 20), max_size=4),
        st.booleans(),
        st.booleans(),
        st.dictionaries(
            st.integers(0, 12), st.sampled_from(["crash before", "crash after", "throttle", "conflict"]), max_size=4
        ),
    ),
    st.tuples(st.just("reconcile")),
    st.tuples(st.just("void"), st.sampled_from(["ana", "bo"])),
    st.tuples(st.just("grant"), st.sampled_from(["ana", "bo", "tenant"]), st.integers(1, 200)),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=5, max_size=30))
def test_reservations_never_over_admit_and_settle_exactly_once(steps, monkeypatch):
    world = World()
    with mock_aws():
        reset_caches()
        stack = Stack(STACK.template, table_prefix=f"cr{next(_examples)}")
        for name, value in stack.environment().items():  # given back even when an example fails
            monkeypatch.setenv(name, value)
        reset_caches()
        create_tables(stack)
        for module in (grant_cases, reservations, aggregation):  # records are received on the world's clock
            monkeypatch.setattr(module, "now_ms", lambda: world.clock)
        for module in (slices, reservations, grant_cases):  # few slices: they run short and rebalance often
            monkeypatch.setattr(module, "SLICES", 3)
        make_grant(world, TENANT_SUBJECT, "org", 400)
        make_grant(world, USERS["ana"], "ana-pack", 120, priority=10, expires_at=START + 2 * HOUR_MS)
        make_grant(world, USERS["ana"], "ana-daily", 60, period="day", time_zone="Asia/Kolkata")
        make_grant(world, USERS["bo"], "bo-pack", 150)
        for kind, *args in steps:
            if kind == "reserve":
                reserve(world, *args)
            elif kind == "use" and world.holds:
                rid = sorted(world.holds)[args[0] % len(world.holds)]
                subjects, amount, _ = world.holds[rid]
                left = amount - world.used[rid]
                if world.open(rid) and left > 0:
                    who = next((s.value for s in subjects if s.kind == "identifier"), None)
                    use(world, rid, who, max(1, int(left * args[1])))
            elif kind == "plain":
                use(world, None, args[0], args[1])
            elif kind == "release" and world.holds:
                rid = sorted(world.holds)[args[0] % len(world.holds)]
                if world.open(rid):
                    world.released.add(rid)
                    world.settled_at_release[rid] = sum(
                        r.credits for r in world.counted if r.value_of("reservationId") == rid
                    )
                reservations.release("acme", rid)
            elif kind == "tick":
                world.clock += args[0] * 1000
            elif kind == "count":
                count(world, *args)
            elif kind == "reconcile":
                reconcile_quietly("acme", START - HOUR_MS, world.clock + HOUR_MS, world.clock + HOUR_MS)
            elif kind == "void":
                live = [g for g in world.grants[USERS[args[0]]] if g.voided_at is None]
                if live:
                    voided = grant_cases.void_grant("acme", live[0].id, world.clock)
                    world.grants[USERS[args[0]]] = [voided.terms if g.id == live[0].id else g
                                                    for g in world.grants[USERS[args[0]]]]  # fmt: skip
            elif kind == "grant":
                make_grant(world, SUBJECTS[args[0]], f"g{next(world.ids)}", args[1])
            check(world)
        count(world, set(), False, True, {})
        check(world)
    reset_caches()
