"""The credits API: grants, balances and reservations (shapes, parameters, answers).

The request and answer shapes are pydantic models (the OpenAPI document is generated from
them); the decisions are ``meter.credits``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from meter.alerts import rules
from meter.api.alerts import Subject, parse_body
from meter.api.http import Created
from meter.core.errors import BadRequest
from meter.core.logs import logger, metrics
from meter.core.timerange import iso, now_ms, to_ms
from meter.credits import grants as grant_cases
from meter.credits import reservations as reservation_cases
from meter.credits.grants import account_of, balance_of
from meter.credits.rules import FOREVER, remaining_of
from meter.dal import models
from meter.dal.cursors import decode_cursor, encode_cursor
from meter.ingest.models import Meta, RelationId, ZoneName

MAX_CREDITS = 10**15
MAX_SUBJECTS = 10
MAX_TTL_SECONDS = 3600
PAST_TOLERANCE_MS = 60_000  # an effectiveAt this close to now is read as now (clocks differ)
GRANTS_PAGE = 50
Credits = Annotated[StrictInt, Field(ge=1, le=MAX_CREDITS)]
SubjectShown = Annotated[
    dict[Literal["identifier", "agentId"], str],
    Field(description='{"identifier": …}, {"agentId": …}, or {} for the tenant'),
]


# -- shapes ----------------------------------------------------------------------------------
class Recurrence(BaseModel):
    """An allowance: ``amount`` anew at each local period start, expiring at the period's end."""

    model_config = ConfigDict(extra="forbid")
    period: Literal["day", "week", "month"]
    timeZone: ZoneName = "UTC"


class GrantSpec(BaseModel):
    """``POST /v1/grants``: credits for a subject, from ``effectiveAt`` (default now)."""

    model_config = ConfigDict(extra="forbid")
    id: RelationId = Field(description="The idempotency key: the same body again is the same grant")
    subject: Subject = Field(default_factory=Subject, description="An end user, an agent, or {} for the tenant")
    amount: Credits
    priority: Annotated[StrictInt, Field(ge=1, le=255)] = Field(100, description="Lower burns first")
    effectiveAt: AwareDatetime | None = None
    expiresAt: AwareDatetime | None = None
    recurrence: Recurrence | None = None
    meta: Meta | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> GrantSpec:
        if self.expiresAt is not None and self.effectiveAt is not None and self.expiresAt <= self.effectiveAt:
            raise ValueError("expiresAt: must be after effectiveAt")
        return self


class GrantShown(BaseModel):
    """A grant as the API shows it; ``remaining`` is what is left of it (of this period's allowance)."""

    id: str
    subject: SubjectShown
    amount: int
    priority: int
    effectiveAt: str
    expiresAt: str | None
    recurrence: Recurrence | None
    meta: dict[str, Any] | None
    createdAt: str
    voidedAt: str | None
    remaining: int


class GrantList(BaseModel):
    data: list[GrantShown]
    cursor: str | None = None


class GrantStanding(BaseModel):
    id: str
    remaining: int
    priority: int
    expiresAt: str | None = Field(description="When this grant (this period's allowance) stops covering")


class BalanceShown(BaseModel):
    """``GET /v1/balance``: ``available = max(0, granted - consumed - reserved)`` over the grants in
    effect now, in burn order; ``overage`` is what no grant covered since they started."""

    subject: SubjectShown
    available: int
    granted: int
    consumed: int
    reserved: int
    overage: int
    grants: list[GrantStanding]
    asOf: str


class ReservationSpec(BaseModel):
    """``POST /v1/reservations``: hold ``credits`` on every subject at once, or on none."""

    model_config = ConfigDict(extra="forbid")
    id: RelationId = Field(description="The idempotency key: the same body again is the same answer, held once")
    subjects: list[Subject] = Field(min_length=1, max_length=MAX_SUBJECTS)
    credits: Credits
    ttlSeconds: Annotated[StrictInt, Field(ge=1, le=MAX_TTL_SECONDS)] = 300

    @field_validator("subjects")
    @classmethod
    def _distinct(cls, subjects: list[Subject]) -> list[Subject]:
        if len({_subject(s) for s in subjects}) != len(subjects):
            raise ValueError("subjects must be distinct")
        return subjects


class SubjectRoom(BaseModel):
    subject: SubjectShown
    available: int = Field(description="What the subject has available once this hold is taken")


