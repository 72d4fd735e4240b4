"""OpenAI chat completions through the real `openai` client: attributes, streams, raw responses."""

from __future__ import annotations

import json

import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from opentelemetry.trace import StatusCode

import steptrace
from steptrace.instrumentation._stream import AsyncStreamProxy, StreamProxy
from steptrace.testing import OpenAIServer, Reply, ToolCall

from .helpers import MESSAGES, one_llm_span, token_text

pytestmark = pytest.mark.integration

ANSWER = "The quick brown fox jumps over the lazy dog."


def test_plain_call_is_an_llm_step_with_genai_and_openinference_attributes(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(
        text=ANSWER, model="gpt-4o-mini-2024-07-18", input_tokens=11, output_tokens=9
    )
    with steptrace.Step(name="agent", type="run") as outer:
        completion = oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": "Be brief."}, *MESSAGES],
            temperature=0.25,
            top_p=0.5,
            max_tokens=64,
            stop=["END"],
            seed=7,
        )
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == ANSWER

    span = one_llm_span(spans)
    a = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert span.parent is not None and span.parent.span_id == outer.span.get_span_context().span_id
    assert span.status.status_code is StatusCode.UNSET
    assert a["step.type"] == "llm" and a["step.status"] == "success"
    assert a["openinference.span.kind"] == "LLM"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.request.temperature"] == 0.25
    assert a["gen_ai.request.top_p"] == 0.5
    assert a["gen_ai.request.max_tokens"] == 64
    assert tuple(a["gen_ai.request.stop_sequences"]) == ("END",)
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.stream"] is False
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.id"] == completion.id
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 11
    assert a["gen_ai.usage.output_tokens"] == 9
    assert a["llm.model_name"] == "gpt-4o-mini-2024-07-18"
    assert a["llm.token_count.prompt"] == 11
    assert a["llm.token_count.completion"] == 9
    assert a["llm.token_count.total"] == 20
    assert a["llm.provider"] == "openai"
    assert json.loads(a["llm.invocation_parameters"])["temperature"] == 0.25
    assert a["llm.input_messages.0.message.role"] == "system"
    assert a["llm.input_messages.0.message.content"] == "Be brief."
    assert a["llm.input_messages.1.message.role"] == "user"
    assert a["llm.input_messages.1.message.content"] == "Say hello."
    assert a["llm.output_messages.0.message.role"] == "assistant"
    assert a["llm.output_messages.0.message.content"] == ANSWER
    assert json.loads(a["input.value"]) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]
    assert a["input.mime_type"] == "application/json"
    assert a["output.value"] == ANSWER
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == openai_server.port
    # not a stream: no stream bookkeeping
    assert "step.stream.completed" not in a
    assert "gen_ai.response.time_to_first_chunk" not in a


def test_stream_with_usage_chunk_passes_chunks_through_and_records_everything(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER, input_tokens=5, output_tokens=10)
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert isinstance(stream, openai.Stream)  # the proxy still looks like the client's stream
    assert isinstance(stream, StreamProxy)
    chunks = list(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 15

    span = one_llm_span(spans)
    a = span.attributes
    assert a["gen_ai.request.stream"] is True
    assert a["step.stream.completed"] is True
    assert a["step.stream.ended_by"] == "exhausted"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 5
    assert a["gen_ai.usage.output_tokens"] == 10
    assert a["gen_ai.response.time_to_first_chunk"] >= 0
    assert a["gen_ai.response.id"] == chunks[0].id
    assert a["output.value"] == ANSWER
    assert token_text(span) == ANSWER
    assert a["step.status"] == "success"


def test_stream_without_usage_option_has_no_usage(oai: openai.OpenAI, spans) -> None:
    for _ in oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    a = one_llm_span(spans).attributes
    assert a["step.stream.completed"] is True
    assert "gen_ai.usage.input_tokens" not in a
    assert "gen_ai.usage.output_tokens" not in a


def test_tool_calls_plain(oai: openai.OpenAI, openai_server: OpenAIServer, spans) -> None:
    openai_server.script = Reply(
        text="", tool_calls=[ToolCall("get_weather", '{"city": "Paris"}', id="call_1")]
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"

    a = one_llm_span(spans).attributes
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("tool_calls",)
    prefix = "llm.output_messages.0.message.tool_calls.0.tool_call."
    assert a[prefix + "id"] == "call_1"
    assert a[prefix + "function.name"] == "get_weather"
    assert a[prefix + "function.arguments"] == '{"city": "Paris"}'
    assert json.loads(a["llm.tools.0.tool.json_schema"])["function"]["name"] == "get_weather"
    assert json.loads(a["output.value"]) == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]


def test_tool_calls_streamed_are_assembled(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(
        text="Let me check.",
        tool_calls=[
            ToolCall("get_weather", '{"city": "Paris", "unit": "C"}', id="call_a", pieces=4),
            ToolCall("get_time", '{"tz": "CET"}', id="call_b", pieces=2),
        ],
    )
    for _ in oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        pass
    a = one_llm_span(spans).attributes
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("tool_calls",)
    assert a["output.value"] == "Let me check."
    base = "llm.output_messages.0.message."
    assert a[base + "content"] == "Let me check."
    assert a[base + "tool_calls.0.tool_call.function.name"] == "get_weather"
    assert a[base + "tool_calls.0.tool_call.function.arguments"] == '{"city": "Paris", "unit": "C"}'
    assert a[base + "tool_calls.1.tool_call.id"] == "call_b"
    assert a[base + "tool_calls.1.tool_call.function.arguments"] == '{"tz": "CET"}'


def test_tool_result_turn_is_recorded_as_input(oai: openai.OpenAI, spans) -> None:
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "-3 C"},
    ]
    oai.chat.completions.create(model="gpt-4o", messages=messages)
    a = one_llm_span(spans).attributes
    assert a["llm.input_messages.1.message.tool_calls.0.tool_call.function.name"] == "get_weather"
    assert a["llm.input_messages.2.message.role"] == "tool"
    assert a["llm.input_messages.2.message.tool_call_id"] == "call_9"
    assert a["llm.input_messages.2.message.content"] == "-3 C"


