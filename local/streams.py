"""DynamoDB stream → Lambda event source mapping emulation (polls DynamoDB Local or moto).

Follows the template's mapping: batch size, batching window, FilterCriteria, bisect on
function error, ReportBatchItemFailures (resume from the lowest failed sequence number, never
skip a record), MaximumRetryAttempts, the on-failure destination, and tumbling windows.

With ``TumblingWindowInSeconds`` each shard's records are grouped by their arrival second into
windows; every invocation carries ``shardId``, ``window``, the ``state`` the previous invocation
of the window returned, and ``isFinalInvokeForWindow``. A window's final invocation comes once
the clock passes its end and the shard has nothing newer (or a later window's record arrives, or
``close_windows`` forces it, as time passing would). An invocation that fails is retried with the
same state and records; when the retries run out, the window's records so far go to the on-failure
destination.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local.lambda_runtime import invoke
from local.template import Function, StreamSource
from meter.core.logs import logger
from meter.dal import dynamo

FailureSink = Callable[[dict[str, Any]], None]
METADATA_REFRESH_SECONDS = 5.0  # how stale the stream ARN and shard list may be


def matches(pattern: Any, value: Any) -> bool:
    """Lambda event-filter matching for the rules we support: literals, prefix, exists, anything-but."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        for key, rule in pattern.items():
            if isinstance(rule, list) and any(isinstance(r, dict) and "exists" in r for r in rule):
                if (key in value) != rule[0]["exists"]:
                    return False
                continue
            if key not in value or not matches(rule, value[key]):
                return False
        return True
    if isinstance(pattern, list):
        return any(_matches_rule(rule, value) for rule in pattern)
    raise ValueError(f"Unsupported filter pattern: {pattern!r}")


