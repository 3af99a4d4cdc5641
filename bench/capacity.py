"""Count DynamoDB capacity on every call of the layer's client, from ReturnConsumedCapacity.

Hooks botocore's events, so the code under measurement is the code that ships, unchanged.
Transactional writes are counted at AWS's rate of at least 2 WCU per item (per KB), whatever
DynamoDB Local reports, plus what the indexes report.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


class CapacityMeter:
    """Sums read and write capacity units while attached to a client."""

    def __init__(self) -> None:
        self.read = 0.0
        self.write = 0.0
        self.calls: Counter[str] = Counter()
        self.transact_items = 0
        self.write_by: Counter[str] = Counter()  # "<table>" or "<table>.<index>" → WCU

    def attach(self, client: Any) -> CapacityMeter:
        """Start counting every call of ``client``."""
        client.meta.events.register("provide-client-params.dynamodb.*", self._ask)
        client.meta.events.register("after-call.dynamodb.*", self._count)
        return self

    def reset(self) -> None:
        """Zero the counters."""
        self.read, self.write, self.calls, self.transact_items = 0.0, 0.0, Counter(), 0
        self.write_by = Counter()

    @staticmethod
    def _ask(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params["ReturnConsumedCapacity"] = "INDEXES"
        context["transact_items"] = len(params.get("TransactItems", []))
        context["transact_tables"] = Counter(
            next(iter(action.values()))["TableName"] for action in params.get("TransactItems", [])
        )

    def _count(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        consumed = parsed.get("ConsumedCapacity") or []
        consumed = consumed if isinstance(consumed, list) else [consumed]
        units = sum(c.get("CapacityUnits", 0.0) for c in consumed)
        if model.name in READS:
            self.read += units
        elif model.name == "TransactWriteItems":
            indexes = {
                f"{c['TableName']}.{name}": i.get("CapacityUnits", 0.0)
                for c in consumed
                for name, i in (c.get("GlobalSecondaryIndexes") or {}).items()
            }
            tables = {table: 2.0 * items for table, items in context.get("transact_tables", {}).items()}
            self.write += max(units, sum(indexes.values()) + sum(tables.values()))
            self.write_by.update({**tables, **indexes})
            self.transact_items += context.get("transact_items", 0)
        elif model.name in WRITES:
            self.write += units
            for c in consumed:
                self.write_by[c.get("TableName", "?")] += (c.get("Table") or {}).get("CapacityUnits", 0.0)
                for name, i in (c.get("GlobalSecondaryIndexes") or {}).items():
                    self.write_by[f"{c.get('TableName', '?')}.{name}"] += i.get("CapacityUnits", 0.0)
