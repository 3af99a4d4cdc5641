"""Count DynamoDB capacity on every call of the layer's client, from ReturnConsumedCapacity.

Hooks botocore's events, so the code under measurement is the code that ships, unchanged.
Transactional writes are counted at AWS's rate of 2 WCU per item (per KB: every item our
transactions touch is under 1 KB), whatever DynamoDB Local reports, plus what the indexes report.
A single-item write whose condition failed reports nothing, but AWS bills it: it counts 1 WCU (the
item's own KB are not known here; the items written conditionally are under 1 KB or near it).
Every unit is also attributed to the partition key it landed on (the table's, or the index's for
index writes and reads), which is what a partition's throughput limit applies to.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
Place = tuple[str, str]  # ("<table>" or "<table>.<index>", partition key value)


def _value(attribute: dict[str, Any] | None) -> str | None:
    return next(iter(attribute.values())) if isinstance(attribute, dict) and attribute else None


class CapacityMeter:
    """Sums read and write capacity units while attached to a client."""

    def __init__(self, index_keys: dict[str, dict[str, str]] | None = None) -> None:
        # table name → {index name → its partition key attribute}, to place index writes
        self.index_keys = index_keys or {}
        self.reset()

    def attach(self, client: Any) -> CapacityMeter:
        """Start counting every call of ``client``."""
        client.meta.events.register("provide-client-params.dynamodb.*", self._ask)
        client.meta.events.register("after-call.dynamodb.*", self._count)
        return self

    def reset(self) -> None:
        """Zero the counters."""
        self.read, self.write = 0.0, 0.0
        self.read_billed = 0.0  # AWS bills at least 0.5 RCU per read call; DynamoDB Local reports 0 for an empty one
        self.calls: Counter[str] = Counter()
        self.transact_items = 0
        self.failed_conditions = 0  # single-item writes whose condition failed (each counted at 1 WCU)
        self.write_by: Counter[str] = Counter()  # "<table>" or "<table>.<index>" → WCU
        self.write_on: Counter[Place] = Counter()  # partition key → WCU
        self.read_on: Counter[Place] = Counter()  # partition key → RCU

    # -- which keys a call touches -----------------------------------------------------------
    def _written(self, table: str, item: dict[str, Any] | None, key: dict[str, Any], params: dict) -> list[Place]:
        places = [(table, _value(key.get("pk")) or "?")]
        for index, attribute in self.index_keys.get(table, {}).items():
            found = _value((item or {}).get(attribute))
            if found is None and attribute == "lk":
                found = _value(_set_to(params, "lk"))
            if found is not None:
                places.append((f"{table}.{index}", found))
        return places

    def _touched(self, name: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(operation, parameters) of each item a call writes, or the call itself."""
        if name == "TransactWriteItems":
            return [next(iter(action.items())) for action in params.get("TransactItems", [])]
        return [(name, params)]

    def _places(self, name: str, params: dict[str, Any]) -> list[Place]:
        table = params.get("TableName", "?")
        if name == "Query":
            condition = params.get("KeyConditionExpression", "")
            placeholder = re.match(r"[\s(]*#?\w+\s*=\s*(:\w+)", condition)
            values = params.get("ExpressionAttributeValues", {})
            value = _value(values.get(placeholder.group(1))) if placeholder else "?"
            index = params.get("IndexName")
            return [(f"{table}.{index}" if index else table, value or "?")]
        if name == "GetItem":
            return [(table, _value(params["Key"].get("pk")) or "?")]
        if name == "BatchGetItem":
            return [(t, _value(k.get("pk")) or "?") for t, r in params["RequestItems"].items() for k in r["Keys"]]
        if name in ("PutItem", "UpdateItem", "DeleteItem", "Put", "Update", "Delete", "ConditionCheck"):
            item = params.get("Item")
            key = item if item is not None else params.get("Key", {})
            return self._written(table, item, key, params)
        return [(table, "?")]

    def _ask(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params["ReturnConsumedCapacity"] = "INDEXES"
        items = self._touched(model.name, params)
        context["transact_items"] = len(params.get("TransactItems", []))
        context["places"] = [self._places(operation, p) for operation, p in items]

    # -- what it cost ------------------------------------------------------------------------
    def _count(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        consumed = parsed.get("ConsumedCapacity") or []
        consumed = consumed if isinstance(consumed, list) else [consumed]
        if not consumed and model.name in WRITES - {"TransactWriteItems"} and _failed_condition(parsed):
            self.failed_conditions += 1
            table = context["places"][0][0][0]
            consumed = [{"TableName": table, "CapacityUnits": 1.0, "Table": {"CapacityUnits": 1.0}}]
        units = sum(c.get("CapacityUnits", 0.0) for c in consumed)
        places = [place for item in context.get("places", []) for place in item]
        if model.name in READS:
            self.read += units
            self.read_billed += max(units, 0.5)
            for place in places:
                self.read_on[place] += units / max(1, len(places))
            return
        if model.name not in WRITES:
            return
        indexes = Counter()
        for c in consumed:
            for name, i in (c.get("GlobalSecondaryIndexes") or {}).items():
                indexes[f"{c.get('TableName', '?')}.{name}"] += i.get("CapacityUnits", 0.0)
        if model.name == "TransactWriteItems":
            tables: Counter[str] = Counter()
            for item_places in context["places"]:  # our transactional items are all under 1 KB
                tables[item_places[0][0]] += 2.0
                self.write_on[item_places[0]] += 2.0
            self.write += max(units, sum(indexes.values()) + sum(tables.values()))
            self.write_by.update(tables)
            self.transact_items += context.get("transact_items", 0)
        else:
            self.write += units
            for c in consumed:
                table_units = (c.get("Table") or {}).get("CapacityUnits", 0.0)
                self.write_by[c.get("TableName", "?")] += table_units
                self.write_on[places[0]] += table_units
        self.write_by.update(indexes)
        for index, index_units in indexes.items():
            on_index = [p for p in places if p[0] == index]
            for place in on_index:
                self.write_on[place] += index_units / len(on_index)

    def hottest(self, by: Counter[Place]) -> dict[str, tuple[str, float]]:
        """The busiest partition key of each table and index: place → (key, units)."""
        best: dict[str, tuple[str, float]] = {}
        for (where, key), units in by.items():
            if units > best.get(where, ("", -1.0))[1]:
                best[where] = (key, units)
        return best


def _failed_condition(parsed: dict[str, Any]) -> bool:
    return (parsed.get("Error") or {}).get("Code") == "ConditionalCheckFailedException"


def _set_to(params: dict[str, Any], attribute: str) -> dict[str, Any] | None:
    """The value an update expression sets ``attribute`` to (``#a = :v`` or ``#a = if_not_exists(#a, :v)``)."""
    names = {name: placeholder for placeholder, name in params.get("ExpressionAttributeNames", {}).items()}
    placeholder = names.get(attribute, attribute)
    found = re.search(
        rf"{re.escape(placeholder)} = (?:if_not_exists\({re.escape(placeholder)}, )?(:\w+)",
        params.get("UpdateExpression", ""),
    )
    return params.get("ExpressionAttributeValues", {}).get(found.group(1)) if found else None
