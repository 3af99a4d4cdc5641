"""What the repositories return: typed domain objects, free of key formats and attribute names.

``meter.dal.store`` alone maps them to and from items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class ApiKey:
    """One API key: its tenant and scopes, the SHA-256 of its secret, and when it was revoked."""

    public_id: str
    tenant: str
    scopes: frozenset[str]
    secret_hash: str
    created_at: int
    name: str | None = None
    rate_limit: int | None = None  # requests per second (0: unlimited); None: the deployment's default
    revoked_at: int | None = None


@dataclass(frozen=True)
class Tenant:
    """A tenant: its rate card (credits per unit of each event type), billing anchor day, how its
    CloudEvents types map to usage events where the default mapping does not fit, and the day cuts
    its queries' time zones need (``meter.dal.dimensions``), and from when its agents' roster is
    sharded, and from when its records are (``meter.dal.tenants.Layout``)."""

    name: str
    created_at: int
    rate_card: dict[str, Decimal] = field(default_factory=dict)
    billing_anchor_day: int = 1
    cloudevent_mappings: dict[str, Any] = field(default_factory=dict)
    day_cuts: frozenset[int] = frozenset()  # quarters of the UTC day its day items are cut at
    roster_sharded_from: int | None = None  # events at or after this instant (ms) go to a sharded roster
    records_sharded_from: int | None = 0  # records received from this instant on spread over the
    # ByTenant shards; None: all on one (a new tenant's); 0: always spread (a tenant made before)


@dataclass(frozen=True)
class Ledger:
    """What one stream shard has committed (``seq``, a sequence key, and ``events`` in all), and
    the commit in progress, if any: its records ``(pending_first, pending_last]``, and the commit
    slot and token it applies its items under (none for a commit written by an earlier version)."""

    shard: str
    seq: str = ""
    events: int = 0
    pending_first: str = ""
    pending_last: str = ""
    slot: int = -1
    token: str = ""


@dataclass(frozen=True)
class PendingCommit:
    """A commit written ahead of its item writes (``meter.counting.aggregation``): its deltas,
    encoded, and the instant its writers stop (None for a commit of an earlier version)."""

    first: str
    last: str
    events: int
    deltas: bytes
    written_at: int
    until: int | None = None


@dataclass(frozen=True)
class Alert:
    """One alert: whose usage (an end user, an agent, or with neither the whole tenant), which
    measure over which period in which zone, its thresholds ascending, and where it is delivered."""

    tenant: str
    id: str
    name: str
    measure: str
    period: str
    time_zone: str
    thresholds: tuple[int, ...]
    created_at: int
    updated_at: int
    identifier: str | None = None
    agent_id: str | None = None
    webhook_url: str | None = None
    signing_secret: str | None = None


@dataclass(frozen=True)
class Delivery:
    """Where a firing's delivery stands: attempts, the last error, whether its EventBridge event
    is out, whether the last attempt ran out of time, and since when it has been retried."""

    status: str = "pending"  # pending, retrying, delivered, failed
    attempts: int = 0
    last_error: str | None = None
    published: bool = False
    timed_out: bool = False
    retry_from: int | None = None


@dataclass(frozen=True)
class Trigger:
    """One firing of one threshold of an alert in one period, with the value that crossed it and
    the event whose counting did (None if usage was past it already)."""

    tenant: str
    alert_id: str
    threshold: int
    period_start: int
    period_end: int
    value: int
    event_id: str | None
    triggered_at: int
    delivery: Delivery = field(default_factory=Delivery)


# -- credits -----------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Subject:
    """Whose credits: one end user (``identifier``), one agent (``agent``), or the whole tenant."""

    kind: str  # "tenant", "identifier" or "agent"
    value: str = ""

    def shown(self) -> dict[str, str]:
        """The API's form: ``{}``, ``{"identifier": …}`` or ``{"agentId": …}``."""
        return {} if self.kind == "tenant" else {"identifier" if self.kind == "identifier" else "agentId": self.value}


TENANT_SUBJECT = Subject("tenant")


@dataclass(frozen=True)
class GrantTerms:
    """What the burn-down needs of a grant: how much, in which order, when (ms), recurring how."""

    id: str
    amount: int
    priority: int
    effective_at: int
    expires_at: int | None = None
    voided_at: int | None = None
    period: str | None = None  # "day", "week" or "month": ``amount`` anew each local period
    time_zone: str | None = None


@dataclass(frozen=True)
class Grant:
    """A grant as created: its terms, whose it is, its free-form ``meta`` and when it was made."""

    tenant: str
    subject: Subject
    terms: GrantTerms
    created_at: int
    fingerprint: str
    meta: dict | None = None


@dataclass(frozen=True)
class Hold:
    """One reservation's open hold on one account: ``credits`` until ``expires_at`` (a release drops
    it); ``settled`` is what counted events carrying its id have consumed since."""

    credits: int
    expires_at: int
    settled: int = 0


@dataclass(frozen=True)
class CreditAccount:
    """One subject's credits: its grants, what was consumed per burn segment (by segment start, ms;
    ``meter.credits.rules``), its holds, and the version every write moves."""

    tenant: str
    subject: Subject
    version: int = 0
    grants: tuple[GrantTerms, ...] = ()
    consumed: dict[int, int] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)


@dataclass(frozen=True)
class CreditSlice:
    """One slice of a tenant's credit budget (``meter.credits.slices``): credits lent to it until
    ``until``, and per expiry bucket what its holds reserve and what their events consumed."""

    index: int
    quota: int = 0
    until: int = 0
    reserved: dict[int, int] = field(default_factory=dict)
    settled: dict[int, int] = field(default_factory=dict)
    version: int = 0

    def committed(self, now: int) -> int:
        """What open holds reserve here and expired holds consumed (both out of the quota)."""
        open_ = sum(n for b, n in self.reserved.items() if b > now)
        return open_ + sum(n for b, n in self.settled.items() if b <= now)

    def free(self, now: int) -> int:
        """What a new hold on this slice may take now (nothing once its lease has run out)."""
        return self.quota - self.committed(now) if now < self.until else 0

    def held(self, now: int) -> int:
        """What its open holds still hold (reserved, less what their events consumed)."""
        return sum(max(0, n - self.settled.get(b, 0)) for b, n in self.reserved.items() if b > now)

    def expired(self, now: int) -> list[int]:
        """Buckets whose holds have all expired (their consumption is folded into the quota)."""
        return sorted(b for b in {*self.reserved, *self.settled} if b <= now)


@dataclass(frozen=True)
class Reservation:
    """A reservation as made: the subjects it holds on, how much, until when, and its answer."""

    tenant: str
    id: str
    subjects: tuple[Subject, ...]
    credits: int
    created_at: int
    expires_at: int
    fingerprint: str
    answer: dict
    released_at: int | None = None
    consumed_at_release: int = 0  # what counted events had consumed of it when it was released
    slice: int | None = None  # the slice of the tenant's budget it holds on, if it holds on the tenant
    bucket: int | None = None  # when its hold there expires (the end of its expiry bucket)
    settled: int = 0  # what counted events carrying its id consumed (the sliced hold's count)
