"""Token usage as disjoint event types, and events whose id alone says whether they were sent before.

Every type starting with ``tokens`` adds to a subject's ``tokens`` total, so a call's usage is
split into parts that never overlap: fresh input, cache reads, cache writes, visible output and
reasoning. Providers report totals that include some parts (OpenAI's ``prompt_tokens`` and the
OpenTelemetry ``gen_ai.usage.input_tokens`` include cached tokens; reasoning is part of the output),
so the parts are what is left after subtracting the ones named on their own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from meter.ingest.models import UsageEvent

INPUT, CACHED, CACHE_CREATION = "tokens.input", "tokens.input.cached", "tokens.input.cache_creation"
OUTPUT, REASONING = "tokens.output", "tokens.output.reasoning"


@dataclass(frozen=True)
class TokenUsage:
    """One call's tokens as providers report them: totals, and the parts of them named on their own."""

    input: int = 0  # every input token, cached ones included
    cached: int = 0  # of the input, read from a cache
    cache_creation: int = 0  # of the input, written to a cache
    output: int = 0  # every output token, reasoning included
    reasoning: int = 0  # of the output, reasoning

    def parts(self) -> dict[str, int]:
        """Non-zero counts per disjoint type; they add up to input + output."""
        counts = {
            INPUT: max(self.input - self.cached - self.cache_creation, 0),
            CACHED: self.cached,
            CACHE_CREATION: self.cache_creation,
            OUTPUT: max(self.output - self.reasoning, 0),
            REASONING: self.reasoning,
        }
        return {name: count for name, count in counts.items() if count}


class ResentEvent(UsageEvent):
    """An event derived from another format whose id is its identity (CloudEvents' source and id,
    a span's trace and span ids): a resend is a duplicate even when its other fields changed, as a
    producer may stamp the time it sends (LiteLLM's OpenMeter callback does)."""

    def fingerprint(self) -> str:
        return hashlib.sha256(self.id.encode()).hexdigest()


def id_text(value: Any) -> Any:
    """An id field from another format: numbers become their text (a user id may be numeric)."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def part_id(base: str, event_type: str, limit: int = 128) -> str:
    """The id of one part of a derived event: ``<base>/<type>``, or a hash of the base when too long."""
    candidate = f"{base}/{event_type}"
    if len(candidate) <= limit:
        return candidate
    return f"h:{hashlib.sha256(base.encode()).hexdigest()[:40]}/{event_type}"


def part_events(base: str, counts: dict[str, int], common: dict[str, Any]) -> list[dict[str, Any]]:
    """One event body per counted type, sharing ``common`` fields; explicit credits go on the first."""
    credits = common.get("credits")
    events = []
    for position, (event_type, count) in enumerate(counts.items()):
        body = {**common, "id": part_id(base, event_type), "type": event_type, "count": count}
        if credits is not None:
            body["credits"] = credits if position == 0 else 0
        events.append(body)
    return events
