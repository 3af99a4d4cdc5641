"""Exact range reads shared by every usage API: aggregates for whole days and hours, raw
records only for the ragged partial hours at a range's edges."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from meter import dynamo
from meter.config import get_settings
from meter.dimensions import AGENT, AGENT_MODEL, IDENTIFIER, TENANT, Dimension, contribution_of
from meter.timerange import DAY_MS, day_key, now_ms, order_key, plan_range

Totals = Counter[str]


def aggregate_items(pk: str, low: str, high: str) -> list[dict[str, Any]]:
    """Aggregate items of one partition with ``low <= sk <= high``."""
    if low > high:
        return []
    return dynamo.query_all(
        TableName=get_settings().aggregates_table,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
        ExpressionAttributeValues={":pk": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
    )


def record_range(index: str, key_attribute: str, key: str, start: int, end: int, **extra: Any) -> list[dict]:
    """Records of one index partition created in ``[start, end)``, oldest first."""
    if start >= end:  # e.g. a future ``from`` with an open end: nothing yet, and no inverted key range
        return []
    return dynamo.query_all(
        TableName=get_settings().records_table,
        IndexName=index,
        KeyConditionExpression=f"{key_attribute} = :k AND ord BETWEEN :a AND :b",
        ExpressionAttributeValues={
            ":k": {"S": key},
            ":a": {"S": order_key(start)},
            ":b": {"S": f"{end - 1:013d}$"},  # '$' sorts right after the '#' that follows the time
        },
        **extra,
    )


def counters(item: dict[str, Any]) -> Totals:
    """The numeric totals of an aggregate item."""
    return Counter({k: v for k, v in item.items() if isinstance(v, int) and k not in ("pk", "sk")})


def record_totals(record: dict[str, Any]) -> Totals:
    """What one raw record adds, as an aggregate would count it."""
    return contribution_of(record["type"], record["count"], record["credits"])


def _raw_edge(tenant: str, dimension: Dimension, value: str, start: int, end: int) -> Iterable[dict]:
    if dimension is TENANT:
        return record_range("ByTenant", "tk", tenant, start, end)
    if dimension is IDENTIFIER:
        return record_range("ByIdentifier", "ik", f"{tenant}#{value}", start, end)
    if dimension is AGENT:
        return record_range("ByAgent", "ak", f"{tenant}#{value}", start, end)
    if dimension is AGENT_MODEL:
        agent, model = _split_model_key(value)
        return [r for r in record_range("ByAgent", "ak", f"{tenant}#{agent}", start, end) if r.get("model") == model]
    raise ValueError(f"dimension {dimension.code} has no hourly items")


def _split_model_key(value: str) -> tuple[str, str]:
    length, rest = value.split(":", 1)
    return rest[: int(length)], rest[int(length) + 1 :]


def daily_totals(
    tenant: str, dimension: Dimension, value: str, start: int | None, end: int | None
) -> dict[str, Totals]:
    """Per-day totals of one dimension value over ``[start, end)`` (None = open), exact.

    Whole days come from day items, whole hours from hour items, and only the partial hours at
    the edges from raw records. An open end includes events timestamped up to 5 minutes ahead
    (the accepted clock skew).
    """
    pk = dimension.pk(tenant, value)
    days: dict[str, Totals] = defaultdict(Counter)
    if start is None and end is None:
        for item in aggregate_items(pk, "D#", "D#~"):
            days[item["sk"][2:]].update(counters(item))
        return days
    # An open end reads whole day items up to today's: they hold everything aggregated so far.
    open_end = (now_ms() // DAY_MS + 1) * DAY_MS
    plan = plan_range(0 if start is None else start, open_end if end is None else end)
    if plan.days:
        for item in aggregate_items(pk, f"D#{plan.days[0]}", f"D#{plan.days[1]}"):
            days[item["sk"][2:]].update(counters(item))
    for low, high in plan.hours:
        for item in aggregate_items(pk, f"H#{low}", f"H#{high}"):
            days[item["sk"][2:12]].update(counters(item))
    for low, high in plan.raw:
        for record in _raw_edge(tenant, dimension, value, low, high):
            days[day_key(record["ts"])].update(record_totals(record))
    return days


def total(days: dict[str, Totals]) -> Totals:
    """The sum of per-day totals."""
    result: Totals = Counter()
    for day in days.values():
        result.update(day)
    return result


def listed_items(tenant: str, dimension: Dimension, start: int | None, end: int | None, scope: str = "") -> list:
    """``ByList`` entries (``pk``, ``sk``, ``v``) of a listed dimension's day items touching ``[start, end)``."""
    low = f"D#{day_key(start)}" if start is not None else "D#"
    high = f"D#{day_key((end if end is not None else now_ms() + 1) - 1)}"
    if low > high:  # a range wholly in the future
        return []
    return dynamo.query_all(
        TableName=get_settings().aggregates_table,
        IndexName="ByList",
        KeyConditionExpression="lk = :lk AND sk BETWEEN :low AND :high",
        ExpressionAttributeValues={
            ":lk": {"S": dimension.list_key(tenant, scope)},
            ":low": {"S": low},
            ":high": {"S": high},
        },
    )


def listed_values(tenant: str, dimension: Dimension, start: int | None, end: int | None, scope: str = "") -> dict:
    """Values of a listed dimension active on any day touching ``[start, end)``: key → display value.

    Keyed by the ``ByList`` index (never a scan); it holds keys and values only, so callers that
    need totals read each value with ``daily_totals``.
    """
    items = listed_items(tenant, dimension, start, end, scope)
    return {item["pk"].split("#", 2)[2]: item.get("v", "") for item in items}


def has_any(tenant: str, dimension: Dimension, value: str) -> bool:
    """Whether this dimension value was ever aggregated (one keyed read of one item)."""
    found = dynamo.client().query(
        TableName=get_settings().aggregates_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": dimension.pk(tenant, value)}},
        Limit=1,
        ProjectionExpression="pk",
    )
    return bool(found.get("Items"))
