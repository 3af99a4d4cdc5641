"""What one tenant's poison costs everyone else: how long a poison event holds its shard, and how
long 1,000 of them delay another tenant's totals. Run by ``make bench`` on DynamoDB Local, with
the local SQS endpoint holding what is set aside.

Poison is real DynamoDB refusals on the poisoned tenant's items, prepared by writing them around
the service (no event the API accepts refuses a write by itself):

* **a counter of another type** (``events`` stored as a string);
* **an item at 400 KB**.

A commit writes each item on its own, so DynamoDB's refusal names the item at once either way;
the transactions counted are the distinct marks' (a value's first event of a day).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

POISONED = "poisoned"
HEALTHY = "healthy"
MAX_ITEM_BYTES = 409_600


def _events(prefix: str, n: int, day: datetime, users: Callable[[int], str]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}-{i}",
            "type": "message",
            "count": 1,
            "credits": 1,
            "identifier": users(i),
            "timestamp": (day + timedelta(seconds=i % 3600)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(n)
    ]


def _ingest(tenant: str, batch: list[dict[str, Any]]) -> None:
    from meter.ingest.batch import ingest, parse_events

    for first in range(0, len(batch), 100):
        ingest(tenant, parse_events(json.dumps({"events": batch[first : first + 100]})))


def _poison_user_day(user: str, day: datetime, kind: str) -> None:
    """Make the poisoned tenant's day item of ``user`` refuse every ``ADD``."""
    from meter.core.config import get_settings
    from meter.dal import dynamo, keys
    from meter.dal.dimensions import IDENTIFIER

    pk, sk = IDENTIFIER.pk(POISONED, user), keys.day_sk(day.strftime("%Y-%m-%d"))
    item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}}
    if kind == "type":
        item["events"] = {"S": "edited by hand"}
    else:  # 10 bytes short of the limit (names count too): the event's counters do not fit
        item["filler"] = {"S": "x" * (MAX_ITEM_BYTES - len("pk" + pk + "sk" + sk + "filler") - 10)}
    dynamo.client().put_item(TableName=get_settings().aggregates_table, Item=item)


class CommitTimer:
    """Wall time of every window commit of the aggregator, and the transactions it sent (refused
    ones and probes included); wrapped in place for the measurement."""

    def __init__(self) -> None:
        from meter.counting import aggregation

        self.samples: list[float] = []
        self.transactions = 0
        self._module, self._commit, self._transact = aggregation, aggregation.commit, aggregation.transact

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return self._commit(*args, **kwargs)
            finally:
                self.samples.append((time.perf_counter() - started) * 1000)

        def counted(actions: list[dict[str, Any]]) -> None:
            self.transactions += 1
            self._transact(actions)

        aggregation.commit, aggregation.transact = timed, counted

    def close(self) -> None:
        self._module.commit, self._module.transact = self._commit, self._transact


def shard_hold(mapping: Any, rounds: int, day: datetime) -> dict[str, Any]:
    """Median commit of a window of 100 healthy events, alone and with one poison event, per kind."""
    timer = CommitTimer()
    found: dict[str, Any] = {}
    sent: dict[str, float] = {}
    try:
        for kind in ("clean", "type", "size"):
            samples, transactions = [], []
            for n in range(rounds):
                tag = f"{kind}-{n}"
                batch = _events(f"hold-{tag}", 100, day, lambda i, tag=tag: f"u{i % 20}-{tag}")
                _ingest(HEALTHY, batch)
                user = f"victim-{tag}"  # the clean round has the same event, its item not poisoned
                if kind != "clean":
                    _poison_user_day(user, day, kind)
                _ingest(POISONED, _events(f"hold-{tag}", 1, day, lambda i, user=user: user))
                timer.samples.clear()
                timer.transactions = 0
                mapping.drain()
                samples.append(sum(timer.samples))
                transactions.append(timer.transactions)
            found[kind] = round(statistics.median(samples), 1)
            sent[kind] = statistics.median(transactions)
    finally:
        timer.close()
    return {
        "rounds": rounds,
        "commit_ms_clean": found["clean"],
        "commit_ms_with_one_poison": {"counter of another type": found["type"], "item at 400 KB": found["size"]},
        "held_ms": {"counter of another type": round(found["type"] - found["clean"], 1),
                    "item at 400 KB": round(found["size"] - found["clean"], 1)},
        "transactions_per_commit": {"clean": sent["clean"], "counter of another type": sent["type"],
                                    "item at 400 KB": sent["size"]},
    }  # fmt: skip


def counted_for(tenant: str, day: datetime) -> int:
    """The tenant's events counted on ``day`` (its day item), read with an unmetered client."""
    import boto3

    from meter.core.config import get_settings
    from meter.dal import keys
    from meter.dal.dimensions import TENANT

    item = (
        boto3.client("dynamodb")
        .get_item(
            TableName=get_settings().aggregates_table,
            Key={"pk": {"S": TENANT.pk(tenant, "")}, "sk": {"S": keys.day_sk(day.strftime("%Y-%m-%d"))}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return int(item["events"]["N"]) if item else 0


Aggregating = Callable[[], tuple[threading.Event, threading.Thread]]  # starts the stream mapping on the real clock


def at_window_start(window_s: int) -> None:
    """Sleep until just after the next tumbling window opens (windows follow the clock, as
    Lambda's do), so that runs compared with one another send at the same point of a window."""
    time.sleep(window_s - time.time() % window_s + 0.5)


def _time_to_totals(start_mapping: Aggregating, poison: int, day: datetime, tag: str, window_s: int) -> float:
    """Seconds from sending 1,000 healthy events (with ``poison`` poisoned ones in between) until the
    healthy tenant's totals hold them all, with the stream mapping running on the real clock."""
    healthy = _events(f"delay-{tag}", 1000, day, lambda i: f"d{i % 50}")
    poisoned = _events(f"delay-{tag}", poison, day, lambda i: f"victim-{tag}-{i}")
    for event in poisoned:
        _poison_user_day(event["identifier"], day, "type")
    before = counted_for(HEALTHY, day)
    stop, thread = start_mapping()
    at_window_start(window_s)
    started = time.perf_counter()
    for first in range(0, 1000, 100):
        _ingest(HEALTHY, healthy[first : first + 100])
        _ingest(POISONED, poisoned[first * poison // 1000 : (first + 100) * poison // 1000])
    return until_counted(HEALTHY, day, before + 1000, started, stop, thread)


def until_counted(
    tenant: str, day: datetime, target: int, started: float, stop: threading.Event, thread: threading.Thread
) -> float:
    """Seconds from ``started`` until the tenant's ``day`` holds ``target`` events; then stop the mapping."""
    while counted_for(tenant, day) < target:
        if time.perf_counter() - started > 900:
            raise RuntimeError(f"the totals of {tenant} did not catch up")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join(timeout=120)
    return elapsed


def delay(start_mapping: Aggregating, window_s: int) -> dict[str, Any]:
    """How long 1,000 poison events (each refused on an item of its own) delay another tenant's totals."""
    day = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=2)
    alone = _time_to_totals(start_mapping, 0, day, "alone", window_s)
    mixed = _time_to_totals(start_mapping, 1000, day, "mixed", window_s)
    return {
        "window_s": window_s,
        "healthy_totals_s_alone": round(alone, 1),
        "healthy_totals_s_with_1000_poison": round(mixed, 1),
        "delay_s": round(mixed - alone, 1),
    }


def set_aside_messages() -> int:
    """Messages in the failure queue (what was set aside, and windows given up on)."""
    import boto3

    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="AggregationFailuresQueue")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
