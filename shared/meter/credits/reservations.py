"""Reservations: credits held on every listed subject at once, or on none.

A reservation reads each subject's account (strongly consistent), decides from what is
available there *now* (grants in effect, what they burned, holds still open), and writes the
reservation and every hold in one transaction conditional on each account's version. Every write
to an account moves its version (the aggregator's too), so a decision made on a stale view is
cancelled and made again on a fresh one: no two reservations can both spend the same credit, and
a refusal is only ever made on what an account held at the moment it was read.
"""

from __future__ import annotations

from dataclasses import dataclass

from meter.core.errors import Conflict, NotFound, PaymentRequired
from meter.core.timerange import now_ms
from meter.credits import decide
from meter.credits.rules import balance, held, hold_state
from meter.dal.credits import credits
from meter.dal.models import CreditAccount, Reservation, Subject

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


def _room(request: ReservationRequest, accounts: dict[Subject, CreditAccount], now: int) -> list[dict]:
    """Each subject's availability after the hold; 402 naming the first without room."""
    after = []
    for subject in request.subjects:
        account = accounts.get(subject) or CreditAccount(request.tenant, subject)
        available = balance(account, now).available
        if available < request.credits:
            raise PaymentRequired("Insufficient credits", subject=subject.shown(), available=available)
        if sum(1 for h in account.holds.values() if held(h, now)) >= MAX_OPEN_HOLDS:
            raise Conflict(f"A subject holds at most {MAX_OPEN_HOLDS} open reservations; release or settle some")
        after.append({"subject": subject.shown(), "available": available - request.credits})
    return after


def reserve(request: ReservationRequest) -> tuple[dict, bool]:
    """Hold ``credits`` on every subject, or on none: (the answer, True) when held now, (the stored
    answer, False) for the same request again; 402 naming the first subject without room."""
    repo = credits()
    for round_number in range(decide.MAX_ROUNDS):
        now = now_ms()
        accounts = repo.accounts(request.tenant, list(request.subjects), consistent=True)
        expires_at = now + request.ttl_seconds * 1000
        try:
            room = _room(request, accounts, now)
        except (PaymentRequired, Conflict):
            stored = repo.reservation(request.tenant, request.id, consistent=True)
            if stored is not None:  # the same request again, after its hold took the room
                return _replayed(stored, request), False
            raise
        answer = {"id": request.id, "credits": request.credits, "expiresAt": expires_at, "subjects": room}
        reservation = Reservation(
            request.tenant, request.id, request.subjects, request.credits, now, expires_at, request.fingerprint, answer
        )
        forget = {s: _ended_holds(a, now) for s, a in accounts.items()}
        held_on = [accounts.get(s) or CreditAccount(request.tenant, s) for s in request.subjects]
        reasons = decide.commit(repo.hold_actions(reservation, held_on, forget))
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
        accounts = repo.accounts(tenant, list(reservation.subjects), consistent=True)
        holding = [a for a in accounts.values() if reservation.id in a.holds]
        if decide.commit(repo.release_actions(reservation, holding, now)) is None:
            return stored_reservation(tenant, reservation_id)
        decide.pause(round_number)
    raise decide.gave_up("reservation not released")


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
    account = credits().account(reservation.tenant, reservation.subjects[0], consistent=True)
    hold = account.holds.get(reservation.id) if account else None
    if hold is None:
        return ReservationStanding(reservation, state, 0, 0)
    return ReservationStanding(reservation, state, held(hold, now), hold.settled)
