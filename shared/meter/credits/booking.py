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
from meter.dal.credits import VERSION, account_key, consumed_counter, credits, settled_counter
from meter.dal.models import TENANT_SUBJECT, CreditAccount, Subject
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
    """The accounts a batch of records may add to, read once; ``additions`` of each record."""

    def __init__(self, accounts: dict[tuple[str, Subject], CreditAccount]):
        self.accounts = accounts

    @classmethod
    def of(cls, records: Iterable[UsageRecord]) -> Book:
        """The accounts of the credited records' subjects, for tenants that grant credits."""
        credited = [r for r in records if r.credits > 0]
        granting = credits().granting(sorted({r.tenant for r in credited})) if credited else set()
        wanted = sorted({(r.tenant, s) for r in credited if r.tenant in granting for s in subjects_of(r)})
        return cls(credits().accounts_of(wanted) if wanted else {})

    def additions(self, record: UsageRecord) -> list[tuple[AggregateKey, Counter[str]]]:
        """What one record adds to each account it touches (consumption, settlement, version)."""
        if not record.credits or not self.accounts:
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
        return added
