"""Reconciliation: recount buckets from the records and raise aggregates that miss events.
Run on a schedule (template.yaml) and safe to run at any time, any number of times.

**What it covers.** Runs walk time by the hour, from a checkpoint in Control, so a run that
failed or was skipped is caught up by the next. Hour ``H`` is due once every record received in
it is past the stream's horizon (below), i.e. at ``H + 1 h + LATE_AFTER + HORIZON`` (2 h 30 min):

* every tenant's event hour ``[H, H+1h)`` (and the whole day when ``H`` is its last hour): it
  holds every record received within ``LATE_AFTER`` of its event time;
* every (tenant, day) that received *late* events during ``H`` (ingestion notes them, see
  ``meter.dal.arrivals``): a backfill, or an event from 23:50 received at 00:20.

So every accepted event is recounted within 2 h 30 min of its receipt (plus the hourly
schedule), whatever its timestamp. A window that cannot be settled then (records younger than
the horizon, a change while it was read, an error) goes to a retry set every run works first,
and is counted in the report; one tenant's failure never stops the others.

**Horizon.** The stream counts a record only while it is younger than the stream mapping's
``MaximumRecordAgeInSeconds`` (``STREAM_MAX_AGE_MS``); after that Lambda gives it up. A window
is recounted only when every record in it was received longer ago than that plus a margin for
the tumbling window and its commit (``HORIZON_MS``), so no stream invocation can still add to it.

**Repairs only ever add.** Each aggregate item of the window is compared with the recount. The
recount reads an eventually consistent index, which can lag but never invents a record, so a
recount above the stored value proves missing events: the counter is raised to the recount,
with a condition that it still holds what was read. A stored value *above* the recount is never
lowered (it may be an event the index does not show yet); it is reported (``overcounted``,
metric ``OvercountedAggregates``) for an operator to look at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from meter.alerts import rules
from meter.core.logs import logger
from meter.core.timerange import DAY_MS, HOUR_MS
from meter.counting import distinct
from meter.counting.aggregation import HORIZON_MS, coalesce, listing_attributes
from meter.dal import keys, store
from meter.dal.arrivals import LATE_AFTER_MS
from meter.dal.dimensions import AGENT, AGENT_SCOPED, DIMENSIONS, TENANT, Dimension, is_each_attribute
from meter.dal.keys import day_key, hour_key
from meter.dal.records import UsageRecord
from meter.dal.tenants import forget_tenant_settings, layout
from meter.dal.transactions import is_refusal
from meter.reading.queries import counters, listed_items, tenant_records

DUE_AFTER_MS = HOUR_MS + LATE_AFTER_MS + HORIZON_MS  # from an hour's start until it is reconciled
MAX_HOURS_PER_RUN = 48  # a run that has fallen behind catches up in steps
NOT_COUNTERS = {"pk", "sk", "lk", "v"}  # every other attribute of a bucket item but marks and sets is a number

AggregateKey = tuple[str, str]


@dataclass
class ReconcileReport:
    """What one reconciliation of one tenant and window found and did."""

    records: int = 0
    unreadable: int = 0  # records no recount can read (never counted; see the set-aside items)
    drifted: int = 0
    repaired: int = 0  # items raised to the recount
    uncounted: int = 0  # events the recount found missing from the tenant's own totals
    overcounted: int = 0  # items above the recount: reported, never lowered
    deferred: int = 0  # windows (or drifted items) left for a later run
    refused: int = 0  # items DynamoDB refuses to raise (too large, a counter of another type): kept for retry
    failed: int = 0  # windows whose reconciliation raised (kept for retry)
    drift: list[dict[str, Any]] = field(default_factory=list)

    COUNTS = (
        "records",
        "unreadable",
        "uncounted",
        "drifted",
        "repaired",
        "overcounted",
        "deferred",
        "refused",
        "failed",
    )

    @property
    def settled(self) -> bool:
        """Whether nothing is left for a later run."""
        return not self.deferred and not self.refused

    def add(self, other: ReconcileReport) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.drift += other.drift


def _records(tenant: str, start: int, end: int) -> tuple[list[UsageRecord], int]:
    """The window's records, and how many could not be read as records."""
    unreadable: list[str] = []
    found = tenant_records(tenant, start, end, unreadable=unreadable)
    return found, len(unreadable)


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


