"""``GET /v1/usage/query``: usage over any range, in local windows of any IANA zone, grouped by
end user, agent, model or type, exact to the millisecond: its parameters and its answer.

The values come from ``meter.reading.series``.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Literal
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from meter.core import ids
from meter.core.errors import BadRequest
from meter.core.localtime import DAY, WINDOW_SIZES, local_iso, local_midnight, named_zone, window_start
from meter.core.timerange import LATEST_MS, now_ms, parse_instant
from meter.dal import keys, store
from meter.dal.dimensions import (
    QUARTER_MS,
    TENANT,
)
from meter.dal.tenants import current_period_start
from meter.reading.series import COUNT_OF, GROUPS, MEASURES, UsageQuery, run_query

PARAMETERS = {"from", "to", "period", "windowSize", "timeZone", "measure", "groupBy", *GROUPS}


# -- the answer's shape (also the OpenAPI schema) ----------------------------------------------
class QueryRow(BaseModel):
    """One window of one group."""

    model_config = {"extra": "forbid"}

    windowStart: str = Field(description="RFC 3339, in the zone's offset at that instant")
    windowEnd: str = Field(description="Exclusive; a partial first or last window is clipped to [from, to)")
    value: int
    groupBy: dict[str, str] = Field(description="The row's value of each groupBy field; {} without groupBy")


class QueryResult(BaseModel):
    """Rows ascending by windowStart, then group; only non-zero values."""

    model_config = {"populate_by_name": True, "extra": "forbid"}

    from_: str = Field(alias="from")
    to: str
    windowSize: Literal["HOUR", "DAY", "MONTH"] | None
    timeZone: str
    measure: str
    data: list[QueryRow]


# -- parameters ------------------------------------------------------------------------------
def repeated_parameters(raw_query: str | None, joined: dict[str, str]) -> dict[str, list[str]]:
    """Query parameters with repeats kept (API Gateway joins repeats with commas; the raw string
    keeps them apart, so values may contain commas)."""
    if raw_query is not None:
        found = parse_qs(raw_query, keep_blank_values=True)
    else:
        found = {name: value.split(",") for name, value in joined.items()}
    return {name: [ids.normal(value) for value in values] for name, values in found.items()}


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"Invalid '{name}' parameter: give it at most once")
    return values[0]


def _zone(name: str | None) -> ZoneInfo:
    zone = named_zone(name or "UTC")
    if zone is None:
        raise BadRequest(f"Invalid 'timeZone' parameter: {name!r} is not an IANA time zone")
    return zone


def _instant(name: str, text: str, zone: ZoneInfo) -> int:
    if len(text.strip()) == 10:  # a bare date: its local midnight
        parse_instant(name, text)  # the date's own validation and message
        return local_midnight(text.strip(), zone)
    if "T" in text and not _has_offset(text):
        raise BadRequest(f"Invalid '{name}' parameter: an RFC 3339 instant needs an offset, e.g. 2026-11-01T00:00:00Z")
    return parse_instant(name, text)


def _has_offset(text: str) -> bool:
    clock = text.strip().replace(" ", "+").partition("T")[2]
    return clock.endswith(("Z", "z")) or "+" in clock or "-" in clock


def _measure(text: str | None) -> str:
    measure = text or "credits"
    if measure in MEASURES or (measure.startswith(COUNT_OF) and len(measure) > len(COUNT_OF)):
        return measure
    raise BadRequest(f"Invalid 'measure' parameter: {measure!r}; use one of {', '.join(MEASURES)} or count:<type>")


def parse_query(tenant: str, params: dict[str, list[str]]) -> UsageQuery:
    """Validate the parameters; a 400 names the first one that is wrong."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise BadRequest(f"Unknown parameter '{unknown[0]}'; known: {', '.join(sorted(PARAMETERS))}")
    zone = _zone(_one(params, "timeZone"))
    size = _one(params, "windowSize")
    if size is not None and size not in WINDOW_SIZES:
        raise BadRequest(f"Invalid 'windowSize' parameter: {size!r}; use HOUR, DAY or MONTH")
    group_by = tuple(dict.fromkeys(params.get("groupBy", [])))
    for name in group_by:
        if name not in GROUPS:
            raise BadRequest(f"Invalid 'groupBy' parameter: {name!r}; use {', '.join(GROUPS)}")
    filters = {name: tuple(dict.fromkeys(params[name])) for name in GROUPS if name in params}
    for name, values in filters.items():
        if any(not value for value in values):
            raise BadRequest(f"Invalid '{name}' parameter: a filter value must not be empty")
    measure = _measure(_one(params, "measure"))
    to_text, from_text = _one(params, "to"), _one(params, "from")
    end = _instant("to", to_text, zone) if to_text else _open_end()
    period = _one(params, "period")
    if period is not None and (period != "billing" or from_text):
        raise BadRequest("Invalid 'period' parameter: the one period is 'billing', and it replaces 'from'")
    if period:
        start = min(current_period_start(tenant, now_ms()), end)
    else:
        start = _instant("from", from_text, zone) if from_text else _earliest(tenant, zone, end)
    if from_text and start >= end:
        raise BadRequest("Invalid 'from' parameter: it must be before 'to'")
    return UsageQuery(tenant, start, end, size, zone, measure, group_by, filters)


def _open_end() -> int:
    """An omitted ``to``: the end of the current quarter hour, so the answer holds everything
    counted so far and reads no raw records (events stamped up to then, clock skew included)."""
    return min(-(-(now_ms() + 1) // QUARTER_MS) * QUARTER_MS, LATEST_MS)


def _earliest(tenant: str, zone: ZoneInfo, end: int) -> int:
    """An omitted ``from``: the local midnight before the tenant's first day of usage."""
    first = store.aggregates().first_sk(TENANT.pk(tenant, ""), keys.DAY_PREFIX)
    if first is None:
        return end
    first_day = keys.parse_aggregate(TENANT.pk(tenant, ""), first).bucket_start
    return min(window_start(first_day, DAY, zone), end)


# -- the answer ------------------------------------------------------------------------------
def answer(query: UsageQuery) -> dict[str, Any]:
    """The JSON body."""
    zone = query.zone
    rows = [
        QueryRow(windowStart=local_iso(a, zone), windowEnd=local_iso(b, zone), value=v, groupBy=dict(group))
        for a, b, group, v in run_query(query)
    ]
    result = QueryResult(
        from_=local_iso(query.start, zone),
        to=local_iso(query.end, zone),
        windowSize=query.size,
        timeZone=zone.key,
        measure=query.measure,
        data=rows,
    )
    return result.model_dump(by_alias=True)


def answer_csv(query: UsageQuery) -> str:
    """The same rows as CSV: windowStart, windowEnd, each groupBy field, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["windowStart", "windowEnd", *query.group_by, "value"])
    for a, b, group, value in run_query(query):
        labels = dict(group)
        writer.writerow(
            [local_iso(a, query.zone), local_iso(b, query.zone), *(labels[g] for g in query.group_by), value]
        )
    return out.getvalue()
