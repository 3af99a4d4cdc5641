"""Budgets and threshold alerts: definitions, their periods, exact values, and firing exactly once.

An alert watches one measure of one subject (the tenant, an end user, or an agent) over a
period (a local day or month in its time zone, or the tenant's billing period). It fires once per
(alert, threshold, period): a firing is stored in one transaction with a mark whose key is that
triple, written only if absent, so replays, retries, duplicate events and concurrent evaluators
can only ever store it once. Evaluation is level-triggered (it compares the period's exact value
with the thresholds not yet marked), so it may run as often as convenient: when the aggregator
has folded records of the subject (its open window added to what is committed) and after each
commit, and when an alert is created or its thresholds change.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from meter.alerts import webhooks
from meter.core import ids
from meter.core.config import get_settings
from meter.core.errors import BadRequest, Conflict, NotFound
from meter.core.localtime import DAY, MONTH, local_iso, next_boundary, window_start
from meter.core.logs import logger, metrics
from meter.core.timerange import HOUR_MS, iso, now_ms
from meter.dal import keys, sqs, store
from meter.dal.cursors import decode_cursor, encode_cursor
from meter.dal.dimensions import AGENT, IDENTIFIER, TENANT, contribution_of
from meter.dal.records import UsageRecord
from meter.dal.tenants import billing_period_start, get_tenant
from meter.reading.series import Series, UsageQuery, series_total

MAX_THRESHOLDS = 20
MAX_ALERTS = 1000
MAX_THRESHOLD = 10**15
TRIGGERS_PAGE = 50
DEFINITIONS_CACHE_SECONDS = 10.0  # how stale the aggregator's view of a tenant's alerts may be mid-window
# Reads (values, marks, firings) one aggregator invocation spends on one tenant's alerts; the rest
# of a commit's check goes to the alert checker, which spends CHECKS_PER_MESSAGE a message and
# queues what remains. Alerts on the same numbers share one value read, and a period's marks are
# read only when a threshold is reached, so most tenants' alerts fit one budget whatever their number.
CHECKS_PER_TENANT = 25
CHECKS_PER_MESSAGE = 250
EVERY_SUBJECT = "*"  # in a check's hours: every alert of the tenant, whatever its subject
DEFERRED_BYTES = 150_000  # the hours of one deferred check, as JSON: well under SQS's 256 KB
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
PATCHABLE = ("name", "thresholds", "webhookUrl")

Measure = Literal["credits", "tokens", "events", "messages", "conversations"]
Period = Literal["day", "month", "billing_period"]
AggregateKey = tuple[str, str]
Due = tuple[str, int]  # (alert id, period start): one evaluation


# -- shapes ----------------------------------------------------------------------------------
class Subject(BaseModel):
    """Whose usage: one end user, one agent, or (empty) the whole tenant."""

    model_config = ConfigDict(extra="forbid")
    identifier: Annotated[str, AfterValidator(ids.checked)] | None = Field(None, min_length=1, max_length=256)
    agentId: Annotated[str, AfterValidator(ids.checked)] | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_at_most(self) -> Subject:
        if self.identifier is not None and self.agentId is not None:
            raise ValueError("give identifier or agentId, not both ({} for the whole tenant)")
        return self


def _thresholds(values: list[int] | None) -> list[int] | None:
    """Thresholds in range and distinct, ascending (None: not given, in a PATCH)."""
    if values is None:
        return None
    if any(not 0 < v <= MAX_THRESHOLD for v in values):
        raise ValueError(f"each threshold must be a whole number from 1 to {MAX_THRESHOLD}")
    if len(set(values)) != len(values):
        raise ValueError("thresholds must be distinct")
    return sorted(values)


def _webhook(url: str | None) -> str | None:
    """A webhook URL we would send to (public https; ``make run`` also local http), or None."""
    return None if url is None else webhooks.check_url(url, get_settings().webhooks_to_localhost)


class AlertSpec(BaseModel):
    """``POST /v1/alerts``: what to watch and when to tell."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    subject: Subject = Field(default_factory=Subject)
    measure: Measure
    period: Period
    timeZone: str = Field("UTC", max_length=64)
    thresholds: list[int] = Field(min_length=1, max_length=MAX_THRESHOLDS)
    webhookUrl: str | None = Field(None, max_length=2048)

    _thresholds = field_validator("thresholds")(_thresholds)
    _https = field_validator("webhookUrl")(_webhook)

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ValueError, OSError, KeyError):
            raise ValueError("must be an IANA time zone such as Europe/Berlin") from None
        return name

    @model_validator(mode="after")
    def _billing_in_utc(self) -> AlertSpec:
        if self.period == "billing_period" and self.timeZone != "UTC":
            raise ValueError("timeZone: a billing period starts at 00:00 UTC on the tenant's anchor day; use UTC")
        return self


