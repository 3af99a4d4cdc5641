"""What a warm container keeps between invocations, each bounded, and all forgotten in one call.

A container serves many requests, so a few things are kept: settings, clients and signing keys
(``memoized``), and key verdicts, rate cards, alert definitions and marks known to be written
(``Cache``). Every ``Cache`` has a size bound past which the least recently used entry leaves
(never the whole cache at once), and optionally an age past which an entry is read again.
``forget_all`` clears every one of them: tests call it between cases, and after changing the
environment.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from cachetools import LRUCache, TLRUCache

Function = TypeVar("Function", bound=Callable[..., Any])
_caches: list[Cache] = []
_memoized: list[Any] = []
_others: list[Callable[[], None]] = []


class Cache:
    """A thread-safe LRU cache of at most ``maxsize`` entries; with ``seconds`` (a number, or a
    function read at each insert, such as a setting), an entry expires that long after it was put.
    ``timer`` is the clock expiry is measured on."""

    def __init__(
        self,
        maxsize: int,
        seconds: float | Callable[[], float] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if seconds is None:
            self._entries: LRUCache = LRUCache(maxsize)
        else:
            age = seconds if callable(seconds) else (lambda: seconds)
            self._entries = TLRUCache(maxsize, ttu=lambda _key, _value, now: now + age(), timer=lambda: timer())
        self._lock = threading.Lock()
        _caches.append(self)

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._entries.get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = value

    def pop(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def memoized(maxsize: int = 1) -> Callable[[Function], Function]:
    """``functools.lru_cache``, registered so that ``forget_all`` clears it."""

    def decorate(function: Function) -> Function:
        cached = functools.lru_cache(maxsize=maxsize)(function)
        _memoized.append(cached)
        return cached  # type: ignore[return-value]

    return decorate


def on_forget(clear: Callable[[], None]) -> None:
    """Have ``forget_all`` call ``clear`` too (state kept some other way, such as rate-limit windows)."""
    _others.append(clear)


def forget_all() -> None:
    """Clear every cache, memoized function and registered state of this process."""
    for cache in _caches:
        cache.clear()
    for function in _memoized:
        function.cache_clear()
    for clear in _others:
        clear()
