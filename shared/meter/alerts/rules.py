"""Evaluating alerts: their periods, exact values, and firing exactly once (no pydantic: the
aggregator, the checker and reconciliation load this; the API's shapes are ``meter.api.alerts``).

An alert watches one measure of one subject (the tenant, an end user, or an agent) over a
period (a local day or month in its time zone, or the tenant's billing period). It fires once per
(alert, threshold, period): a firing is stored in one transaction with a mark whose key is that
triple, written only if absent, so replays, retries, duplicate events and concurrent evaluators
can only ever store it once. Evaluation is level-triggered (it compares the period's exact value
with the thresholds not yet marked), so it may run as often as convenient: when the aggregator
has folded records of the subject (its open window added to what is committed) and after each
commit, and when an alert is created or its thresholds change.

A **balance alert** (measure ``available``) watches a subject's available credits instead, and
fires once for each threshold the balance falls to or below. Its "period" is the time since a grant
last lifted the balance: the start of the latest grant (or allowance period) in effect. It fires in
that period only if the grant lifted the balance above the threshold, so it fires again only after
a grant lifts the balance above it and it falls again. It is evaluated after each commit that
counts the subject's credits, after each reservation, grant and void, and hourly by reconciliation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from meter.core.caches import Cache
from meter.core.localtime import DAY, MONTH, local_iso, next_boundary, window_start
from meter.core.logs import logger, metrics
from meter.core.timerange import HOUR_MS, iso, now_ms, to_ms
from meter.credits.grants import balance_with_holds
from meter.credits.rules import latest_start, level_at
from meter.dal import keys, sqs, store
from meter.dal.credits import credits
from meter.dal.dimensions import AGENT, IDENTIFIER, TENANT, contribution_of
from meter.dal.models import TENANT_SUBJECT, Alert, CreditAccount, Subject, Trigger
from meter.dal.records import UsageRecord
from meter.dal.tenants import anchor_day_of, billing_period_start
from meter.reading.series import Series, UsageQuery, series_total

DEFINITIONS_CACHE_SECONDS = 10.0  # how stale the aggregator's view of a tenant's alerts may be mid-window
# Reads (values, marks, firings) one aggregator invocation spends on one tenant's alerts; the rest
# of a commit's check goes to the alert checker, which spends CHECKS_PER_MESSAGE a message and
# queues what remains. Alerts on the same numbers share one value read, and a period's marks are
# read only when a threshold is reached, so most tenants' alerts fit one budget whatever their number.
CHECKS_PER_TENANT = 25
CHECKS_PER_MESSAGE = 250
EVERY_SUBJECT = "*"  # in a check's hours: every alert of the tenant, whatever its subject
DEFERRED_BYTES = 150_000  # the hours of one deferred check, as JSON: well under SQS's 256 KB

AggregateKey = tuple[str, str]
Due = tuple[str, int]  # (alert id, period start): one evaluation


# -- the alert's numbers -----------------------------------------------------------------------
def subject_of(alert: Alert) -> dict[str, str]:
    """The alert's subject as the API and notifications show it: ``{"identifier": …}``,
    ``{"agentId": …}`` or ``{}`` (the whole tenant)."""
    if alert.identifier is not None:
        return {"identifier": alert.identifier}
    if alert.agent_id is not None:
        return {"agentId": alert.agent_id}
    return {}


BALANCE = "available"  # the measure of a balance alert


def is_balance(alert: Alert) -> bool:
    """Whether the alert watches available credits (it falls to thresholds) rather than usage."""
    return alert.measure == BALANCE


def credit_subject(alert: Alert) -> Subject:
    """The alert's subject as a credit account names it."""
    if alert.identifier is not None:
        return Subject("identifier", alert.identifier)
    if alert.agent_id is not None:
        return Subject("agent", alert.agent_id)
    return TENANT_SUBJECT


def subject_series(alert: Alert) -> Series:
    """Where the alert's subject's totals live."""
    if alert.identifier:
        return Series(IDENTIFIER, alert.identifier, ())
    if alert.agent_id:
        return Series(AGENT, alert.agent_id, ())
    return Series(TENANT, "", ())


def period_bounds(alert: Alert, at: int) -> tuple[int, int]:
    """``[start, end)`` of the alert's period holding the instant ``at``."""
    if alert.period == "billing_period":
        anchor = anchor_day_of(alert.tenant)
        start = billing_period_start(anchor, at)
        following = datetime.fromtimestamp(start / 1000, UTC) + relativedelta(months=1)
        return start, to_ms(following)
    size, zone = (DAY if alert.period == "day" else MONTH), ZoneInfo(alert.time_zone)
    return window_start(at, size, zone), next_boundary(at, size, zone)