def _matches_rule(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            excluded = rule["anything-but"]
            return value not in (excluded if isinstance(excluded, list) else [excluded])
        raise ValueError(f"Unsupported filter rule: {rule!r}")
    return rule == value


@dataclass
class _Window:
    """One shard's open tumbling window: its bounds, the state so far, and its first record."""

    start: int
    end: int
    shard: str
    arn: str
    first_sequence: str = ""
    last_sequence: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    resume_from: str | None = None  # the checkpoint to restart from while the window is open


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StreamMapping:
    """One stream event source mapping: poll, filter, batch, invoke, retry, dead-letter."""

    def __init__(
        self,
        source: StreamSource,
        function: Function,
        table_name: str,
        on_failure: FailureSink,
        checkpoint: Path | None = None,
        retry_delay: float = 0.2,
        clock: Callable[[], float] = time.time,
    ):
        self.source = source
        self.function = function
        self.table_name = table_name
        self.on_failure = on_failure
        self.checkpoint = checkpoint
        self.retry_delay = retry_delay
        self.clock = clock
        self.read_limit = 1000  # records a poll reads, as Lambda's poller reads a page at a time
        self._windows: dict[str, _Window] = {}  # per shard key
        self.filters = [json.loads(p) if isinstance(p, str) else p for p in source.filters]
        self._iterators: dict[str, str | None] = {}
        self._arn: tuple[float, str | None] | None = None
        self._shard_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._streams_client: Any = None
        saved = self._load_checkpoint()
        self._positions: dict[str, str] = saved.get("positions", {})
        self.delivered: int = saved.get("delivered", 0)  # every record read from this table's streams

    # -- stream reading ------------------------------------------------------------------
    def stream_arn(self) -> str | None:
        """The table's current stream (looked up at most every few seconds)."""
        if self._arn is None or time.monotonic() - self._arn[0] > METADATA_REFRESH_SECONDS:
            table = dynamo.client().describe_table(TableName=self.table_name)["Table"]
            self._arn = (time.monotonic(), table.get("LatestStreamArn"))
        return self._arn[1]

    def _streams(self) -> Any:
        if self._streams_client is None:
            import boto3

            # DynamoDB Local serves streams on its one endpoint; boto3 reads AWS_ENDPOINT_URL_DYNAMODB_STREAMS.
            self._streams_client = boto3.client("dynamodbstreams")
        return self._streams_client

    def _load_checkpoint(self) -> dict[str, Any]:
        if self.checkpoint and self.checkpoint.exists():
            return json.loads(self.checkpoint.read_text())
        return {}

    def _save_checkpoint(self) -> None:
        if self.checkpoint:
            # An open window's state lives in memory only: a restart re-reads its records (the
            # aggregator's ledger skips whatever a previous run committed).
            positions = dict(self._positions)
            for key, window in self._windows.items():
                if window.resume_from is None:
                    positions.pop(key, None)
                else:
                    positions[key] = window.resume_from
            self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            self.checkpoint.write_text(json.dumps({"positions": positions, "delivered": self.delivered}))

    def _shards(self, streams: Any, arn: str) -> list[dict[str, Any]]:
        cached = self._shard_cache.get(arn)
        if cached and time.monotonic() - cached[0] < METADATA_REFRESH_SECONDS:
            return cached[1]
        shards = self._describe_shards(streams, arn)
        self._shard_cache[arn] = (time.monotonic(), shards)
        return shards

    @staticmethod
    def _describe_shards(streams: Any, arn: str) -> list[dict[str, Any]]:
        shards, kwargs = [], {"StreamArn": arn}
        while True:
            description = streams.describe_stream(**kwargs)["StreamDescription"]
            shards += description.get("Shards", [])
            if not description.get("LastEvaluatedShardId"):
                return sorted(shards, key=lambda s: int(s["SequenceNumberRange"]["StartingSequenceNumber"]))
            kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]

    def _read(self, streams: Any, arn: str) -> list[tuple[str, dict[str, Any]]]:
        records: list[tuple[str, dict[str, Any]]] = []
        for shard in self._shards(streams, arn):
            shard_id = shard["ShardId"]
            key = f"{arn}|{shard_id}"
            if key not in self._iterators:
                position = self._positions.get(key)
                kwargs = {"StreamArn": arn, "ShardId": shard_id}
                if position:
                    kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position)
                else:
                    kwargs.update(ShardIteratorType="TRIM_HORIZON")
                self._iterators[key] = streams.get_shard_iterator(**kwargs)["ShardIterator"]
            iterator = self._iterators[key]
            while iterator and len(records) < self.read_limit:
                try:
                    page = streams.get_records(ShardIterator=iterator, Limit=self.read_limit)
                except (streams.exceptions.TrimmedDataAccessException, streams.exceptions.ExpiredIteratorException):
                    # DynamoDB Local invalidates an iterator taken on an empty shard; take a new one.
                    self._iterators.pop(key, None)
                    break
                iterator = page.get("NextShardIterator")
                records += [(key, self._lambda_record(r, arn)) for r in page.get("Records", [])]
                if not page.get("Records"):
                    break
            if key in self._iterators:
                self._iterators[key] = iterator
                if iterator is None:  # the shard closed: its children appear in a fresh shard list
                    self._shard_cache.pop(arn, None)
        return records

    @staticmethod
    def _lambda_record(record: dict[str, Any], arn: str) -> dict[str, Any]:
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if hasattr(created, "timestamp"):
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record.get("eventID"),
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": record.get("awsRegion", "local"),
            "dynamodb": change,
            "eventSourceARN": arn,
        }

    # -- delivery ------------------------------------------------------------------------
    def poll_once(self) -> int:
        """Deliver what the stream holds now (and close windows whose time is up); records read."""
        arn = self.stream_arn()
        if not arn:
            return 0
        read = self._read(self._streams(), arn)
        for start in range(0, len(read), 10_000):
            chunk = read[start : start + 10_000]
            for key in dict.fromkeys(k for k, _ in chunk):  # like Lambda, a batch never spans shards
                wanted = [
                    r for k, r in chunk if k == key and (not self.filters or any(matches(f, r) for f in self.filters))
                ]
                if self.source.tumbling_seconds:
                    self._deliver_windowed(key, wanted)
                    continue
                for batch_start in range(0, len(wanted), self.source.batch_size):
                    batch = wanted[batch_start : batch_start + self.source.batch_size]
                    self._deliver(batch, attempt=0, shard=key.split("|", 1)[1])
            for key, record in chunk:
                self._positions[key] = record["dynamodb"]["SequenceNumber"]
        self.delivered += len(read)
        # A window ends by the clock only once the shard is caught up: while a backlog is read, its
        # windows end when a later window's record comes, as Lambda's do.
        closed = 0 if read else self.close_windows(self.clock())
        if read or closed:
            self._save_checkpoint()
        return len(read)

    def drain(self, quiet_polls: int = 2, timeout: float = 60.0, close_windows: bool = True) -> None:
        """Poll until the stream has nothing new for ``quiet_polls`` polls in a row.

        With ``close_windows`` every open tumbling window then gets its final invocation, as the
        passing of its end time would bring.
        """
        deadline, quiet = time.monotonic() + timeout, 0
        while quiet < quiet_polls and time.monotonic() < deadline:
            quiet = quiet + 1 if self.poll_once() == 0 else 0
        if close_windows:
            self.close_windows()

    def run(self, stop: threading.Event) -> None:
        """Poll continuously, honouring the batching window, until ``stop`` is set."""
        while not stop.is_set():
            try:
                if self.poll_once() == 0:
                    stop.wait(max(0.05, min(self.source.window_seconds, 0.5)))
            except Exception:
                logger.exception("stream poll failed", extra={"function": self.function.logical_id})
                stop.wait(1.0)

    # -- tumbling windows ------------------------------------------------------------------
    def _window_start(self, record: dict[str, Any]) -> int:
        size = self.source.tumbling_seconds
        return int(record["dynamodb"].get("ApproximateCreationDateTime") or self.clock()) // size * size

    def _open_window(self, key: str, record: dict[str, Any], start: int) -> _Window:
        window = self._windows.get(key)
        if window is not None and window.start != start:
            self._final_invoke(key, [])  # a later window's record: this one has ended
            window = None
        if window is None:
            shard = key.split("|", 1)[1]
            window = _Window(start, start + self.source.tumbling_seconds, shard, record["eventSourceARN"])
            window.resume_from = self._positions.get(key)
            self._windows[key] = window
        return window

    def _deliver_windowed(self, key: str, records: list[dict[str, Any]]) -> None:
        batch: list[dict[str, Any]] = []
        current: _Window | None = None
        for record in records:
            start = self._window_start(record)
            if current is not None and batch and (start != current.start or len(batch) == self.source.batch_size):
                self._invoke_window(current, batch, final=False)
                batch = []
            current = self._open_window(key, record, start)
            batch.append(record)
        if current is not None and batch:
            self._invoke_window(current, batch, final=False)

    def deliver_window(self, shard: str, records: list[dict[str, Any]]) -> None:
        """Deliver one shard's records (Lambda's shape, in sequence order) as this mapping would, then
        close their windows: a load that DynamoDB Local's one stream shard cannot carry, fed as one
        shard of a busier table (``bench.swarm``)."""
        self._deliver_windowed(f"{records[0]['eventSourceARN']}|{shard}", records)
        self.close_windows()

    def close_windows(self, now: float | None = None) -> int:
        """Give every open window whose end is at or before ``now`` (all, if None) its final invocation."""
        due = [key for key, window in self._windows.items() if now is None or window.end <= now]
        for key in due:
            self._final_invoke(key, [])
        if due and now is None:
            self._save_checkpoint()
        return len(due)

    def _final_invoke(self, key: str, batch: list[dict[str, Any]]) -> None:
        window = self._windows.pop(key)
        self._invoke_window(window, batch, final=True)

    def _invoke_window(self, window: _Window, batch: list[dict[str, Any]], final: bool) -> None:
        """One invocation of a window, retried with the same state and records until it succeeds."""
        if batch:
            window.first_sequence = window.first_sequence or batch[0]["dynamodb"]["SequenceNumber"]
            window.last_sequence = batch[-1]["dynamodb"]["SequenceNumber"]
        event = {
            "Records": batch,
            "shardId": window.shard,
            "eventSourceARN": window.arn,
            "window": {"start": _iso(window.start), "end": _iso(window.end)},
            "state": window.state,
            "isFinalInvokeForWindow": final,
            "isWindowTerminatedEarly": False,
        }
        attempt = 0
        while True:
            try:
                response = invoke(self.function, event)
                if not isinstance(response, dict) or "state" not in response or response.get("batchItemFailures"):
                    raise RuntimeError("the function returned no state, or failed records, for a windowed batch")
                window.state = response["state"] or {}
                return
            except Exception:
                logger.exception(
                    "window invocation failed",
                    extra={"function": self.function.logical_id, "records": len(batch), "attempt": attempt},
                )
                attempt += 1
                if self._exhausted(attempt):
                    self._dead_letter_window(window)
                    return
                time.sleep(self.retry_delay)

    def _dead_letter_window(self, window: _Window) -> None:
        """The window's records so far go to the on-failure destination; the window starts afresh."""
        window.state = {}
        if window.first_sequence:
            self._send_failure(window.shard, window.first_sequence, window.last_sequence, window.arn, None)
        window.first_sequence = window.last_sequence = ""

    def _exhausted(self, attempt: int) -> bool:
        return 0 <= self.source.max_retries < attempt

    def _deliver(self, batch: list[dict[str, Any]], attempt: int, shard: str) -> None:
        while batch:
            try:
                response = invoke(self.function, {"Records": batch})
            except Exception:
                logger.exception(
                    "stream batch failed",
                    extra={"function": self.function.logical_id, "records": len(batch), "attempt": attempt},
                )
                attempt += 1
                if self._exhausted(attempt):
                    return self._dead_letter(batch, shard)
                time.sleep(self.retry_delay)
                if self.source.bisect_on_error and len(batch) > 1:
                    half = len(batch) // 2
                    self._deliver(batch[:half], attempt, shard)
                    return self._deliver(batch[half:], attempt, shard)
                continue
            first_failed = self._first_failed(batch, response)
            if first_failed is None:
                return None
            attempt += 1
            if self._exhausted(attempt):
                return self._dead_letter(batch[first_failed:], shard)
            time.sleep(self.retry_delay)
            batch = batch[first_failed:]
        return None

    def _first_failed(self, batch: list[dict[str, Any]], response: Any) -> int | None:
        if not self.source.report_item_failures or not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None
        sequences = [r["dynamodb"]["SequenceNumber"] for r in batch]
        indexes = [sequences.index(f.get("itemIdentifier")) for f in failures if f.get("itemIdentifier") in sequences]
        # Lambda treats an unknown or empty identifier as a failure of the whole batch.
        return min(indexes) if len(indexes) == len(failures) else 0

    def _dead_letter(self, batch: list[dict[str, Any]], shard: str) -> None:
        first, last = batch[0]["dynamodb"]["SequenceNumber"], batch[-1]["dynamodb"]["SequenceNumber"]
        self._send_failure(shard, first, last, batch[0]["eventSourceARN"], len(batch))

    def _send_failure(self, shard: str, first: str, last: str, arn: str, size: int | None) -> None:
        logger.error(
            "stream batch dead-lettered",
            extra={"function": self.function.logical_id, "shard": shard, "first": first, "last": last},
        )
        info = {"shardId": shard, "startSequenceNumber": first, "endSequenceNumber": last, "streamArn": arn}
        if size is not None:
            info["batchSize"] = size
        self.on_failure(
            {
                "requestContext": {
                    "condition": "RetryAttemptsExhausted",
                    "functionArn": self.function.logical_id,
                    "approximateInvokeCount": self.source.max_retries + 1,
                },
                "DDBStreamBatchInfo": info,
            }
        )
