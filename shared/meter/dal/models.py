"""What the repositories return: typed domain objects, free of key formats and attribute names.

``meter.dal.store`` alone maps them to and from items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


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
    """A tenant: its rate card (credits per unit of each event type) and billing anchor day."""

    name: str
    created_at: int
    rate_card: dict[str, Decimal] = field(default_factory=dict)
    billing_anchor_day: int = 1


@dataclass(frozen=True)
class Ledger:
    """What one stream shard has committed (``seq``, a sequence key, and ``events`` in all), and
    the commit in progress, if any: its records ``(pending_first, pending_last]`` and its chunks applied."""

    shard: str
    seq: str = ""
    events: int = 0
    pending_first: str = ""
    pending_last: str = ""
    chunks_done: int = 0


@dataclass(frozen=True)
class PendingCommit:
    """A multi-transaction commit written ahead (``meter.counting.aggregation``): its deltas, encoded."""

    first: str
    last: str
    events: int
    deltas: bytes
    written_at: int
