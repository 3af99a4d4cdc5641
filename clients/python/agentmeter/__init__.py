"""agentmeter: send usage events to the agent usage meter, each counted exactly once.

    from agentmeter import Meter

    meter = Meter("https://meter.example.com", "pk_…:sk_…")
    meter.track("tokens.input", 1200, identifier="user@example.com", agent_id="support-bot", model="gpt-4o")

Events are batched and sent in the background; ``flush()`` sends now, ``close()`` at the end, and
an exit hook does both. ``AsyncMeter`` has the same verbs for asyncio code.
"""

__version__ = "0.1.0"

from agentmeter.aio import AsyncMeter
from agentmeter.client import Meter, MeterClosed, QueueFull, Stats, make_event
from agentmeter.transport import HttpTransport, SqsTransport

__all__ = ["AsyncMeter", "HttpTransport", "Meter", "MeterClosed", "QueueFull", "SqsTransport", "Stats", "make_event"]
