"""Reconciliation: recompute closed buckets from the records, count what the stream dropped,
repair drift. Run on a schedule (template.yaml) and safe to run at any time, any number of times.

For one tenant and a closed window of whole hours:

1. Records of the window come from the ``ByTenant`` index; whether each is counted comes from its
   ``countedAt`` marker on the base item (the index does not project it).
2. Records without a marker that are older than the grace period were dropped by the stream
   after its retries (or are still being retried): they are counted now, through the same
   exactly-once path as the aggregator, and reported as ``UncountedEvents``.
3. Every aggregate item of the window (each dimension value's hour and day items, and for days
   every value the ``ByList`` index knows) is compared with the recount of counted records. A
   counted record's contribution and its marker are written in one transaction, so the two
   agree at any instant unless an aggregate was lost or corrupted.
4. A drifted item is repaired only if its records did not change while it was read (a re-read
   of the window's markers), and with a condition that its counters still hold what was read:
   a concurrent aggregation is never overwritten; the next run sees it settled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from meter import dynamo
from meter.aggregation import aggregate, coalesce
from meter.config import get_settings
from meter.dimensions import AGENT, AGENT_MODEL, DIMENSIONS, TENANT, Dimension
from meter.logs import logger
from meter.queries import counters, listed_items, record_range
from meter.records import UsageRecord, record_from_item
from meter.timerange import DAY_MS, HOUR_MS, day_key, hour_key

GRACE_MS = 15 * 60_000  # how long a record may wait for the stream before it counts as dropped

AggregateKey = tuple[str, str]


@dataclass
class ReconcileReport:
    """What one reconciliation of one tenant and window found and did."""

    records: int = 0
    uncounted: int = 0
    drifted: int = 0
    repaired: int = 0
    deferred: int = 0  # drifted items left for the next run because they changed while read
    drift: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: ReconcileReport) -> None:
        for name in ("records", "uncounted", "drifted", "repaired", "deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.drift += other.drift


def _records(tenant: str, start: int, end: int) -> list[UsageRecord]:
    # The index projects what a recount needs; the tenant is its partition key.
    return [record_from_item({**item, "tenant": tenant}) for item in record_range("ByTenant", "tk", tenant, start, end)]


def _counted_ids(records: list[UsageRecord]) -> set[str]:
    """Ids of the records whose ``countedAt`` marker is set (strongly consistent reads)."""
    table, counted = get_settings().records_table, set()
    keys = [{"pk": {"S": f"{r.tenant}#{r.id}"}} for r in records]
    for start in range(0, len(keys), 100):
        request = {table: {"Keys": keys[start : start + 100], "ProjectionExpression": "id, countedAt"}}
        request[table]["ConsistentRead"] = True
        while request:
            page = dynamo.client().batch_get_item(RequestItems=request)
            for item in page["Responses"].get(table, []):
                if "countedAt" in item:
                    counted.add(item["id"]["S"])
            request = page.get("UnprocessedKeys") or {}
    return counted


def _within(key: AggregateKey, start: int, end: int) -> bool:
    """Whether an aggregate item's bucket (``D#day`` or ``H#hour``) lies wholly inside ``[start, end)``."""
    daily = key[1][0] == "D"
    moment = datetime.strptime(key[1][2:], "%Y-%m-%d" if daily else "%Y-%m-%dT%H").replace(tzinfo=UTC)
    bucket = int(moment.timestamp() * 1000)
    return start <= bucket and bucket + (DAY_MS if daily else HOUR_MS) <= end


def _listed_day_keys(tenant: str, start: int, end: int) -> set[AggregateKey]:
    """Day items of every listed value active in the window (found even if no record names them)."""

    def listed(dimension: Dimension, scope: str = "") -> set[AggregateKey]:
        return {(item["pk"], item["sk"]) for item in listed_items(tenant, dimension, start, end, scope)}

    keys = {
        key
        for dimension in DIMENSIONS
        if dimension.listed and dimension is not AGENT_MODEL
        for key in listed(dimension)
    }
    agents = {pk.split("#", 2)[2] for pk, _ in keys if pk.startswith(f"{tenant}#{AGENT.code}#")}
    return keys | {key for agent in agents for key in listed(AGENT_MODEL, agent)}


