"""The client's LLM integrations, offline, with the libraries themselves: LiteLLM's ``mock_response``,
OpenAI's and Anthropic's response types built from their own classes, LangChain's fake chat models."""

from __future__ import annotations

import asyncio
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price map fetched at import

import litellm
import pytest
from agentmeter import Meter
from agentmeter.integrations.anthropic import track_anthropic, track_anthropic_stream
from agentmeter.integrations.langchain import AgentMeterCallbackHandler
from agentmeter.integrations.litellm import AgentMeterLogger
from agentmeter.integrations.openai import track_openai, track_openai_stream
from agentmeter.transport import DELIVERED, Outcome
from anthropic.types import (
    Message,
    MessageDeltaUsage,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    Usage,
)
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
from openai.types.responses import Response, ResponseCompletedEvent, ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails


class Recorder:
    """A transport that keeps what it is sent."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def send(self, events):
        self.events += events
        return [Outcome(DELIVERED) for _ in events]


@pytest.fixture
def sent():
    recorder = Recorder()
    meter = Meter(transport=recorder, flush_interval=0.01)
    yield meter, recorder
    meter.close()


def tokens_of(meter: Meter, recorder: Recorder, wait_for: int = 0) -> dict[str, int]:
    deadline = time.monotonic() + 60  # LiteLLM's logging thread can lag far behind on a loaded machine
    while True:
        meter.flush(timeout=5)
        if len(recorder.events) >= wait_for or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # LiteLLM runs sync callbacks on a worker thread
    return {e["type"]: e["count"] for e in recorder.events}


def test_openai_chat_counts_cached_inside_prompt_tokens_once(sent):
    meter, recorder = sent
    completion = ChatCompletion(
        id="chatcmpl-abc",
        object="chat.completion",
        created=1,
        model="gpt-4o-2024-08-06",
        choices=[],
        usage=CompletionUsage(
            prompt_tokens=1000,
            completion_tokens=300,
            total_tokens=1300,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=600),
            completion_tokens_details=CompletionTokensDetails(reasoning_tokens=120),
        ),
    )
    track_openai(meter, completion, identifier="ana", agent_id="bot")
    track_openai(meter, completion, identifier="ana", agent_id="bot")  # twice: the same ids
    assert tokens_of(meter, recorder) == {
        "tokens.input": 400,
        "tokens.input.cached": 600,
        "tokens.output": 180,
        "tokens.output.reasoning": 120,
    }
    assert {e["id"] for e in recorder.events} == {f"chatcmpl-abc/{t}" for t in tokens_of(meter, recorder)}
    assert {(e["model"], e["identifier"], e["agentId"]) for e in recorder.events} == {
        ("gpt-4o-2024-08-06", "ana", "bot")
    }


def test_openai_streams_track_the_usage_chunk_and_responses_track_completion(sent):
    meter, recorder = sent
    chunks = [
        ChatCompletionChunk(id="chatcmpl-s", object="chat.completion.chunk", created=1, model="gpt-4o", choices=[]),
        ChatCompletionChunk(
            id="chatcmpl-s", object="chat.completion.chunk", created=1, model="gpt-4o", choices=[],
            usage=CompletionUsage(prompt_tokens=50, completion_tokens=7, total_tokens=57),
        ),
    ]  # fmt: skip
    assert list(track_openai_stream(meter, iter(chunks), identifier="ana")) == chunks
    response = Response(
        id="resp_1", object="response", created_at=1, model="o4-mini", output=[], parallel_tool_calls=False,
        tool_choice="auto", tools=[],
        usage=ResponseUsage(input_tokens=80, output_tokens=40, total_tokens=120,
                            input_tokens_details=InputTokensDetails(cached_tokens=30, cache_write_tokens=10),
                            output_tokens_details=OutputTokensDetails(reasoning_tokens=25)),
    )  # fmt: skip
    done = ResponseCompletedEvent(type="response.completed", response=response, sequence_number=3)
    list(track_openai_stream(meter, [done]))
    tokens_of(meter, recorder)
    by_id = {e["id"]: e["count"] for e in recorder.events}
    assert by_id == {
        "chatcmpl-s/tokens.input": 50,
        "chatcmpl-s/tokens.output": 7,
        "resp_1/tokens.input": 40,
        "resp_1/tokens.input.cached": 30,
        "resp_1/tokens.input.cache_creation": 10,
        "resp_1/tokens.output": 15,
        "resp_1/tokens.output.reasoning": 25,
    }


def test_anthropic_input_tokens_exclude_cache_reads_and_writes_so_they_are_added(sent):
    meter, recorder = sent
    usage = Usage(input_tokens=100, output_tokens=60, cache_read_input_tokens=900, cache_creation_input_tokens=50)
    message = Message(id="msg_1", type="message", role="assistant", model="claude-sonnet-4-5", content=[],
                      stop_reason="end_turn", usage=usage)  # fmt: skip
    track_anthropic(meter, message, identifier="ana")
    assert tokens_of(meter, recorder) == {
        "tokens.input": 100,
        "tokens.input.cached": 900,
        "tokens.input.cache_creation": 50,
        "tokens.output": 60,
    }
    recorder.events.clear()
    start = RawMessageStartEvent(
        type="message_start",
        message=message.model_copy(update={"id": "msg_2", "usage": Usage(input_tokens=12, output_tokens=1)}),
    )
    delta = RawMessageDeltaEvent(
        type="message_delta", delta={"stop_reason": "end_turn"}, usage=MessageDeltaUsage(output_tokens=44)
    )
    events = [start, delta, RawMessageStopEvent(type="message_stop")]
    assert list(track_anthropic_stream(meter, events)) == events
    assert tokens_of(meter, recorder) == {"tokens.input": 12, "tokens.output": 44}


async def acompletion_logged(recorder: Recorder, **call):
    """``litellm.acompletion``, then the loop kept open until its logger ran (LiteLLM logs in a task)."""
    before = len(recorder.events)
    answer = await litellm.acompletion(**call)
    for _ in range(1200):  # up to a minute: on a loaded machine its task can wait long for the loop
        if len(recorder.events) > before:
            break
        await asyncio.sleep(0.05)
    return answer


def test_litellm_logger_tracks_sync_async_and_streamed_calls_with_litellms_call_id(sent):
    meter, recorder = sent
    litellm.callbacks = [AgentMeterLogger(meter, agent_id="default-bot")]
    try:
        messages = [{"role": "user", "content": "hi"}]
        sync = litellm.completion(model="gpt-4o", messages=messages, mock_response="hello", user="ana",
                                  metadata={"agent_id": "support-bot", "conversation_id": "conv-1"})  # fmt: skip
        asynced = asyncio.run(
            acompletion_logged(recorder, model="gpt-4o", messages=messages, mock_response="hey", user="bo")
        )
        stream = litellm.completion(model="gpt-4o", messages=messages, mock_response="a streamed answer",
                                    stream=True, stream_options={"include_usage": True}, user="cy")  # fmt: skip
        streamed_id = None
        for chunk in stream:
            streamed_id = chunk.id
        tokens_of(meter, recorder, wait_for=6)
    finally:
        litellm.callbacks = []
    by_call = {}
    for event in recorder.events:
        call_id, event_type = event["id"].rsplit("/", 1)
        by_call.setdefault(call_id, {})[event_type] = event
    assert set(by_call) == {sync.id, asynced.id, streamed_id}
    first = by_call[sync.id]["tokens.input"]
    assert (first["count"], by_call[sync.id]["tokens.output"]["count"]) == (
        sync.usage.prompt_tokens,
        sync.usage.completion_tokens,
    )
    assert (first["identifier"], first["agentId"], first["conversationId"], first["model"]) == (
        "ana",
        "support-bot",
        "conv-1",
        "gpt-4o",
    )
    assert by_call[asynced.id]["tokens.input"]["agentId"] == "default-bot"
    assert (
        by_call[streamed_id]["tokens.output"]["identifier"] == "cy"
        and by_call[streamed_id]["tokens.output"]["count"] > 0
    )


def test_litellm_usage_with_cache_and_reasoning_details_maps_to_disjoint_parts(sent):
    meter, recorder = sent
    response = litellm.ModelResponse(
        id="chatcmpl-cache", model="claude-sonnet-4-5",
        usage=litellm.Usage(prompt_tokens=1000, completion_tokens=200, total_tokens=1200,
                            prompt_tokens_details={"cached_tokens": 700, "cache_creation_tokens": 100},
                            completion_tokens_details={"reasoning_tokens": 50}),
    )  # fmt: skip
    AgentMeterLogger(meter).log_success_event({"user": "ana", "model": "claude"}, response, None, None)
    assert tokens_of(meter, recorder) == {
        "tokens.input": 200,
        "tokens.input.cached": 700,
        "tokens.input.cache_creation": 100,
        "tokens.output": 150,
        "tokens.output.reasoning": 50,
    }


def test_langchain_handler_reads_usage_metadata_and_the_runs_metadata(sent):
    meter, recorder = sent
    reply = AIMessage(
        content="hi",
        id="run-msg-1",
        usage_metadata={
            "input_tokens": 500, "output_tokens": 90, "total_tokens": 590,
            "input_token_details": {"cache_read": 200}, "output_token_details": {"reasoning": 30},
        },
        response_metadata={"model_name": "gpt-4o"},
    )  # fmt: skip
    model = GenericFakeChatModel(messages=iter([reply]))
    handler = AgentMeterCallbackHandler(meter, agent_id="planner")
    model.invoke("hello", config={"callbacks": [handler], "metadata": {"user_id": "ana", "thread_id": "conv-7"}})
    assert tokens_of(meter, recorder) == {
        "tokens.input": 300,
        "tokens.input.cached": 200,
        "tokens.output": 60,
        "tokens.output.reasoning": 30,
    }
    event = recorder.events[0]
    assert (event["id"], event["identifier"], event["agentId"], event["conversationId"], event["model"]) == (
        "run-msg-1/tokens.input", "ana", "planner", "conv-7", "gpt-4o")  # fmt: skip
