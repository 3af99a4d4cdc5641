"""Tenants, their API keys and rate cards (the Tenants table).

Items: ``TENANT#<name>`` holds the tenant and its rate card; ``KEY#<public id>`` holds one
API key (tenant, scopes, SHA-256 of the secret, revocation time).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from meter.core.caches import Cache
from meter.core.config import get_settings
from meter.core.errors import BadRequest, NotFound
from meter.core.localtime import midnight_quarters
from meter.core.timerange import now_ms, to_ms
from meter.dal import keys, store
from meter.dal.models import Tenant
from meter.dal.records import UsageRecord, record_item

TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SCOPES = ("ingest", "read", "admin")

_settings = Cache(10_000, seconds=lambda: get_settings().rate_card_cache_seconds)  # name → Tenant (or a blank one)


def _unknown(name: str) -> NotFound:
    return NotFound(f"Unknown tenant '{name}'")


def validate_tenant_name(name: str) -> str:
    """A tenant name: lowercase letters, digits and dashes, at most 63 characters."""
    if not TENANT_NAME.match(name):
        raise BadRequest("Invalid tenant: use lowercase letters, digits and '-' (at most 63)")
    return name


def ensure_tenant(name: str) -> bool:
    """Create the tenant if it does not exist; True when it was created."""
    validate_tenant_name(name)
    return store.tenants().add_tenant(name, now_ms())


def tenant_names() -> list[str]:
    """Every registered tenant (the Tenants table is small: a scan)."""
    return sorted(store.tenants().tenant_names())


def get_tenant(name: str) -> Tenant | None:
    """The tenant, or None."""
    return store.tenants().tenant(name)


def forget_tenant_settings(name: str) -> None:
    """Drop this container's cached settings (rate card, mappings) of a tenant whose settings changed."""
    _settings.pop(name)


def _tenant_settings(name: str) -> Tenant:
    """The tenant as ingestion reads it, cached for RATE_CARD_CACHE_SECONDS per process."""
    cached = _settings.get(name)
    if cached is None:
        cached = store.tenants().tenant(name) or Tenant(name=name, created_at=0)
        _settings.put(name, cached)
    return cached


def rate_card(name: str) -> dict[str, Decimal]:
    """The tenant's rate card (cached)."""
    return _tenant_settings(name).rate_card


def cloudevent_mappings(name: str) -> dict[str, Any]:
    """How the tenant's CloudEvents types map to usage events, where it set that (cached)."""
    return _tenant_settings(name).cloudevent_mappings


MAX_DAY_CUTS = 4  # a zone with DST needs two: a home zone and one more, each with DST


def day_cuts(name: str) -> frozenset[int]:
    """The quarters of the UTC day where the tenant's day items are cut (cached)."""
    return _tenant_settings(name).day_cuts


def keep_day_cuts(name: str, cuts: set[int]) -> None:
    """Have the aggregator cut the tenant's day items at these quarters from now on, unless the
    tenant already holds ``MAX_DAY_CUTS`` (its reads of other zones then use hour items: as exact,
    more reads). One conditional write, only for cuts not yet kept."""
    new = set(cuts) - day_cuts(name)
    if new and len(day_cuts(name)) + len(new) <= MAX_DAY_CUTS:
        store.tenants().add_day_cuts(name, new, MAX_DAY_CUTS)
        forget_tenant_settings(name)  # added, or another container filled the set: read it again


def keep_zone_cuts(name: str, zone: ZoneInfo) -> None:
    """Keep the day cuts of a zone's local midnights (both of a DST zone's) for the tenant."""
    keep_day_cuts(name, midnight_quarters(zone, now_ms()))


