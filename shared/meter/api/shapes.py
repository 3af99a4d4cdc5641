"""The answers of the platform routes, ingestion and ``/v1/me``, as typed shapes.

The use cases are annotated with these and return plain dicts of the same shape; the OpenAPI
document is generated from them (``local.openapi``), and a test keeps the committed document
current. A TypedDict costs nothing at import (typing_extensions is loaded by Powertools already),
so the query handlers still load no pydantic; the native query and the alerts API have pydantic
models of their own, which they validate with.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict  # pydantic reads these on Python < 3.12 (the docs generator)


# -- AgentsGT ------------------------------------------------------------------------------
class DayCredits(TypedDict):
    date: str  # YYYY-MM-DD (UTC)
    total_credits: int


class DailyCredits(TypedDict):
    data: list[DayCredits]


class ModelCredits(TypedDict):
    model_id: str
    name: str
    total_credits: int


class ModelsCredits(TypedDict):
    data: list[ModelCredits]


SummaryPeriod = TypedDict("SummaryPeriod", {"from": str | None, "to": str})


class Summary(TypedDict):
    organization_id: str
    total_consumption: int
    period: SummaryPeriod


class OrganizationSummary(TypedDict):
    data: Summary


class AgentCredits(TypedDict):
    agent_id: str
    total_credits: int


class AgentsCredits(TypedDict):
    data: list[AgentCredits]


# -- DigitalOcean Gradient -------------------------------------------------------------------
class Measurement(TypedDict):
    tokens: int
    usage_type: str


class UsageGroup(TypedDict):
    measurements: list[Measurement]
    resource_uuid: str
    start: str
    stop: str


class AgentUsage(TypedDict):
    usage: UsageGroup
    log_insights_usage: UsageGroup


# -- ChatBotKit ------------------------------------------------------------------------------
class Totals(TypedDict):
    tokens: int
    conversations: int
    messages: int


class Database(TypedDict):
    datasets: int
    records: int
    skillsets: int
    abilities: int
    files: int
    users: int


class PeriodTotals(Totals):
    database: Database


class SeriesPoint(TypedDict):
    date: int  # midnight UTC, Unix ms
    total: int


class Series(TypedDict):
    tokens: list[SeriesPoint]
    conversations: list[SeriesPoint]
    messages: list[SeriesPoint]


class ListItem(TypedDict):
    id: str
    type: str
    count: int
    createdAt: int
    updatedAt: int
    meta: NotRequired[dict]
    conversationId: NotRequired[str]
    messageId: NotRequired[str]
    taskId: NotRequired[str]
    contactId: NotRequired[str]
    blueprintId: NotRequired[str]
    botId: NotRequired[str]
    datasetId: NotRequired[str]
    skillsetId: NotRequired[str]
    abilityId: NotRequired[str]


class ListPage(TypedDict):
    items: list[ListItem]
    cursor: NotRequired[str]


# -- ours ------------------------------------------------------------------------------------
class EventResult(TypedDict):
    id: str
    status: Literal["accepted", "duplicate", "conflict"]


class IngestResult(TypedDict):
    accepted: int
    duplicates: int
    conflicts: int
    results: list[EventResult]


class Me(TypedDict):
    tenant: str
    keyId: str
    scopes: list[str]


class Deleted(TypedDict):
    id: str
    deleted: bool
