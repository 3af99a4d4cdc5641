"""What counted records add to credit accounts: the aggregator folds these beside the totals, so
each is added exactly once, in the same transactions as the counts (``meter.counting.aggregation``).

A record's credits go to the account of each subject it belongs to (its tenant, its end user, its
agent) that has one, in the burn segment holding its credit time; a record carrying a
``reservationId`` also settles that hold on each of those accounts that holds it. Accounts are
read once per invocation, strongly consistent; a tenant that never made a grant costs one read of
its (absent) granting mark per invocation, and no write.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from meter.credits.rules import credit_time, segment_start
from meter.dal.credits import (
    RESERVATION_SETTLED,
    VERSION,
    account_key,
    consumed_counter,
    credits,
    reservation_key,
    settled_counter,
    slice_key,
    slice_settled_counter,
)
from meter.dal.models import TENANT_SUBJECT, CreditAccount, Reservation, Subject
from meter.dal.records import UsageRecord

AggregateKey = tuple[str, str]


def subjects_of(record: UsageRecord) -> list[Subject]:
    """The subjects whose credits a record consumes: its tenant, end user and agent."""
    found = [TENANT_SUBJECT]
    if record.identifier is not None:
        found.append(Subject("identifier", record.identifier))
    if record.agent_id is not None:
        found.append(Subject("agent", record.agent_id))
    return found


class Book:
    """The accounts (and sliced reservations) a batch of records may add to, read once;
    ``additions`` of each record."""

    def __init__(
        self,
        accounts: dict[tuple[str, Subject], CreditAccount],
        reservations: dict[tuple[str, str], Reservation] | None = None,
    ):
        self.accounts = accounts
        self.reservations = reservations or {}

    @classmethod
    def of(cls, records: Iterable[UsageRecord]) -> Book:
        """The accounts of the credited records' subjects, and the reservations they carry, for
        tenants that grant credits."""
        repo = credits()
        credited = [r for r in records if r.credits > 0]
        granting = repo.granting(sorted({r.tenant for r in credited})) if credited else set()
        mine = [r for r in credited if r.tenant in granting]
        wanted = sorted({(r.tenant, s) for r in mine for s in subjects_of(r)})
        holds = sorted({(r.tenant, rid) for r in mine if (rid := r.value_of("reservationId")) is not None})
        return cls(repo.accounts_of(wanted) if wanted else {}, repo.reservations_of(holds) if holds else {})

    def additions(self, record: UsageRecord) -> list[tuple[AggregateKey, Counter[str]]]:
        """What one record adds to each account it touches (consumption, settlement, version)."""
        if not record.credits or not (self.accounts or self.reservations):
            return []
        at, hold = credit_time(record.ts, record.received_at), record.value_of("reservationId")
        added = []
        for subject in subjects_of(record):
            account = self.accounts.get((record.tenant, subject))
            if account is None:
                continue
            counters = Counter({consumed_counter(segment_start(account.grants, at)): record.credits, VERSION: 1})
            if hold is not None and hold in account.holds:
                counters[settled_counter(hold)] = record.credits
            added.append((account_key(record.tenant, subject), counters))
        sliced = self.reservations.get((record.tenant, hold)) if hold is not None else None
        if sliced is not None and sliced.slice is not None:  # the tenant's hold is on a slice of its budget
            settled = Counter({slice_settled_counter(sliced.bucket): record.credits, VERSION: 1})
            added.append((slice_key(record.tenant, sliced.slice), settled))
            added.append((reservation_key(record.tenant, hold), Counter({RESERVATION_SETTLED: record.credits})))
        return added