class AlertChange(BaseModel):
    """``PATCH /v1/alerts/{id}``: a new name, thresholds or webhook (null removes it)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    thresholds: list[int] | None = Field(None, min_length=1, max_length=MAX_THRESHOLDS)
    webhookUrl: str | None = Field(None, max_length=2048)

    _thresholds = field_validator("thresholds")(_thresholds)
    _https = field_validator("webhookUrl")(_webhook)


class Alert(BaseModel):
    """An alert as the API shows it."""

    id: str
    name: str
    subject: Subject
    measure: Measure
    period: Period
    timeZone: str
    thresholds: list[int]
    webhookUrl: str | None = Field(description="Shown to admin keys only: a hook's URL is often its credential")
    webhookHost: str | None = Field(None, description="The webhook's host, shown to every reader")
    createdAt: str
    updatedAt: str
    signingSecret: str | None = Field(None, description="Only in the answer that created it")


class AlertList(BaseModel):
    data: list[Alert]
    cursor: str | None = None


class AlertStatus(BaseModel):
    """``GET /v1/alerts/{id}/status``: where the current period stands."""

    periodStart: str
    periodEnd: str
    value: int
    crossed: list[int]
    next: int | None


class Delivery(BaseModel):
    status: Literal["pending", "retrying", "delivered", "failed"]
    attempts: int
    lastError: str | None = None


class Trigger(BaseModel):
    """One firing of one threshold in one period."""

    id: str
    threshold: int
    periodStart: str
    periodEnd: str
    value: int
    eventId: str | None = Field(description="The event whose counting crossed it; null if usage was past it already")
    triggeredAt: str
    delivery: Delivery


class TriggerList(BaseModel):
    data: list[Trigger]
    cursor: str | None = None


def _invalid(error: ValidationError) -> BadRequest:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    message = first["msg"].removeprefix("Value error, ")
    if message.startswith("timeZone: "):
        field, message = "timeZone", message.removeprefix("timeZone: ")
    return BadRequest(f"Invalid '{field}': {message}", details=[{"field": field, "reason": message}])


def parse_body(model: type[BaseModel], body: Any) -> BaseModel:
    """A request body as ``model``; 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as invalid:
        raise _invalid(invalid) from None


# -- the alert's numbers -----------------------------------------------------------------------
def subject_series(alert: dict[str, Any]) -> Series:
    """Where the alert's subject's totals live."""
    subject = alert.get("subject") or {}
    if subject.get("identifier"):
        return Series(IDENTIFIER, subject["identifier"], ())
    if subject.get("agentId"):
        return Series(AGENT, subject["agentId"], ())
    return Series(TENANT, "", ())


def period_bounds(alert: dict[str, Any], at: int) -> tuple[int, int]:
    """``[start, end)`` of the alert's period holding the instant ``at``."""
    if alert["period"] == "billing_period":
        anchor = int((get_tenant(alert["tenant"]) or {}).get("billingAnchorDay", 1))
        start = billing_period_start(anchor, at)
        following = datetime.fromtimestamp(start / 1000, UTC)
        year, month = (following.year, following.month + 1) if following.month < 12 else (following.year + 1, 1)
        return start, int(following.replace(year=year, month=month).timestamp() * 1000)
    size, zone = (DAY if alert["period"] == "day" else MONTH), ZoneInfo(alert["timeZone"])
    return window_start(at, size, zone), next_boundary(at, size, zone)


@dataclass
class Reads:
    """What one check has read: values by (subject, period, measure), so alerts on the same numbers
    (whatever their zone: a period is an instant range) read them once; and how many reads it made."""

    values: dict[tuple, int] = field(default_factory=dict)
    made: int = 0


def period_value(
    alert: dict[str, Any], start: int, end: int, deltas: dict | None = None, reads: Reads | None = None
) -> int:
    """The alert's measure of its subject over ``[start, end)``: committed (read strongly
    consistent) plus ``deltas`` an aggregator has folded but not yet committed."""
    series = subject_series(alert)
    key = (series, start, end, alert["measure"])
    if reads is not None and key in reads.values:
        return reads.values[key]
    query = UsageQuery(alert["tenant"], start, end, None, ZoneInfo(alert["timeZone"]), alert["measure"])
    value = series_total(query, series, consistent=True, deltas=deltas)
    if reads is not None:
        reads.values[key] = value
        reads.made += 1
    return value


