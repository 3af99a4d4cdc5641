"""Grants made, voided and shown, and a subject's balance."""

from __future__ import annotations

from dataclasses import replace

from meter.core.errors import Conflict, NotFound
from meter.core.timerange import now_ms
from meter.credits import decide
from meter.credits.reservations import rebalance
from meter.credits.rules import Balance, balance
from meter.credits.slices import SLICES
from meter.dal.credits import credits
from meter.dal.models import TENANT_SUBJECT, CreditAccount, Grant, Subject

MAX_GRANTS_PER_SUBJECT = 100  # every grant ever made to a subject stays in its account's burn-down


def made_before(tenant: str, grant_id: str, fingerprint: str) -> Grant | None:
    """The grant already made under this id with this body, or None; 409 for another body."""
    existing = credits().grant(tenant, grant_id, consistent=True)
    if existing is not None and existing.fingerprint != fingerprint:
        raise Conflict(f"Grant '{grant_id}' exists with another body")
    return existing


def create_grant(grant: Grant) -> tuple[Grant, bool]:
    """Store a grant once: (the grant, True) when new, (the stored one, False) for the same body
    again; 409 for another body under its id, or a subject at its limit."""
    repo = credits()
    for round_number in range(decide.MAX_ROUNDS):
        existing = made_before(grant.tenant, grant.terms.id, grant.fingerprint)
        if existing is not None:
            return existing, False
        account = repo.account(grant.tenant, grant.subject, consistent=True)
        if account is not None and len(account.grants) >= MAX_GRANTS_PER_SUBJECT:
            raise Conflict(f"A subject holds at most {MAX_GRANTS_PER_SUBJECT} grants")
        if decide.commit(repo.add_grant_actions(grant, account)) is None:
            _relend(grant.tenant, grant.subject)
            return grant, True
        decide.pause(round_number)
    raise decide.gave_up("grant not stored")


def _relend(tenant: str, subject: Subject) -> None:
    """After the tenant's grants change, its budget's slices lend what it now has (a void must not
    leave them lending what is gone)."""
    if subject == TENANT_SUBJECT:
        rebalance(tenant)


def stored_grant(tenant: str, grant_id: str) -> Grant:
    """One grant, or 404."""
    found = credits().grant(tenant, grant_id)
    if found is None:
        raise NotFound(f"No grant '{grant_id}'")
    return found


def grants_by_id(tenant: str, grant_ids: list[str]) -> dict[str, Grant]:
    """Many grants of a tenant by id (those that exist)."""
    return credits().grants(tenant, grant_ids) if grant_ids else {}


def void_grant(tenant: str, grant_id: str, now: int | None = None) -> Grant:
    """Void a grant from now on (what it covered stays covered); voiding twice changes nothing."""
    repo = credits()
    for round_number in range(decide.MAX_ROUNDS):
        grant = repo.grant(tenant, grant_id, consistent=True)
        if grant is None:
            raise NotFound(f"No grant '{grant_id}'")
        if grant.terms.voided_at is not None:
            return grant
        account = repo.account(tenant, grant.subject, consistent=True)
        at = now_ms() if now is None else now
        if account is not None and decide.commit(repo.void_grant_actions(grant, account, at)) is None:
            _relend(tenant, grant.subject)
            return repo.grant(tenant, grant_id, consistent=True) or grant
        decide.pause(round_number)
    raise decide.gave_up("grant not voided")


def account_of(tenant: str, subject: Subject) -> CreditAccount:
    """A subject's account, strongly consistent (an empty one if nothing was ever granted)."""
    return credits().account(tenant, subject, consistent=True) or CreditAccount(tenant, subject)


def balance_of(tenant: str, subject: Subject, now: int | None = None) -> Balance:
    """A subject's balance now (the tenant's holds are on the slices of its budget)."""
    return balance_with_holds(account_of(tenant, subject), now_ms() if now is None else now)


def balance_with_holds(account: CreditAccount, now: int) -> Balance:
    """An account's balance, with what the tenant's budget slices hold when it is the tenant's."""
    found = balance(account, now)
    if account.subject != TENANT_SUBJECT:
        return found
    slices = credits().slices(account.tenant, list(range(SLICES)), consistent=True).values()
    return replace(found, reserved=found.reserved + sum(s.held(now) for s in slices))