@dataclass
class Reads:
    """What one check has read: values by (subject, period, measure), so alerts on the same numbers
    (whatever their zone: a period is an instant range) read them once; and how many reads it made."""

    values: dict[tuple, int] = field(default_factory=dict)
    made: int = 0


def period_value(alert: Alert, start: int, end: int, deltas: dict | None = None, reads: Reads | None = None) -> int:
    """The alert's measure of its subject over ``[start, end)``: committed (read strongly
    consistent) plus ``deltas`` an aggregator has folded but not yet committed."""
    series = subject_series(alert)
    key = (series, start, end, alert.measure)
    if reads is not None and key in reads.values:
        return reads.values[key]
    query = UsageQuery(alert.tenant, start, end, None, ZoneInfo(alert.time_zone), alert.measure)
    value = series_total(query, series, consistent=True, deltas=deltas)
    if reads is not None:
        reads.values[key] = value
        reads.made += 1
    return value


# Thresholds known to have fired, per (tenant, alert, period start): marks are never removed, so
# what a container has seen is a lower bound it may trust, and a period whose reached thresholds
# are all known costs no read of its marks.
KNOWN_MARKS = 20_000
_known_marks = Cache(KNOWN_MARKS)  # (tenant, alert, period start) → thresholds known to be marked


def _marks(alert: Alert, start: int, reached: list[int], reads: Reads | None) -> set[int]:
    """The thresholds fired in the period: from what is known if it covers ``reached``, else read."""
    key = (alert.tenant, alert.id, start)
    known = _known_marks.get(key)
    if known is not None and set(reached) <= known:
        return known
    found = store.alerts().fired_in(alert.tenant, alert.id, start)
    if reads is not None:
        reads.made += 1
    _remember_marks(key, found)
    return found


def _remember_marks(key: tuple[str, str, int], thresholds: set[int]) -> None:
    _known_marks.put(key, _known_marks.get(key, set()) | set(thresholds))


def adds_to(alert: Alert, record: UsageRecord) -> int:
    """What one record adds to the alert's value (in the record's period)."""
    if alert.identifier and record.identifier != alert.identifier:
        return 0
    if alert.agent_id and record.agent_id != alert.agent_id:
        return 0
    return int(contribution_of(record.type, record.count, record.credits)[alert.measure])


# -- firing ----------------------------------------------------------------------------------
def _crossing_event(alert: Alert, threshold: int, value: int, start: int, end: int, records: list) -> str | None:
    """The id of the record that took the value to the threshold, if it is among ``records``
    (those just counted, in stream order); None if the value was there before them."""
    mine = [(r.id, adds_to(alert, r)) for r in records if start <= r.ts < end and r.tenant == alert.tenant]
    running = value - sum(n for _, n in mine)
    for event_id, n in mine:
        running += n
        if n and running >= threshold:
            return event_id if running - n < threshold else None
    return None


def evaluate(
    alert: Alert,
    at: int,
    deltas: dict | None = None,
    records: list[UsageRecord] = (),
    now: int | None = None,
    reads: Reads | None = None,
) -> list[Trigger]:
    """Fire every threshold the alert's period holding ``at`` has reached and not yet fired for;
    the firings stored (each exactly once, whoever else evaluates the same period). The period's
    value is read (once per check for alerts on the same numbers), its marks only when it has
    reached a threshold not known to have fired."""
    now = now_ms() if now is None else now
    start, end = period_bounds(alert, at)
    if end <= alert.created_at:
        return []  # a period that ended before the alert existed
    value = period_value(alert, start, end, deltas, reads)
    reached = [t for t in alert.thresholds if value >= t]
    if not reached:
        return []
    marked = _marks(alert, start, reached, reads)
    fired = []
    for threshold in (t for t in reached if t not in marked):
        crossing = _crossing_event(alert, threshold, value, start, end, list(records))
        trigger = Trigger(alert.tenant, alert.id, threshold, start, end, value, crossing, triggered_at=now)
        if reads is not None:
            reads.made += 1
        if store.alerts().fire_once(trigger):
            logger.info("alert fired", extra={"alert": alert.id, "threshold": threshold, "value": value})
            metrics.add_metric(name="AlertsFired", unit="Count", value=1)
            fired.append(trigger)
        _remember_marks((alert.tenant, alert.id, start), {threshold})  # fired now, or by another
    return fired


_definitions = Cache(10_000, seconds=DEFINITIONS_CACHE_SECONDS)  # tenant → its alerts


def alerts_of(tenant: str, fresh: bool) -> list[Alert]:
    """A tenant's alerts; mid-window checks may use a view up to ``DEFINITIONS_CACHE_SECONDS`` old."""
    cached = None if fresh else _definitions.get(tenant)
    if cached is not None:
        return cached
    found = store.alerts().alerts_of(tenant, consistent=fresh)
    _definitions.put(tenant, found)
    return found