# Thresholds known to have fired, per (tenant, alert, period start): marks are never removed, so
# what a container has seen is a lower bound it may trust, and a period whose reached thresholds
# are all known costs no read of its marks.
_known_marks: OrderedDict[tuple[str, str, int], set[int]] = OrderedDict()
KNOWN_MARKS = 20_000


def _marks(alert: dict[str, Any], start: int, reached: list[int], reads: Reads | None) -> set[int]:
    """The thresholds fired in the period: from what is known if it covers ``reached``, else read."""
    key = (alert["tenant"], alert["id"], start)
    known = _known_marks.get(key)
    if known is not None and set(reached) <= known:
        return known
    found = store.alerts().fired_in(alert["tenant"], alert["id"], start)
    if reads is not None:
        reads.made += 1
    _remember_marks(key, found)
    return found


def _remember_marks(key: tuple[str, str, int], thresholds: set[int]) -> None:
    _known_marks[key] = _known_marks.get(key, set()) | set(thresholds)
    _known_marks.move_to_end(key)
    while len(_known_marks) > KNOWN_MARKS:
        _known_marks.popitem(last=False)


def adds_to(alert: dict[str, Any], record: UsageRecord) -> int:
    """What one record adds to the alert's value (in the record's period)."""
    subject = alert.get("subject") or {}
    if subject.get("identifier") and record.identifier != subject["identifier"]:
        return 0
    if subject.get("agentId") and record.agent_id != subject["agentId"]:
        return 0
    return int(contribution_of(record.type, record.count, record.credits)[alert["measure"]])


# -- firing ----------------------------------------------------------------------------------
def _crossing_event(alert: dict, threshold: int, value: int, start: int, end: int, records: list) -> str | None:
    """The id of the record that took the value to the threshold, if it is among ``records``
    (those just counted, in stream order); None if the value was there before them."""
    mine = [(r.id, adds_to(alert, r)) for r in records if start <= r.ts < end and r.tenant == alert["tenant"]]
    running = value - sum(n for _, n in mine)
    for event_id, n in mine:
        running += n
        if n and running >= threshold:
            return event_id if running - n < threshold else None
    return None


def evaluate(
    alert: dict[str, Any],
    at: int,
    deltas: dict | None = None,
    records: list[UsageRecord] = (),
    now: int | None = None,
    reads: Reads | None = None,
) -> list[dict[str, Any]]:
    """Fire every threshold the alert's period holding ``at`` has reached and not yet fired for;
    the firings stored (each exactly once, whoever else evaluates the same period). The period's
    value is read (once per check for alerts on the same numbers), its marks only when it has
    reached a threshold not known to have fired."""
    now = now_ms() if now is None else now
    start, end = period_bounds(alert, at)
    if end <= alert["createdAt"]:
        return []  # a period that ended before the alert existed
    value = period_value(alert, start, end, deltas, reads)
    reached = [int(t) for t in alert["thresholds"] if value >= t]
    if not reached:
        return []
    marked = _marks(alert, start, reached, reads)
    fired = []
    for threshold in (t for t in reached if t not in marked):
        trigger = {
            "pk": keys.triggers_pk(alert["tenant"], alert["id"]),
            "sk": keys.trigger_sk(now, start, threshold),
            "tenant": alert["tenant"],
            "alertId": alert["id"],
            "threshold": threshold,
            "periodStart": start,
            "periodEnd": end,
            "value": value,
            "eventId": _crossing_event(alert, threshold, value, start, end, list(records)),
            "triggeredAt": now,
            "delivery": {"status": "pending", "attempts": 0},
        }
        if reads is not None:
            reads.made += 1
        if store.alerts().fire_once(alert["tenant"], alert["id"], trigger):
            logger.info("alert fired", extra={"alert": alert["id"], "threshold": threshold, "value": value})
            metrics.add_metric(name="AlertsFired", unit="Count", value=1)
            fired.append(trigger)
        _remember_marks((alert["tenant"], alert["id"], start), {threshold})  # fired now, or by another
    return fired


_definitions: dict[str, tuple[float, list[dict[str, Any]]]] = {}