def _stored(wanted: set[AggregateKey]) -> tuple[dict[AggregateKey, Counter], set[AggregateKey]]:
    """Current counters of each aggregate item (absent items as empty), strongly consistent; and
    the items holding a non-number where a counter goes (edited by hand: no ``ADD`` can fix them)."""
    ordered = sorted(wanted)
    items = store.aggregates().get_many([store.Aggregates.key(*key) for key in ordered], consistent=True)
    found = {(item["pk"], item["sk"]): counters(item, parts=True) for item in items}
    malformed = {
        (item["pk"], item["sk"])
        for item in items
        if any(not isinstance(v, int) for k, v in item.items() if _counter_attribute(k))
    }
    return {key: +found.get(key, Counter()) for key in ordered}, malformed


def _counter_attribute(name: str) -> bool:
    """Whether a bucket item's attribute is a counter (not a key, listing, commit mark or quarter set)."""
    return name not in NOT_COUNTERS and not keys.is_commit_mark(name) and not is_each_attribute(name)


def _raise_to(key: AggregateKey, seen: Counter, raised: Counter, listing: dict[str, str] | None = None) -> bool:
    """Set the item's counters named in ``raised`` to their value there, if every counter still
    holds ``seen``; False if the item moved. Never lowers or removes a counter."""
    return store.aggregates().raise_to(store.Aggregates.key(*key), dict(seen), dict(raised), listing)


def reconcile_window(tenant: str, start: int, end: int, now: int, marks: bool = False) -> ReconcileReport:
    """Reconcile one tenant's aggregate items whose buckets lie wholly inside ``[start, end)``, then
    evaluate the tenant's alerts over the periods the window touches (the backstop for a check the
    aggregator could not make); a failure of either raises, and the window is retried.

    ``marks`` moves the distinct marks of the window's records even if no counter drifted (a
    redrive of marks the aggregator set aside)."""
    report = _recount_window(tenant, start, end, now, marks)
    if not report.deferred:
        rules.check_window(tenant, start, end)
    return report


def _recount_window(tenant: str, start: int, end: int, now: int, marks: bool = False) -> ReconcileReport:
    report = ReconcileReport()
    forget_tenant_settings(tenant)  # its current layout: the aggregator's may only be older, never newer
    records, report.unreadable = _records(tenant, start, end)
    report.records = len(records)
    if any(record.received_at > now - HORIZON_MS for record in records):
        report.deferred = 1  # the stream may still be counting some of them
        return report
    # Boards are left as the stream wrote them: readers use one only while it holds all the tenant's events.
    recounted = {k: v for k, v in coalesce(records, layout).items() if not keys.is_board_pk(k[0])}
    expected = {k: +v for k, v in recounted.items() if _within(k, start, end)}
    listing = {k: v for record in records for k, v in listing_attributes(record).items()}
    whole_tenant = TENANT.pk(tenant, "")
    buckets = [keys.hour_sk(hour_key(h)) for h in range(start, end, HOUR_MS)]
    buckets += [keys.day_sk(day_key(d)) for d in range(start, end, DAY_MS)]
    # The tenant's own items, and every listed value's day items, are candidates even when no record names them.
    candidates = set(expected) | {(whole_tenant, b) for b in buckets if _within((whole_tenant, b), start, end)}
    candidates |= {k for k in _listed_day_keys(tenant, start, end) if _within(k, start, end)}
    stored, malformed = _stored(candidates)
    drifted = {k: v for k, v in stored.items() if v != expected.get(k, Counter())}
    if marks and not drifted:
        _note_marks(records, report)
    if not drifted:
        return report
    report.drifted = len(drifted)
    if {r.id for r in _records(tenant, start, end)[0]} != {r.id for r in records}:
        report.deferred = len(drifted)  # records arrived while we read: settle on the next run
        return report
    # Events the stream missed are new sightings too (before the repair: a retry redoes both).
    _note_marks(records, report)
    missing_events = Counter()  # per granularity of the tenant's own items
    for key, seen in sorted(drifted.items()):
        want = expected.get(key, Counter())
        if key[0] == whole_tenant:
            missing_events[keys.granularity_of(key[1])] += max(0, want["events"] - seen["events"])
        report.drift.append({"pk": key[0], "sk": key[1], "stored": dict(seen), "recount": dict(want)})
        raised = Counter({name: n for name, n in want.items() if n > seen[name]})
        if any(n > want[name] for name, n in seen.items()):
            report.overcounted += 1
        if not raised:
            continue
        if key in malformed:
            logger.error("aggregate holds a non-number counter; not repaired", extra={"pk": key[0], "sk": key[1]})
            report.refused += 1
            continue
        try:
            repaired = _raise_to(key, seen, raised, listing.get(key))
        except ClientError as error:
            if not is_refusal(error):
                raise
            logger.error("aggregate repair refused", extra={"pk": key[0], "sk": key[1], "error": str(error)})
            report.refused += 1
            continue
        if repaired:
            report.repaired += 1
        else:
            report.deferred += 1
    report.uncounted = max(missing_events.values(), default=0)
    return report