def _periods(alert: Alert, hours: dict[str, set[int]]) -> set[int]:
    """The starts of the alert's periods that the counted ``hours`` fall in (an hour can straddle
    two local days, in zones at :30 or :45 past the hour)."""
    series = subject_series(alert)
    buckets = hours.get(series.dimension.pk(alert.tenant, series.value), set()) | hours.get(EVERY_SUBJECT, set())
    return {period_bounds(alert, at)[0] for hour in buckets for at in (hour, hour + HOUR_MS - 1)}


def check(
    definitions: list[Alert],
    hours: dict[str, set[int]],
    budget: int,
    deltas: dict | None = None,
    records: list[UsageRecord] = (),
    after: Due | None = None,
) -> tuple[int, Due | None]:
    """Evaluate, in (alert id, period) order after ``after``, the periods of a tenant's alerts
    (``definitions``) that the counted ``hours`` (hour starts per aggregate partition) touch, until
    ``budget`` reads are spent: how many fired, and the last period evaluated if some remain
    (where the next check starts)."""
    by_id = {alert.id: alert for alert in definitions if not is_balance(alert)}
    due = sorted((alert_id, start) for alert_id, alert in by_id.items() for start in _periods(alert, hours))
    due = [pair for pair in due if after is None or pair > after]
    reads, fired = Reads(), 0
    for n, (alert_id, start) in enumerate(due):
        if reads.made >= budget:
            return fired, due[n - 1]
        fired += len(evaluate(by_id[alert_id], start, deltas, records, reads=reads))
    return fired, None


def defer(tenant: str, hours: dict[str, set[int]], after: Due) -> None:
    """Queue the rest of a check (the periods after ``after``) for the alert checker, in messages
    of at most ``DEFERRED_BYTES`` (a backfill's commit can touch many hours of many subjects);
    every part skips what was evaluated already, as ``after`` compares periods, not positions."""
    parts: list[dict[str, list[int]]] = [{}]
    size = 0
    for pk, found in sorted(hours.items()):
        cost = len(pk.encode()) + 16 * len(found)  # a quoted key, and 13-digit hours with commas
        if size and size + cost > DEFERRED_BYTES:
            parts.append({})
            size = 0
        parts[-1][pk] = sorted(found)
        size += cost
    for part in parts:
        sqs.send("ALERT_CHECKS_QUEUE", json.dumps({"tenant": tenant, "hours": part, "after": list(after)}))
    metrics.add_metric(name="AlertChecksDeferred", unit="Count", value=len(parts))


def _watched_hours(definitions: list[Alert], hours: dict[str, set[int]]) -> dict[str, set[int]]:
    """The counted hours of the partitions some alert watches (all a check needs of them)."""
    watched = set()
    for alert in (a for a in definitions if not is_balance(a)):
        series = subject_series(alert)
        watched.add(series.dimension.pk(alert.tenant, series.value))
    return {pk: found for pk, found in hours.items() if pk in watched}


def check_touched(touched: Iterable[AggregateKey], records: list[UsageRecord], deltas: dict | None, fresh: bool) -> int:
    """Evaluate the alerts whose subject's hour items were just counted (``touched``): with
    ``deltas`` (an open window) added to what is committed, or after a commit. Each tenant gets
    ``CHECKS_PER_TENANT`` evaluations here, whatever its number of alerts; after a commit, what
    did not fit goes to the alert checker (mid-window, the commit's check follows). How many fired."""
    hours: dict[str, dict[str, set[int]]] = {}
    for pk, sk in touched:
        if keys.is_hour_sk(sk):
            tenant = keys.tenant_of_aggregate(pk)
            hours.setdefault(tenant, {}).setdefault(pk, set()).add(keys.parse_aggregate(pk, sk).bucket_start)
    fired = 0
    for tenant in sorted(hours):
        definitions = alerts_of(tenant, fresh)
        watched = _watched_hours(definitions, hours[tenant])
        if not watched:
            continue
        count, after = check(definitions, watched, CHECKS_PER_TENANT, deltas, records)
        fired += count
        if after is not None and deltas is None:
            defer(tenant, watched, after)
    return fired


def check_window(tenant: str, start: int, end: int) -> int:
    """Evaluate every alert of a tenant over each of its periods that ``[start, end)`` touches
    (reconciliation's backstop, after it has recounted the window), within the same budget, the
    rest deferred to the alert checker. How many fired."""
    hours = {EVERY_SUBJECT: set(range(start - start % HOUR_MS, end, HOUR_MS))}
    fired, after = check(alerts_of(tenant, fresh=True), hours, CHECKS_PER_TENANT)
    if after is not None:
        defer(tenant, hours, after)
    return fired + check_balances(tenant, None)