def test_with_raw_response_plain_parse_returns_the_completion(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == ANSWER
    assert raw.parse() is completion
    a = one_llm_span(spans).attributes
    assert a["output.value"] == ANSWER
    assert a["gen_ai.response.id"] == completion.id


def test_with_raw_response_stream_parse_returns_the_instrumented_stream(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, StreamProxy)
    assert raw.parse() is stream
    text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == ANSWER
    span = one_llm_span(spans)
    assert span.attributes["step.stream.completed"] is True
    assert token_text(span) == ANSWER


def test_with_streaming_response_parse_is_instrumented(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    with oai.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        stream = response.parse()
        assert isinstance(stream, StreamProxy)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == ANSWER
    span = one_llm_span(spans)
    assert span.attributes["output.value"] == ANSWER
    assert span.attributes["step.stream.ended_by"] == "exhausted"


def test_with_streaming_response_never_parsed_still_ends_the_step(
    oai: openai.OpenAI, spans
) -> None:
    with oai.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        assert response.http_response.status_code == 200
    span = one_llm_span(spans)
    assert span.attributes["step.status"] == "success"


def test_stream_helper_streams_tokens_through_create(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    with oai.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == ANSWER == final.choices[0].message.content
    span = one_llm_span(spans)
    assert token_text(span) == ANSWER
    assert span.attributes["step.stream.completed"] is True


def test_parse_with_response_format(oai: openai.OpenAI, openai_server: OpenAIServer, spans) -> None:
    class City(pydantic.BaseModel):
        name: str
        population: int

    openai_server.script = Reply(text='{"name": "Oslo", "population": 717710}')
    parsed = oai.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=City)
    assert parsed.choices[0].message.parsed == City(name="Oslo", population=717710)
    a = one_llm_span(spans).attributes
    assert json.loads(a["output.value"]) == {"name": "Oslo", "population": 717710}


def test_several_choices(oai: openai.OpenAI, spans) -> None:
    # The local server answers one choice; n is still a request attribute.
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=1)
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=3)
    found = sorted(
        (s for s in spans.get_finished_spans() if s.attributes.get("step.type") == "llm"),
        key=lambda s: s.start_time,
    )
    assert "gen_ai.request.choice.count" not in found[0].attributes
    assert found[1].attributes["gen_ai.request.choice.count"] == 3


# -- async client ----------------------------------------------------------------------------


async def test_async_plain_and_stream(
    aoai: openai.AsyncOpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    completion = await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    assert one_llm_span(spans).attributes["output.value"] == ANSWER
    spans.clear()

    stream = await aoai.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.AsyncStream) and isinstance(stream, AsyncStreamProxy)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == ANSWER
    span = one_llm_span(spans)
    assert token_text(span) == ANSWER
    assert span.attributes["step.stream.ended_by"] == "exhausted"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0


async def test_async_steps_nest_under_the_current_step_per_task(
    aoai: openai.AsyncOpenAI, spans
) -> None:
    import asyncio

    async def agent(name: str) -> str:
        async with steptrace.Step(name=name, type="run") as step:
            await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            return step.span_id or ""

    ids = await asyncio.gather(agent("a"), agent("b"))
    llm = [s for s in spans.get_finished_spans() if s.attributes.get("step.type") == "llm"]
    assert len(llm) == 2
    assert sorted(format(s.parent.span_id, "016x") for s in llm) == sorted(ids)


async def test_async_with_raw_response_stream(
    aoai: openai.AsyncOpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    raw = await aoai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, AsyncStreamProxy)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == ANSWER
    assert token_text(one_llm_span(spans)) == ANSWER


async def test_async_with_streaming_response(
    aoai: openai.AsyncOpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    async with aoai.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        completion = await response.parse()
    assert completion.choices[0].message.content == ANSWER
    assert one_llm_span(spans).attributes["output.value"] == ANSWER


def test_stream_helper_break_ends_the_step_when_the_block_is_left(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    with oai.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta":
                break
    # `stream` is still referenced here: leaving the block alone must end the step.
    found = [s for s in spans.get_finished_spans() if s.attributes.get("step.type") == "llm"]
    assert len(found) == 1
    assert found[0].attributes["step.stream.ended_by"] == "closed"
    assert found[0].attributes["step.stream.completed"] is False
    assert stream is not None


async def test_async_stream_helpers_end_the_step_when_the_block_is_left(
    aoai: openai.AsyncOpenAI, openai_server: OpenAIServer, spans
) -> None:
    openai_server.script = Reply(text=ANSWER)
    async with aoai.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        async for event in stream:
            if event.type == "content.delta":
                break
    async with aoai.responses.stream(model="gpt-4o", input="hi") as rstream:
        async for event in rstream:
            if event.type == "response.output_text.delta":
                break
    found = [s for s in spans.get_finished_spans() if s.attributes.get("step.type") == "llm"]
    assert [s.attributes["step.stream.ended_by"] for s in found] == ["closed", "closed"]
    assert stream is not None and rstream is not None
