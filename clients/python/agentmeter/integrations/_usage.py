"""One call's usage as disjoint token events (see the package docstring)."""

from __future__ import annotations

from typing import Any


def number(value: Any) -> int:
    """A token count from a provider's object: None and missing are 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def field(obj: Any, *path: str) -> Any:
    """``obj.a.b`` or ``obj["a"]["b"]``, None where any step is missing."""
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def track_tokens(
    meter: Any,
    call_id: str,
    *,
    input: int,
    output: int,  # every output token, reasoning included
    cached: int = 0,
    cache_creation: int = 0,
    reasoning: int = 0,
    **fields: Any,
) -> list[str]:
    """Track a call's tokens on ``meter`` (a ``Meter``); returns the ids of the events tracked."""
    input, output = number(input), number(output)
    cached, cache_creation, reasoning = number(cached), number(cache_creation), number(reasoning)
    parts = {
        "tokens.input": max(input - cached - cache_creation, 0),
        "tokens.input.cached": cached,
        "tokens.input.cache_creation": cache_creation,
        "tokens.output": max(output - reasoning, 0),
        "tokens.output.reasoning": reasoning,
    }
    known = {name: value for name, value in fields.items() if value is not None}
    return [
        meter.track(event_type, count, id=f"{call_id}/{event_type}", **known)
        for event_type, count in parts.items()
        if count
    ]
