"""Repositories: the one place that reads and writes each table.

Each class owns one table of template.yaml (its name comes from the settings, read once) and
knows which keys to use (built by ``meter.dal.keys``), which attributes its items hold, the
expressions that read and change them (``meter.dal.expressions``) and how to page (boto3
paginators). Use cases ask them for records, aggregates, ledgers, windows, tenants and keys
(typed objects of ``meter.dal.models`` where a use case reads fields), never for a raw call.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from meter.core.config import get_settings
from meter.dal import dynamo, keys
from meter.dal.dimensions import ITEMIZED_CAP, each_attribute
from meter.dal.expressions import Condition, Update, attr, every, request
from meter.dal.models import Alert, ApiKey, Delivery, Ledger, PendingCommit, Tenant, Trigger
from meter.dal.records import InvalidRecord, UsageRecord, record_from_item

ItemKey = dict[str, dict[str, str]]


def _by_pk(pk: str) -> ItemKey:
    """The key of an item of a table keyed by ``pk`` alone."""
    return {"pk": {"S": pk}}


def adding(counters: dict[str, int]) -> Update:
    """An update adding to each named counter (in name order: the same deltas, the same request)."""
    change = Update()
    for name in sorted(counters):
        change.add(name, counters[name])
    return change


def _conditional_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class Table:
    """One table: plain reads and writes with its name filled in."""

    def __init__(self, name: str):
        self.name = name

    def get(self, key: ItemKey, consistent: bool = False, projection: str | None = None) -> dict[str, Any] | None:
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
                TableName=self.name, Item=dynamo.serialize(item), **request(condition=attr("pk").absent())
            )
        except ClientError as refused:
            if _conditional_failure(refused):
                return False
            raise
        return True

    def update(
        self, key: ItemKey, change: Update, condition: Condition | None = None, returns: str | None = None
    ) -> dict[str, Any] | None:
        """An UpdateItem; the attributes it returns (``returns``: a ``ReturnValues``), deserialized,
        or None if ``condition`` failed."""
        extra = {"ReturnValues": returns} if returns else {}
        try:
            done = dynamo.client().update_item(TableName=self.name, Key=key, **request(change, condition), **extra)
        except ClientError as refused:
            if condition is not None and _conditional_failure(refused):
                return None
            raise
        return dynamo.deserialize(done.get("Attributes", {}))

    def apply_once(self, key: ItemKey, change: Update, mark: str, token: str) -> bool:
        """Apply ``change`` and set ``mark`` to ``token``, unless the item already holds that token
        there (the change was applied before); False if it did."""
        return self.applied_once(key, change, mark, token, returns=None) is not None

    def applied_once(
        self,
        key: ItemKey,
        change: Update,
        mark: str,
        token: str,
        also: Condition | None = None,
        returns: str | None = "ALL_NEW",
    ) -> dict[str, Any] | None:
        """``apply_once`` if ``also`` holds too; the item after it (``ALL_NEW`` costs no capacity;
        empty with ``returns=None``), or None if a condition failed."""
        unapplied = attr(mark).absent() | attr(mark).ne(token)
        condition = unapplied if also is None else unapplied & also
        return self.update(key, change.set(mark, token), condition, returns=returns)

    def action(self, key: ItemKey, change: Update, condition: Condition | None = None) -> dict[str, Any]:
        """The same update as one action of a TransactWriteItems."""
        return {"Update": {"TableName": self.name, "Key": key, **request(change, condition)}}

    def put_action(self, item: dict[str, Any], condition: Condition | None = None) -> dict[str, Any]:
        """A put as one action of a TransactWriteItems (``condition``: on the item it replaces)."""
        return {"Put": {"TableName": self.name, "Item": dynamo.serialize(item), **request(condition=condition)}}

    def condition_check(self, key: ItemKey, condition: Condition) -> dict[str, Any]:
        """A condition on one item, as an action of a TransactWriteItems (it writes nothing)."""
        return {"ConditionCheck": {"TableName": self.name, "Key": key, **request(condition=condition)}}

    def failing_check(self) -> dict[str, Any]:
        """A condition check that always fails: the item it names is never written (probes)."""
        return self.condition_check(_by_pk(keys.PROBE_PK), attr("pk").exists())

    def query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, lazily, page after page."""
        return dynamo.paginate("query", TableName=self.name, **kwargs)

    def scan(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Scan, lazily (admin paths only: tables here are read by key)."""
        return dynamo.paginate("scan", TableName=self.name, **kwargs)

    def with_prefix(self, prefix: str, projection: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item whose key starts with ``prefix`` (a scan: admin paths and small tables)."""
        extra: dict[str, Any] = {"ProjectionExpression": projection} if projection else {}
        return self.scan(**request(where=attr("pk").begins_with(prefix)), **extra)

    def get_many(self, item_keys: list[ItemKey], consistent: bool = False, projection: str | None = None) -> list[dict]:
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
        """One record's item by its key (``keys.record_pk``), strongly consistent, or None (the
        redrive reads it as a record, or finds why it is not one)."""
        return self.get(_by_pk(pk), consistent=True)

    @staticmethod
    def _records(items: Iterator[dict[str, Any]], unreadable: list[str] | None) -> Iterator[UsageRecord]:
        """The items as records; an item that is not one (edited by hand) is left out, its key
        noted in ``unreadable`` if given (reconciliation counts them)."""
        for item in items:
            try:
                yield record_from_item(item)
            except InvalidRecord:
                if unreadable is not None:
                    unreadable.append(item.get("pk", "?"))

    def put_record(self, item: dict[str, Any]) -> str | None:
        """Store a record unless its id exists: None when stored, else the stored fingerprint."""
        try:
            dynamo.client().put_item(
                TableName=self.name,
                Item=dynamo.serialize(item),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **request(condition=attr("pk").absent()),
            )
        except ClientError as refused:
            if not _conditional_failure(refused):
                raise
            return (refused.response.get("Item") or {}).get("fp", {}).get("S", "")
        return None

    def created_between(
        self,
        index: str,
        partition: str,
        start: int,
        end: int,
        where: dict[str, str] | None = None,
        unreadable: list[str] | None = None,
    ) -> Iterator[UsageRecord]:
        """One index partition's records created in ``[start, end)``, oldest first; only those whose
        fields equal ``where``, if given (filtered by DynamoDB, which still bills what it reads)."""
        low, high = keys.order_bounds(start, end)
        matching = every([attr(name).eq(value) for name, value in (where or {}).items()])
        in_range = attr(self.INDEX_KEYS[index]).eq(partition) & attr("ord").between(low, high)
        return self._records(self.query(IndexName=index, **request(key=in_range, where=matching)), unreadable)

    def after(
        self, index: str, partition: str, position: str | None, ascending: bool, page: int
    ) -> Iterator[UsageRecord]:
        """One index partition's records after (or before, descending) a ``position``, ``page`` a read."""
        condition = attr(self.INDEX_KEYS[index]).eq(partition)
        if position is not None:
            condition &= attr("ord").gt(position) if ascending else attr("ord").lt(position)
        found = self.query(
            IndexName=index, ScanIndexForward=ascending, PaginationConfig={"PageSize": page}, **request(key=condition)
        )
        return self._records(found, None)


class Aggregates(Table):
    """UsageAggregates: day and hour totals per dimension value, and the ``ByList`` index."""

    @staticmethod
    def key(pk: str, sk: str) -> ItemKey:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def between(
        self, pk: str, low: str, high: str, index: str | None = None, consistent: bool = False, only: str = ""
    ) -> list[dict[str, Any]]:
        """Items of one partition with ``low <= sk <= high`` (of the table, or of ``ByList`` by ``lk``),
        with ``only`` their sort key and that attribute if given (the same read units, less to parse)."""
        if low > high:
            return []
        attribute = "lk" if index else "pk"
        projection = {"ProjectionExpression": f"sk, {only}"} if only else {}
        return list(
            self.query(
                **({"IndexName": index} if index else {"ConsistentRead": consistent}),
                **projection,
                **request(key=attr(attribute).eq(pk) & attr("sk").between(low, high)),
            )
        )

    def listed_between(self, list_key: str, low: str, high: str) -> list[dict[str, Any]]:
        """``ByList`` entries (``pk``, ``sk``, ``v``) of one list key with ``low <= sk <= high``."""
        return self.between(list_key, low, high, index="ByList")

    def first_sk(self, pk: str, prefix: str) -> str | None:
        """The smallest sort key starting with ``prefix`` in one partition (one item read), if any."""
        found = self._first(attr("pk").eq(pk) & attr("sk").begins_with(prefix), "sk")
        return found["sk"] if found else None

    def _first(self, condition: Condition, projection: str) -> dict[str, Any] | None:
        """The first item of a Query (one item read), projected, or None."""
        found = dynamo.client().query(
            TableName=self.name, Limit=1, ProjectionExpression=projection, **request(key=condition)
        )
        items = found.get("Items") or []
        return dynamo.deserialize(items[0]) if items else None

    @staticmethod
    def adding_counters(added: dict[str, int], listing: dict[str, str] | None, short: Iterable[int] = ()) -> Update:
        """The change adding to an item's counters; ``listing`` (``lk``, ``v``) puts a new day item
        of a listed dimension on ``ByList``; the sets of the ``short`` quarters are removed."""
        change = adding(added)
        if listing:
            change.set_if_absent("lk", listing["lk"]).set_if_absent("v", listing["v"])
        dropped = sorted(short)
        return change.remove(*(each_attribute(quarter) for quarter in dropped)) if dropped else change

    @staticmethod
    def listing_events(change: Update, each: dict[int, set[str]]) -> Condition:
        """Add to ``change`` the members of each quarter's set in ``each``; the condition that every
        set stays within ``ITEMIZED_CAP`` members."""
        room = []
        for quarter, members in sorted(each.items()):
            change.add(each_attribute(quarter), members)
            room.append(
                attr(each_attribute(quarter)).absent()
                | attr(each_attribute(quarter)).size_below(ITEMIZED_CAP - len(members) + 1)
            )
        return every(room)

    def raise_to(
        self, key: ItemKey, seen: dict[str, int], raised: dict[str, int], listing: dict[str, str] | None = None
    ) -> bool:
        """Set the counters named in ``raised`` to their value there, if every counter named in
        either still holds its ``seen`` value (absent counts as 0); False if the item moved.
        ``listing`` keeps a recreated day item of a listed dimension on ``ByList``."""
        change, unmoved = Update(), []
        if listing:
            change.set_if_absent("lk", listing["lk"]).set_if_absent("v", listing["v"])
        for name in sorted(set(seen) | set(raised)):
            if name in raised:
                change.set(name, raised[name])
            held = seen.get(name, 0)
            unmoved.append(attr(name).eq(held) if held else attr(name).absent() | attr(name).eq(0))
        return self.update(key, change, every(unmoved)) is not None

    def last_seen(self, pks: list[str], consistent: bool = False) -> dict[str, str]:
        """The last-seen day of each value partition that has a mark (``meter.counting.distinct``)."""
        found = self.get_many([self.key(pk, keys.SEEN_SK) for pk in pks], consistent)
        return {item["pk"]: item["day"] for item in found}

    def move_last_seen(self, pk: str, old: str, new: str) -> dict[str, Any]:
        """Transaction action: a value's mark from ``old`` ("" = none yet) to ``new``, if still at ``old``."""
        unmoved = attr("day").eq(old) if old else attr("pk").absent()
        return self.action(self.key(pk, keys.SEEN_SK), Update().set("day", new), unmoved)

    def add_to_tally(self, tenant: str, tally_sk: str, counts: dict[str, int]) -> dict[str, Any]:
        """Transaction action: add to a tenant's counts of values per last-seen day (one month's item)."""
        return self.action(self.key(keys.seen_tally_pk(tenant), tally_sk), adding(counts))

    def tallies_from(self, tenant: str, day: str) -> list[dict[str, Any]]:
        """The tenant's tally items from the month of ``day`` on (one query, a few small items)."""
        return self.between(keys.seen_tally_pk(tenant), keys.seen_tally_sk(day), keys.seen_tally_sk("9999-12"))

    def any_in(self, pk: str) -> bool:
        """Whether a partition holds any item (one keyed read of one item)."""
        return self._first(attr("pk").eq(pk), "pk") is not None


class Control(Table):
    """Control: the aggregator's shard ledgers and pending commits, late
    arrivals, reconciliation's checkpoint and retries, rate-limit windows (TTL) and signing keys."""

    PENDING_KEPT_DAYS = 7  # pending commits expire by TTL long after they finished

    # A ledger item: seq (the last committed sequence key), events (committed in all), and while a
    # commit is under way pf/pl (its first and last sequence keys) and ps/pt (the commit slot it
    # holds and its token there).
    def ledger(self, shard: str) -> Ledger:
        """One shard's ledger (empty if the shard has committed nothing), strongly consistent."""
        item = self.get(self._ledger_key(shard), consistent=True) or {}
        return Ledger(
            shard=shard,
            seq=item.get("seq", ""),
            events=int(item.get("events", 0)),
            pending_first=item.get("pf", ""),
            pending_last=item.get("pl", ""),
            slot=int(item.get("ps", -1)),
            token=item.get("pt", ""),
        )

    @staticmethod
    def _ledger_key(shard: str) -> ItemKey:
        return _by_pk(keys.ledger_pk(shard))

    @staticmethod
    def _unchanged(ledger: Ledger) -> Condition:
        """The ledger still holds the ``seq`` it was read with, and no commit is pending."""
        held = attr("seq").eq(ledger.seq) if ledger.seq else attr("seq").absent()
        return held & attr("pl").absent()

    def point_at_pending(self, ledger: Ledger, first: str, last: str, slot: int, token: str) -> bool:
        """Point the ledger at a pending commit of ``(first, last]`` applied under ``token`` in
        ``slot``, if unchanged since read; False if it moved."""
        change = Update().set("pf", first).set("pl", last).set("ps", slot).set("pt", token)
        return self.update(self._ledger_key(ledger.shard), change, self._unchanged(ledger)) is not None

    def move_past_pending(self, ledger: Ledger, events: int) -> bool:
        """Move the ledger past its pending commit, adding ``events`` (0 for a commit voided), if
        that commit still stands; False if it moved (another copy finished or voided it)."""
        change = Update().set("seq", ledger.pending_last).add("events", events).remove("pf", "pl", "pd", "ps", "pt")
        return self.update(self._ledger_key(ledger.shard), change, attr("pl").eq(ledger.pending_last)) is not None

    def take_slot(self, shard: str, now: int, free_at: int, stale_before: int) -> tuple[int, str] | None:
        """Lease a commit slot for ``shard`` until ``free_at`` at the latest: the one it holds or its
        own by hash first, then any free one, or one whose lease has run out (a lease without an end,
        of an earlier version: taken before ``stale_before``). The slot, and a token no earlier lease
        of it had; None if another shard holds each."""
        first = zlib.crc32(shard.encode()) % keys.COMMIT_SLOTS
        ran_out = attr("freeAt").lt(now) | (attr("freeAt").absent() & attr("since").lt(stale_before))
        free = attr("holder").absent() | attr("holder").eq(shard) | ran_out
        for step in range(keys.COMMIT_SLOTS):
            slot = (first + step) % keys.COMMIT_SLOTS
            change = Update().set("holder", shard).set("since", now).set("freeAt", free_at).add("n", 1)
            taken = self.update(_by_pk(keys.commit_slot_pk(slot)), change, free, returns="UPDATED_NEW")
            if taken is not None:
                return slot, str(taken["n"])
        return None

    def release_slot(self, slot: int, shard: str, token: str) -> None:
        """Free a slot, if ``shard`` still holds it under ``token`` (a later lease keeps it)."""
        held = attr("holder").eq(shard) & attr("n").eq(int(token))
        self.update(_by_pk(keys.commit_slot_pk(slot)), Update().remove("holder"), held)

    def write_pending(self, shard: str, pending: PendingCommit) -> None:
        """Store a commit's deltas ahead of its transactions (kept ``PENDING_KEPT_DAYS``)."""
        item = {
            "pk": keys.pending_pk(shard, pending.first, pending.last),
            "first": pending.first,
            "last": pending.last,
            "events": pending.events,
            "deltas": pending.deltas,
            "writtenAt": pending.written_at,
            "expiresAt": pending.written_at // 1000 + self.PENDING_KEPT_DAYS * 86_400,
        }
        if pending.until is not None:
            item["until"] = pending.until
        self.put(item)

    def pending(self, ledger: Ledger) -> PendingCommit | None:
        """The commit the ledger points at, strongly consistent; None if it is missing."""
        key = _by_pk(keys.pending_pk(ledger.shard, ledger.pending_first, ledger.pending_last))
        item = self.get(key, consistent=True)
        if item is None:
            return None
        expires = int(item["expiresAt"])
        return PendingCommit(
            first=item["first"],
            last=item["last"],
            events=int(item["events"]),
            deltas=item["deltas"],
            written_at=int(item.get("writtenAt", (expires - self.PENDING_KEPT_DAYS * 86_400) * 1000)),
            until=int(item["until"]) if "until" in item else None,
        )

    def add_to_window(self, key_id: str, second: int, step: int) -> int:
        """Add ``step`` requests to an API key's window of one second; the window's total after it."""
        change = Update().add("n", step).set_if_absent("expiresAt", second + 60)
        counted = self.update(_by_pk(keys.rate_pk(key_id, second)), change, returns="UPDATED_NEW")
        return int((counted or {})["n"])

    def parked(self) -> Iterator[dict[str, Any]]:
        """Every parked queue message (an operator's scan)."""
        return self.with_prefix(keys.PARKED_PREFIX)

    def remove(self, pk: str) -> None:
        """Delete one item by its key."""
        dynamo.client().delete_item(TableName=self.name, Key=_by_pk(pk))

    def mark_late(self, received_hour: int, tenant: str, days: set[str]) -> None:
        """Note that ``tenant`` received late events for ``days`` (``YYYY-MM-DD``) in an hour."""
        pairs = {f"{tenant} {day}" for day in days}
        self.update(_by_pk(keys.late_arrivals_pk(received_hour, tenant)), Update().add("pairs", pairs))

    def late_arrivals(self, received_hour: int) -> set[tuple[str, str]]:
        """Every ``(tenant, day)`` that received late events in an hour."""
        items = self.get_many([_by_pk(pk) for pk in keys.late_arrivals_pks(received_hour)], consistent=True)
        return {tuple(pair.split(" ", 1)) for item in items for pair in item.get("pairs", ())}

    def reconcile_checkpoint(self) -> int | None:
        """The last hour reconciliation has covered (Unix ms), if it ever ran."""
        item = self.get(_by_pk(keys.RECONCILE_CHECKPOINT), consistent=True)
        return int(item["hour"]) if item else None

    def set_reconcile_checkpoint(self, hour: int) -> None:
        self.put({"pk": keys.RECONCILE_CHECKPOINT, "hour": hour})

    def reconcile_retries(self) -> set[str]:
        """Windows (``"<tenant> <start> <end>"``) earlier runs could not settle."""
        item = self.get(_by_pk(keys.RECONCILE_RETRIES), consistent=True) or {}
        return set(item.get("windows", ()))

    def change_reconcile_retries(self, add: set[str] = frozenset(), remove: set[str] = frozenset()) -> None:
        """Add and remove windows to retry."""
        key = _by_pk(keys.RECONCILE_RETRIES)
        if add:
            self.update(key, Update().add("windows", set(add)))
        if remove:
            self.update(key, Update().delete("windows", set(remove)))

    def signing_key(self, name: str, fresh: bytes) -> bytes:
        """One of the deployment's signing secrets (``name`` is its key), created as ``fresh`` if absent."""
        key = _by_pk(name)
        found = self.get(key, consistent=True)
        if found:
            return found["secret"]
        if self.put_new({"pk": name, "secret": fresh}):
            return fresh
        return self.get(key, consistent=True)["secret"]  # another container created it first


class Tenants(Table):
    """Tenants: ``TENANT#<name>`` (rate card, billing anchor) and ``KEY#<public id>`` (API keys)."""

    @staticmethod
    def _api_key(item: dict[str, Any]) -> ApiKey:
        limit = item.get("rateLimit")
        return ApiKey(
            public_id=keys.api_key_id(item["pk"]),
            tenant=item["tenant"],
            scopes=frozenset(item.get("scopes", ())),
            secret_hash=item["secretHash"],
            created_at=int(item.get("createdAt", 0)),
            name=item.get("name"),
            rate_limit=int(limit) if limit is not None else None,
            revoked_at=item.get("revokedAt"),
        )

    def api_key(self, public_id: str) -> ApiKey | None:
        """One API key, or None."""
        item = self.get(_by_pk(keys.api_key_pk(public_id)))
        return self._api_key(item) if item else None

    def api_keys(self) -> list[ApiKey]:
        """Every API key (an operator's scan)."""
        return [self._api_key(item) for item in self.with_prefix(keys.api_key_pk(""))]

    def add_api_key(self, key: ApiKey) -> bool:
        """Store a new key; False if its public id is taken."""
        item = {
            "pk": keys.api_key_pk(key.public_id),
            "tenant": key.tenant,
            "scopes": sorted(key.scopes),
            "secretHash": key.secret_hash,
            "createdAt": key.created_at,
            "name": key.name,
            "rateLimit": key.rate_limit,
        }
        return self.put_new(item)

    def add_tenant(self, name: str, at: int) -> bool:
        """Register a tenant, its records on one ``ByTenant`` partition until it shards them; False
        if it exists."""
        return self.put_new({"pk": keys.tenant_pk(name), "tenant": name, "createdAt": at, "recordsOnOneShard": True})

    def tenant_names(self) -> list[str]:
        """Every registered tenant's name (a scan: the table is small)."""
        return [item["tenant"] for item in self.with_prefix(keys.tenant_pk(""), projection="tenant")]

    def tenant(self, name: str) -> Tenant | None:
        """One tenant (rate card, billing anchor), or None."""
        item = self.get(_by_pk(keys.tenant_pk(name)))
        if item is None:
            return None
        return Tenant(
            name=item["tenant"],
            created_at=int(item.get("createdAt", 0)),
            rate_card={k: Decimal(str(v)) for k, v in item.get("rateCard", {}).items()},
            billing_anchor_day=int(item.get("billingAnchorDay", 1)),
            cloudevent_mappings=item.get("cloudEventMappings", {}),
            day_cuts=frozenset(int(cut) for cut in item.get("dayCuts", ())),
            roster_sharded_from=int(item["rosterShardedFrom"]) if "rosterShardedFrom" in item else None,
            records_sharded_from=_records_sharded_from(item),
        )

    def _update_existing(self, pk: str, change: Update) -> bool:
        """Update an item only if it exists; False when it does not."""
        return self.update(_by_pk(pk), change, attr("pk").exists()) is not None

    def revoke_key(self, public_id: str, at: int) -> bool:
        """Mark a key revoked at ``at`` (kept if it already was); False for an unknown key."""
        return self._update_existing(keys.api_key_pk(public_id), Update().set_if_absent("revokedAt", at))

    def set_rate_card(self, tenant: str, card: dict[str, Decimal]) -> bool:
        """Replace a tenant's rate card (credits per unit of each type); False for an unknown tenant."""
        return self._update_existing(keys.tenant_pk(tenant), Update().set("rateCard", dict(card)))

    def set_cloudevent_mappings(self, tenant: str, mappings: dict[str, Any]) -> bool:
        """Replace how a tenant's CloudEvents types map to usage events; False for an unknown tenant."""
        return self._update_existing(keys.tenant_pk(tenant), Update().set("cloudEventMappings", mappings))

    def add_day_cuts(self, tenant: str, cuts: set[int], most: int) -> bool:
        """Add day cuts to a tenant's set unless it would then hold more than ``most``; False if
        it would, or for an unknown tenant."""
        room = attr("dayCuts").absent() | attr("dayCuts").size_below(most - len(cuts) + 1)
        key = _by_pk(keys.tenant_pk(tenant))
        return self.update(key, Update().add("dayCuts", set(cuts)), attr("pk").exists() & room) is not None

    def shard_roster(self, tenant: str, start: int) -> bool:
        """Shard the tenant's roster for events from ``start`` on, unless it already is (the first
        ``start`` stands: readers and writers agree on it); False if it was, or for an unknown tenant."""
        change, unset = Update().set("rosterShardedFrom", start), attr("rosterShardedFrom").absent()
        return self.update(_by_pk(keys.tenant_pk(tenant)), change, attr("pk").exists() & unset) is not None

    def shard_records(self, tenant: str, start: int) -> bool:
        """Spread the tenant's records received from ``start`` on over the ``ByTenant`` shards, unless
        they already are (the first ``start`` stands); False if they were, or for an unknown tenant."""
        change, unset = Update().set("recordsShardedFrom", start), attr("recordsShardedFrom").absent()
        return (
            self.update(_by_pk(keys.tenant_pk(tenant)), change, attr("recordsOnOneShard").exists() & unset) is not None
        )

    def set_billing_anchor(self, tenant: str, day: int) -> bool:
        """Set the day of month a tenant's billing period starts; False for an unknown tenant."""
        return self._update_existing(keys.tenant_pk(tenant), Update().set("billingAnchorDay", day))


def _records_sharded_from(item: dict[str, Any]) -> int | None:
    """From when a tenant's records spread over the ``ByTenant`` shards: always (0) for a tenant
    registered before tenants started on one partition, never yet (None), or an instant."""
    if "recordsOnOneShard" not in item:
        return 0
    return int(item["recordsShardedFrom"]) if "recordsShardedFrom" in item else None


class Alerts(Table):
    """Alerts: each tenant's alerts, the once-only marks of thresholds fired, and the firings
    (whose inserts the delivery function receives from the table's stream)."""

    @staticmethod
    def key(pk: str, sk: str) -> ItemKey:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    # -- alerts: pk ALERT#<tenant>, sk the alert's id
    @staticmethod
    def _alert(tenant: str, item: dict[str, Any]) -> Alert:
        subject = item.get("subject") or {}
        return Alert(
            tenant=tenant,
            id=item["sk"],
            name=item["name"],
            measure=item["measure"],
            period=item["period"],
            time_zone=item["timeZone"],
            thresholds=tuple(int(t) for t in item["thresholds"]),
            created_at=int(item["createdAt"]),
            updated_at=int(item["updatedAt"]),
            identifier=subject.get("identifier"),
            agent_id=subject.get("agentId"),
            webhook_url=item.get("webhookUrl"),
            signing_secret=item.get("signingSecret"),
        )

    def save(self, alert: Alert) -> None:
        """Store an alert, replacing the one with its id."""
        subject = {"identifier": alert.identifier, "agentId": alert.agent_id}
        item = {
            "pk": keys.alerts_pk(alert.tenant),
            "sk": alert.id,
            "name": alert.name,
            "subject": {name: value for name, value in subject.items() if value is not None},
            "measure": alert.measure,
            "period": alert.period,
            "timeZone": alert.time_zone,
            "thresholds": list(alert.thresholds),
            "webhookUrl": alert.webhook_url,
            "signingSecret": alert.signing_secret,
            "createdAt": alert.created_at,
            "updatedAt": alert.updated_at,
        }
        self.put(item)

    def alerts_of(self, tenant: str, consistent: bool = False) -> list[Alert]:
        """Every alert of a tenant (at most a thousand), by id."""
        found = self.query(ConsistentRead=consistent, **request(key=attr("pk").eq(keys.alerts_pk(tenant))))
        return [self._alert(tenant, item) for item in found]

    def count_of(self, tenant: str) -> int:
        """How many alerts a tenant has (keys only)."""
        pages = self.query(
            ProjectionExpression="sk", ConsistentRead=True, **request(key=attr("pk").eq(keys.alerts_pk(tenant)))
        )
        return sum(1 for _ in pages)

    def alert(self, tenant: str, alert_id: str) -> Alert | None:
        """One alert, strongly consistent, or None."""
        item = self.get(self.key(keys.alerts_pk(tenant), alert_id), consistent=True)
        return self._alert(tenant, item) if item else None

    def remove_alert(self, tenant: str, alert_id: str) -> bool:
        """Delete an alert; False if there was none."""
        try:
            dynamo.client().delete_item(
                TableName=self.name,
                Key=self.key(keys.alerts_pk(tenant), alert_id),
                **request(condition=attr("pk").exists()),
            )
        except ClientError as refused:
            if _conditional_failure(refused):
                return False
            raise
        return True

    # -- marks: pk FIRED#<tenant>#<alert>, sk <period start>#<threshold>
    def fired_in(self, tenant: str, alert_id: str, period_start: int) -> set[int]:
        """The thresholds an alert has fired for in one period, strongly consistent."""
        in_period = attr("pk").eq(keys.fired_pk(tenant, alert_id)) & attr("sk").begins_with(
            keys.fired_period_prefix(period_start)
        )
        found = self.query(ProjectionExpression="sk", ConsistentRead=True, **request(key=in_period))
        return {keys.period_of_fired_sk(item["sk"])[1] for item in found}

    # -- firings: pk TRIGGER#<tenant>#<alert>, sk <fired at>#<period start>#<threshold>
    @staticmethod
    def trigger_key(trigger: Trigger) -> tuple[str, str]:
        """(pk, sk) of a firing's item: what its stream record and retry messages name."""
        pk = keys.triggers_pk(trigger.tenant, trigger.alert_id)
        return pk, keys.trigger_sk(trigger.triggered_at, trigger.period_start, trigger.threshold)

    @staticmethod
    def trigger_id(trigger: Trigger) -> str:
        """A firing's public id (what webhook receivers deduplicate by)."""
        return keys.trigger_id(*Alerts.trigger_key(trigger))

    @staticmethod
    def _trigger_item(trigger: Trigger) -> dict[str, Any]:
        pk, sk = Alerts.trigger_key(trigger)
        state = trigger.delivery
        delivery = {
            "status": state.status,
            "attempts": state.attempts,
            "lastError": state.last_error,
            "published": state.published or None,
            "timedOut": state.timed_out or None,
            "retryFrom": state.retry_from,
        }
        return {
            "pk": pk,
            "sk": sk,
            "tenant": trigger.tenant,
            "alertId": trigger.alert_id,
            "threshold": trigger.threshold,
            "periodStart": trigger.period_start,
            "periodEnd": trigger.period_end,
            "value": trigger.value,
            "eventId": trigger.event_id,
            "triggeredAt": trigger.triggered_at,
            "delivery": {name: value for name, value in delivery.items() if value is not None},
        }

    @staticmethod
    def _trigger(item: dict[str, Any]) -> Trigger:
        state = item.get("delivery") or {}
        delivery = Delivery(
            status=state.get("status", "pending"),
            attempts=int(state.get("attempts", 0)),
            last_error=state.get("lastError"),
            published=bool(state.get("published")),
            timed_out=bool(state.get("timedOut")),
            retry_from=int(state["retryFrom"]) if state.get("retryFrom") is not None else None,
        )
        return Trigger(
            tenant=item["tenant"],
            alert_id=item["alertId"],
            threshold=int(item["threshold"]),
            period_start=int(item["periodStart"]),
            period_end=int(item["periodEnd"]),
            value=int(item["value"]),
            event_id=item.get("eventId"),
            triggered_at=int(item["triggeredAt"]),
            delivery=delivery,
        )

    def fire_once(self, trigger: Trigger) -> bool:
        """Store a firing with its once-only mark, in one transaction; False if the mark exists."""
        item = self._trigger_item(trigger)
        mark = {
            "pk": keys.fired_pk(trigger.tenant, trigger.alert_id),
            "sk": keys.fired_sk(trigger.period_start, trigger.threshold),
            "triggerSk": item["sk"],
        }
        try:
            transact(
                [
                    {
                        "Put": {
                            "TableName": self.name,
                            "Item": dynamo.serialize(mark),
                            **request(condition=attr("pk").absent()),
                        }
                    },
                    {"Put": {"TableName": self.name, "Item": dynamo.serialize(item)}},
                ]
            )
        except ClientError as refused:
            reasons = [r.get("Code") for r in refused.response.get("CancellationReasons") or []]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return False
            raise
        return True

    def trigger(self, pk: str, sk: str) -> Trigger | None:
        """One firing by its item's key, strongly consistent, or None."""
        item = self.get(self.key(pk, sk), consistent=True)
        return self._trigger(item) if item else None

    def save_trigger(self, trigger: Trigger) -> None:
        """Store a firing's new delivery state."""
        self.put(self._trigger_item(trigger))

    def triggers_before(self, tenant: str, alert_id: str, before: str | None, page: int) -> list[Trigger]:
        """Up to ``page`` firings of an alert, newest first, older than the sort key ``before``
        (a cursor: ``trigger_key`` of the last one shown)."""
        condition = attr("pk").eq(keys.triggers_pk(tenant, alert_id))
        if before is not None:
            condition &= attr("sk").lt(before)
        found = dynamo.client().query(TableName=self.name, ScanIndexForward=False, Limit=page, **request(key=condition))
        return [self._trigger(dynamo.deserialize(item)) for item in found.get("Items", [])]


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
