"""Anthropic Messages API through the real `anthropic` client: create, stream=True, the helper."""

from __future__ import annotations

import json

import anthropic
import pytest
from anthropic.types import Message
from opentelemetry.trace import StatusCode

import steptrace
from steptrace.instrumentation.anthropic import AsyncMessageStreamProxy, MessageStreamProxy
from steptrace.testing import AnthropicServer, Reply, ToolCall

from .helpers import MESSAGES, one_llm_span, token_text

pytestmark = pytest.mark.integration

MODEL = "claude-test"
ANSWER = "Bonjour, le monde entier!"


def test_plain_call(claude: anthropic.Anthropic, anthropic_server: AnthropicServer, spans) -> None:
    anthropic_server.script = Reply(
        text=ANSWER, model="claude-test-20260101", input_tokens=12, output_tokens=6
    )
    with steptrace.Step(name="agent", type="run") as outer:
        message = claude.messages.create(
            model=MODEL,
            max_tokens=300,
            system="Answer in French.",
            messages=MESSAGES,
            stop_sequences=["\n\n"],
        )
    assert isinstance(message, Message)
    assert message.content[0].text == ANSWER

    span = one_llm_span(spans)
    a = span.attributes
    assert span.name == "chat claude-test"
    assert span.parent.span_id == outer.span.get_span_context().span_id
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.request.model"] == MODEL
    assert a["gen_ai.request.max_tokens"] == 300
    assert tuple(a["gen_ai.request.stop_sequences"]) == ("\n\n",)
    assert a["gen_ai.response.model"] == "claude-test-20260101"
    assert a["gen_ai.response.id"] == message.id
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("end_turn",)
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 6
    assert a["llm.token_count.total"] == 18
    assert a["llm.model_name"] == "claude-test-20260101"
    assert a["openinference.span.kind"] == "LLM"
    assert a["llm.input_messages.0.message.role"] == "system"
    assert a["llm.input_messages.0.message.content"] == "Answer in French."
    assert a["llm.input_messages.1.message.content"] == "Say hello."
    assert a["llm.output_messages.0.message.content"] == ANSWER
    assert a["output.value"] == ANSWER
    assert json.loads(a["input.value"])[0] == {"role": "system", "content": "Answer in French."}


def test_client_span_of_the_anthropic_library_nests_under_the_llm_step(
    claude: anthropic.Anthropic, spans
) -> None:
    pytest.importorskip("anthropic._tracing", reason="this anthropic emits no spans of its own")
    claude.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    llm = one_llm_span(spans)
    others = [s for s in spans.get_finished_spans() if s is not llm]
    assert others, "anthropic >= 2 emits a CLIENT span per call by default"
    for span in others:
        assert span.parent is not None
        assert span.parent.span_id == llm.context.span_id


def test_cached_input_tokens_count_as_input(
    claude: anthropic.Anthropic, anthropic_server: AnthropicServer, spans
) -> None:
    anthropic_server.script = Reply(text=ANSWER, input_tokens=10, output_tokens=3)
    message = claude.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert message.usage.cache_read_input_tokens == 0
    a = one_llm_span(spans).attributes
    assert a["gen_ai.usage.input_tokens"] == 10


def test_tool_use_plain_and_streamed(
    claude: anthropic.Anthropic, anthropic_server: AnthropicServer, spans
) -> None:
    anthropic_server.script = Reply(
        text="Checking.", tool_calls=[ToolCall("get_weather", '{"city": "Lyon"}', id="toolu_1")]
    )
    message = claude.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert message.stop_reason == "tool_use"
    plain = one_llm_span(spans).attributes
    spans.clear()
    for _ in claude.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True):
        pass
    streamed = one_llm_span(spans).attributes
    for a in (plain, streamed):
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("tool_use",)
        base = "llm.output_messages.0.message."
        assert a[base + "content"] == "Checking."
        assert a[base + "tool_calls.0.tool_call.id"] == "toolu_1"
        assert a[base + "tool_calls.0.tool_call.function.name"] == "get_weather"
        assert json.loads(a[base + "tool_calls.0.tool_call.function.arguments"]) == {"city": "Lyon"}