# -- balance alerts --------------------------------------------------------------------------
def balance_standing(alert: Alert, account: CreditAccount, now: int) -> tuple[int, int | None]:
    """(available now, when the latest grant in effect started: the balance alert's period)."""
    return balance_with_holds(account, now).available, latest_start(account, now)


def evaluate_balance(alert: Alert, account: CreditAccount, now: int | None = None) -> list[Trigger]:
    """Fire each threshold the subject's available credits are at or below, once per grant that
    lifted them above it; the firings stored exactly once."""
    now = now_ms() if now is None else now
    available, lifted = balance_standing(alert, account, now)
    reached = [t for t in alert.thresholds if available <= t]
    if lifted is None or not reached:
        return []
    level = level_at(account, lifted)
    armed = [t for t in reached if level > t]  # the grant took the balance above it
    if not armed:
        return []
    marked, fired = _marks(alert, lifted, armed, None), []
    for threshold in (t for t in armed if t not in marked):
        trigger = Trigger(alert.tenant, alert.id, threshold, lifted, now, available, None, triggered_at=now)
        if store.alerts().fire_once(trigger):
            logger.info("balance alert fired", extra={"alert": alert.id, "threshold": threshold, "value": available})
            metrics.add_metric(name="AlertsFired", unit="Count", value=1)
            fired.append(trigger)
        _remember_marks((alert.tenant, alert.id, lifted), {threshold})
    return fired


def check_balances(tenant: str, subjects: set[Subject] | None, fresh: bool = True) -> int:
    """Evaluate the tenant's balance alerts on ``subjects`` (None: every one); how many fired."""
    watching = [a for a in alerts_of(tenant, fresh) if is_balance(a)]
    watching = [a for a in watching if subjects is None or credit_subject(a) in subjects]
    if not watching:
        return 0
    accounts = credits().accounts(tenant, sorted({credit_subject(a) for a in watching}))
    now = now_ms()
    empty = {a.id: CreditAccount(tenant, credit_subject(a)) for a in watching}
    return sum(len(evaluate_balance(a, accounts.get(credit_subject(a)) or empty[a.id], now)) for a in watching)


def check_accounts(touched: Iterable[AggregateKey]) -> int:
    """Evaluate the balance alerts of the credit accounts a commit just added to (with the alerts
    the commit's ``check_touched`` has just read fresh)."""
    by_tenant: dict[str, set[Subject]] = {}
    for pk, _ in touched:
        if keys.is_account_pk(pk):
            tenant, kind, value = keys.parse_account_pk(pk)
            subject = TENANT_SUBJECT if kind == "slice" else Subject(kind, value)
            by_tenant.setdefault(tenant, set()).add(subject)
    return sum(check_balances(tenant, subjects, fresh=False) for tenant, subjects in sorted(by_tenant.items()))


def handle_checks(event: dict[str, Any]) -> dict[str, Any]:
    """The alert checker: each message is the rest of a check, after a commit or a reconciliation;
    it evaluates ``CHECKS_PER_MESSAGE`` of it and queues what still remains."""
    failures = []
    for record in event.get("Records") or []:
        body = json.loads(record["body"])  # ours: a message that does not parse is a bug, retried and alarmed
        hours = {pk: set(found) for pk, found in body["hours"].items()}
        try:
            definitions = alerts_of(body["tenant"], fresh=True)
            _, after = check(definitions, hours, CHECKS_PER_MESSAGE, after=tuple(body["after"]))
            if after is not None:
                defer(body["tenant"], hours, after)
        except Exception:  # storage failed: the message comes back
            logger.exception("alert check failed; retried from the queue", extra={"tenant": body["tenant"]})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def shown_trigger(trigger: Trigger, zone: ZoneInfo) -> dict[str, Any]:
    """A firing as the API and the deliveries show it (the fields of ``meter.api.alerts.Trigger``)."""
    return {
        "id": store.Alerts.trigger_id(trigger),
        "threshold": trigger.threshold,
        "periodStart": local_iso(trigger.period_start, zone),
        "periodEnd": local_iso(trigger.period_end, zone),
        "value": trigger.value,
        "eventId": trigger.event_id,
        "triggeredAt": iso(trigger.triggered_at),
        "delivery": {
            "status": trigger.delivery.status,
            "attempts": trigger.delivery.attempts,
            "lastError": trigger.delivery.last_error,
        },
    }


def forget_definitions(tenant: str) -> None:
    """Drop the cached alerts of a tenant whose alerts changed."""
    _definitions.pop(tenant)
