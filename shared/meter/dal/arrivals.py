"""Late arrivals: events received well after their event time, noted by the hour they arrived in.

Reconciliation walks time by the hour. An event received within ``LATE_AFTER_MS`` of its event
time is recounted with its event hour; one received later (a backfill, a producer that was
offline) would be missed that way, so ingestion notes its tenant and event day under the hour
it was *received*, before storing it, and reconciliation recounts those days when it reaches
that hour. Each container notes each (hour, tenant, day) once: a backfill costs a few writes,
not one per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from meter.core.caches import Cache
from meter.dal import keys, store
from meter.dal.records import UsageRecord

LATE_AFTER_MS = 15 * 60_000
HOUR_MS = 3_600_000
_noted = Cache(100_000)  # (received hour, tenant, day) this container has noted


def received_hour(record: UsageRecord) -> int:
    """Start (Unix ms) of the hour the record was received in."""
    return record.received_at // HOUR_MS * HOUR_MS


def is_late(record: UsageRecord) -> bool:
    """Whether reconciliation must find the record by when it arrived rather than by its time."""
    return record.received_at - record.ts > LATE_AFTER_MS


def note_late_arrivals(records: Iterable[UsageRecord]) -> None:
    """Note the days of the late records, per tenant and received hour (before they are stored)."""
    wanted: dict[tuple[int, str], set[str]] = defaultdict(set)
    for record in records:
        if is_late(record):
            day = keys.day_key(record.ts)
            if (received_hour(record), record.tenant, day) not in _noted:
                wanted[(received_hour(record), record.tenant)].add(day)
    for (hour, tenant), days in wanted.items():
        store.control().mark_late(hour, tenant, days)
        for day in days:
            _noted.put((hour, tenant, day), True)
