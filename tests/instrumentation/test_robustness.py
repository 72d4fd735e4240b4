"""Telemetry never breaks the app: failures inside the instrumentation stay inside it."""

from __future__ import annotations

import logging

import openai
import pytest

from steptrace.instrumentation.openai import ChatCompletionsCall
from steptrace.testing import OpenAIServer, Reply

from .helpers import MESSAGES, llm_spans, one_llm_span

pytestmark = pytest.mark.integration

ANSWER = "Robust answers arrive intact."


def test_failing_chunk_recording_never_reaches_the_caller(
    oai: openai.OpenAI,
    openai_server: OpenAIServer,
    spans,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(self: ChatCompletionsCall, chunk: object) -> None:
        raise RuntimeError("recording bug")

    monkeypatch.setattr(ChatCompletionsCall, "on_chunk", broken)
    openai_server.script = Reply(text=ANSWER)
    with caplog.at_level(logging.DEBUG, logger="steptrace.instrumentation"):
        stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == ANSWER
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "stream chunk" in errors[0].getMessage()
    span = one_llm_span(spans)
    assert span.attributes["step.stream.ended_by"] == "exhausted"


def test_failing_response_recording_returns_the_response(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ChatCompletionsCall, response: object) -> None:
        raise RuntimeError("recording bug")

    monkeypatch.setattr(ChatCompletionsCall, "on_response", broken)
    openai_server.script = Reply(text=ANSWER)
    completion = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    assert one_llm_span(spans).attributes["step.status"] == "success"


def test_failing_step_start_leaves_the_call_uninstrumented(
    oai: openai.OpenAI, openai_server: OpenAIServer, spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ChatCompletionsCall, *args: object, **kwargs: object) -> None:
        raise RuntimeError("start bug")

    monkeypatch.setattr(ChatCompletionsCall, "__init__", broken)
    openai_server.script = Reply(text=ANSWER)
    completion = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert type(stream) is openai.Stream
    assert "".join(c.choices[0].delta.content or "" for c in stream) == ANSWER
    assert llm_spans(spans) == []


def test_odd_request_values(oai: openai.OpenAI, spans) -> None:
    # A generator of messages must reach the client unconsumed.
    messages = (m for m in MESSAGES)
    completion = oai.chat.completions.create(
        model="gpt-4o-mini", messages=messages, metadata={"k": "v"}
    )
    assert completion.choices[0].message.content
    a = one_llm_span(spans).attributes
    assert "input.value" not in a  # not read: reading would have consumed it
    assert a["step.status"] == "success"
    spans.clear()
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi "}, image]}],
        extra_body={"x": 1},
    )
    a = one_llm_span(spans).attributes
    assert a["llm.input_messages.0.message.content"] == "hi [image_url]"


def test_client_side_errors_are_reraised_unchanged(oai: openai.OpenAI, spans) -> None:
    class Opaque:
        pass

    bad = [{"role": "user", "content": [{"type": "text", "text": "hi"}, Opaque()]}]
    with pytest.raises(TypeError, match="not JSON serializable"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=bad)
    span = one_llm_span(spans)
    assert span.attributes["step.status"] == "failed"
    assert span.attributes["error.type"] == "TypeError"