def test_tool_result_turn_in_the_request(claude: anthropic.Anthropic, spans) -> None:
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_7", "name": "lookup", "input": {"q": "x"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": "42"}],
        },
    ]
    claude.messages.create(model=MODEL, max_tokens=100, messages=messages)
    a = one_llm_span(spans).attributes
    assert a["llm.input_messages.1.message.tool_calls.0.tool_call.function.name"] == "lookup"
    assert json.loads(
        a["llm.input_messages.1.message.tool_calls.0.tool_call.function.arguments"]
    ) == {"q": "x"}
    assert a["llm.input_messages.2.message.role"] == "tool"
    assert a["llm.input_messages.2.message.tool_call_id"] == "toolu_7"
    assert a["llm.input_messages.2.message.content"] == "42"


def test_create_stream_true(
    claude: anthropic.Anthropic, anthropic_server: AnthropicServer, spans
) -> None:
    anthropic_server.script = Reply(text=ANSWER, input_tokens=4, output_tokens=7)
    events = list(
        claude.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    )
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    span = one_llm_span(spans)
    a = span.attributes
    assert a["step.stream.completed"] is True
    assert a["step.stream.ended_by"] == "exhausted"
    assert a["gen_ai.usage.input_tokens"] == 4
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["gen_ai.response.time_to_first_chunk"] >= 0
    assert token_text(span) == ANSWER


@pytest.mark.parametrize("read", ["iterate", "text_stream", "final_message", "final_text"])
def test_stream_helper_every_way_of_reading(
    claude: anthropic.Anthropic, anthropic_server: AnthropicServer, spans, read: str
) -> None:
    anthropic_server.script = Reply(text=ANSWER)
    with claude.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        assert isinstance(stream, MessageStreamProxy)
        if read == "iterate":
            got = "".join(
                e.delta.text
                for e in stream
                if e.type == "content_block_delta" and e.delta.type == "text_delta"
            )
        elif read == "text_stream":
            got = "".join(stream.text_stream)
        elif read == "final_message":
            got = stream.get_final_message().content[0].text
        else:
            got = stream.get_final_text()
    assert got == ANSWER
    span = one_llm_span(spans)
    assert token_text(span) == ANSWER
    assert span.attributes["step.stream.completed"] is True
    assert span.attributes["step.stream.ended_by"] == "exhausted"
    assert tuple(span.attributes["gen_ai.response.finish_reasons"]) == ("end_turn",)


def test_stream_helper_break_ends_on_exit(claude: anthropic.Anthropic, spans) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        for text in stream.text_stream:
            first = text
            break
    span = one_llm_span(spans)
    assert span.attributes["step.stream.completed"] is False
    assert span.attributes["step.stream.ended_by"] == "closed"
    assert token_text(span) == first


def test_stream_helper_never_entered_makes_no_step(claude: anthropic.Anthropic, spans) -> None:
    manager = claude.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES)
    del manager
    assert [s for s in spans.get_finished_spans() if s.attributes.get("step.type") == "llm"] == []


def test_stream_helper_http_error_on_enter(
    claude: anthropic.Anthropic, anthropic_server: AnthropicServer, spans
) -> None:
    anthropic_server.script = Reply(status=429)
    with (
        pytest.raises(anthropic.RateLimitError),
        claude.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES),
    ):
        pass
    span = one_llm_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RateLimitError"
    assert span.attributes["http.response.status_code"] == 429


async def test_async_stream_helper(
    aclaude: anthropic.AsyncAnthropic, anthropic_server: AnthropicServer, spans
) -> None:
    anthropic_server.script = Reply(text=ANSWER)
    async with aclaude.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        assert isinstance(stream, AsyncMessageStreamProxy)
        got = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert got == ANSWER == final.content[0].text
    span = one_llm_span(spans)
    assert token_text(span) == ANSWER
    assert span.attributes["step.stream.ended_by"] == "exhausted"


