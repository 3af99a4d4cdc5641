"""Per-container caches: bounded by least-recent use, expiring by age, all forgotten at once."""

from __future__ import annotations

from meter.core import caches
from meter.core.caches import Cache, memoized


def test_past_its_bound_the_least_recently_used_entry_leaves_not_the_whole_cache():
    cache = Cache(3)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("d", "D")
    assert ("b" in cache, len(cache), cache.get("a"), cache.get("d")) == (False, 3, "A", "D")


def test_an_entry_expires_its_age_after_it_was_put_and_the_age_is_read_at_each_put():
    now, age = [0.0], [10.0]
    cache = Cache(10, seconds=lambda: age[0], timer=lambda: now[0])
    cache.put("k", 1)
    now[0] = 9.9
    assert cache.get("k") == 1
    now[0] = 10.0
    assert cache.get("k") is None
    age[0] = 0.0  # a setting of 0: never kept
    cache.put("k", 2)
    assert cache.get("k") is None


def test_forget_all_clears_caches_memoized_functions_and_registered_state():
    cache, calls, other = Cache(2), [], {"x": 1}

    @memoized()
    def expensive() -> int:
        calls.append(1)
        return len(calls)

    caches.on_forget(other.clear)
    cache.put("k", 1)
    assert (expensive(), expensive()) == (1, 1)
    caches.forget_all()
    assert (cache.get("k"), expensive(), other) == (None, 2, {})
