"""LangChain: a callback handler that tracks each chat model call's ``usage_metadata``.

    from agentmeter.integrations.langchain import AgentMeterCallbackHandler

    handler = AgentMeterCallbackHandler(meter, agent_id="support-bot")
    model.invoke(messages, config={"callbacks": [handler],
                                   "metadata": {"user_id": "ana", "thread_id": "conv-42"}})

``usage_metadata.input_tokens`` is every input token (``input_token_details`` breaks out
``cache_read`` and ``cache_creation``); ``output_token_details.reasoning`` is part of the output.
The run's metadata may name the end user (``user_id`` or ``identifier``), the agent (``agent_id``)
and the conversation (``conversation_id``, or LangGraph's ``thread_id``). The event id is the
message id the provider gave, or the run id.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from agentmeter.integrations._usage import field, track_tokens

_METADATA = {
    "identifier": ("user_id", "identifier"),
    "agent_id": ("agent_id",),
    "conversation_id": ("conversation_id", "thread_id"),
}


class AgentMeterCallbackHandler(BaseCallbackHandler):
    """Tracks the tokens of every chat model or LLM call it sees on a ``Meter``."""

    def __init__(self, meter: Any, **defaults: Any) -> None:
        self.meter = meter
        self.defaults = defaults
        self._runs: dict[UUID, dict[str, Any]] = {}

    def _remember(self, run_id: UUID, metadata: dict[str, Any] | None) -> None:
        metadata = metadata or {}
        found = {name: next((metadata[k] for k in keys if metadata.get(k)), None) for name, keys in _METADATA.items()}
        self._runs[run_id] = {**self.defaults, **{k: v for k, v in found.items() if v is not None}}

    def on_chat_model_start(self, serialized, messages, *, run_id, metadata=None, **kwargs):
        self._remember(run_id, metadata)

    def on_llm_start(self, serialized, prompts, *, run_id, metadata=None, **kwargs):
        self._remember(run_id, metadata)

    def on_llm_error(self, error, *, run_id, **kwargs):
        self._runs.pop(run_id, None)

    def on_llm_end(self, response, *, run_id, **kwargs):
        fields = self._runs.pop(run_id, dict(self.defaults))
        for position, generations in enumerate(response.generations):
            for index, generation in enumerate(generations):
                message = getattr(generation, "message", None)
                usage = getattr(message, "usage_metadata", None)
                if not usage:
                    continue
                suffix = "" if (position, index) == (0, 0) else f"#{position}.{index}"
                track_tokens(
                    self.meter,
                    (getattr(message, "id", None) or str(run_id)) + suffix,
                    input=usage.get("input_tokens"),
                    cached=field(usage, "input_token_details", "cache_read"),
                    cache_creation=field(usage, "input_token_details", "cache_creation"),
                    output=usage.get("output_tokens"),
                    reasoning=field(usage, "output_token_details", "reasoning"),
                    model=fields.get("model") or _model_of(message),
                    **{k: v for k, v in fields.items() if k != "model"},
                )


def _model_of(message: Any) -> Any:
    metadata = getattr(message, "response_metadata", None) or {}
    return metadata.get("model_name") or metadata.get("model")