async def test_async_stream_helper_final_text_and_break(
    aclaude: anthropic.AsyncAnthropic, anthropic_server: AnthropicServer, spans
) -> None:
    anthropic_server.script = Reply(text=ANSWER)
    async with aclaude.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        assert await stream.get_final_text() == ANSWER
    assert one_llm_span(spans).attributes["step.stream.completed"] is True
    spans.clear()
    async with aclaude.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        async for _ in stream:
            break
    span = one_llm_span(spans)
    assert span.attributes["step.stream.completed"] is False
    assert span.attributes["step.stream.ended_by"] == "closed"


async def test_async_plain_and_stream(
    aclaude: anthropic.AsyncAnthropic, anthropic_server: AnthropicServer, spans
) -> None:
    anthropic_server.script = Reply(text=ANSWER)
    message = await aclaude.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert message.content[0].text == ANSWER
    assert one_llm_span(spans).attributes["output.value"] == ANSWER
    spans.clear()
    stream = await aclaude.messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    async for _ in stream:
        pass
    assert token_text(one_llm_span(spans)) == ANSWER


def test_with_raw_response(
    claude: anthropic.Anthropic, anthropic_server: AnthropicServer, spans
) -> None:
    anthropic_server.script = Reply(text=ANSWER)
    raw = claude.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert raw.headers["request-id"].startswith("req_")
    message = raw.parse()
    assert message.content[0].text == ANSWER
    assert one_llm_span(spans).attributes["output.value"] == ANSWER
    spans.clear()
    raw = claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    assert "".join(e.delta.text for e in raw.parse() if e.type == "content_block_delta") == ANSWER
    assert token_text(one_llm_span(spans)) == ANSWER


def test_client_library_span_is_not_a_second_llm_step(
    claude: anthropic.Anthropic, spans
) -> None:
    """anthropic traces its own calls: in the chat that span would duplicate our llm step."""
    pytest.importorskip("anthropic._tracing", reason="this anthropic emits no spans of its own")
    events: list[tuple[str, dict]] = []
    listener = lambda event, payload: events.append((event, payload))  # noqa: E731
    steptrace.add_listener(listener)
    try:
        claude.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        assert steptrace.flush()
    finally:
        steptrace.remove_listener(listener)
    created = [p for e, p in events if e == "new_message"]
    assert [p["name"] for p in created if p["type"] == "llm"] == ["chat claude-test"]
    assert "anthropic.messages.create" not in {p["name"] for p in created}
    # ... while the span itself still reaches the trace, under the llm step
    by_name = {s.name: s for s in spans.get_finished_spans()}
    client = by_name["anthropic.messages.create"]
    assert client.parent.span_id == by_name["chat claude-test"].context.span_id


def test_stop_reason_is_the_completion_signal(
    claude: anthropic.Anthropic, anthropic_server: AnthropicServer, spans
) -> None:
    # message_start, content_block_start, ping, 3 deltas, content_block_stop, message_delta:
    # the server stops right before message_stop.
    anthropic_server.script = Reply(chunks=["a ", "b ", "c"], end_after=8)
    events = list(claude.messages.create(model=MODEL, max_tokens=9, messages=MESSAGES, stream=True))
    assert events[-1].type == "message_delta"
    a = one_llm_span(spans).attributes
    assert a["step.stream.completed"] is True
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("end_turn",)
    spans.clear()
    anthropic_server.script = Reply(chunks=["a ", "b ", "c"], end_after=7)
    events = list(claude.messages.create(model=MODEL, max_tokens=9, messages=MESSAGES, stream=True))
    assert events[-1].type == "content_block_stop"
    a = one_llm_span(spans).attributes
    assert a["step.stream.completed"] is False
    assert "gen_ai.response.finish_reasons" not in a