def _note_marks(records: list[UsageRecord], report: ReconcileReport) -> None:
    """Move the records' distinct marks; a refused write is reported and left for a later run."""
    try:
        distinct.note(records)
    except ClientError as error:
        if not is_refusal(error):
            raise
        logger.error("distinct marks refused", extra={"error": str(error)})
        report.refused += 1


Window = tuple[str, int, int]  # tenant, start, end (Unix ms)


def due_hour(now: int) -> int:
    """The latest hour (its start) whose records are all past the horizon at ``now``."""
    return (now - DUE_AFTER_MS) // HOUR_MS * HOUR_MS


def windows_of_hour(hour: int, tenants: list[str]) -> list[Window]:
    """What reconciling one hour covers: every tenant's event hour (and day, at a day's last hour),
    and the days that received late events during the hour."""
    windows: list[Window] = []
    for tenant in tenants:
        windows.append((tenant, hour, hour + HOUR_MS))
        if (hour + HOUR_MS) % DAY_MS == 0:
            windows.append((tenant, hour + HOUR_MS - DAY_MS, hour + HOUR_MS))
    for tenant, day in sorted(store.control().late_arrivals(hour)):
        start = keys.day_start(day)
        windows.append((tenant, start, start + DAY_MS))
    return list(dict.fromkeys(windows))


def _encode(window: Window) -> str:
    return " ".join(map(str, window))


def _decode(text: str) -> Window:
    tenant, start, end = text.rsplit(" ", 2)
    return tenant, int(start), int(end)


def _settle(window: Window, now: int, total: ReconcileReport) -> bool:
    """Reconcile one window into ``total``; whether it is settled (else it is kept for retry)."""
    tenant, start, end = window
    try:
        report = reconcile_window(tenant, start, end, now)
    except Exception:  # one window's failure must not stop the others: kept and retried
        logger.exception("reconciliation of a window failed", extra={"tenant": tenant, "start": start, "end": end})
        total.failed += 1
        return False
    if report.drift:
        logger.warning("aggregates drifted from the recount", extra={"tenant": tenant, "drift": report.drift})
    total.add(report)
    return report.settled


def reconcile_due(now: int, out_of_time: Callable[[], bool] = lambda: False) -> ReconcileReport:
    """Retry the windows earlier runs kept, then reconcile every hour due since the checkpoint."""
    from meter.dal.tenants import tenant_names

    control, total = store.control(), ReconcileReport()
    retries = control.reconcile_retries()
    settled = {text for text in sorted(retries) if not out_of_time() and _settle(_decode(text), now, total)}
    control.change_reconcile_retries(remove=settled)
    due = due_hour(now)
    checkpoint = control.reconcile_checkpoint()
    first = due if checkpoint is None else checkpoint + HOUR_MS
    tenants = sorted(tenant_names())
    for hour in range(first, min(due, first + (MAX_HOURS_PER_RUN - 1) * HOUR_MS) + 1, HOUR_MS):
        if out_of_time():
            break
        unsettled = {_encode(w) for w in windows_of_hour(hour, tenants) if not _settle(w, now, total)}
        control.change_reconcile_retries(add=unsettled)
        control.set_reconcile_checkpoint(hour)
    return total
