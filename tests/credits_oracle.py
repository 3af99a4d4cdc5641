"""The credit rules written again from their statement, by brute force: the oracle the credit tests
compare the service with (``meter.credits.rules`` keeps consumption per segment; this walks every
event in time order, and finds local periods with calendar arithmetic, no boundary search)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from meter.core.timerange import to_ms
from meter.dal.models import GrantTerms

INFINITY = float("inf")


def _local_midnight(day: date, zone: ZoneInfo) -> int:
    return to_ms(datetime.combine(day, time(0), tzinfo=zone))


def period_bounds(period: str, zone_name: str, at: int) -> tuple[int, int]:
    """The local day, ISO week or month holding ``at``: its first instant and the next period's."""
    zone = ZoneInfo(zone_name)
    local = datetime.fromtimestamp(at / 1000, zone).date()
    if period == "day":
        first, after = local, local + timedelta(days=1)
    elif period == "week":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
    else:
        first = local.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    return _local_midnight(first, zone), _local_midnight(after, zone)


@dataclass(frozen=True)
class Covering:
    grant: GrantTerms
    start: int
    declared_end: float

    @property
    def key(self) -> tuple[str, int]:
        return self.grant.id, self.start

    @property
    def order(self) -> tuple:
        return self.grant.priority, self.declared_end, self.start, self.grant.id


def covering(grant: GrantTerms, at: int) -> Covering | None:
    """The grant's instance covering ``at``, from the rules' words."""
    ends = [x for x in (grant.expires_at, grant.voided_at) if x is not None]
    if at < grant.effective_at or (ends and at >= min(ends)):
        return None
    declared = INFINITY if grant.expires_at is None else grant.expires_at
    if grant.period is None:
        return Covering(grant, grant.effective_at, declared)
    first, after = period_bounds(grant.period, grant.time_zone or "UTC", at)
    return Covering(grant, max(first, grant.effective_at), min(after, declared))


@dataclass(frozen=True)
class Recount:
    granted: int
    consumed: int
    overage: int
    remaining: dict[str, int]


def recount(grants: list[GrantTerms], uses: list[tuple[int, int]], now: int) -> Recount:
    """Burn every use ``(credit time, credits)`` in time order into the instances covering it
    (priority, earlier declared end, earlier start, id), then read the balance at ``now``."""
    burned: dict[tuple[str, int], int] = defaultdict(int)
    uncovered: list[tuple[int, int]] = []
    for at, credits in sorted(uses):
        for instance in sorted((c for g in grants if (c := covering(g, at))), key=lambda c: c.order):
            taken = min(credits, instance.grant.amount - burned[instance.key])
            burned[instance.key] += taken
            credits -= taken
        if credits:
            uncovered.append((at, credits))
    current = [c for g in grants if (c := covering(g, now))]
    if current:
        since = min(c.start for c in current)
    else:
        ended = [min(x for x in (g.expires_at, g.voided_at) if x is not None) for g in grants
                 if g.expires_at is not None or g.voided_at is not None]  # fmt: skip
        ended = [end for end in ended if end <= now]
        since = max(ended) if ended else now + 1
    return Recount(
        granted=sum(c.grant.amount for c in current),
        consumed=sum(burned[c.key] for c in current),
        overage=sum(credits for at, credits in uncovered if since <= at <= now),
        remaining={c.grant.id: c.grant.amount - burned[c.key] for c in current},
    )
