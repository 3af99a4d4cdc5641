"""Anthropic: track a ``Message``, or a stream of message events.

    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=...)
    track_anthropic(meter, message, identifier="ana")

Anthropic's ``input_tokens`` exclude ``cache_read_input_tokens`` and ``cache_creation_input_tokens``;
the three together are the call's input. Thinking tokens are part of ``output_tokens``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from agentmeter.integrations._usage import field, number, track_tokens


def _track(meter: Any, call_id: str, model: Any, usage: Any, fields: dict[str, Any]) -> list[str]:
    cached = number(field(usage, "cache_read_input_tokens"))
    created = number(field(usage, "cache_creation_input_tokens"))
    return track_tokens(
        meter,
        call_id,
        input=number(field(usage, "input_tokens")) + cached + created,
        cached=cached,
        cache_creation=created,
        output=field(usage, "output_tokens"),
        model=fields.pop("model", None) or model,
        **fields,
    )


def track_anthropic(meter: Any, message: Any, **fields: Any) -> list[str]:
    """Track a ``Message``'s usage; its id is the message id."""
    return _track(meter, field(message, "id"), field(message, "model"), field(message, "usage"), dict(fields))


def track_anthropic_stream(meter: Any, stream: Iterable[Any], **fields: Any) -> Iterator[Any]:
    """Pass a stream's events through; at ``message_stop``, track what ``message_start`` and the
    ``message_delta`` events reported (the deltas' usage is cumulative)."""
    started: Any = None
    usage: dict[str, Any] = {}
    for event in stream:
        kind = field(event, "type")
        if kind == "message_start":
            started = field(event, "message")
            usage = {name: field(started, "usage", name) for name in _USAGE_FIELDS}
        elif kind == "message_delta":
            usage.update({k: v for k in _USAGE_FIELDS if (v := field(event, "usage", k)) is not None})
        elif kind == "message_stop" and started is not None:
            _track(meter, field(started, "id"), field(started, "model"), usage, dict(fields))
        yield event


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
