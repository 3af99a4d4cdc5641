"""The alerts API: definitions created, listed, changed and deleted; status and firings shown.

The request and answer shapes are pydantic models (the OpenAPI document is generated from them);
evaluating and firing is ``meter.alerts.rules``.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import replace
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from meter.alerts import rules, webhooks
from meter.alerts.rules import evaluate, period_bounds, period_value, shown_trigger, subject_of
from meter.core import ids
from meter.core.config import get_settings
from meter.core.errors import BadRequest, Conflict, NotFound
from meter.core.localtime import local_iso
from meter.core.timerange import iso, now_ms
from meter.credits.grants import account_of as credits_account
from meter.dal import store
from meter.dal.cursors import decode_cursor, encode_cursor
from meter.dal.models import Alert as StoredAlert
from meter.dal.tenants import keep_zone_cuts
from meter.ingest.models import ZoneName

MAX_THRESHOLDS = 20
MAX_ALERTS = 1000
MAX_THRESHOLD = 10**15
TRIGGERS_PAGE = 50
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
PATCHABLE = ("name", "thresholds", "webhookUrl")
Measure = Literal["credits", "tokens", "events", "messages", "conversations", "available"]
Period = Literal["day", "month", "billing_period"]


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
    measure: Measure = Field(description="available: the subject's available credits, falling to each threshold")
    period: Period | None = Field(None, description="Required, but for a balance alert (measure available)")
    timeZone: ZoneName = "UTC"
    thresholds: list[int] = Field(min_length=1, max_length=MAX_THRESHOLDS)
    webhookUrl: str | None = Field(None, max_length=2048)

    _thresholds = field_validator("thresholds")(_thresholds)
    _https = field_validator("webhookUrl")(_webhook)

    @model_validator(mode="after")
    def _period_unless_balance(self) -> AlertSpec:
        if self.measure == rules.BALANCE and self.period is not None:
            raise ValueError("period: a balance alert has none (it fires once per grant that lifted the balance)")
        if self.measure != rules.BALANCE and self.period is None:
            raise ValueError("period: required (day, month or billing_period)")
        return self

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
    period: Period | None
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
    """``GET /v1/alerts/{id}/status``: where the current period stands. For a balance alert the
    period runs from the start of the latest grant in effect, ``value`` is the available credits,
    and ``next`` the highest threshold still below it."""

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
    named, colon, rest = message.partition(": ")
    if colon and named.isidentifier() and field in ("body", ""):  # a check across fields names its field
        field, message = named, rest
    return BadRequest(f"Invalid '{field}': {message}", details=[{"field": field, "reason": message}])


def parse_body(model: type[BaseModel], body: Any) -> BaseModel:
    """A request body as ``model``; 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as invalid:
        raise _invalid(invalid) from None


# -- the API's use cases -----------------------------------------------------------------------
def _shown(alert: StoredAlert, secret: str | None = None, admin: bool = True) -> dict[str, Any]:
    url = alert.webhook_url
    return Alert(
        id=alert.id,
        name=alert.name,
        subject=Subject(**subject_of(alert)),
        measure=alert.measure,
        period=None if rules.is_balance(alert) else alert.period,
        timeZone=alert.time_zone,
        thresholds=list(alert.thresholds),
        webhookUrl=url if admin else None,
        webhookHost=urlsplit(url).hostname if url else None,
        createdAt=iso(alert.created_at),
        updatedAt=iso(alert.updated_at),
        signingSecret=secret,
    ).model_dump(exclude=set() if secret else {"signingSecret"})


def _loaded(tenant: str, alert_id: str) -> StoredAlert:
    alert = store.alerts().alert(tenant, alert_id)
    if alert is None:
        raise NotFound(f"Unknown alert '{alert_id}'")
    return alert


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def create_alert(tenant: str, body: Any, now: int | None = None) -> dict[str, Any]:
    """Store a new alert and fire at once for thresholds its current period has already reached."""
    now = now_ms() if now is None else now
    spec = parse_body(AlertSpec, body)
    if store.alerts().count_of(tenant) >= MAX_ALERTS:
        raise Conflict(f"A tenant may have at most {MAX_ALERTS:,} alerts; delete one first")
    alert = StoredAlert(
        tenant=tenant,
        id=f"al_{uuid.uuid4().hex[:20]}",
        name=spec.name,
        measure=spec.measure,
        period=spec.period or "none",
        time_zone=spec.timeZone,
        thresholds=tuple(spec.thresholds),
        created_at=now,
        updated_at=now,
        identifier=spec.subject.identifier,
        agent_id=spec.subject.agentId,
        webhook_url=spec.webhookUrl,
        signing_secret=_new_secret() if spec.webhookUrl else None,
    )
    store.alerts().save(alert)
    rules.forget_definitions(tenant)
    if alert.time_zone and alert.period in ("day", "month"):
        keep_zone_cuts(tenant, ZoneInfo(alert.time_zone))  # its periods' first days: day items alone
    _evaluate(alert, now)
    return _shown(alert, alert.signing_secret)


