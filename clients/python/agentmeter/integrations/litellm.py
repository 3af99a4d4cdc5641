"""LiteLLM: a ``CustomLogger`` that tracks every successful call, sync, async and streamed.

    import litellm
    from agentmeter.integrations.litellm import AgentMeterLogger

    litellm.callbacks = [AgentMeterLogger(meter)]
    litellm.completion(model="gpt-4o", messages=..., user="ana",
                       metadata={"agent_id": "support-bot", "conversation_id": "conv-42"})

The end user is the request's ``user`` (or the proxy key's end user); ``metadata`` may name the
agent and conversation. LiteLLM reports every provider's usage in OpenAI's shape
(``prompt_tokens`` include cached and cache-write tokens), and calls the logger once per streamed
call with the assembled usage. The event id is LiteLLM's response id.
"""

from __future__ import annotations

from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from agentmeter.integrations._usage import field, track_tokens


class AgentMeterLogger(CustomLogger):
    """Tracks each successful LiteLLM call's tokens on a ``Meter`` (tracking only queues: it never blocks)."""

    def __init__(self, meter: Any, **defaults: Any) -> None:
        super().__init__()
        self.meter = meter
        self.defaults = defaults  # identifier=, agent_id=, …: used where a call names none

    def _fields(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        metadata = field(kwargs, "litellm_params", "metadata") or {}
        logged = kwargs.get("standard_logging_object") or {}
        found = {
            "identifier": kwargs.get("user") or logged.get("end_user") or metadata.get("user_api_key_end_user_id"),
            "agent_id": metadata.get("agent_id"),
            "conversation_id": metadata.get("conversation_id"),
        }
        return {**self.defaults, **{name: value for name, value in found.items() if value}}

    def track(self, kwargs: dict[str, Any], response: Any) -> list[str]:
        """Track one call's usage; what the logger hooks call."""
        usage = field(response, "usage")
        call_id = field(response, "id") or kwargs.get("litellm_call_id")
        if usage is None or not call_id:
            return []
        return track_tokens(
            self.meter,
            call_id,
            input=field(usage, "prompt_tokens"),
            cached=field(usage, "prompt_tokens_details", "cached_tokens"),
            cache_creation=field(usage, "prompt_tokens_details", "cache_creation_tokens"),
            output=field(usage, "completion_tokens"),
            reasoning=field(usage, "completion_tokens_details", "reasoning_tokens"),
            model=field(response, "model") or kwargs.get("model"),
            **self._fields(kwargs),
        )

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.track(kwargs, response_obj)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.track(kwargs, response_obj)