class ReservationMade(BaseModel):
    """A hold taken: until ``expiresAt``, unless released or settled by counted events first."""

    id: str
    credits: int
    expiresAt: str
    subjects: list[SubjectRoom]


class Insufficient(BaseModel):
    """402: the first subject without room, and what it has; nothing was held anywhere."""

    error: Literal["Insufficient credits"]
    subject: SubjectShown
    available: int


class ReservationShown(BaseModel):
    """Where a reservation stands: ``held`` is what it still holds, ``consumed`` what counted events
    carrying its id consumed of it."""

    id: str
    credits: int
    held: int
    consumed: int
    state: Literal["open", "released", "expired"]
    subjects: list[SubjectShown]
    createdAt: str
    expiresAt: str
    releasedAt: str | None


# -- helpers ---------------------------------------------------------------------------------
def _subject(shape: Subject) -> models.Subject:
    if shape.identifier is not None:
        return models.Subject("identifier", shape.identifier)
    if shape.agentId is not None:
        return models.Subject("agent", shape.agentId)
    return models.TENANT_SUBJECT


def _fingerprint(spec: BaseModel) -> str:
    body = spec.model_dump(mode="json", exclude_unset=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def subject_from_query(query: dict[str, str]) -> models.Subject:
    """The subject of ``?identifier=`` or ``?agentId=`` (neither: the tenant); 400 for both."""
    try:
        shape = Subject(identifier=query.get("identifier"), agentId=query.get("agentId"))
    except ValueError as invalid:
        raise BadRequest(f"Invalid 'identifier'/'agentId': {invalid.errors()[0]['msg']}") from None
    return _subject(shape)


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


def _optional_iso(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


def _watch(tenant: str, subjects: set[models.Subject]) -> None:
    """Evaluate the balance alerts on subjects whose balance just moved; a failure is logged (the
    next commit, decision or reconciliation evaluates them again), never the answer's."""
    try:
        rules.check_balances(tenant, subjects, fresh=False)
    except Exception:
        logger.exception("balance alert check failed; the next check of these subjects repeats it")
        metrics.add_metric(name="AlertChecksFailed", unit="Count", value=1)


# -- grants ----------------------------------------------------------------------------------
def _grant_shown(grant: models.Grant, remaining: int) -> dict[str, Any]:
    t = grant.terms
    recurrence = Recurrence(period=t.period, timeZone=t.time_zone or "UTC") if t.period else None
    return GrantShown(
        id=t.id,
        subject=grant.subject.shown(),
        amount=t.amount,
        priority=t.priority,
        effectiveAt=iso(t.effective_at),
        expiresAt=_optional_iso(t.expires_at),
        recurrence=recurrence,
        meta=grant.meta,
        createdAt=iso(grant.created_at),
        voidedAt=_optional_iso(t.voided_at),
        remaining=remaining,
    ).model_dump()


def _shown_now(grant: models.Grant) -> dict[str, Any]:
    account = account_of(grant.tenant, grant.subject)
    return _grant_shown(grant, remaining_of(account, grant.terms.id, now_ms()))


def create_grant(tenant: str, body: Any) -> dict[str, Any]:
    """``POST /v1/grants``: 201 with the grant; the same body again 200; another body 409."""
    spec = parse_body(GrantSpec, body)
    before = grant_cases.made_before(tenant, spec.id, _fingerprint(spec))
    if before is not None:  # the same body again, whatever time it is now
        return _shown_now(before)
    now = now_ms()
    effective = _ms(spec.effectiveAt)
    if effective is not None and effective < now - PAST_TOLERANCE_MS:
        raise BadRequest("Invalid 'effectiveAt': must not be in the past (a grant covers usage from when it is made)")
    effective = max(effective or now, now)
    expires = _ms(spec.expiresAt)
    if expires is not None and expires <= effective:
        raise BadRequest("Invalid 'expiresAt': must be after effectiveAt (and after now)")
    terms = models.GrantTerms(
        id=spec.id,
        amount=spec.amount,
        priority=spec.priority,
        effective_at=effective,
        expires_at=expires,
        period=spec.recurrence.period if spec.recurrence else None,
        time_zone=spec.recurrence.timeZone if spec.recurrence else None,
    )
    grant = models.Grant(tenant, _subject(spec.subject), terms, now, _fingerprint(spec), spec.meta)
    stored, created = grant_cases.create_grant(grant)
    _watch(tenant, {stored.subject})
    shown = _shown_now(stored)
    return Created(shown) if created else shown


def get_grant(tenant: str, grant_id: str) -> dict[str, Any]:
    """``GET /v1/grants/{id}``."""
    return _shown_now(grant_cases.stored_grant(tenant, grant_id))


def void_grant(tenant: str, grant_id: str) -> dict[str, Any]:
    """``DELETE /v1/grants/{id}``: void it from now; the grant as it is then."""
    voided = grant_cases.void_grant(tenant, grant_id)
    _watch(tenant, {voided.subject})
    return _shown_now(voided)


def list_grants(tenant: str, query: dict[str, str]) -> dict[str, Any]:
    """``GET /v1/grants``: a subject's grants in the order they were made, cursor-paged."""
    subject = subject_from_query(query)
    listing = f"grants/{subject.kind}/{subject.value}"
    after = decode_cursor(tenant, listing, query["cursor"]) if query.get("cursor") else None
    account, now = account_of(tenant, subject), now_ms()
    ids = [g.id for g in account.grants]
    start = ids.index(after) + 1 if after in ids else 0
    page = ids[start : start + GRANTS_PAGE]
    stored = grant_cases.grants_by_id(tenant, page)
    data = [_grant_shown(stored[g], remaining_of(account, g, now)) for g in page if g in stored]
    more = encode_cursor(tenant, listing, page[-1]) if start + GRANTS_PAGE < len(ids) else None
    return GrantList(data=data, cursor=more).model_dump()


# -- balance ---------------------------------------------------------------------------------
def get_balance(tenant: str, query: dict[str, str]) -> dict[str, Any]:
    """``GET /v1/balance``: a subject's credits now."""
    subject, now = subject_from_query(query), now_ms()
    found = balance_of(tenant, subject, now)
    standings = [
        GrantStanding(
            id=s.instance.terms.id,
            remaining=s.remaining,
            priority=s.instance.terms.priority,
            expiresAt=_optional_iso(s.instance.end if s.instance.end < FOREVER else None),
        )
        for s in found.grants
    ]
    return BalanceShown(
        subject=subject.shown(),
        available=found.available,
        granted=found.granted,
        consumed=found.consumed,
        reserved=found.reserved,
        overage=found.overage,
        grants=standings,
        asOf=iso(now),
    ).model_dump()


# -- reservations ----------------------------------------------------------------------------
def _made(answer: dict[str, Any]) -> dict[str, Any]:
    return ReservationMade(**{**answer, "expiresAt": iso(answer["expiresAt"])}).model_dump()


def create_reservation(tenant: str, body: Any) -> dict[str, Any]:
    """``POST /v1/reservations``: 201 with the hold; the same body again 200 with the same answer;
    402 naming the first subject without room."""
    spec = parse_body(ReservationSpec, body)
    request = reservation_cases.ReservationRequest(
        tenant, spec.id, tuple(_subject(s) for s in spec.subjects), spec.credits, spec.ttlSeconds, _fingerprint(spec)
    )
    answer, created = reservation_cases.reserve(request)
    if created:
        _watch(tenant, set(request.subjects))
    return Created(_made(answer)) if created else _made(answer)


def _reservation_shown(reservation: models.Reservation) -> dict[str, Any]:
    now = reservation_cases.standing(reservation)
    r = now.reservation
    return ReservationShown(
        id=r.id,
        credits=r.credits,
        held=now.held,
        consumed=now.consumed,
        state=now.state,
        subjects=[s.shown() for s in r.subjects],
        createdAt=iso(r.created_at),
        expiresAt=iso(r.expires_at),
        releasedAt=_optional_iso(r.released_at),
    ).model_dump()


def get_reservation(tenant: str, reservation_id: str) -> dict[str, Any]:
    """``GET /v1/reservations/{id}``."""
    return _reservation_shown(reservation_cases.stored_reservation(tenant, reservation_id))


def release_reservation(tenant: str, reservation_id: str) -> dict[str, Any]:
    """``POST /v1/reservations/{id}/release``: what is left of the hold goes back at once."""
    return _reservation_shown(reservation_cases.release(tenant, reservation_id))