def _evaluate(alert: StoredAlert, now: int) -> None:
    """Fire at once for the thresholds already reached (a balance already at or below them)."""
    if rules.is_balance(alert):
        rules.check_balances(alert.tenant, {rules.credit_subject(alert)})
    else:
        evaluate(alert, now, now=now)


def list_alerts(tenant: str, cursor: str | None, limit: int = 100, admin: bool = False) -> dict[str, Any]:
    """A page of the tenant's alerts, by id (webhook URLs for ``admin`` callers only)."""
    after = decode_cursor(tenant, "alerts", cursor) if cursor else ""
    alerts = [alert for alert in store.alerts().alerts_of(tenant) if alert.id > after]
    page = alerts[:limit]
    more = encode_cursor(tenant, "alerts", page[-1].id) if len(alerts) > limit else None
    return {"data": [_shown(alert, admin=admin) for alert in page], "cursor": more}


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
    alert = _loaded(tenant, alert_id)
    given = change.model_dump(exclude_unset=True)
    url, secret, new_secret = alert.webhook_url, alert.signing_secret, None
    if "webhookUrl" in given:
        url = given["webhookUrl"]  # null removes the webhook, and its secret with it
        if url is None:
            secret = None
        elif secret is None:
            secret = new_secret = _new_secret()
    alert = replace(
        alert,
        name=given.get("name") or alert.name,
        thresholds=tuple(given["thresholds"]) if given.get("thresholds") else alert.thresholds,
        webhook_url=url,
        signing_secret=secret,
        updated_at=now,
    )
    store.alerts().save(alert)
    rules.forget_definitions(tenant)
    _evaluate(alert, now)
    return _shown(alert, new_secret)


def delete_alert(tenant: str, alert_id: str) -> None:
    """Remove an alert (its firings are no longer listed)."""
    if not store.alerts().remove_alert(tenant, alert_id):
        raise NotFound(f"Unknown alert '{alert_id}'")
    rules.forget_definitions(tenant)


def alert_status(tenant: str, alert_id: str, now: int | None = None) -> dict[str, Any]:
    """The current period's exact value, the thresholds it has fired for and the next one."""
    now = now_ms() if now is None else now
    alert = _loaded(tenant, alert_id)
    if rules.is_balance(alert):
        return _balance_status(alert, now)
    start, end = period_bounds(alert, now)
    value = period_value(alert, start, end)
    crossed = sorted(store.alerts().fired_in(tenant, alert_id, start))
    ahead = [t for t in alert.thresholds if t > value]
    zone = ZoneInfo(alert.time_zone)
    return AlertStatus(
        periodStart=local_iso(start, zone),
        periodEnd=local_iso(end, zone),
        value=value,
        crossed=crossed,
        next=min(ahead) if ahead else None,
    ).model_dump()


def _balance_status(alert: StoredAlert, now: int) -> dict[str, Any]:
    """A balance alert's standing: available now, since the grant that last lifted it."""
    account = credits_account(alert.tenant, rules.credit_subject(alert))
    value, lifted = rules.balance_standing(alert, account, now)
    crossed = sorted(store.alerts().fired_in(alert.tenant, alert.id, lifted)) if lifted is not None else []
    below = [t for t in alert.thresholds if t < value]
    zone = ZoneInfo(alert.time_zone)
    return AlertStatus(
        periodStart=local_iso(lifted if lifted is not None else now, zone),
        periodEnd=local_iso(now, zone),
        value=value,
        crossed=crossed,
        next=max(below) if below else None,
    ).model_dump()


def list_triggers(tenant: str, alert_id: str, cursor: str | None, limit: int = TRIGGERS_PAGE) -> dict[str, Any]:
    """An alert's firings, newest first, a page at a time."""
    alert = _loaded(tenant, alert_id)
    before = decode_cursor(tenant, f"triggers/{alert_id}", cursor) if cursor else None
    found = store.alerts().triggers_before(tenant, alert_id, before, limit + 1)
    page = found[:limit]
    last = store.Alerts.trigger_key(page[-1])[1] if page else None
    more = encode_cursor(tenant, f"triggers/{alert_id}", last) if len(found) > limit else None
    zone = ZoneInfo(alert.time_zone)
    return TriggerList(data=[Trigger(**shown_trigger(trigger, zone)) for trigger in page], cursor=more).model_dump()
