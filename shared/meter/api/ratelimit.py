"""Per-key rate limits: a one-second window per API key, counted in the container first.

Each container counts its own requests per key and second, and refuses past the limit with 429
and ``Retry-After: 1``. So that several containers share one limit without a write per request,
a container reports its count to the key's window in the Control table only in steps of a
quarter of the limit (one ``ADD``, 1 WCU, per step); once the shared total passes the limit, the
container refuses the rest of that second. A key used below a quarter of its limit per container
and second costs no write at all. Across ``N`` warm containers a key may get up to
``limit + N * (step - 1)`` requests in one second: exact for one container, close for many.

A key item may carry its own ``rateLimit``; otherwise ``RATE_LIMIT_PER_SECOND`` applies (0 =
unlimited). Counting happens before the use case, so refused requests cost no reads. Windows
expire by TTL a minute later.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from meter.api.auth import Principal
from meter.core import caches
from meter.core.config import get_settings
from meter.core.errors import TooManyRequests
from meter.core.timerange import now_ms
from meter.dal import store

SHARE_STEPS = 4  # how many shared writes a container may make per key and second


@dataclass
class _Window:
    second: int
    count: int = 0
    over: bool = False


_windows: dict[str, _Window] = {}
_lock = threading.Lock()
caches.on_forget(_windows.clear)


def enforce_rate_limit(principal: Principal) -> None:
    """Count this request against its key; TooManyRequests once the key is over its limit."""
    limit = principal.rate_limit if principal.rate_limit is not None else get_settings().rate_limit_per_second
    if limit <= 0:
        return
    second, step = now_ms() // 1000, math.ceil(limit / SHARE_STEPS)
    with _lock:
        window = _windows.get(principal.key_id)
        if window is None or window.second != second:
            if len(_windows) > 10_000:  # forget other keys' past seconds
                for stale in [k for k, w in _windows.items() if w.second != second]:
                    del _windows[stale]
            window = _windows[principal.key_id] = _Window(second)
        window.count += 1
        window.over = window.over or window.count > limit
        report = not window.over and window.count % step == 0
    if report and store.control().add_to_window(principal.key_id, second, step) > limit:
        window.over = True
    if window.over:
        raise TooManyRequests(f"Rate limit exceeded: this API key may make {limit} requests per second", 1)