@dataclass(frozen=True)
class Layout:
    """Where one tenant's data goes. The aggregates: its day items' cuts, and from which event time
    its agents' credits go to a roster sharded over ``keys.ROSTER_SHARDS`` partitions (chosen by the
    agent) instead of its agent boards; both follow from the event alone, so the aggregator,
    reconciliation and readers agree on where every entry is. The records: from which receipt time
    they spread over the ``ByTenant`` shards (None: never yet, all on shard 0; 0: always)."""

    cuts: frozenset[int] = frozenset()
    roster_sharded_from: int | None = None
    records_sharded_from: int | None = 0

    def index_key(self, tenant: str, record_id: str, received_at: int) -> str:
        """The ``ByTenant`` partition of a record received at ``received_at``."""
        sharded = self.records_sharded_from is not None and received_at >= self.records_sharded_from
        return keys.tenant_index_key(tenant, keys.tenant_shard(record_id) if sharded else 0)

    def index_keys(self, tenant: str) -> list[str]:
        """The ``ByTenant`` partitions holding the tenant's records: one until they are sharded (a
        record received late may carry any time, so once sharded, every range reads them all)."""
        return (
            keys.tenant_index_keys(tenant)
            if self.records_sharded_from is not None
            else [keys.tenant_index_key(tenant, 0)]
        )

    def rostered(self, ts: int) -> bool:
        """Whether an event at ``ts`` goes to the agents' roster (from its sharding on), rather than to
        the agents' boards (``meter.dal.boards``)."""
        return self.roster_sharded_from is not None and ts >= self.roster_sharded_from


def layout(name: str) -> Layout:
    """The tenant's layout (cached like its other settings)."""
    settings = _tenant_settings(name)
    return Layout(settings.day_cuts, settings.roster_sharded_from, settings.records_sharded_from)


ROSTER_SHARD_AT = 500  # a tenant's agents of the last two hours, in one commit, that shard its roster


def shard_roster(name: str, now: int) -> None:
    """Shard the tenant's roster for events from a moment no container can still be writing or
    reading it unsharded: past every cached copy of its settings, a minute more, and the accepted
    clock skew of event times (no event before then can be timestamped after it), about 7 minutes
    on. A roster is sharded once; later calls change nothing."""
    if layout(name).roster_sharded_from is not None:
        return
    settings = get_settings()
    wait_ms = (settings.rate_card_cache_seconds + 60 + settings.max_future_skew_seconds) * 1000
    store.tenants().shard_roster(name, now + wait_ms)
    forget_tenant_settings(name)


def placed_record_item(record: UsageRecord) -> dict[str, Any]:
    """A record's Records-table item, on the ``ByTenant`` partition its tenant's layout places it."""
    return record_item(record, layout(record.tenant).index_key(record.tenant, record.id, record.received_at))


RECORDS_SHARD_AT = 400  # events a second into one partition (of its 1,000 WCU/s) that shard a tenant's records


def shard_records(name: str, now: int) -> None:
    """Spread the tenant's records over the ``ByTenant`` shards from when every container will know
    to read them all: past every cached copy of its settings and a minute more (placement is by
    receipt time, so event times do not matter). Until then they stay on one partition. Once only."""
    if layout(name).records_sharded_from is not None:
        return
    store.tenants().shard_records(name, now + (get_settings().rate_card_cache_seconds + 60) * 1000)
    forget_tenant_settings(name)


def credits_for(event_type: str, count: int, explicit: int | None, card: dict[str, Decimal]) -> tuple[int, str]:
    """Credits of one event and where they came from: ``event``, ``rate_card`` or ``none``.

    The event's own ``credits`` win; else ``count`` times the rate of its type, rounded up to
    a whole credit; else 0.
    """
    if explicit is not None:
        return explicit, "event"
    if event_type in card:
        return math.ceil(card[event_type] * count), "rate_card"
    return 0, "none"


def billing_period_start(anchor_day: int, now: int) -> int:
    """Start (midnight UTC) of the billing period holding ``now``: the last ``anchor_day``."""
    moment = datetime.fromtimestamp(now / 1000, tz=UTC)
    start = datetime(moment.year, moment.month, anchor_day, tzinfo=UTC)
    return to_ms(start if moment.day >= anchor_day else start - relativedelta(months=1))


def current_period_start(tenant: str, now: int) -> int:
    """Start of the tenant's billing period holding ``now`` (its anchor day, default the 1st)."""
    return billing_period_start(anchor_day_of(tenant), now)


def anchor_day_of(tenant: str) -> int:
    """The day of month the tenant's billing periods start on (the 1st unless set)."""
    found = get_tenant(tenant)
    return found.billing_anchor_day if found else 1
