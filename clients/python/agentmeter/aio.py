"""``AsyncMeter``: the same verbs as ``Meter`` for asyncio code, never blocking the event loop.

Tracking only queues (a full queue under ``on_full="block"`` waits in a worker thread); sending
runs on the meter's own thread, and ``flush``/``close`` wait for it in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, TypeVar

from agentmeter.client import Meter, make_event

F = TypeVar("F", bound=Callable[..., Any])


class AsyncMeter:
    """``AsyncMeter(url, key, **options)``: options as ``Meter``'s."""

    def __init__(self, url: str | None = None, key: str | None = None, **options: Any) -> None:
        self.meter = Meter(url, key, **options)

    @property
    def stats(self):
        return self.meter.stats

    async def track(self, type: str, count: int, **fields: Any) -> str:
        """Queue one event; returns its id. The keywords are ``Meter.track``'s."""
        event = make_event(type, count, **fields)
        meter = self.meter
        if len(meter._queue) < meter.max_queue or meter.on_full != "block":
            meter.enqueue(event, block_timeout=0)
        else:
            await asyncio.to_thread(meter.enqueue, event)
        return event["id"]

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now; True when all of it is settled."""
        return await asyncio.to_thread(self.meter.flush, timeout)

    async def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop sending."""
        return await asyncio.to_thread(self.meter.close, timeout)

    def flush_after(self, handler: F) -> F:
        """Decorate an async handler: its events are sent before it returns (or raises)."""

        @functools.wraps(handler)
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(*args, **kwargs)
            finally:
                await self.flush(timeout=self.meter.exit_timeout)

        return wrapped  # type: ignore[return-value]

    async def __aenter__(self) -> AsyncMeter:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close(timeout=self.meter.exit_timeout)
