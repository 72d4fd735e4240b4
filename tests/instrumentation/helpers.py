"""Helpers shared by the instrumentation tests (span lookups, token text)."""

from __future__ import annotations

import gc
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

MESSAGES = [{"role": "user", "content": "Say hello."}]


def llm_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    """The ended spans of llm steps (the anthropic client also emits a span of its own)."""
    return [s for s in spans.get_finished_spans() if s.attributes.get("step.type") == "llm"]


def one_llm_span(spans: InMemorySpanExporter) -> ReadableSpan:
    """The single ended llm span; collects garbage first so a leaked stream would show up."""
    gc.collect()
    found = llm_spans(spans)
    assert len(found) == 1, [s.name for s in found]
    return found[0]


def token_text(span: ReadableSpan) -> str:
    """The output text rebuilt from the span's ``step.token`` events."""
    text = ""
    for event in span.events:
        if event.name != "step.token" or event.attributes.get("step.token.target") != "output":
            continue
        token = str(event.attributes["step.token.text"])
        text = token if event.attributes.get("step.token.replace") else text + token
    return text


def exception_events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == "exception"]


class Provider:
    """One provider's client and stream, so the exit-path tests run against both."""

    name = ""

    def sync_client(self, base_url: str, **options: Any) -> Any:
        raise NotImplementedError

    def async_client(self, base_url: str, **options: Any) -> Any:
        raise NotImplementedError

    def stream(self, client: Any) -> Any:
        """``create(..., stream=True)`` on a sync client."""
        raise NotImplementedError

    async def astream(self, client: Any) -> Any:
        raise NotImplementedError

    def text(self, chunk: Any) -> str:
        """The answer text a chunk carries ('' for none)."""
        raise NotImplementedError


class OpenAIProvider(Provider):
    name = "openai"

    def sync_client(self, base_url: str, **options: Any) -> Any:
        import openai

        return openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0, **options)

    def async_client(self, base_url: str, **options: Any) -> Any:
        import openai

        return openai.AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0, **options)

    def stream(self, client: Any) -> Any:
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)

    async def astream(self, client: Any) -> Any:
        return await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )

    def text(self, chunk: Any) -> str:
        return (chunk.choices[0].delta.content or "") if chunk.choices else ""


class AnthropicProvider(Provider):
    name = "anthropic"

    def sync_client(self, base_url: str, **options: Any) -> Any:
        import anthropic

        return anthropic.Anthropic(base_url=base_url, api_key="test-key", max_retries=0, **options)

    def async_client(self, base_url: str, **options: Any) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(
            base_url=base_url, api_key="test-key", max_retries=0, **options
        )

    def stream(self, client: Any) -> Any:
        return client.messages.create(
            model="claude-test", max_tokens=256, messages=MESSAGES, stream=True
        )

    async def astream(self, client: Any) -> Any:
        return await client.messages.create(
            model="claude-test", max_tokens=256, messages=MESSAGES, stream=True
        )

    def text(self, chunk: Any) -> str:
        if chunk.type == "content_block_delta" and chunk.delta.type == "text_delta":
            return str(chunk.delta.text)
        return ""


PROVIDERS = [OpenAIProvider(), AnthropicProvider()]
