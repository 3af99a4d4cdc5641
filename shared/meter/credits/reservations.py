"""Reservations: credits held on every listed subject at once, or on none.

A reservation reads each subject's account (strongly consistent), decides from what is
available there *now* (grants in effect, what they burned, holds still open), and writes the
reservation and every hold in one transaction conditional on each account's version. Every write
to an account moves its version (the aggregator's too), so a decision made on a stale view is
cancelled and made again on a fresh one: no two reservations can both spend the same credit, and
a refusal is only ever made on what an account held at the moment it was read.

The tenant itself decides on one slice of its budget (``meter.credits.slices``), so that one
tenant-wide budget can take 10,000 reservations a second: when the slice has too little, the
budget is rebalanced from a snapshot of every slice, and only that snapshot can refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from meter.core.errors import Conflict, NotFound, PaymentRequired
from meter.core.timerange import now_ms
from meter.credits import decide
from meter.credits.rules import balance, held, hold_state
from meter.credits.slices import SLICES, bucket_end, lease_end, plan, slice_of, truly_available
from meter.dal.credits import credits
from meter.dal.models import TENANT_SUBJECT, CreditAccount, CreditSlice, Reservation, Subject

MAX_OPEN_HOLDS = 100  # open reservations per subject: every hold is read by each decision
KEEP_ENDED_MS = 3_600_000  # an expired hold stays on its accounts this long (what it consumed shows)


@dataclass(frozen=True)
class ReservationRequest:
    """A validated ``POST /v1/reservations``."""

    tenant: str
    id: str
    subjects: tuple[Subject, ...]
    credits: int
    ttl_seconds: int
    fingerprint: str


def _replayed(stored: Reservation, request: ReservationRequest) -> dict:
    if stored.fingerprint != request.fingerprint:
        raise Conflict(f"Reservation '{request.id}' exists with another body")
    return stored.answer


def _ended_holds(account: CreditAccount, now: int) -> list[str]:
    """Holds that expired more than ``KEEP_ENDED_MS`` ago, and what events counted after a hold
    ended left behind (dropped with the next hold written)."""
    return [rid for rid, h in account.holds.items() if h.expires_at < now - KEEP_ENDED_MS]


class SliceShort(Exception):
    """The tenant's slice has too little for this hold: the budget needs rebalancing first."""


def _room(
    request: ReservationRequest, accounts: dict[Subject, CreditAccount], held_on: CreditSlice | None, now: int
) -> list[dict]:
    """Each subject's availability after the hold (the tenant's: its slice's); 402 naming the first
    subject without room, ``SliceShort`` when the tenant's slice has too little."""
    after = []
    for subject in request.subjects:
        if subject == TENANT_SUBJECT:
            available = held_on.free(now) if held_on is not None else 0
            if available < request.credits:
                raise SliceShort
        else:
            account = accounts.get(subject) or CreditAccount(request.tenant, subject)
            available = balance(account, now).available
            if available < request.credits:
                raise PaymentRequired("Insufficient credits", subject=subject.shown(), available=available)
            if sum(1 for h in account.holds.values() if held(h, now)) >= MAX_OPEN_HOLDS:
                raise Conflict(f"A subject holds at most {MAX_OPEN_HOLDS} open reservations; release or settle some")
        after.append({"subject": subject.shown(), "available": available - request.credits})
    return after


def rebalance(tenant: str, wanted: tuple[int, int] | None = None) -> int:
    """Lend what the tenant has to the slice ``wanted = (slice, credits)`` names, or take back what
    its slices lend beyond it; what the tenant has available (less than wanted: nothing changes,
    and that was so at one instant)."""
    repo = credits()
    for round_number in range(decide.MAX_ROUNDS):
        now = now_ms()
        account, slices = repo.snapshot(tenant, SLICES)
        if account is None:
            return 0
        available = truly_available(account, list(slices.values()), now)
        if wanted is not None and available < wanted[1]:
            again = repo.slices(tenant, list(range(SLICES)))
            if {i: s.version for i, s in again.items()} == {i: s.version for i, s in slices.items()}:
                return available  # no slice moved across the account's read: that was the balance then
            continue
        lending = plan(slices, available, wanted, now)
        if not lending.changes:
            return available
        actions = repo.rebalance_actions(
            tenant, account, slices, lending.changes, lending.taken_from, lease_end(account, now)
        )
        if decide.commit(actions) is None:
            return available
        decide.pause(round_number)
    raise decide.gave_up("budget not rebalanced")


def _stored_or(request: ReservationRequest, refusal: Exception) -> tuple[dict, bool]:
    """The stored answer if this request was decided before (its hold may be what took the room)."""
    stored = credits().reservation(request.tenant, request.id, consistent=True)
    if stored is None:
        raise refusal
    return _replayed(stored, request), False


