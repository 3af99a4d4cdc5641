"""OpenAI: track a Chat Completion or a Response (``openai`` objects), or a stream of either.

    completion = client.chat.completions.create(model="gpt-4o", messages=..., user="ana")
    track_openai(meter, completion, identifier="ana", agent_id="support-bot")

    stream = client.chat.completions.create(..., stream=True, stream_options={"include_usage": True})
    for chunk in track_openai_stream(meter, stream, identifier="ana"):
        ...

``prompt_tokens`` (Chat) and ``input_tokens`` (Responses) include cached tokens and cache writes;
reasoning tokens are part of the output. A streamed Chat Completion reports usage only with ``include_usage``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from agentmeter.integrations._usage import field, track_tokens


def track_openai(meter: Any, result: Any, **fields: Any) -> list[str]:
    """Track a ``ChatCompletion``, a final stream chunk with usage, or a ``Response``; its id is the call id."""
    usage = field(result, "usage")
    if usage is None:
        return []
    model = fields.pop("model", None) or field(result, "model")
    if field(usage, "input_tokens") is not None:  # the Responses API
        counts = {
            "input": field(usage, "input_tokens"),
            "cached": field(usage, "input_tokens_details", "cached_tokens"),
            "cache_creation": field(usage, "input_tokens_details", "cache_write_tokens"),
            "output": field(usage, "output_tokens"),
            "reasoning": field(usage, "output_tokens_details", "reasoning_tokens"),
        }
    else:
        counts = {
            "input": field(usage, "prompt_tokens"),
            "cached": field(usage, "prompt_tokens_details", "cached_tokens"),
            "cache_creation": field(usage, "prompt_tokens_details", "cache_write_tokens"),
            "output": field(usage, "completion_tokens"),
            "reasoning": field(usage, "completion_tokens_details", "reasoning_tokens"),
        }
    return track_tokens(meter, field(result, "id"), model=model, **counts, **fields)


def track_openai_stream(meter: Any, stream: Iterable[Any], **fields: Any) -> Iterator[Any]:
    """Pass a stream's chunks (or Responses events) through, tracking the usage when it arrives."""
    for chunk in stream:
        if field(chunk, "type") == "response.completed":
            track_openai(meter, field(chunk, "response"), **fields)
        elif field(chunk, "usage") is not None and field(chunk, "object") == "chat.completion.chunk":
            track_openai(meter, chunk, **fields)
        yield chunk
