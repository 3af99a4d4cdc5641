"""Repositories: the one place that reads and writes each table.

Each class owns one table of template.yaml (its name comes from the settings, read once) and
knows which keys to use (built by ``meter.dal.keys``) and how to page (boto3 paginators). Use cases
ask them for records, aggregates, ledgers, windows, tenants and keys, never for a raw call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from meter.core.config import get_settings
from meter.dal import dynamo, keys

Key = dict[str, dict[str, str]]


def _conditional_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class Table:
    """One table: plain reads and writes with its name filled in."""

    def __init__(self, name: str):
        self.name = name

    def get(self, key: Key, consistent: bool = False, projection: str | None = None) -> dict[str, Any] | None:
        """One item, deserialized, or None."""
        extra: dict[str, Any] = {"ProjectionExpression": projection} if projection else {}
        found = dynamo.client().get_item(TableName=self.name, Key=key, ConsistentRead=consistent, **extra)
        return dynamo.deserialize(found["Item"]) if "Item" in found else None

    def put(self, item: dict[str, Any]) -> None:
        """Write an item (plain values), replacing any with its key."""
        dynamo.client().put_item(TableName=self.name, Item=dynamo.serialize(item))

    def put_new(self, item: dict[str, Any]) -> bool:
        """Write an item only if none has its key; False if one does."""
        try:
            dynamo.client().put_item(
                TableName=self.name, Item=dynamo.serialize(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as refused:
            if _conditional_failure(refused):
                return False
            raise
        return True

    def update(self, key: Key, expression: str, condition: str | None = None, **extra: Any) -> dict[str, Any] | None:
        """An UpdateItem; the attributes it returns (``ReturnValues``), or None if ``condition`` failed."""
        if condition:
            extra["ConditionExpression"] = condition
        try:
            done = dynamo.client().update_item(TableName=self.name, Key=key, UpdateExpression=expression, **extra)
        except ClientError as refused:
            if condition and _conditional_failure(refused):
                return None
            raise
        return done.get("Attributes", {})

    def action(self, key: Key, expression: str, condition: str | None = None, **extra: Any) -> dict[str, Any]:
        """The same update as one action of a TransactWriteItems."""
        update = {"TableName": self.name, "Key": key, "UpdateExpression": expression, **extra}
        if condition:
            update["ConditionExpression"] = condition
        return {"Update": update}

    def condition_check(self, key: Key, condition: str) -> dict[str, Any]:
        """A condition on one item, as an action of a TransactWriteItems (it writes nothing)."""
        return {"ConditionCheck": {"TableName": self.name, "Key": key, "ConditionExpression": condition}}

    def failing_check(self) -> dict[str, Any]:
        """A condition check that always fails: the item it names is never written (probes)."""
        return self.condition_check({"pk": {"S": keys.PROBE_PK}}, "attribute_exists(pk)")

    def query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, lazily, page after page."""
        return dynamo.paginate("query", TableName=self.name, **kwargs)

    def scan(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Scan, lazily (admin paths only: tables here are read by key)."""
        return dynamo.paginate("scan", TableName=self.name, **kwargs)

    def with_prefix(self, prefix: str, projection: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item whose key starts with ``prefix`` (a scan: admin paths and small tables)."""
        extra: dict[str, Any] = {"ProjectionExpression": projection} if projection else {}
        return self.scan(
            FilterExpression="begins_with(pk, :prefix)", ExpressionAttributeValues={":prefix": {"S": prefix}}, **extra
        )

    def get_many(self, item_keys: list[Key], consistent: bool = False, projection: str | None = None) -> list[dict]:
        """The items of many keys (absent ones left out), 100 keys a call, unprocessed keys retried."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(item_keys), 100):
            chunk = item_keys[start : start + 100]
            request: dict[str, Any] = {self.name: {"Keys": chunk, "ConsistentRead": consistent}}
            if projection:
                request[self.name]["ProjectionExpression"] = projection
            while request:
                page = dynamo.client().batch_get_item(RequestItems=request)
                found += [dynamo.deserialize(item) for item in page["Responses"].get(self.name, [])]
                request = page.get("UnprocessedKeys") or {}
        return found


def transact(actions: list[dict[str, Any]]) -> None:
    """Commit actions of any tables in one transaction."""
    dynamo.client().transact_write_items(TransactItems=actions)


# -- the tables ------------------------------------------------------------------------------
class Records(Table):
    """UsageRecords: one immutable item per event, and its two indexes (``ByTenant``, ``ByConversation``)."""

    INDEX_KEYS = {"ByTenant": "tk", "ByConversation": "ck"}  # each index's partition key attribute

    def record(self, pk: str) -> dict[str, Any] | None:
        """One record by its key (``keys.record_pk``), strongly consistent, or None."""
        return self.get({"pk": {"S": pk}}, consistent=True)

    def put_record(self, item: dict[str, Any]) -> str | None:
        """Store a record unless its id exists: None when stored, else the stored fingerprint."""
        try:
            dynamo.client().put_item(
                TableName=self.name,
                Item=dynamo.serialize(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as refused:
            if not _conditional_failure(refused):
                raise
            return (refused.response.get("Item") or {}).get("fp", {}).get("S", "")
        return None

    def created_between(
        self, index: str, partition: str, start: int, end: int, where: dict[str, str] | None = None
    ) -> Iterator[dict]:
        """One index partition's records created in ``[start, end)``, oldest first; only those whose
        fields equal ``where``, if given (filtered by DynamoDB, which still bills what it reads)."""
        low, high = keys.order_bounds(start, end)
        values = {":k": {"S": partition}, ":a": {"S": low}, ":b": {"S": high}}
        extra: dict[str, Any] = {}
        if where:
            values.update({f":w{i}": {"S": value} for i, value in enumerate(where.values())})
            extra["ExpressionAttributeNames"] = {f"#w{i}": name for i, name in enumerate(where)}
            extra["FilterExpression"] = " AND ".join(f"#w{i} = :w{i}" for i in range(len(where)))
        return self.query(
            IndexName=index,
            KeyConditionExpression=f"{self.INDEX_KEYS[index]} = :k AND ord BETWEEN :a AND :b",
            ExpressionAttributeValues=values,
            **extra,
        )

    def after(self, index: str, partition: str, position: str | None, ascending: bool, page: int) -> Iterator:
        """One index partition's records after (or before, descending) a position, ``page`` a read."""
        condition = f"{self.INDEX_KEYS[index]} = :k"
        values: dict[str, Any] = {":k": {"S": partition}}
        if position is not None:
            condition += " AND ord > :after" if ascending else " AND ord < :after"
            values[":after"] = {"S": position}
        return self.query(
            IndexName=index,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=ascending,
            PaginationConfig={"PageSize": page},
        )


class Aggregates(Table):
    """UsageAggregates: day and hour totals per dimension value, and the ``ByList`` index."""

    @staticmethod
    def key(pk: str, sk: str) -> Key:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def between(
        self, pk: str, low: str, high: str, index: str | None = None, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """Items of one partition with ``low <= sk <= high`` (of the table, or of ``ByList`` by ``lk``)."""
        if low > high:
            return []
        attribute = "lk" if index else "pk"
        return list(
            self.query(
                **({"IndexName": index} if index else {"ConsistentRead": consistent}),
                KeyConditionExpression=f"{attribute} = :key AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues={":key": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
            )
        )

    def listed_between(self, list_key: str, low: str, high: str) -> list[dict[str, Any]]:
        """``ByList`` entries (``pk``, ``sk``, ``v``) of one list key with ``low <= sk <= high``."""
        return self.between(list_key, low, high, index="ByList")

    def first_sk(self, pk: str, prefix: str) -> str | None:
        """The smallest sort key starting with ``prefix`` in one partition (one item read), if any."""
        found = dynamo.client().query(
            TableName=self.name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
            Limit=1,
            ProjectionExpression="sk",
        )
        items = found.get("Items") or []
        return items[0]["sk"]["S"] if items else None

    def last_seen(self, pks: list[str], consistent: bool = False) -> dict[str, str]:
        """The last-seen day of each value partition that has a mark (``meter.counting.distinct``)."""
        found = self.get_many([self.key(pk, keys.SEEN_SK) for pk in pks], consistent)
        return {item["pk"]: item["day"] for item in found}

    def move_last_seen(self, pk: str, old: str, new: str) -> dict[str, Any]:
        """Transaction action: a value's mark from ``old`` ("" = none yet) to ``new``, if still at ``old``."""
        condition, values = ("#d = :old", {":old": {"S": old}}) if old else ("attribute_not_exists(pk)", {})
        return self.action(
            self.key(pk, keys.SEEN_SK),
            "SET #d = :new",
            condition,
            ExpressionAttributeNames={"#d": "day"},
            ExpressionAttributeValues={":new": {"S": new}, **values},
        )

    def add_to_tally(self, tenant: str, tally_sk: str, counts: dict[str, int]) -> dict[str, Any]:
        """Transaction action: add to a tenant's counts of values per last-seen day (one month's item)."""
        names = sorted(counts)
        return self.action(
            self.key(keys.seen_tally_pk(tenant), tally_sk),
            "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(names))),
            ExpressionAttributeNames={f"#c{i}": name for i, name in enumerate(names)},
            ExpressionAttributeValues={f":c{i}": {"N": str(counts[name])} for i, name in enumerate(names)},
        )

    def tallies_from(self, tenant: str, day: str) -> list[dict[str, Any]]:
        """The tenant's tally items from the month of ``day`` on (one query, a few small items)."""
        return self.between(keys.seen_tally_pk(tenant), keys.seen_tally_sk(day), keys.seen_tally_sk("9999-12"))

    def any_in(self, pk: str) -> bool:
        """Whether a partition holds any item (one keyed read of one item)."""
        found = dynamo.client().query(
            TableName=self.name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            Limit=1,
            ProjectionExpression="pk",
        )
        return bool(found.get("Items"))


class Control(Table):
    """Control: the aggregator's shard ledgers and pending commits, late
    arrivals, reconciliation's checkpoint and retries, rate-limit windows (TTL) and signing keys."""

    def ledger(self, shard: str) -> dict[str, Any]:
        """One shard's ledger item (empty if the shard has committed nothing), strongly consistent."""
        return self.get(self.ledger_key(shard), consistent=True) or {}

    @staticmethod
    def ledger_key(shard: str) -> Key:
        return {"pk": {"S": keys.ledger_pk(shard)}}

    def add_to_window(self, key_id: str, second: int, step: int) -> int:
        """Add ``step`` requests to an API key's window of one second; the window's total after it."""
        counted = self.update(
            {"pk": {"S": keys.rate_pk(key_id, second)}},
            "ADD n :step SET expiresAt = if_not_exists(expiresAt, :expires)",
            ExpressionAttributeValues={":step": {"N": str(step)}, ":expires": {"N": str(second + 60)}},
            ReturnValues="UPDATED_NEW",
        )
        return int((counted or {})["n"]["N"])

    def parked(self) -> Iterator[dict[str, Any]]:
        """Every parked queue message (an operator's scan)."""
        return self.with_prefix(keys.PARKED_PREFIX)

    def remove(self, pk: str) -> None:
        """Delete one item by its key."""
        dynamo.client().delete_item(TableName=self.name, Key={"pk": {"S": pk}})

    def mark_late(self, received_hour: int, tenant: str, days: set[str]) -> None:
        """Note that ``tenant`` received late events for ``days`` (``YYYY-MM-DD``) in an hour."""
        self.update(
            {"pk": {"S": keys.late_arrivals_pk(received_hour, tenant)}},
            "ADD pairs :pairs",
            ExpressionAttributeValues={":pairs": {"SS": sorted(f"{tenant} {day}" for day in days)}},
        )

    def late_arrivals(self, received_hour: int) -> set[tuple[str, str]]:
        """Every ``(tenant, day)`` that received late events in an hour."""
        items = self.get_many([{"pk": {"S": pk}} for pk in keys.late_arrivals_pks(received_hour)], consistent=True)
        return {tuple(pair.split(" ", 1)) for item in items for pair in item.get("pairs", ())}

    def reconcile_checkpoint(self) -> int | None:
        """The last hour reconciliation has covered (Unix ms), if it ever ran."""
        item = self.get({"pk": {"S": keys.RECONCILE_CHECKPOINT}}, consistent=True)
        return int(item["hour"]) if item else None

    def set_reconcile_checkpoint(self, hour: int) -> None:
        self.put({"pk": keys.RECONCILE_CHECKPOINT, "hour": hour})

    def reconcile_retries(self) -> set[str]:
        """Windows (``"<tenant> <start> <end>"``) earlier runs could not settle."""
        item = self.get({"pk": {"S": keys.RECONCILE_RETRIES}}, consistent=True) or {}
        return set(item.get("windows", ()))

    def change_reconcile_retries(self, add: set[str] = frozenset(), remove: set[str] = frozenset()) -> None:
        """Add and remove windows to retry."""
        key = {"pk": {"S": keys.RECONCILE_RETRIES}}
        if add:
            self.update(key, "ADD windows :w", ExpressionAttributeValues={":w": {"SS": sorted(add)}})
        if remove:
            self.update(key, "DELETE windows :w", ExpressionAttributeValues={":w": {"SS": sorted(remove)}})

    def signing_key(self, name: str, fresh: bytes) -> bytes:
        """One of the deployment's signing secrets (``name`` is its key), created as ``fresh`` if absent."""
        key = {"pk": {"S": name}}
        found = self.get(key, consistent=True)
        if found:
            return found["secret"]
        if self.put_new({"pk": name, "secret": fresh}):
            return fresh
        return self.get(key, consistent=True)["secret"]  # another container created it first


class Tenants(Table):
    """Tenants: ``TENANT#<name>`` (rate card, billing anchor) and ``KEY#<public id>`` (API keys)."""

    def api_key(self, public_id: str) -> dict[str, Any] | None:
        """One API key's item, or None."""
        return self.get({"pk": {"S": keys.api_key_pk(public_id)}})

    def tenant(self, name: str, projection: str | None = None) -> dict[str, Any] | None:
        """One tenant's item (rate card, billing anchor), or None."""
        return self.get({"pk": {"S": keys.tenant_pk(name)}}, projection=projection)

    def _update_existing(self, pk: str, expression: str, values: dict[str, Any]) -> bool:
        """Update an item only if it exists; False when it does not."""
        done = self.update({"pk": {"S": pk}}, expression, "attribute_exists(pk)", ExpressionAttributeValues=values)
        return done is not None

    def revoke_key(self, public_id: str, at: int) -> bool:
        """Mark a key revoked at ``at`` (kept if it already was); False for an unknown key."""
        return self._update_existing(
            keys.api_key_pk(public_id), "SET revokedAt = if_not_exists(revokedAt, :now)", {":now": {"N": str(at)}}
        )

    def set_rate_card(self, tenant: str, card: dict[str, Any]) -> bool:
        """Replace a tenant's rate card (credits per unit of each type); False for an unknown tenant."""
        values = {":card": {"M": {k: {"N": str(v)} for k, v in card.items()}}}
        return self._update_existing(keys.tenant_pk(tenant), "SET rateCard = :card", values)

    def set_billing_anchor(self, tenant: str, day: int) -> bool:
        """Set the day of month a tenant's billing period starts; False for an unknown tenant."""
        return self._update_existing(keys.tenant_pk(tenant), "SET billingAnchorDay = :day", {":day": {"N": str(day)}})


class Alerts(Table):
    """Alerts: each tenant's alerts, the once-only marks of thresholds fired, and the firings
    (whose inserts the delivery function receives from the table's stream)."""

    @staticmethod
    def key(pk: str, sk: str) -> Key:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def alerts_of(self, tenant: str, consistent: bool = False) -> list[dict[str, Any]]:
        """Every alert of a tenant (at most a thousand), by id."""
        return list(
            self.query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": keys.alerts_pk(tenant)}},
                ConsistentRead=consistent,
            )
        )

    def count_of(self, tenant: str) -> int:
        """How many alerts a tenant has (keys only)."""
        pages = self.query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.alerts_pk(tenant)}},
            ProjectionExpression="sk",
            ConsistentRead=True,
        )
        return sum(1 for _ in pages)

    def alert(self, tenant: str, alert_id: str) -> dict[str, Any] | None:
        """One alert, strongly consistent, or None."""
        return self.get(self.key(keys.alerts_pk(tenant), alert_id), consistent=True)

    def remove_alert(self, tenant: str, alert_id: str) -> bool:
        """Delete an alert; False if there was none."""
        try:
            dynamo.client().delete_item(
                TableName=self.name,
                Key=self.key(keys.alerts_pk(tenant), alert_id),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as refused:
            if _conditional_failure(refused):
                return False
            raise
        return True

    def fired_in(self, tenant: str, alert_id: str, period_start: int) -> set[int]:
        """The thresholds an alert has fired for in one period, strongly consistent."""
        found = self.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :period)",
            ExpressionAttributeValues={
                ":pk": {"S": keys.fired_pk(tenant, alert_id)},
                ":period": {"S": keys.fired_period_prefix(period_start)},
            },
            ProjectionExpression="sk",
            ConsistentRead=True,
        )
        return {keys.period_of_fired_sk(item["sk"])[1] for item in found}

    def fire_once(self, tenant: str, alert_id: str, trigger: dict[str, Any]) -> bool:
        """Store a firing with its once-only mark, in one transaction; False if the mark exists."""
        mark = {
            "pk": keys.fired_pk(tenant, alert_id),
            "sk": keys.fired_sk(trigger["periodStart"], trigger["threshold"]),
            "triggerSk": trigger["sk"],
        }
        try:
            transact(
                [
                    {
                        "Put": {
                            "TableName": self.name,
                            "Item": dynamo.serialize(mark),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self.name, "Item": dynamo.serialize(trigger)}},
                ]
            )
        except ClientError as refused:
            reasons = [r.get("Code") for r in refused.response.get("CancellationReasons") or []]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return False
            raise
        return True

    def triggers_before(self, tenant: str, alert_id: str, before: str | None, page: int) -> list[dict[str, Any]]:
        """Up to ``page`` firings of an alert, newest first, older than the sort key ``before``."""
        condition, values = "pk = :pk", {":pk": {"S": keys.triggers_pk(tenant, alert_id)}}
        if before is not None:
            condition += " AND sk < :before"
            values[":before"] = {"S": before}
        found = dynamo.client().query(
            TableName=self.name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=page,
        )
        return [dynamo.deserialize(item) for item in found.get("Items", [])]


def records() -> Records:
    """The Records table of this deployment."""
    return Records(get_settings().records_table)


def aggregates() -> Aggregates:
    """The Aggregates table of this deployment."""
    return Aggregates(get_settings().aggregates_table)


def control() -> Control:
    """The Control table of this deployment."""
    return Control(get_settings().control_table)


def tenants() -> Tenants:
    """The Tenants table of this deployment."""
    return Tenants(get_settings().tenants_table)


def alerts() -> Alerts:
    """The Alerts table of this deployment."""
    return Alerts(get_settings().alerts_table)