def reserve(request: ReservationRequest) -> tuple[dict, bool]:
    """Hold ``credits`` on every subject, or on none: (the answer, True) when held now, (the stored
    answer, False) for the same request again; 402 naming the first subject without room."""
    repo = credits()
    sliced = TENANT_SUBJECT in request.subjects
    index = slice_of(request.id) if sliced else None
    others = [s for s in request.subjects if s != TENANT_SUBJECT]
    for round_number in range(decide.MAX_ROUNDS):
        now = now_ms()
        accounts, held_on = repo.accounts_and_slice(request.tenant, others, index)
        if sliced and held_on is None:
            held_on = CreditSlice(index)
        ttl = request.ttl_seconds * 1000
        expires_at = bucket_end(now, ttl) if sliced else now + ttl
        try:
            room = _room(request, accounts, held_on, now)
        except SliceShort:
            available = rebalance(request.tenant, (index, request.credits))
            if available < request.credits:
                short = PaymentRequired("Insufficient credits", subject={}, available=available)
                return _stored_or(request, short)
            continue
        except (PaymentRequired, Conflict) as refused:
            return _stored_or(request, refused)
        answer = {"id": request.id, "credits": request.credits, "expiresAt": expires_at, "subjects": room}
        reservation = Reservation(
            request.tenant, request.id, request.subjects, request.credits, now, expires_at, request.fingerprint,
            answer, slice=index, bucket=expires_at if sliced else None,
        )  # fmt: skip
        forget = {s: _ended_holds(a, now) for s, a in accounts.items()}
        held_in = [accounts.get(s) or CreditAccount(request.tenant, s) for s in others]
        actions = repo.hold_actions(reservation, held_in, forget)
        if held_on is not None:
            actions.append(repo.slice_hold(request.tenant, held_on, expires_at, request.credits, now))
        reasons = decide.commit(actions)
        if reasons is None:
            return answer, True
        if reasons[0] == "ConditionalCheckFailed":  # the id is taken: this request again, or another
            stored = repo.reservation(request.tenant, request.id, consistent=True)
            if stored is not None:
                return _replayed(stored, request), False
        decide.pause(round_number)
    raise decide.gave_up("reservation not decided")


def stored_reservation(tenant: str, reservation_id: str) -> Reservation:
    """One reservation, or 404."""
    found = credits().reservation(tenant, reservation_id, consistent=True)
    if found is None:
        raise NotFound(f"No reservation '{reservation_id}'")
    return found


def release(tenant: str, reservation_id: str) -> Reservation:
    """Give back what is left of a hold at once (releasing twice, or after expiry, changes nothing)."""
    repo = credits()
    for round_number in range(decide.MAX_ROUNDS):
        reservation = stored_reservation(tenant, reservation_id)
        now = now_ms()
        if hold_state(reservation.released_at, reservation.expires_at, now) != "open":
            return reservation
        others = [s for s in reservation.subjects if s != TENANT_SUBJECT]
        accounts = repo.accounts(tenant, others)
        holding = [a for a in accounts.values() if reservation.id in a.holds]
        if decide.commit(repo.release_actions(reservation, holding, now, _consumed(reservation, accounts))) is None:
            if reservation.slice is not None:
                repo.release_on_slice(reservation)
            return stored_reservation(tenant, reservation_id)
        decide.pause(round_number)
    raise decide.gave_up("reservation not released")


def _consumed(reservation: Reservation, accounts: dict[Subject, CreditAccount]) -> int:
    """What counted events carrying the reservation consumed of it (as its first subject counts)."""
    first = reservation.subjects[0]
    if first == TENANT_SUBJECT:
        return reservation.settled
    hold = accounts[first].holds.get(reservation.id) if first in accounts else None
    return hold.settled if hold else 0


@dataclass(frozen=True)
class ReservationStanding:
    """Where a reservation stands now."""

    reservation: Reservation
    state: str
    held: int
    consumed: int


def standing(reservation: Reservation, now: int | None = None) -> ReservationStanding:
    """What a reservation still holds and what counted events consumed of it (on its first subject;
    once released, what they had consumed by then)."""
    now = now_ms() if now is None else now
    state = hold_state(reservation.released_at, reservation.expires_at, now)
    if state == "released":
        return ReservationStanding(reservation, state, 0, reservation.consumed_at_release)
    first = reservation.subjects[0]
    if first == TENANT_SUBJECT:
        left = max(0, reservation.credits - reservation.settled) if state == "open" else 0
        return ReservationStanding(reservation, state, left, reservation.settled)
    account = credits().account(reservation.tenant, first, consistent=True)
    hold = account.holds.get(reservation.id) if account else None
    if hold is None:
        return ReservationStanding(reservation, state, 0, 0)
    return ReservationStanding(reservation, state, held(hold, now), hold.settled)
