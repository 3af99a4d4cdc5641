"""Deployment settings, read once from the environment (template.yaml sets them)."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Environment of every function; names match template.yaml's Globals."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    records_table: str = Field("UsageRecords", alias="RECORDS_TABLE")
    aggregates_table: str = Field("UsageAggregates", alias="AGGREGATES_TABLE")
    tenants_table: str = Field("Tenants", alias="TENANTS_TABLE")
    max_event_age_days: int = Field(35, alias="MAX_EVENT_AGE_DAYS", ge=1)
    max_future_skew_seconds: int = Field(300, alias="MAX_FUTURE_SKEW_SECONDS", ge=0)
    rate_card_cache_seconds: int = Field(60, alias="RATE_CARD_CACHE_SECONDS", ge=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache after changing env)."""
    return Settings.model_validate(dict(os.environ))
