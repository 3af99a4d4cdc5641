"""ChatBotKit usage API: record list (cursor pages, CSV), 90-day series, period snapshots."""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Iterator
from typing import Any

from meter.api import shapes
from meter.core.errors import BadRequest
from meter.core.timerange import DAY_MS, now_ms, parse_range
from meter.counting.distinct import seen_since
from meter.dal import keys, store
from meter.dal.cursors import decode_cursor, encode_cursor
from meter.dal.dimensions import ABILITY, AGENT, DATASET, SKILLSET, TENANT, TYPE
from meter.dal.keys import day_key
from meter.dal.records import UsageRecord
from meter.dal.tenants import current_period_start, layout
from meter.reading.queries import (
    Totals,
    aggregate_items,
    concurrently,
    conversation_records,
    daily_totals,
    record_totals,
    total,
)

SERIES_DAYS = 90
MAX_TAKE = 100
LIST_CURSORS = "usage/list"  # the listing its cursors are bound to (JSON and CSV pages alike)
CSV_MAX_ROWS = 50_000
# Records one request may examine when filters skip some: its cost never depends on how much of
# the tenant's history does not match (a page past it ends early, with a cursor to go on).
LIST_SCAN_BUDGET = 2_000
CSV_SCAN_BUDGET = CSV_MAX_ROWS  # a filtered export reads no more than an unfiltered one
FILTERED_SHARD_PAGE = 100  # a filtered list reads each shard in pages of this many
# ChatBotKit filter → record field; botId is our agentId.
ID_FILTERS = {
    "conversationId": "conversationId",
    "messageId": "messageId",
    "taskId": "taskId",
    "contactId": "contactId",
    "blueprintId": "blueprintId",
    "botId": "agentId",
    "datasetId": "datasetId",
    "skillsetId": "skillsetId",
    "abilityId": "abilityId",
}
CSV_COLUMNS = ["id", "type", "count", "createdAt", "updatedAt", *ID_FILTERS, "meta"]
# Record fields whose values have aggregate partitions: a value never counted matches nothing.
NARROWING = {"type": TYPE, "agentId": AGENT, "datasetId": DATASET, "skillsetId": SKILLSET, "abilityId": ABILITY}


def _snapshot(totals: Totals) -> shapes.Totals:
    return {"tokens": totals["tokens"], "conversations": totals["conversations"], "messages": totals["messages"]}


# -- series and snapshots ----------------------------------------------------------------
def series(tenant: str) -> shapes.Series:
    """Daily tokens, conversations and messages of the last 90 days (today included)."""
    today = now_ms() // DAY_MS * DAY_MS
    first = today - (SERIES_DAYS - 1) * DAY_MS
    items = aggregate_items(TENANT.pk(tenant, ""), keys.day_sk(day_key(first)), keys.day_sk(day_key(today)))
    result: dict[str, list[dict[str, int]]] = {"tokens": [], "conversations": [], "messages": []}
    for item in items:
        midnight = keys.day_start(keys.bucket_day(item["sk"]))
        for metric, points in result.items():
            if item.get(metric):
                points.append({"date": midnight, "total": item[metric]})
    return result


def current_snapshot(tenant: str) -> shapes.PeriodTotals:
    """The current billing period's totals and what the period touched.

    The period starts at midnight UTC, so whole day items cover it exactly up to now.
    ``database``: distinct datasets, skillsets and abilities referenced and distinct end users
    (``identifier``) seen since the period began (one read of the tenant's tally,
    ``meter.counting.distinct``); ``records`` = usage records; ``files`` = events whose type starts with
    ``file``.
    """
    now = now_ms()
    start = current_period_start(tenant, now)
    totals = total(daily_totals(tenant, TENANT, "", start, None)) if start < now else Totals()
    distinct = seen_since(tenant, day_key(start))
    return {
        **_snapshot(totals),
        "database": {
            "datasets": distinct["DS"],
            "records": totals["events"],
            "skillsets": distinct["SK"],
            "abilities": distinct["AB"],
            "files": totals["files"],
            "users": distinct["I"],
        },
    }


def _range(params: dict[str, str]) -> tuple[int | None, int | None]:
    return parse_range("from", params.get("from"), "to", params.get("to"))


def bot_snapshot(tenant: str, bot_id: str, params: dict[str, str]) -> shapes.Totals:
    """Totals of one bot (agent) over ``[from, to]`` (all time when absent)."""
    start, end = _range(params)
    return _snapshot(total(daily_totals(tenant, AGENT, bot_id, start, end)))


def conversation_snapshot(tenant: str, conversation_id: str, params: dict[str, str]) -> shapes.Totals:
    """Totals of one conversation: its records, read by the ByConversation index."""
    start, end = _range(params)
    records = conversation_records(tenant, conversation_id, start or 0, end if end is not None else now_ms() + 1)
    totals = Totals()
    for record in records:
        totals.update(record_totals(record))
    return _snapshot(totals)


# -- the record list -----------------------------------------------------------------------
def _take(raw: str | None) -> int:
    try:
        value = int(raw) if raw is not None else MAX_TAKE
    except ValueError:
        return MAX_TAKE
    return MAX_TAKE if value == 0 else max(1, min(MAX_TAKE, value))


def _any_of(raw: str) -> list[str]:
    return [v for v in (part.strip() for part in raw.split(",")) if v]