def _stored(keys: set[AggregateKey]) -> dict[AggregateKey, Counter]:
    """Current counters of each aggregate item (absent items as empty), strongly consistent."""
    table, found = get_settings().aggregates_table, {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), 100):
        request = {
            table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in ordered[start : start + 100]],
                "ConsistentRead": True,
            }
        }
        while request:
            page = dynamo.client().batch_get_item(RequestItems=request)
            for item in page["Responses"].get(table, []):
                plain = dynamo.deserialize(item)
                found[(plain["pk"], plain["sk"])] = counters(plain)
            request = page.get("UnprocessedKeys") or {}
    return {key: +found.get(key, Counter()) for key in ordered}


def _repair(key: AggregateKey, seen: Counter, expected: Counter) -> bool:
    """Set the item's counters to ``expected`` if they still hold ``seen``; False if they moved."""
    names = sorted(set(seen) | set(expected))
    attribute = {f"#c{i}": name for i, name in enumerate(names)}
    values: dict[str, Any] = {}
    sets, removes, conditions = [], [], []
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
    try:
        dynamo.client().update_item(
            TableName=get_settings().aggregates_table,
            Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}},
            UpdateExpression=expression.strip(),
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=attribute,
            ExpressionAttributeValues=values,
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _snapshot(records: list[UsageRecord]) -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(r.id for r in records), frozenset(_counted_ids(records))


def reconcile_window(tenant: str, start: int, end: int, now: int) -> ReconcileReport:
    """Reconcile one tenant's aggregate items whose buckets lie wholly inside ``[start, end)``."""
    report = ReconcileReport()
    records = _records(tenant, start, end)
    counted = _counted_ids(records)
    dropped = [r for r in records if r.id not in counted and r.received_at <= now - GRACE_MS]
    if dropped:
        still_failing = {r.id for r in aggregate(dropped)}
        counted |= {r.id for r in dropped if r.id not in still_failing}
        report.uncounted = len(dropped)
    report.records = len(records)

    expected = {k: +v for k, v in coalesce([r for r in records if r.id in counted]).items() if _within(k, start, end)}
    # The tenant's own hour and day items are candidates even when no record names them.
    whole_tenant = TENANT.pk(tenant, "")
    buckets = [f"H#{hour_key(h)}" for h in range(start, end, HOUR_MS)] + [
        f"D#{day_key(d)}" for d in range(start, end, DAY_MS)
    ]
    candidates = set(expected) | {(whole_tenant, b) for b in buckets if _within((whole_tenant, b), start, end)}
    candidates |= {k for k in _listed_day_keys(tenant, start, end) if _within(k, start, end)}
    stored = _stored(candidates)
    drifted = {k: v for k, v in stored.items() if v != expected.get(k, Counter())}
    if not drifted:
        return report
    report.drifted = len(drifted)
    if _snapshot(_records(tenant, start, end)) != (frozenset(r.id for r in records), frozenset(counted)):
        report.deferred = len(drifted)  # records moved while we read: settle on the next run
        return report
    for key, seen in sorted(drifted.items()):
        want = expected.get(key, Counter())
        report.drift.append({"pk": key[0], "sk": key[1], "stored": dict(seen), "recount": dict(want)})
        if _repair(key, seen, want):
            report.repaired += 1
        else:
            report.deferred += 1
    return report


def closed_windows(now: int) -> list[tuple[int, int]]:
    """What an hourly run reconciles: the hour that closed a grace period ago, and the whole day
    when that hour was the day's last."""
    hour_end = (now - GRACE_MS) // HOUR_MS * HOUR_MS
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
