"""Key and tenant administration: what only an operator does (meterctl, the local runner, tests).

Not part of the Lambda layer: no function creates keys or changes rate cards.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from meter.api.auth import hash_secret, new_key
from meter.core.errors import BadRequest, NotFound
from meter.core.localtime import named_zone
from meter.core.timerange import now_ms
from meter.dal import store
from meter.dal.models import ApiKey
from meter.dal.tenants import (
    SCOPES,
    day_cuts,
    ensure_tenant,
    forget_tenant_settings,
    keep_zone_cuts,
    layout,
    shard_records,
    validate_tenant_name,
)


def _unknown(name: str) -> NotFound:
    return NotFound(f"Unknown tenant '{name}'")


def create_key(tenant: str, scopes: list[str], name: str = "", rate_limit: int | None = None) -> str:
    """Create a key for ``tenant`` (creating the tenant too); returns the full token once.

    ``rate_limit`` (requests per second, 0 = unlimited) overrides the deployment's default.
    """
    if rate_limit is not None and rate_limit < 0:
        raise BadRequest("Invalid rate limit: use a whole number of requests per second, 0 for unlimited")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise BadRequest(f"Invalid scopes {unknown or scopes}: choose from {', '.join(SCOPES)}")
    ensure_tenant(tenant)
    public_id, secret = new_key()
    key = ApiKey(
        public_id=public_id,
        tenant=tenant,
        scopes=frozenset(scopes),
        secret_hash=hash_secret(secret),
        created_at=now_ms(),
        name=name or None,
        rate_limit=rate_limit,
    )
    if not store.tenants().add_api_key(key):
        raise RuntimeError("a fresh key id is already taken")  # 95 random bits: never in practice
    return f"{public_id}:{secret}"


def list_keys(tenant: str | None = None) -> list[dict[str, Any]]:
    """Every key (optionally of one tenant), without secret hashes. Admin use: scans the table."""
    found = [key for key in store.tenants().api_keys() if tenant is None or key.tenant == tenant]
    return [_shown(key) for key in sorted(found, key=lambda k: (k.tenant, k.created_at))]


def _shown(key: ApiKey) -> dict[str, Any]:
    """A key as meterctl lists it: no secret hash, and only the fields it has."""
    shown = {
        "keyId": key.public_id,
        "tenant": key.tenant,
        "scopes": sorted(key.scopes),
        "createdAt": key.created_at,
        "name": key.name,
        "rateLimit": key.rate_limit,
        "revokedAt": key.revoked_at,
    }
    return {field: value for field, value in shown.items() if value is not None}


def revoke_key(public_id: str) -> None:
    """Revoke a key; it stops working once cached verdicts expire (``AUTH_CACHE_SECONDS``)."""
    if not store.tenants().revoke_key(public_id, now_ms()):
        raise NotFound(f"Unknown key '{public_id}'")


def set_rate_card(name: str, rates: dict[str, str | int | float]) -> dict[str, Decimal]:
    """Replace a tenant's rate card: credits per unit of each event type."""
    card: dict[str, Decimal] = {}
    for event_type, rate in rates.items():
        try:
            card[event_type] = Decimal(str(rate))
        except InvalidOperation:
            raise BadRequest(f"Invalid rate for '{event_type}': {rate!r} is not a number") from None
        if not card[event_type].is_finite() or card[event_type] < 0:
            raise BadRequest(f"Invalid rate for '{event_type}': it must be a number >= 0")
    if not store.tenants().set_rate_card(name, card):
        raise _unknown(name)
    forget_tenant_settings(name)
    return card


def set_cloudevent_mappings(name: str, mappings: dict[str, Any]) -> dict[str, Any]:
    """Replace how a tenant's CloudEvents types map to usage events (``{ce type: CloudEventMapping}``)."""
    from pydantic import ValidationError

    from meter.ingest.cloudevents import CloudEventMapping

    checked: dict[str, Any] = {}
    for event_type, mapping in mappings.items():
        try:
            checked[event_type] = CloudEventMapping.model_validate(mapping).model_dump()
        except ValidationError as invalid:
            problem = invalid.errors()[0]
            where = ".".join(str(part) for part in (event_type, *problem["loc"]))
            raise BadRequest(f"Invalid mapping '{where}': {problem['msg']}") from None
    if not store.tenants().set_cloudevent_mappings(name, checked):
        raise _unknown(name)
    forget_tenant_settings(name)
    return checked


def set_billing_anchor(name: str, day: int) -> None:
    """Set the day of month (1-28, UTC) on which the tenant's billing period starts."""
    if not 1 <= day <= 28:
        raise BadRequest("Invalid billing anchor day: use 1 to 28")
    if not store.tenants().set_billing_anchor(name, day):
        raise _unknown(name)


def cut_times(cuts: frozenset[int]) -> list[str]:
    """Day cuts as the UTC times they fall at (``18:30Z``)."""
    return [f"{quarter // 4:02d}:{quarter % 4 * 15:02d}Z" for quarter in sorted(cuts)]


def spread_records(name: str) -> int:
    """Spread the tenant's records over the ``ByTenant`` shards from about two minutes on, as its
    traffic would once it stores 400 events a second (before a known burst: a quiet tenant's one
    partition takes at most 1,000 writes a second); when they are spread, as Unix ms."""
    if store.tenants().tenant(validate_tenant_name(name)) is None:
        raise _unknown(name)
    shard_records(name, now_ms())
    return layout(name).records_sharded_from or 0


def keep_zone(name: str, zone_name: str) -> list[str]:
    """Have the tenant's day items cut at a zone's local midnights from now on (its first query
    in the zone does the same; keep it before sending history to read that history's local days
    from day items at once); the tenant's cuts, as UTC times."""
    zone = named_zone(zone_name)
    if zone is None:
        raise BadRequest(f"Invalid 'zone': unknown time zone {zone_name!r}")
    if store.tenants().tenant(validate_tenant_name(name)) is None:
        raise _unknown(name)
    keep_zone_cuts(name, zone)
    return cut_times(day_cuts(name))
