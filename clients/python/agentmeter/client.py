"""``Meter``: track usage events from any Python process; they are sent in batches, in the background.

What the meter promises (docs/sending.md says how each failure is met):

* An event's id is fixed when ``track`` is called (yours, or a UUIDv7) and kept through every
  resend, so the server counts it once however often it arrives.
* Nothing is dropped silently: an event is delivered, or handed to ``on_error`` (rejected by the
  server, or given up on after the retries) or ``on_drop`` (the queue was full under the ``drop``
  policy), and counted in ``stats``.
* Nothing is lost at exit (an ``atexit`` hook flushes, bounded by ``exit_timeout``) or at fork (the
  child starts an empty queue and its own sender; the parent keeps and sends what it had queued).
* In AWS Lambda, ``@meter.flush_after`` sends before the handler returns, as the container may be
  frozen right after.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

from agentmeter.ids import uuid7
from agentmeter.transport import DELIVERED, REJECTED, RETRY, HttpTransport, Outcome, TooLarge, Transient, Transport

log = logging.getLogger("agentmeter")
Event = dict[str, Any]
Callback = Callable[[Event, str], None]
F = TypeVar("F", bound=Callable[..., Any])
FULL_POLICIES = ("block", "drop", "raise")
MAX_EVENTS_PER_BATCH = 500  # the meter's batch limit
MAX_BATCH_BYTES = 1_000_000  # the meter's body limit (before gzip)


class QueueFull(Exception):
    """``track`` under ``on_full="raise"`` found the queue full (``max_queue``)."""


class MeterClosed(Exception):
    """``track`` after ``close``."""


@dataclass
class Stats:
    """What became of the events tracked so far."""

    tracked: int = 0
    delivered: int = 0  # stored by the meter, duplicates included
    duplicates: int = 0  # of the delivered, the meter had already (a resend after a lost answer)
    rejected: int = 0  # refused by the meter (invalid, an id stored with another body): on_error
    failed: int = 0  # given up on after the retries, or at exit after exit_timeout: on_error
    dropped: int = 0  # the queue was full: on_drop
    queued: int = 0  # waiting to be sent now


def _timestamp(value: Any) -> str | None:
    if value is None:
        return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware (e.g. datetime.now(timezone.utc))")
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError("timestamp must be a datetime, an ISO 8601 string or None")


WIRE_NAMES = {  # track()'s keywords → the event's fields
    "identifier": "identifier",
    "agent_id": "agentId",
    "model": "model",
    "conversation_id": "conversationId",
    "credits": "credits",
    "meta": "meta",
    "reservation_id": "reservationId",
}


def make_event(type: str, count: int, id: str | None = None, timestamp: Any = None, **fields: Any) -> Event:
    """The wire body of one event (``Meter.track``'s arguments), its id and time fixed now; raises on
    what the meter would refuse."""
    if not isinstance(type, str) or not type:
        raise ValueError("type must be a non-empty string such as 'tokens.input'")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("count must be a whole number >= 0")
    unknown = sorted(set(fields) - set(WIRE_NAMES))
    if unknown:
        raise TypeError(f"unexpected keyword {unknown[0]!r}; track() takes {', '.join(WIRE_NAMES)}, id, timestamp")
    meta = fields.get("meta")
    if meta is not None and not all(isinstance(v, (str, int, float, bool)) for v in meta.values()):
        raise ValueError("meta values must be strings, numbers or booleans")
    event: Event = {"id": id or uuid7(), "type": type, "count": count, "timestamp": _timestamp(timestamp)}
    event.update({WIRE_NAMES[name]: value for name, value in fields.items() if value is not None})
    return event


class Meter:
    """A sender of usage events. ``Meter(url, key)`` sends over HTTP; ``transport=`` picks another way.

    Options: ``batch_size`` (send when this many are queued, 100), ``flush_interval`` (or after this
    many seconds, 1.0), ``max_batch_events`` (500) and ``max_batch_bytes`` (1 MB) per request,
    ``max_queue`` (10,000), ``on_full`` (``block`` for up to ``block_timeout`` seconds then drop,
    ``drop``, or ``raise``), ``max_retries`` (10) with jittered exponential backoff from
    ``backoff_base`` (0.5 s) to ``backoff_max`` (30 s), honouring ``Retry-After``; ``timeout`` (10 s a
    request), ``gzip`` (True), ``on_error(event, reason)``, ``on_drop(event, reason)``, and
    ``exit_timeout`` (10 s: how long the exit hook may spend sending).
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        transport: Transport | None = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_batch_events: int = MAX_EVENTS_PER_BATCH,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_queue: int = 10_000,
        on_full: str = "block",
        block_timeout: float = 1.0,
        max_retries: int = 10,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 10.0,
        gzip: bool = True,
        on_error: Callback | None = None,
        on_drop: Callback | None = None,
        exit_timeout: float = 10.0,
    ) -> None:
        if on_full not in FULL_POLICIES:
            raise ValueError(f"on_full must be one of {FULL_POLICIES}")
        if transport is None:
            url, key = url or os.environ.get("AGENTMETER_URL"), key or os.environ.get("AGENTMETER_KEY")
            if not url or not key:
                raise ValueError("Meter needs url and key (or AGENTMETER_URL and AGENTMETER_KEY), or a transport")
            transport = HttpTransport(url, key, timeout=timeout, compress=gzip)
        self.transport = transport
        self.batch_size = max(1, min(batch_size, max_batch_events))
        self.flush_interval = flush_interval
        self.max_batch_events = min(max_batch_events, MAX_EVENTS_PER_BATCH)
        self.max_batch_bytes = min(max_batch_bytes, MAX_BATCH_BYTES)
        self.max_queue, self.on_full, self.block_timeout = max_queue, on_full, block_timeout
        self.max_retries, self.backoff_base, self.backoff_max = max_retries, backoff_base, backoff_max
        self.on_error, self.on_drop, self.exit_timeout = on_error, on_drop, exit_timeout
        self.stats = Stats()
        self._closed = False
        self._fresh_process_state()
        _live_meters.add(self)

    # -- state that a forked child must not share with its parent
    def _fresh_process_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # queue, in-flight count or flush requests changed
        self._queue: deque[Event] = deque()
        self._in_flight = 0
        self._worker: threading.Thread | None = None
        self._closing = threading.Event()  # the sender stops and hands back what it retries
        self.stats.queued = 0

    def _after_fork_in_child(self) -> None:
        """The child's meter: an empty queue (the parent sends what it had) and no sender until used."""
        self._fresh_process_state()

    # -- tracking
    def track(
        self,
        type: str,
        count: int,
        *,
        identifier: str | None = None,
        agent_id: str | None = None,
        model: str | None = None,
        conversation_id: str | None = None,
        credits: int | None = None,
        meta: dict[str, Any] | None = None,
        id: str | None = None,
        timestamp: Any = None,
        reservation_id: str | None = None,
    ) -> str:
        """Queue one event; returns its id (fixed now, kept through every resend)."""
        event = make_event(
            type,
            count,
            identifier=identifier,
            agent_id=agent_id,
            model=model,
            conversation_id=conversation_id,
            credits=credits,
            meta=meta,
            id=id,
            timestamp=timestamp,
            reservation_id=reservation_id,
        )
        self.enqueue(event)
        return event["id"]

    def enqueue(self, event: Event, block_timeout: float | None = None) -> bool:
        """Queue a ready event body under the full-queue policy; False when it was dropped (``on_drop``)."""
        if self._closed:
            raise MeterClosed("this Meter is closed")
        if self._pid != os.getpid():
            self._after_fork_in_child()
        with self._lock:
            dropped = len(self._queue) >= self.max_queue and not self._wait_for_room(block_timeout)
            if dropped and self.on_full == "raise":
                raise QueueFull(f"{len(self._queue)} events are waiting to be sent (max_queue)")
            self.stats.tracked += 1
            self.stats.dropped += dropped
            if not dropped:
                self._queue.append(event)
                self.stats.queued = len(self._queue)
                if len(self._queue) >= self.batch_size:
                    self._changed.notify_all()
        if dropped:
            self._report(self.on_drop, event, "queue full (max_queue)")
            return False
        self._ensure_worker()
        return True

    def _wait_for_room(self, block_timeout: float | None) -> bool:
        if self.on_full != "block":
            return False
        deadline = time.monotonic() + (self.block_timeout if block_timeout is None else block_timeout)
        while len(self._queue) >= self.max_queue:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.notify_all()  # whoever sends, send now
            self._changed.wait(left)
        return True

    # -- sending
    def _ensure_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="agentmeter-sender", daemon=True)
                self._worker.start()

    def _take_batch(self) -> list[Event]:
        """Up to one request's worth from the front of the queue (lock held); counted in flight.

        The events are measured against ``max_batch_bytes`` after the lock is let go (``_fit``).
        """
        count = min(len(self._queue), self.max_batch_events)
        batch = [self._queue.popleft() for _ in range(count)]
        self._in_flight += count
        self.stats.queued = len(self._queue)
        if batch:
            self._changed.notify_all()  # room for blocked producers
        return batch

    def _fit(self, batch: list[Event]) -> list[Event]:
        """The head of ``batch`` that fits one request; the rest goes back to the front of the queue."""
        size = 2
        for index, event in enumerate(batch):
            size += len(json.dumps(event, separators=(",", ":"))) + 1
            if index and size > self.max_batch_bytes:
                self._settle([], batch[index:], final=False)
                return batch[:index]
        return batch

    def _run(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                deadline = time.monotonic() + self.flush_interval
                while len(self._queue) < self.batch_size and not self._closing.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
                batch = [] if self._closing.is_set() else self._take_batch()
            if batch:
                self._deliver(self._fit(batch), deadline=None, final=False)

    def _settle(self, outcomes: list[tuple[Event, Outcome]], requeued: list[Event], final: bool) -> None:
        """Count what became of a batch, report failures, and put back what is still to send."""
        reports: list[tuple[Callback | None, Event, str]] = []
        with self._lock:
            for event, outcome in outcomes:
                if outcome.status == DELIVERED:
                    self.stats.delivered += 1
                    self.stats.duplicates += outcome.duplicate
                else:
                    self.stats.rejected += outcome.status == REJECTED
                    self.stats.failed += outcome.status != REJECTED
                    reports.append((self.on_error, event, outcome.reason))
            if requeued and not final:
                self._queue.extendleft(reversed(requeued))
            self._in_flight -= len(outcomes) + len(requeued)
            self.stats.queued = len(self._queue)
            self._changed.notify_all()
        for callback, event, reason in reports:
            self._report(callback, event, reason)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        jittered = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        return max(jittered, min(retry_after, self.backoff_max * 4)) if retry_after is not None else jittered

    def _deliver(self, batch: list[Event], deadline: float | None, final: bool) -> None:
        """Send a batch until each event is delivered, rejected or given up on; resends keep its ids.

        Past ``deadline`` (a flush's timeout) what is left goes back to the front of the queue, or,
        when ``final`` (at exit), is reported as failed.
        """
        pending, attempt, settled = batch, 0, []
        while pending:
            try:
                outcomes = self.transport.send(pending)
            except TooLarge:
                half = len(pending) // 2
                self._settle(settled, [], final)
                self._deliver(pending[:half], deadline, final)
                self._deliver(pending[half:], deadline, final)
                return
            except Transient as failure:
                outcomes = [Outcome(RETRY, reason=str(failure)) for _ in pending]
                retry_after = failure.retry_after
            except Exception as error:  # a transport's own fault: retried, then reported, never lost
                log.exception("agentmeter transport failed")
                outcomes = [Outcome(RETRY, reason=f"{type(error).__name__}: {error}") for _ in pending]
                retry_after = None
            else:
                retry_after = None
            settled += [(e, o) for e, o in zip(pending, outcomes) if o.status in (DELIVERED, REJECTED)]
            again = [(e, o) for e, o in zip(pending, outcomes) if o.status not in (DELIVERED, REJECTED)]
            pending = [e for e, _ in again]
            if not any(o.status == RETRY for _, o in again):
                continue  # nothing failed that needs a pause: send the rest at once
            attempt += 1
            wait = self._backoff(attempt, retry_after)
            out_of_time = deadline is not None and time.monotonic() + wait > deadline
            if attempt > self.max_retries or out_of_time:
                if out_of_time and not final:
                    break  # back to the queue
                why = "the close timeout passed" if out_of_time else f"gave up after {attempt} attempts"
                settled += [(e, Outcome("failed", reason=f"{why}: {o.reason}")) for e, o in again]
                pending = []
                break
            if self._closing.wait(wait) and not final:
                break  # closing: whoever closes sends these, within its timeout
        self._settle(settled, pending, final)

    def _report(self, callback: Callback | None, event: Event, reason: str) -> None:
        if callback is None:
            log.warning("usage event %s not delivered: %s", event.get("id"), reason)
            return
        try:
            callback(event, reason)
        except Exception:
            log.exception("agentmeter callback failed for event %s", event.get("id"))

    # -- flushing and closing
    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now, in this thread, with retries; wait for batches already in flight.

        True when every event tracked before the call is settled (delivered, or reported to
        ``on_error``); False if ``timeout`` seconds passed first (what is left stays queued).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._drain(deadline, final=False)

    def _drain(self, deadline: float | None, final: bool) -> bool:
        """Send batches from the queue in this thread until it and every batch in flight are done."""
        if self._pid != os.getpid():
            self._after_fork_in_child()
        while True:
            with self._lock:
                batch = self._take_batch()
            if batch:
                self._deliver(self._fit(batch), deadline, final)
            with self._lock:
                while self._in_flight and not self._queue:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._changed.wait(left)
                if not self._queue and not self._in_flight:
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the sender; ``track`` raises ``MeterClosed`` after. Safe to call twice.

        What is still unsent when ``timeout`` passes is reported to ``on_error`` and counted failed.
        """
        if self._closed:
            return True
        self._closed = True
        self._closing.set()
        with self._lock:
            self._changed.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self._drain(deadline, final=True)
        with self._lock:
            unsent, in_flight = list(self._queue), self._in_flight
            self._queue.clear()
            self.stats.queued = 0
            self.stats.failed += len(unsent) + in_flight
        for event in unsent:
            self._report(self.on_error, event, "not sent before the close timeout")
        if in_flight:
            log.warning("%d usage events were still being sent when the close timeout passed", in_flight)
        _live_meters.discard(self)
        return done

    def _at_exit(self) -> None:
        self.close(timeout=self.exit_timeout)

    def flush_after(self, handler: F) -> F:
        """Decorate a Lambda handler: its events are sent, with retries, before it returns (or raises)."""

        @functools.wraps(handler)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush(timeout=self.exit_timeout)

        return wrapped  # type: ignore[return-value]

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(timeout=self.exit_timeout)


_live_meters: weakref.WeakSet = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for meter in list(_live_meters):
        meter._at_exit()


def _reset_all_in_child() -> None:
    for meter in list(_live_meters):
        meter._after_fork_in_child()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_in_child)