def alerts_of(tenant: str, fresh: bool) -> list[dict[str, Any]]:
    """A tenant's alerts; mid-window checks may use a view up to ``DEFINITIONS_CACHE_SECONDS`` old."""
    cached = _definitions.get(tenant)
    if not fresh and cached and cached[0] > time.monotonic():
        return cached[1]
    found = [
        {**item, "tenant": tenant, "id": item["sk"]} for item in store.alerts().alerts_of(tenant, consistent=fresh)
    ]
    _definitions[tenant] = (time.monotonic() + DEFINITIONS_CACHE_SECONDS, found)
    return found


def _periods(alert: dict[str, Any], hours: dict[str, set[int]]) -> set[int]:
    """The starts of the alert's periods that the counted ``hours`` fall in (an hour can straddle
    two local days, in zones at :30 or :45 past the hour)."""
    series = subject_series(alert)
    buckets = hours.get(series.dimension.pk(alert["tenant"], series.value), set()) | hours.get(EVERY_SUBJECT, set())
    return {period_bounds(alert, at)[0] for hour in buckets for at in (hour, hour + HOUR_MS - 1)}


def check(
    definitions: list[dict[str, Any]],
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
    by_id = {alert["id"]: alert for alert in definitions}
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


def _watched_hours(definitions: list[dict[str, Any]], hours: dict[str, set[int]]) -> dict[str, set[int]]:
    """The counted hours of the partitions some alert watches (all a check needs of them)."""
    watched = set()
    for alert in definitions:
        series = subject_series(alert)
        watched.add(series.dimension.pk(alert["tenant"], series.value))
    return {pk: found for pk, found in hours.items() if pk in watched}


def check_touched(touched: Iterable[AggregateKey], records: list[UsageRecord], deltas: dict | None, fresh: bool) -> int:
    """Evaluate the alerts whose subject's hour items were just counted (``touched``): with
    ``deltas`` (an open window) added to what is committed, or after a commit. Each tenant gets
    ``CHECKS_PER_TENANT`` evaluations here, whatever its number of alerts; after a commit, what
    did not fit goes to the alert checker (mid-window, the commit's check follows). How many fired."""
    hours: dict[str, dict[str, set[int]]] = {}
    for pk, sk in touched:
        if sk.startswith(keys.HOUR_PREFIX):
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
    return fired


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


# -- the API's use cases -----------------------------------------------------------------------
def _shown(item: dict[str, Any], secret: str | None = None, admin: bool = True) -> dict[str, Any]:
    url = item.get("webhookUrl")
    return Alert(
        id=item["sk"],
        name=item["name"],
        subject=Subject(**(item.get("subject") or {})),
        measure=item["measure"],
        period=item["period"],
        timeZone=item["timeZone"],
        thresholds=[int(t) for t in item["thresholds"]],
        webhookUrl=url if admin else None,
        webhookHost=urlsplit(url).hostname if url else None,
        createdAt=iso(int(item["createdAt"])),
        updatedAt=iso(int(item["updatedAt"])),
        signingSecret=secret,
    ).model_dump(exclude=set() if secret else {"signingSecret"})


def _loaded(tenant: str, alert_id: str) -> dict[str, Any]:
    item = store.alerts().alert(tenant, alert_id)
    if item is None:
        raise NotFound(f"Unknown alert '{alert_id}'")
    return {**item, "tenant": tenant, "id": alert_id}


def create_alert(tenant: str, body: Any, now: int | None = None) -> dict[str, Any]:
    """Store a new alert and fire at once for thresholds its current period has already reached."""
    now = now_ms() if now is None else now
    spec = parse_body(AlertSpec, body)
    if store.alerts().count_of(tenant) >= MAX_ALERTS:
        raise Conflict(f"A tenant may have at most {MAX_ALERTS:,} alerts; delete one first")
    alert_id = f"al_{uuid.uuid4().hex[:20]}"
    secret = SECRET_PREFIX + secrets.token_urlsafe(32) if spec.webhookUrl else None
    item = {
        "pk": keys.alerts_pk(tenant),
        "sk": alert_id,
        **spec.model_dump(exclude_none=True),
        "subject": spec.subject.model_dump(exclude_none=True),
        "createdAt": now,
        "updatedAt": now,
        **({"signingSecret": secret} if secret else {}),
    }
    store.alerts().put(item)
    _definitions.pop(tenant, None)
    evaluate({**item, "tenant": tenant, "id": alert_id}, now, now=now)
    return _shown(item, secret)


def list_alerts(tenant: str, cursor: str | None, limit: int = 100, admin: bool = False) -> dict[str, Any]:
    """A page of the tenant's alerts, by id (webhook URLs for ``admin`` callers only)."""
    after = decode_cursor(tenant, "alerts", cursor) if cursor else ""
    items = [item for item in store.alerts().alerts_of(tenant) if item["sk"] > after]
    page = items[:limit]
    more = encode_cursor(tenant, "alerts", page[-1]["sk"]) if len(items) > limit else None
    return {"data": [_shown(item, admin=admin) for item in page], "cursor": more}


def get_alert(tenant: str, alert_id: str, admin: bool = False) -> dict[str, Any]:
    """One alert (its webhook URL for ``admin`` callers only)."""
    return _shown(_loaded(tenant, alert_id), admin=admin)


def change_alert(tenant: str, alert_id: str, body: Any, now: int | None = None) -> dict[str, Any]:
    """Rename an alert, change its thresholds or webhook; fire for new thresholds already reached."""
    now = now_ms() if now is None else now
    if isinstance(body, dict):
        fixed = sorted(set(body) - set(PATCHABLE))
        if fixed and fixed[0] in AlertSpec.model_fields:
            raise BadRequest(f"Invalid '{fixed[0]}': cannot be changed; create a new alert instead")
    change = parse_body(AlertChange, body)
    item = _loaded(tenant, alert_id)
    given = change.model_dump(exclude_unset=True)
    if "webhookUrl" in given and given["webhookUrl"] is None:
        item.pop("webhookUrl", None)
        item.pop("signingSecret", None)
        given.pop("webhookUrl")
    secret = None
    if given.get("webhookUrl") and not item.get("signingSecret"):
        secret = item["signingSecret"] = SECRET_PREFIX + secrets.token_urlsafe(32)
    item.update({k: v for k, v in given.items() if v is not None}, updatedAt=now)
    stored = {k: v for k, v in item.items() if k not in ("tenant", "id")}
    store.alerts().put(stored)
    _definitions.pop(tenant, None)
    evaluate(item, now, now=now)
    return _shown(stored, secret)


def delete_alert(tenant: str, alert_id: str) -> None:
    """Remove an alert (its firings are no longer listed)."""
    if not store.alerts().remove_alert(tenant, alert_id):
        raise NotFound(f"Unknown alert '{alert_id}'")
    _definitions.pop(tenant, None)


def alert_status(tenant: str, alert_id: str, now: int | None = None) -> dict[str, Any]:
    """The current period's exact value, the thresholds it has fired for and the next one."""
    now = now_ms() if now is None else now
    alert = _loaded(tenant, alert_id)
    start, end = period_bounds(alert, now)
    value = period_value(alert, start, end)
    crossed = sorted(store.alerts().fired_in(tenant, alert_id, start))
    ahead = [int(t) for t in alert["thresholds"] if int(t) > value]
    zone = ZoneInfo(alert["timeZone"])
    return AlertStatus(
        periodStart=local_iso(start, zone),
        periodEnd=local_iso(end, zone),
        value=value,
        crossed=crossed,
        next=min(ahead) if ahead else None,
    ).model_dump()


def shown_trigger(item: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """A firing as the API and the deliveries show it."""
    delivery = item.get("delivery") or {}
    return Trigger(
        id=keys.trigger_id(item["pk"], item["sk"]),
        threshold=int(item["threshold"]),
        periodStart=local_iso(int(item["periodStart"]), zone),
        periodEnd=local_iso(int(item["periodEnd"]), zone),
        value=int(item["value"]),
        eventId=item.get("eventId"),
        triggeredAt=iso(int(item["triggeredAt"])),
        delivery=Delivery(
            status=delivery.get("status", "pending"),
            attempts=int(delivery.get("attempts", 0)),
            lastError=delivery.get("lastError"),
        ),
    ).model_dump()


def list_triggers(tenant: str, alert_id: str, cursor: str | None, limit: int = TRIGGERS_PAGE) -> dict[str, Any]:
    """An alert's firings, newest first, a page at a time."""
    alert = _loaded(tenant, alert_id)
    before = decode_cursor(tenant, f"triggers/{alert_id}", cursor) if cursor else None
    items = store.alerts().triggers_before(tenant, alert_id, before, limit + 1)
    page = items[:limit]
    more = encode_cursor(tenant, f"triggers/{alert_id}", page[-1]["sk"]) if len(items) > limit else None
    zone = ZoneInfo(alert["timeZone"])
    return TriggerList(data=[Trigger(**shown_trigger(item, zone)) for item in page], cursor=more).model_dump()