def _meta_filters(params: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, raw in params.items():
        key = (
            name[5:-1]
            if name.startswith("meta[") and name.endswith("]")
            else name[5:]
            if name.startswith("meta.")
            else None
        )
        if key:
            found[key] = {"true": True, "false": False}.get(raw, raw)
    return found


def _matches(record: UsageRecord, wanted: dict[str, list[str]], meta: dict[str, Any]) -> bool:
    for field, values in wanted.items():
        if str(record.value_of(field)) not in values:
            return False
    record_meta = record.meta or {}
    return all(k in record_meta and (record_meta[k] == v or str(record_meta[k]) == str(v)) for k, v in meta.items())


def _filters(params: dict[str, str]) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The record fields a list request filters on (each "any of"), and its ``meta`` filters."""
    wanted = {ID_FILTERS[name]: _any_of(params[name]) for name in ID_FILTERS if params.get(name)}
    if params.get("type"):
        wanted["type"] = _any_of(params["type"])
    return wanted, _meta_filters(params)


def _filter_names(params: dict[str, str]) -> list[str]:
    return [name for name in params if name in ID_FILTERS or name == "type" or name.startswith("meta")]


def _nothing_can_match(tenant: str, wanted: dict[str, list[str]]) -> bool:
    """True when the aggregates say no record of the tenant has a wanted value: a filter on a
    type, agent, dataset, skillset or ability that was never counted (one item read per value)."""
    for field, dimension in NARROWING.items():
        values = wanted.get(field)
        if values and not any(store.aggregates().first_sk(dimension.pk(tenant, v), keys.DAY_PREFIX) for v in values):
            return True
    return False


def _scanned_records(
    tenant: str, wanted: dict[str, list[str]], after: str | None, ascending: bool, take: int, filtered: bool
) -> Iterator[UsageRecord]:
    """The tenant's records after ``after`` in list order, before filtering (a conversation's
    from its index partitions); read in larger pages when ``filtered`` (some will be skipped)."""
    wanted = dict(wanted)
    if "conversationId" in wanted:
        index = "ByConversation"
        partitions = [keys.conversation_index_key(tenant, c) for c in wanted.pop("conversationId")]
        page = take + 1
    else:  # the tenant's shards, each read a little at a time: the merge pulls only what it needs
        index, partitions = "ByTenant", layout(tenant).index_keys(tenant)
        page = FILTERED_SHARD_PAGE if filtered else max(4, (take + 1) // len(partitions) + 2)
    records = store.records()
    sources = concurrently([records.after(index, key, after, ascending, page) for key in partitions], page)
    return heapq.merge(*sources, key=lambda r: r.position, reverse=not ascending)


def _page(
    tenant: str, params: dict[str, str], after: str | None, ascending: bool, take: int, budget: int
) -> tuple[list[UsageRecord], str | None]:
    """Up to ``take`` matching records after ``after``, and the position to continue from if
    more may follow: past the last one returned, or (the scan budget spent) past the last record
    examined. At most ``budget`` records are examined, whatever the tenant's history."""
    wanted, meta = _filters(params)
    if (wanted or meta) and _nothing_can_match(tenant, wanted):
        return [], None
    page: list[UsageRecord] = []
    scanned_records = _scanned_records(tenant, wanted, after, ascending, take, bool(wanted or meta))
    for scanned, record in enumerate(scanned_records, start=1):
        if _matches(record, {k: v for k, v in wanted.items() if k != "conversationId"}, meta):
            if len(page) == take:
                return page, page[-1].position
            page.append(record)
        if scanned >= budget:
            return page, record.position
    return page, None


def list_item(record: UsageRecord) -> shapes.ListItem:
    """A record as ChatBotKit's list returns it."""
    item: dict[str, Any] = {
        "id": record.id,
        "type": record.type,
        "count": record.count,
        "createdAt": record.ts,
        "updatedAt": record.ts,
    }
    if record.meta:
        item["meta"] = record.meta
    for name, field in ID_FILTERS.items():
        if (value := record.value_of(field)) is not None:
            item[name] = value
    return item


def list_records(tenant: str, params: dict[str, str]) -> shapes.ListPage:
    """``GET /api/v1/usage/list``: a page of records, newest first unless ``order=asc``.

    Sorted by createdAt then id. ``cursor`` is present only when at least one more matching
    record exists, so a client never receives an empty page before the end.
    """
    ascending = params.get("order") == "asc"
    take = _take(params.get("take"))
    after = decode_cursor(tenant, LIST_CURSORS, params["cursor"]) if params.get("cursor") else None
    page, more = _page(tenant, params, after, ascending, take, LIST_SCAN_BUDGET)
    if more is not None and not page:  # an empty page means the end to ChatBotKit's clients
        names = _filter_names(params)
        raise BadRequest(
            f"Invalid '{names[0]}': no record matched among the {LIST_SCAN_BUDGET:,} examined; "
            "narrow the list with type, botId or conversationId, or continue from a later cursor"
        )
    body: dict[str, Any] = {"items": [list_item(r) for r in page]}
    if more is not None:
        body["cursor"] = encode_cursor(tenant, LIST_CURSORS, more)
    return body


def list_csv(tenant: str, params: dict[str, str]) -> tuple[str, str | None]:
    """The matching records as CSV (at most CSV_MAX_ROWS; the cursor to continue, if more)."""
    ascending = params.get("order") == "asc"
    after = decode_cursor(tenant, LIST_CURSORS, params["cursor"]) if params.get("cursor") else None
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    page, more = _page(tenant, params, after, ascending, CSV_MAX_ROWS, CSV_SCAN_BUDGET)
    for record in page:
        item = list_item(record)
        if "meta" in item:
            item["meta"] = json.dumps(item["meta"], separators=(",", ":"), ensure_ascii=False)
        writer.writerow(item)
    return out.getvalue(), encode_cursor(tenant, LIST_CURSORS, more) if more is not None else None
