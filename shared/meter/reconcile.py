"""Reconciliation: recount closed buckets from the records and set drifted aggregates to the
recount. Run on a schedule (template.yaml) and safe to run at any time, any number of times.

For one tenant and a window of whole hours (by event time):

1. The window's records come from every ``ByTenant`` shard.
2. The stream counts a record only while it is younger than the stream mapping's
   ``MaximumRecordAgeInSeconds`` (``STREAM_MAX_AGE_MS``): after that Lambda hands it to the
   on-failure destination instead. A window is reconciled only when every record in it was received
   longer ago than that, plus a margin for the tumbling window and its commit (``HORIZON_MS``), so
   nothing can still be on its way to an aggregate of it. Windows with younger records are
   deferred.
3. Every aggregate item of the window (each dimension value's hour and day items, and for days
   every value the ``ByList`` index knows) is compared with the recount of the records. An item
   that differs (an aggregate lost or corrupted, or events the stream dropped) is set to the
   recount, only if the window's records did not change while they were read, and with a
   condition that its counters still hold what was read, so a concurrent writer is never
   overwritten; the next run sees it settled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from meter import keys, store
from meter.aggregation import coalesce, listing_attributes
from meter.dimensions import AGENT, AGENT_SCOPED, DIMENSIONS, TENANT, Dimension
from meter.logs import logger
from meter.queries import counters, listed_items, tenant_records
from meter.records import InvalidRecord, UsageRecord, record_from_item
from meter.timerange import DAY_MS, HOUR_MS, day_key, hour_key

STREAM_MAX_AGE_MS = 3_600_000  # the stream mapping's MaximumRecordAgeInSeconds (template.yaml)
HORIZON_MS = STREAM_MAX_AGE_MS + 15 * 60_000  # plus the longest tumbling window and its commit

AggregateKey = tuple[str, str]


@dataclass
class ReconcileReport:
    """What one reconciliation of one tenant and window found and did."""

    records: int = 0
    unreadable: int = 0  # records no recount can read (never counted; see the set-aside items)
    drifted: int = 0
    repaired: int = 0
    deferred: int = 0  # drifted items left for the next run because they changed while read
    drift: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: ReconcileReport) -> None:
        for name in ("records", "unreadable", "drifted", "repaired", "deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.drift += other.drift


def _records(tenant: str, start: int, end: int) -> tuple[list[UsageRecord], int]:
    """The window's records, and how many could not be read as records."""
    found, unreadable = [], 0
    for item in tenant_records(tenant, start, end):
        try:
            found.append(record_from_item(item))
        except InvalidRecord:
            unreadable += 1
    return found, unreadable


def _within(key: AggregateKey, start: int, end: int) -> bool:
    """Whether an aggregate item's bucket (a day or an hour) lies wholly inside ``[start, end)``."""
    bucket = keys.parse_aggregate(*key)
    return start <= bucket.bucket_start and bucket.bucket_start + bucket.bucket_ms <= end


def _listed_day_keys(tenant: str, start: int, end: int) -> set[AggregateKey]:
    """Day items of every listed value active in the window (found even if no record names them)."""

    def listed(dimension: Dimension, scope: str = "") -> set[AggregateKey]:
        return {(item["pk"], item["sk"]) for item in listed_items(tenant, dimension, start, end, scope)}

    found = {
        key
        for dimension in DIMENSIONS
        if dimension.listed and dimension not in AGENT_SCOPED
        for key in listed(dimension)
    }
    parsed = [keys.parse_aggregate(pk, sk) for pk, sk in found]
    agents = {key.value for key in parsed if key.code == AGENT.code}
    return found | {key for agent in agents for scoped in AGENT_SCOPED for key in listed(scoped, agent)}


def _stored(wanted: set[AggregateKey]) -> dict[AggregateKey, Counter]:
    """Current counters of each aggregate item (absent items as empty), strongly consistent."""
    ordered = sorted(wanted)
    items = store.aggregates().get_many([store.Aggregates.key(*key) for key in ordered], consistent=True)
    found = {(item["pk"], item["sk"]): counters(item) for item in items}
    return {key: +found.get(key, Counter()) for key in ordered}


