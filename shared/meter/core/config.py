"""Deployment settings, read once from the environment (template.yaml sets them).

A plain dataclass, not a pydantic model: every handler reads settings, and query handlers
should not pay for importing pydantic on a cold start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from meter.core.caches import memoized


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"Environment variable {name} is not set (template.yaml sets it for every function)")
    return value


def _whole_number(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        raise ValueError(f"Environment variable {name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"Environment variable {name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Environment of every function; names match template.yaml's Globals."""

    records_table: str
    aggregates_table: str
    tenants_table: str
    control_table: str
    alerts_table: str
    credits_table: str
    max_event_age_days: int
    max_future_skew_seconds: int
    rate_card_cache_seconds: int
    rate_limit_per_second: int
    auth_cache_seconds: int
    webhooks_to_localhost: bool = False  # make run: deliver alerts to http://127.0.0.1 receivers

    @classmethod
    def from_environment(cls) -> Settings:
        """Settings from ``os.environ``: table names required, limits with the template's defaults."""
        return cls(
            records_table=_required("RECORDS_TABLE"),
            aggregates_table=_required("AGGREGATES_TABLE"),
            tenants_table=_required("TENANTS_TABLE"),
            control_table=_required("CONTROL_TABLE"),
            alerts_table=_required("ALERTS_TABLE"),
            credits_table=_required("CREDITS_TABLE"),
            max_event_age_days=_whole_number("MAX_EVENT_AGE_DAYS", 35, 1),
            max_future_skew_seconds=_whole_number("MAX_FUTURE_SKEW_SECONDS", 300, 0),
            rate_card_cache_seconds=_whole_number("RATE_CARD_CACHE_SECONDS", 60, 0),
            rate_limit_per_second=_whole_number("RATE_LIMIT_PER_SECOND", 100, 0),
            auth_cache_seconds=_whole_number("AUTH_CACHE_SECONDS", 60, 0),
            webhooks_to_localhost=os.environ.get("ALERT_WEBHOOKS_TO_LOCALHOST", "").lower() == "true",
        )


@memoized(1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache after changing env)."""
    return Settings.from_environment()
