"""Read use cases: exact per-day totals over any range from aggregates plus ragged raw edges."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from meter import dynamo
from meter.aggregation import contribution_of
from meter.config import get_settings
from meter.errors import NotFound
from meter.timerange import day_key, now_ms, parse_range, plan_range

# GSI of the Records table per dimension letter, and the attribute that keys it.
RAW_INDEX = {"I": ("ByIdentifier", "ik"), "A": ("ByAgent", "ak")}


def _aggregate_items(pk: str, low: str, high: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    names = {f"#f{i}": name for i, name in enumerate(("sk", *fields))}
    return dynamo.query_all(
        TableName=get_settings().aggregates_table,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
        ExpressionAttributeValues={":pk": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
        ProjectionExpression=", ".join(names),
        ExpressionAttributeNames=names,
    )


def _raw_records(dimension: str, key: str, start: int, end: int) -> list[dict[str, Any]]:
    index, key_attr = RAW_INDEX[dimension]
    names = {"#ts": "ts", "#type": "type", "#count": "count", "#credits": "credits"}
    return dynamo.query_all(
        TableName=get_settings().records_table,
        IndexName=index,
        KeyConditionExpression=f"{key_attr} = :k AND ts BETWEEN :a AND :b",
        ExpressionAttributeValues={":k": {"S": key}, ":a": {"N": str(start)}, ":b": {"N": str(end - 1)}},
        ProjectionExpression=", ".join(names),
        ExpressionAttributeNames=names,
    )


def daily_totals(
    tenant: str, dimension: str, value: str, start: int | None, end: int | None, fields: tuple[str, ...]
) -> dict[str, Counter[str]]:
    """Per-day sums of ``fields`` for one dimension value over ``[start, end)`` (None = open).

    Whole days come from day items, whole hours from hour items, and only the partial hours at
    the edges from raw records, so the answer is exact at millisecond precision.
    """
    pk = f"{tenant}#{dimension}#{value}"
    days: dict[str, Counter[str]] = defaultdict(Counter)
    if start is None and end is None:
        for item in _aggregate_items(pk, "D#", "D#~", fields):
            days[item["sk"][2:]].update({f: item.get(f, 0) for f in fields})
        return days
    plan = plan_range(0 if start is None else start, now_ms() + 1 if end is None else end)
    if plan.days:
        for item in _aggregate_items(pk, f"D#{plan.days[0]}", f"D#{plan.days[1]}", fields):
            days[item["sk"][2:]].update({f: item.get(f, 0) for f in fields})
    for low, high in plan.hours:
        for item in _aggregate_items(pk, f"H#{low}", f"H#{high}", fields):
            days[item["sk"][2:12]].update({f: item.get(f, 0) for f in fields})
    for low, high in plan.raw:
        for item in _raw_records(dimension, f"{tenant}#{value}", low, high):
            added = contribution_of(item["type"], item["count"], item["credits"])
            days[day_key(item["ts"])].update({f: added[f] for f in fields})
    return days


def identifier_dates(tenant: str, identifier: str, params: dict[str, str]) -> dict[str, Any]:
    """``GET /api/v1/consumption/identifier/{identifier}/dates``: credits per day, ascending."""
    start, end = parse_range("from", params.get("from"), "to", params.get("to"))
    days = daily_totals(tenant, "I", identifier, start, end, ("credits",))
    data = [{"date": day, "total_credits": int(t["credits"])} for day, t in sorted(days.items()) if t["credits"]]
    if not data:
        raise NotFound("No consumption data found for this identifier")
    return {"data": data}
