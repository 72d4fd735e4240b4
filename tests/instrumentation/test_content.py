"""Message content capture switches and the redaction hook, for spans and the live channel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

import steptrace
from steptrace.testing import OpenAIServer, Reply

pytestmark = pytest.mark.integration

SECRET = "sk-live-0123456789"
PROMPT = [{"role": "user", "content": f"My key is {SECRET}, keep it safe."}]
ANSWER_PIECES = ["I will keep ", SECRET, " safe."]
CONTENT_ATTRIBUTES = ("input.value", "output.value")


class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, dict(payload)))


@pytest.fixture
def listener() -> Iterator[Collect]:
    collect = Collect()
    steptrace.add_listener(collect)
    yield collect
    steptrace.remove_listener(collect)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(Reply(chunks=ANSWER_PIECES, input_tokens=9, output_tokens=3)) as srv:
        yield srv


def run_calls(server: OpenAIServer) -> None:
    """One plain and one streamed call."""
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=PROMPT,
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
    finally:
        client.close()
    assert steptrace.flush()


def llm_spans(spans) -> list[Any]:
    found = [s for s in spans.get_finished_spans() if s.attributes.get("step.type") == "llm"]
    assert len(found) == 2
    return found


def all_strings(span: Any) -> list[str]:
    values: list[str] = []
    for value in span.attributes.values():
        values.extend(value if isinstance(value, tuple) else [value])
    for event in span.events:
        for value in (event.attributes or {}).values():
            values.append(value)
    return [v for v in values if isinstance(v, str)]


def assert_no_content(spans, listener: Collect) -> None:
    for span in llm_spans(spans):
        a = span.attributes
        for name in CONTENT_ATTRIBUTES:
            assert name not in a
        assert not [k for k in a if k.startswith(("llm.input_messages", "llm.output_messages"))]
        assert not [e for e in span.events if e.name == "step.token"]
        assert not any("keep" in s for s in all_strings(span))
        # what is not content is still there
        assert a["gen_ai.usage.input_tokens"] == 9
        assert a["gen_ai.request.model"] == "gpt-4o-mini"
    llm_events = [(e, p) for e, p in listener.events if p.get("type") == "llm" or "token" in p]
    assert llm_events
    assert not [e for e, _ in llm_events if e == "stream_token"]
    assert all(p.get("input", "") == "" and p.get("output", "") == "" for _, p in llm_events)


def test_env_var_false_turns_content_off(
    server: OpenAIServer, spans, listener: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steptrace.settings, "capture_message_content", None)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    run_calls(server)
    assert_no_content(spans, listener)


def test_setting_false_turns_content_off(
    server: OpenAIServer, spans, listener: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steptrace.settings, "capture_message_content", False)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    run_calls(server)
    assert_no_content(spans, listener)


def test_setting_true_wins_over_the_env_var(
    server: OpenAIServer, spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steptrace.settings, "capture_message_content", True)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    run_calls(server)
    for span in llm_spans(spans):
        assert SECRET in span.attributes["input.value"]
        assert span.attributes["output.value"] == "".join(ANSWER_PIECES)


def test_default_captures(server: OpenAIServer, spans, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steptrace.settings, "capture_message_content", None)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    run_calls(server)
    for span in llm_spans(spans):
        assert span.attributes["llm.input_messages.0.message.content"] == PROMPT[0]["content"]


def test_redaction_hook_scrubs_spans_and_the_live_channel(
    server: OpenAIServer, spans, listener: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields: set[str] = set()

    def redact(value: str, field: str) -> str:
        fields.add(field)
        return value.replace(SECRET, "[REDACTED]")

    monkeypatch.setattr(steptrace.settings, "capture_message_content", True)
    monkeypatch.setattr(steptrace.settings, "redact", redact)
    run_calls(server)
    for span in llm_spans(spans):
        strings = all_strings(span)
        assert not [s for s in strings if SECRET in s]
        assert "[REDACTED]" in span.attributes["input.value"]
        assert "[REDACTED]" in span.attributes["llm.input_messages.0.message.content"]
        assert span.attributes["output.value"] == "I will keep [REDACTED] safe."
    for _event, payload in listener.events:
        assert SECRET not in repr(payload)
    assert {"input", "output", "attribute.llm.input_messages.0.message.content"} <= fields
