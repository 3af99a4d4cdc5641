"""A tenant-wide budget split into slices, so that one tenant can take 10,000 reservations a second.

One account item takes about 1,000 writes a second. So the tenant's account (its grants and
consumption, as for every subject) lends its available credits to ``SLICES`` slice items, and a
reservation decides on one slice alone (chosen by its id), writing only there. A slice holds:

- ``quota``, credits lent to it, valid until ``until`` (the next moment a grant in effect ends or
  an allowance renews: after it the slice lends nothing until it is rebalanced);
- ``reserved[b]``: the credits of the holds taken on it that expire at ``b`` (the end of a
  1-second bucket for TTLs under a minute, of a 10-second one beyond);
- ``settled[b]``: what counted events carrying those holds' ids consumed of them.

A slice has ``free = quota - committed`` where ``committed`` is what its open buckets reserve plus
what its expired buckets' holds consumed (consumed credits leave the slice for good; the rest of
an expired hold comes back by itself). Releases take the hold off its bucket and its consumption
off the quota.

**Rebalancing** reads every slice, then the account (strongly consistent, in that order), and
computes what the tenant truly has available (its grants' remaining, less what every open hold still
holds). The slice that ran short gets what it needs, and a share of the budget, from what no slice
lends; or else from the slices lending most. It adds to each quota it changes the difference from
what the slice had, in one transaction conditional on the account's version (so two rebalances
never both apply, and a commit of consumption in between makes it start again) and on the version
of each slice it takes credits back from (so none of them lent those credits meanwhile). What the
slices lend beyond what the tenant has (a void, consumption that carried no reservation) is taken
back by the next rebalance; grants and voids on the tenant rebalance at once.

Why the sum of the slices' free credits never exceeds what the tenant has:

- Adding (not setting) keeps every hold, release and settlement that lands on a slice between its
  read and the write: each moves that slice's free credits exactly as it moves the tenant's.
- A settlement counted between a slice's read and the account's shows in the account only (its
  consumption) and not yet in the slice (its hold): that makes the computed figure smaller than the
  truth, never larger.

A refusal is made only when the slices, read again after the account, have not moved: the figure
is then the tenant's balance at the instant the account was read.
"""

from __future__ import annotations

from dataclasses import dataclass

from meter.credits.rules import FOREVER, balance, instance_at, life_end
from meter.dal.keys import stable_shard
from meter.dal.models import CreditAccount, CreditSlice

SLICES = 64  # 10,000 reservations/s (a hold and its release, 2 WCU each) = 625 WCU/s per slice
# A hold on a slice expires at the end of the bucket its TTL ends in: whole seconds for TTLs under a
# minute, 10 seconds beyond (at most 1/10 longer than asked), so a slice keeps a few dozen buckets.
SHORT_TTL_MS, SHORT_BUCKET_MS, BUCKET_MS = 60_000, 1_000, 10_000


def slice_of(reservation_id: str) -> int:
    """Which slice a reservation holds on (stable: the aggregator finds it again by the id)."""
    return stable_shard(reservation_id, SLICES)


def bucket_end(now: int, ttl_ms: int) -> int:
    """When a hold on a slice taken at ``now`` for ``ttl_ms`` expires: the end of its bucket."""
    size = SHORT_BUCKET_MS if ttl_ms < SHORT_TTL_MS else BUCKET_MS
    return -(-(now + ttl_ms) // size) * size


def lease_end(account: CreditAccount, now: int) -> int:
    """Until when the grants in effect now stay as they are: the first end or renewal after now,
    or a grant that starts later."""
    ends = [FOREVER]
    for terms in account.grants:
        current = instance_at(terms, now)
        if current is not None:
            ends.append(current.end)
        elif terms.effective_at > now and (life_end(terms) or FOREVER) > terms.effective_at:
            ends.append(terms.effective_at)
    return min(ends)


def truly_available(account: CreditAccount, slices: list[CreditSlice], now: int) -> int:
    """What the tenant has: its grants' remaining now, less what every open hold still holds."""
    found = balance(account, now)
    return max(0, found.granted - found.consumed - sum(s.held(now) for s in slices))


@dataclass(frozen=True)
class Lending:
    """What a rebalance adds to each slice's quota, and which of them must be as they were read
    (those it takes credits back from: they must not have lent them meanwhile)."""

    changes: dict[int, int]
    taken_from: frozenset[int]


def lent(found: CreditSlice | None, now: int) -> int:
    """What a slice lends now (nothing once its lease has run out)."""
    return max(0, found.free(now)) if found is not None else 0


def plan(slices: dict[int, CreditSlice], available: int, wanted: tuple[int, int] | None, now: int) -> Lending:
    """How to lend ``available`` so that the slices never lend more than it: the slice that
    ``wanted = (slice, credits)`` names gets what it needs and a share (``available // SLICES``)
    from what no slice lends, or else from the slices lending most, which are then written only as
    they were read. With nothing wanted, only what the slices lend beyond ``available`` is taken back."""
    lending = {i: lent(slices.get(i), now) for i in range(SLICES)}
    unlent = available - sum(lending.values())
    target = dict(lending)
    if wanted is not None:
        index, credits = wanted
        need = max(0, credits - lending[index])
        give = min(max(unlent, 0), need + available // SLICES) if unlent >= need else need
        target[index] += give
        unlent -= give
    for i in sorted((i for i in range(SLICES) if wanted is None or i != wanted[0]), key=lambda i: -target[i]):
        if unlent >= 0:
            break
        taken = min(target[i], -unlent)
        target[i] -= taken
        unlent += taken
    changes, taken_from = {}, set()
    for i in range(SLICES):
        found = slices.get(i) or CreditSlice(i)
        renewed = found.until <= now and (target[i] or i in slices)
        if target[i] != lending[i] or renewed:
            changes[i] = found.committed(now) + target[i] - found.quota
            if target[i] < lending[i]:
                taken_from.add(i)
    return Lending(changes, frozenset(taken_from))
