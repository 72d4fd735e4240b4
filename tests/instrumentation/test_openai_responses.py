"""OpenAI Responses API through the real client: plain, streamed, tools, incomplete, errors."""

from __future__ import annotations

import json

import openai
import pytest
from opentelemetry.trace import StatusCode

from steptrace.testing import OpenAIServer, Reply, ToolCall

from .helpers import exception_events, one_llm_span, token_text

pytestmark = pytest.mark.integration

ANSWER = "Responses are streamed as typed events."


def test_plain(oai: openai.OpenAI, openai_server: OpenAIServer, spans) -> None:
    openai_server.script = Reply(text=ANSWER, input_tokens=8, output_tokens=6, model="gpt-4o-x")
    response = oai.responses.create(
        model="gpt-4o",
        instructions="Be terse.",
        input="What are Responses?",
        max_output_tokens=50,
        temperature=0.1,
    )
    assert response.output_text == ANSWER
    span = one_llm_span(spans)
    a = span.attributes
    assert span.name == "chat gpt-4o"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.temperature"] == 0.1
    assert a["gen_ai.response.id"] == response.id
    assert a["gen_ai.response.model"] == "gpt-4o-x"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 8
    assert a["gen_ai.usage.output_tokens"] == 6
    assert a["llm.input_messages.0.message.role"] == "system"
    assert a["llm.input_messages.0.message.content"] == "Be terse."
    assert a["llm.input_messages.1.message.content"] == "What are Responses?"
    assert a["llm.output_messages.0.message.content"] == ANSWER
    assert a["output.value"] == ANSWER


def test_streamed(oai: openai.OpenAI, openai_server: OpenAIServer, spans) -> None:
    openai_server.script = Reply(text=ANSWER, input_tokens=3, output_tokens=7)
    events = list(oai.responses.create(model="gpt-4o", input="hi", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    span = one_llm_span(spans)
    a = span.attributes
    assert a["step.stream.completed"] is True
    assert a["step.stream.ended_by"] == "exhausted"
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["gen_ai.response.id"] == events[-1].response.id
    assert token_text(span) == ANSWER == a["output.value"]


def test_stream_helper(oai: openai.OpenAI, openai_server: OpenAIServer, spans) -> None:
    openai_server.script = Reply(text=ANSWER)
    with oai.responses.stream(model="gpt-4o", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == ANSWER
    assert token_text(one_llm_span(spans)) == ANSWER


def test_function_calls_plain_and_streamed(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(
        text="", tool_calls=[ToolCall("search", '{"q": "otel"}', id="call_r1")]
    )
    tools = [{"type": "function", "name": "search", "parameters": {"type": "object"}}]
    oai.responses.create(model="gpt-4o", input="look it up", tools=tools)
    plain = one_llm_span(spans).attributes
    spans.clear()
    for _ in oai.responses.create(model="gpt-4o", input="look it up", tools=tools, stream=True):
        pass
    streamed = one_llm_span(spans).attributes
    for a in (plain, streamed):
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("tool_calls",)
        base = "llm.output_messages.0.message.tool_calls.0.tool_call."
        assert a[base + "id"] == "call_r1"
        assert a[base + "function.name"] == "search"
        assert a[base + "function.arguments"] == '{"q": "otel"}'
        assert json.loads(a["output.value"])[0]["name"] == "search"


def test_function_call_output_in_input(oai: openai.OpenAI, spans) -> None:
    oai.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ],
    )
    a = one_llm_span(spans).attributes
    assert a["llm.input_messages.1.message.tool_calls.0.tool_call.function.name"] == "w"
    assert a["llm.input_messages.2.message.role"] == "tool"
    assert a["llm.input_messages.2.message.tool_call_id"] == "c1"
    assert a["llm.input_messages.2.message.content"] == "sunny"


def test_incomplete_response_has_its_reason(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER, finish_reason="max_output_tokens")
    events = list(oai.responses.create(model="gpt-4o", input="hi", stream=True))
    assert events[-1].type == "response.incomplete"
    a = one_llm_span(spans).attributes
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("max_output_tokens",)
    assert a["step.stream.completed"] is True
    assert a["step.status"] == "success"


def test_error_event_fails_the_step(oai: openai.OpenAI, openai_server: OpenAIServer, spans) -> None:
    openai_server.script = Reply(text=ANSWER, error_after=5)
    events = list(oai.responses.create(model="gpt-4o", input="hi", stream=True))
    # The client hands the error event to the caller instead of raising it.
    assert events[-1].type == "error"
    span = one_llm_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["step.status"] == "failed"
    assert span.attributes["error.type"] == "server_error"
    assert span.attributes["step.stream.completed"] is False
    [event] = exception_events(span)
    assert event["exception.type"].endswith("LLMProviderError")
    assert "Scripted error" in event["exception.message"]


async def test_async_streamed(openai_server: OpenAIServer, spans) -> None:
    openai_server.script = Reply(text=ANSWER)
    client = openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="k", max_retries=0)
    try:
        stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
        async with stream:
            async for _ in stream:
                pass
    finally:
        await client.close()
    span = one_llm_span(spans)
    assert token_text(span) == ANSWER
    assert span.attributes["step.stream.ended_by"] == "exhausted"


def test_stream_helper_break_ends_the_step_when_the_block_is_left(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    with oai.responses.stream(model="gpt-4o", input="hi") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                break
    found = [s for s in spans.get_finished_spans() if s.attributes.get("step.type") == "llm"]
    assert len(found) == 1
    assert found[0].attributes["step.stream.ended_by"] == "closed"
    assert stream is not None
