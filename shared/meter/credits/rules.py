"""The rules of credits, free of storage: which grant covers a credit, in which order, and what a
subject has left.

A grant is in effect from ``effective_at`` until it expires or is voided. A recurring grant is an
allowance: each local period (day, ISO week, month in its zone) is an *instance* holding
``amount`` anew, ending with the period. Credits are consumed at their event's time, capped at
the time the event was received (a clock ahead of ours cannot spend an allowance early).

Consumption is kept per **segment**: the time between two consecutive boundaries of the
subject's grants (a start, an expiry, a void, a period start). Within a segment the grants in
effect do not change, so its consumption burns them in the burn order (priority, then earlier
expiry, none last, then earlier start, then id), in the order of the segments. A boundary is
never set before the moment it is made (grants start now or later; a void is from now), so
every credit already counted lies before any new boundary: a segment's consumption never has to
be split again, and each segment is summed once, whenever its events are counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from meter.core.localtime import DAY, MONTH, WEEK, next_boundary, window_start
from meter.dal.models import CreditAccount, GrantTerms, Hold

PERIODS = {"day": DAY, "week": WEEK, "month": MONTH}
FOREVER = 2**63 - 1


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def life_end(terms: GrantTerms) -> int | None:
    """When the grant stops covering anything: its expiry or its void, whichever is first."""
    ends = [at for at in (terms.expires_at, terms.voided_at) if at is not None]
    return min(ends) if ends else None


@dataclass(frozen=True)
class Instance:
    """One grant's window of coverage holding ``at``: the grant itself, or one period of an allowance."""

    terms: GrantTerms
    start: int
    end: int  # FOREVER when open-ended (voids included)
    expires: int  # the declared end, which orders the burn (a void does not reorder)

    @property
    def key(self) -> tuple[str, int]:
        return self.terms.id, self.start

    @property
    def burn_order(self) -> tuple[int, int, int, str]:
        return self.terms.priority, self.expires, self.start, self.terms.id


def instance_at(terms: GrantTerms, at: int) -> Instance | None:
    """The grant's instance in effect at ``at``, or None."""
    end = life_end(terms)
    if at < terms.effective_at or (end is not None and at >= end):
        return None
    declared = terms.expires_at if terms.expires_at is not None else FOREVER
    if terms.period is None:
        return Instance(terms, terms.effective_at, end if end is not None else FOREVER, declared)
    size, zone = PERIODS[terms.period], _zone(terms.time_zone or "UTC")
    period_end = next_boundary(at, size, zone)
    start = max(window_start(at, size, zone), terms.effective_at)
    return Instance(terms, start, min(period_end, end if end is not None else FOREVER), min(period_end, declared))


def credit_time(ts: int, received_at: int) -> int:
    """When an event's credits are consumed: its time, never later than we received it."""
    return min(ts, received_at)


def segment_start(grants: Iterable[GrantTerms], at: int) -> int:
    """The start of the segment holding ``at``: the last grant boundary at or before it (0: none)."""
    start = 0
    for terms in grants:
        for boundary in (terms.effective_at, terms.expires_at, terms.voided_at):
            if boundary is not None and start < boundary <= at:
                start = boundary
        if terms.period is not None and (found := instance_at(terms, at)) is not None:
            start = max(start, found.start)
    return start


@dataclass(frozen=True)
class BurnDown:
    """What each instance has burned (by ``Instance.key``), and what no grant covered, per segment."""

    burned: dict[tuple[str, int], int]
    uncovered: dict[int, int]


def burn_down(grants: Iterable[GrantTerms], consumed: dict[int, int]) -> BurnDown:
    """Burn each segment's consumption, segment after segment, into the instances in effect there."""
    grants = tuple(grants)
    burned: dict[tuple[str, int], int] = defaultdict(int)
    uncovered: dict[int, int] = {}
    for start in sorted(consumed):
        left = consumed[start]
        eligible = sorted((i for g in grants if (i := instance_at(g, start))), key=lambda i: i.burn_order)
        for instance in eligible:
            taken = min(left, instance.terms.amount - burned[instance.key])
            if taken > 0:
                burned[instance.key] += taken
                left -= taken
        if left > 0:
            uncovered[start] = left
    return BurnDown(dict(burned), uncovered)


def held(hold: Hold, now: int) -> int:
    """What a hold still holds: what is left of it until it expires (a release drops the hold)."""
    if now >= hold.expires_at:
        return 0
    return max(0, hold.credits - hold.settled)


def hold_state(released_at: int | None, expires_at: int, now: int) -> str:
    """``released``, ``expired`` or ``open``."""
    if released_at is not None:
        return "released"
    return "expired" if now >= expires_at else "open"


@dataclass(frozen=True)
class GrantStanding:
    """One grant in effect now: its current instance and what is left of it."""

    instance: Instance
    remaining: int


@dataclass(frozen=True)
class Balance:
    """A subject's credits now (``available = max(0, granted - consumed - reserved)``)."""

    granted: int
    consumed: int
    reserved: int
    overage: int
    grants: tuple[GrantStanding, ...]

    @property
    def available(self) -> int:
        return max(0, self.granted - self.consumed - self.reserved)


def _overage_since(grants: tuple[GrantTerms, ...], current: list[Instance], now: int) -> int:
    """Where the current accounting runs from: the earliest current instance's start, or, with
    none in effect, the end of the last grant that ended (overage after it stays reported)."""
    if current:
        return min(i.start for i in current)
    ended = [end for g in grants if (end := life_end(g)) is not None and end <= now]
    return max(ended) if ended else now + 1


def balance(account: CreditAccount, now: int) -> Balance:
    """The subject's balance at ``now``: grants in effect, what they burned, holds open, overage."""
    down = burn_down(account.grants, account.consumed)
    current = sorted((i for g in account.grants if (i := instance_at(g, now))), key=lambda i: i.burn_order)
    standings = tuple(GrantStanding(i, i.terms.amount - down.burned.get(i.key, 0)) for i in current)
    since = _overage_since(account.grants, current, now)
    return Balance(
        granted=sum(i.terms.amount for i in current),
        consumed=sum(down.burned.get(i.key, 0) for i in current),
        reserved=sum(held(h, now) for h in account.holds.values()),
        overage=sum(credits for start, credits in down.uncovered.items() if since <= start <= now),
        grants=standings,
    )


def remaining_of(account: CreditAccount, grant_id: str, now: int) -> int:
    """What is left of one grant now: of its current instance, all of it before it starts, 0 after."""
    terms = next((g for g in account.grants if g.id == grant_id), None)
    if terms is None:
        return 0
    current = instance_at(terms, now)
    if current is None:
        return terms.amount if now < terms.effective_at else 0
    return terms.amount - burn_down(account.grants, account.consumed).burned.get(current.key, 0)


def latest_start(account: CreditAccount, now: int) -> int | None:
    """When the most recent of the grants in effect now started (a grant, or this period's
    allowance): the last moment a grant lifted the balance. None if none is in effect."""
    starts = [i.start for g in account.grants if (i := instance_at(g, now))]
    return max(starts) if starts else None


def level_at(account: CreditAccount, at: int) -> int:
    """What the grants in effect at ``at`` had left then, from what was consumed before it (holds
    aside): the balance a grant starting at ``at`` lifted it to."""
    down = burn_down(account.grants, {start: n for start, n in account.consumed.items() if start < at})
    current = [i for g in account.grants if (i := instance_at(g, at))]
    return sum(i.terms.amount - down.burned.get(i.key, 0) for i in current)
