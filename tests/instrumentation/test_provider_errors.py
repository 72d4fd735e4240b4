"""Provider errors fail the llm step and reach the caller exactly as the client raised them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

from steptrace.testing import AnthropicServer, LLMServer, OpenAIServer, Reply

from .helpers import MESSAGES, PROVIDERS, Provider, exception_events, one_llm_span

pytestmark = pytest.mark.integration


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.name)
def provider(request: pytest.FixtureRequest) -> Provider:
    return request.param


@pytest.fixture
def server(provider: Provider) -> Iterator[LLMServer]:
    cls = OpenAIServer if provider.name == "openai" else AnthropicServer
    with cls() as srv:
        yield srv


def plain_call(provider: Provider, client: Any) -> Any:
    if provider.name == "openai":
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    return client.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)


async def async_plain_call(provider: Provider, client: Any) -> Any:
    if provider.name == "openai":
        return await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    return await client.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)


def uninstrumented_error(fn: Any) -> BaseException:
    with suppress_instrumentation(), pytest.raises(Exception) as info:
        fn()
    return info.value


def assert_failed_with(span: Any, error: BaseException, status: int | None) -> None:
    a = span.attributes
    assert span.status.status_code is StatusCode.ERROR
    assert a["step.status"] == "failed"
    assert a["error.type"] == type(error).__qualname__
    if status is None:
        assert "http.response.status_code" not in a
    else:
        assert a["http.response.status_code"] == status
    [event] = exception_events(span)
    assert event["exception.type"].endswith(type(error).__qualname__)
    assert event["exception.message"] == str(error)


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_http_errors(
    provider: Provider, server: LLMServer, spans, status: int, stream: bool
) -> None:
    # A fixed request id: Anthropic's error message quotes it.
    server.script = Reply(
        status=status, error_message=f"scripted {status}", headers={"request-id": "req_1"}
    )
    client = provider.sync_client(server.base_url)
    call = (lambda: provider.stream(client)) if stream else (lambda: plain_call(provider, client))
    try:
        expected = uninstrumented_error(call)
        spans.clear()
        with pytest.raises(type(expected)) as info:
            call()
    finally:
        client.close()
    error = info.value
    assert str(error) == str(expected)
    assert getattr(error, "status_code", None) == status
    span = one_llm_span(spans)
    assert_failed_with(span, error, status)
    if stream:
        assert span.attributes["step.stream.completed"] is False
        assert span.attributes["step.stream.ended_by"] == "error"


def test_anthropic_overloaded_529(spans) -> None:
    import anthropic

    with AnthropicServer(Reply(status=529)) as srv:
        client = anthropic.Anthropic(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.OverloadedError) as info:
            client.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)
        client.close()
    assert_failed_with(one_llm_span(spans), info.value, 529)


def test_request_timeout(provider: Provider, server: LLMServer, spans) -> None:
    server.script = Reply(hang=True)
    client = provider.sync_client(server.base_url, timeout=0.3)
    try:
        with pytest.raises(Exception) as info:
            plain_call(provider, client)
    finally:
        client.close()
    assert type(info.value).__name__ == "APITimeoutError"
    assert_failed_with(one_llm_span(spans), info.value, None)


def test_connection_refused(provider: Provider, spans) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}" + ("/v1" if provider.name == "openai" else "")
    client = provider.sync_client(base)
    try:
        with pytest.raises(Exception) as info:
            plain_call(provider, client)
    finally:
        client.close()
    assert type(info.value).__name__ == "APIConnectionError"
    assert_failed_with(one_llm_span(spans), info.value, None)


async def test_async_http_error(provider: Provider, server: LLMServer, spans) -> None:
    server.script = Reply(status=500)
    client = provider.async_client(server.base_url)
    try:
        with pytest.raises(Exception) as info:
            await async_plain_call(provider, client)
    finally:
        await client.close()
    assert type(info.value).__name__ == "InternalServerError"
    assert_failed_with(one_llm_span(spans), info.value, 500)


def test_retries_are_one_step(provider: Provider, server: LLMServer, spans) -> None:
    server.script = [Reply(status=503), Reply(status=429), Reply(text="third time lucky")]
    client = provider.sync_client(server.base_url).with_options(max_retries=2)
    try:
        plain_call(provider, client)
    finally:
        client.close()
    span = one_llm_span(spans)
    assert span.attributes["step.status"] == "success"
    assert span.attributes["output.value"] == "third time lucky"
    assert len(server.requests) == 3