def _repair(key: AggregateKey, seen: Counter, expected: Counter, listing: dict[str, str] | None = None) -> bool:
    """Set the item's counters to ``expected`` if they still hold ``seen``; False if they moved.

    ``listing`` (``lk`` and ``v``) keeps a recreated day item of a listed dimension on ``ByList``.
    """
    names = sorted(set(seen) | set(expected))
    attribute = {f"#c{i}": name for i, name in enumerate(names)}
    values: dict[str, Any] = {}
    sets, removes, conditions = [], [], []
    if listing and expected:
        attribute.update({"#lk": "lk", "#lv": "v"})
        values.update({":lk": {"S": listing["lk"]}, ":lv": {"S": listing["v"]}})
        sets += ["#lk = if_not_exists(#lk, :lk)", "#lv = if_not_exists(#lv, :lv)"]
    for i, name in enumerate(names):
        if expected[name]:
            sets.append(f"#c{i} = :e{i}")
            values[f":e{i}"] = {"N": str(expected[name])}
        else:
            removes.append(f"#c{i}")
        if seen[name]:
            conditions.append(f"#c{i} = :s{i}")
            values[f":s{i}"] = {"N": str(seen[name])}
        else:
            conditions.append(f"(attribute_not_exists(#c{i}) OR #c{i} = :zero)")
            values[":zero"] = {"N": "0"}
    expression = (f"SET {', '.join(sets)} " if sets else "") + (f"REMOVE {', '.join(removes)}" if removes else "")
    repaired = store.aggregates().update(
        store.Aggregates.key(*key),
        expression.strip(),
        " AND ".join(conditions),
        ExpressionAttributeNames=attribute,
        ExpressionAttributeValues=values,
    )
    return repaired is not None


def reconcile_window(tenant: str, start: int, end: int, now: int) -> ReconcileReport:
    """Reconcile one tenant's aggregate items whose buckets lie wholly inside ``[start, end)``."""
    report = ReconcileReport()
    records, report.unreadable = _records(tenant, start, end)
    report.records = len(records)
    if any(record.received_at > now - HORIZON_MS for record in records):
        report.deferred = 1  # the stream may still be counting some of them
        return report
    expected = {k: +v for k, v in coalesce(records).items() if _within(k, start, end)}
    listing = {k: v for record in records for k, v in listing_attributes(record).items()}
    whole_tenant = TENANT.pk(tenant, "")
    buckets = [keys.hour_sk(hour_key(h)) for h in range(start, end, HOUR_MS)]
    buckets += [keys.day_sk(day_key(d)) for d in range(start, end, DAY_MS)]
    # The tenant's own items, and every listed value's day items, are candidates even when no record names them.
    candidates = set(expected) | {(whole_tenant, b) for b in buckets if _within((whole_tenant, b), start, end)}
    candidates |= {k for k in _listed_day_keys(tenant, start, end) if _within(k, start, end)}
    stored = _stored(candidates)
    drifted = {k: v for k, v in stored.items() if v != expected.get(k, Counter())}
    if not drifted:
        return report
    report.drifted = len(drifted)
    if {r.id for r in _records(tenant, start, end)[0]} != {r.id for r in records}:
        report.deferred = len(drifted)  # records arrived while we read: settle on the next run
        return report
    for key, seen in sorted(drifted.items()):
        want = expected.get(key, Counter())
        report.drift.append({"pk": key[0], "sk": key[1], "stored": dict(seen), "recount": dict(want)})
        if _repair(key, seen, want, listing.get(key)):
            report.repaired += 1
        else:
            report.deferred += 1
    return report


def closed_windows(now: int) -> list[tuple[int, int]]:
    """What an hourly run reconciles: the hour that closed a horizon ago, and the whole day when
    that hour was the day's last."""
    hour_end = (now - HORIZON_MS) // HOUR_MS * HOUR_MS
    windows = [(hour_end - HOUR_MS, hour_end)]
    if hour_end % DAY_MS == 0:
        windows.append((hour_end - DAY_MS, hour_end))
    return windows


def reconcile_all(now: int, windows: list[tuple[int, int]] | None = None) -> ReconcileReport:
    """Reconcile every tenant over ``windows`` (default: what closed since the last hourly run)."""
    from meter.tenants import tenant_names

    total = ReconcileReport()
    for tenant in tenant_names():
        for start, end in windows or closed_windows(now):
            report = reconcile_window(tenant, start, end, now)
            if report.drift:
                logger.warning("aggregates drifted and were recounted", extra={"tenant": tenant, "drift": report.drift})
            total.add(report)
    return total
