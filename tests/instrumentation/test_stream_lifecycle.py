"""Every way out of a stream ends its llm step exactly once, with the right status.

Run against both providers' real clients and local servers: exhausted, ``break`` inside
``with``/``async with``, ``close()``/``aclose()``, an error mid-stream, a dropped connection, a
read timeout, a stream cut short by the server, cancellation, and a stream dropped unread.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

from steptrace.testing import AnthropicServer, LLMServer, OpenAIServer, Reply

from .helpers import PROVIDERS, Provider, exception_events, one_llm_span, token_text

pytestmark = pytest.mark.integration

PIECES = ["one ", "two ", "three ", "four ", "five ", "six"]
ANSWER = "".join(PIECES)
#: Stream events a server sends up to and including the second text delta.
TWO_TOKENS = {"openai": 3, "anthropic": 5}


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.name)
def provider(request: pytest.FixtureRequest) -> Provider:
    return request.param


@pytest.fixture
def server(provider: Provider) -> Iterator[LLMServer]:
    cls = OpenAIServer if provider.name == "openai" else AnthropicServer
    with cls(Reply(chunks=PIECES)) as srv:
        yield srv


@pytest.fixture
def client(provider: Provider, server: LLMServer) -> Iterator[Any]:
    c = provider.sync_client(server.base_url)
    yield c
    c.close()


@pytest.fixture
async def aclient(provider: Provider, server: LLMServer) -> Any:
    c = provider.async_client(server.base_url)
    yield c
    await c.close()


def assert_truncated(span: Any, ended_by: str, text: str) -> None:
    a = span.attributes
    assert a["step.status"] == "success"
    assert span.status.status_code is StatusCode.UNSET
    assert a["step.stream.completed"] is False
    assert a["step.stream.ended_by"] == ended_by
    assert "gen_ai.response.finish_reasons" not in a
    assert a.get("output.value", "") == text
    assert token_text(span) == text


def assert_failed(span: Any, error: BaseException, text: str) -> None:
    a = span.attributes
    assert a["step.status"] == "failed"
    assert span.status.status_code is StatusCode.ERROR
    assert a["step.stream.completed"] is False
    assert a["step.stream.ended_by"] == "error"
    assert a["error.type"] == type(error).__qualname__
    [event] = exception_events(span)
    assert event["exception.type"].endswith(type(error).__qualname__)
    assert event["exception.message"] == str(error)
    # An error never wipes what was streamed before it.
    assert str(a["output.value"]).startswith(text)
    assert token_text(span) == text


def raw_error(provider: Provider, client: Any) -> BaseException:
    """What the client raises for the current script with instrumentation suppressed."""
    with suppress_instrumentation(), pytest.raises(Exception) as info:
        for _ in provider.stream(client):
            pass
    return info.value


# -- sync ------------------------------------------------------------------------------------


def test_exhausted(provider: Provider, client: Any, spans) -> None:
    text = "".join(provider.text(c) for c in provider.stream(client))
    assert text == ANSWER
    span = one_llm_span(spans)
    a = span.attributes
    assert a["step.status"] == "success"
    assert a["step.stream.completed"] is True
    assert a["step.stream.ended_by"] == "exhausted"
    assert a["gen_ai.response.finish_reasons"]
    assert a["output.value"] == ANSWER == token_text(span)


def test_break_inside_with(provider: Provider, client: Any, spans) -> None:
    with provider.stream(client) as stream:
        for chunk in stream:
            if provider.text(chunk):
                break
    assert_truncated(one_llm_span(spans), "closed", PIECES[0])


def test_enter_returns_the_proxy_not_the_raw_stream(provider: Provider, client: Any) -> None:
    stream = provider.stream(client)
    with stream as entered:
        assert entered is stream
        assert iter(entered) is stream


def test_close_after_partial_read(provider: Provider, client: Any, spans) -> None:
    stream = provider.stream(client)
    read = ""
    for chunk in stream:
        read += provider.text(chunk)
        if read == "one two ":
            break
    stream.close()
    assert_truncated(one_llm_span(spans), "closed", "one two ")


def test_close_before_reading(provider: Provider, client: Any, spans) -> None:
    stream = provider.stream(client)
    stream.close()
    span = one_llm_span(spans)
    assert_truncated(span, "closed", "")
    assert "gen_ai.response.time_to_first_chunk" not in span.attributes


def test_dropped_unread_is_ended_when_collected(provider: Provider, client: Any, spans) -> None:
    stream = provider.stream(client)
    del stream
    gc.collect()
    assert_truncated(one_llm_span(spans), "garbage_collected", "")


def test_dropped_half_read_is_ended_when_collected(provider: Provider, client: Any, spans) -> None:
    stream = provider.stream(client)
    read = ""
    while not read:
        read = provider.text(next(stream))
    del stream
    gc.collect()
    assert_truncated(one_llm_span(spans), "garbage_collected", PIECES[0])


def test_ends_once_however_many_exits(provider: Provider, client: Any, spans) -> None:
    with provider.stream(client) as stream:
        for _ in stream:
            pass
        stream.close()
        stream.close()
    del stream
    gc.collect()
    span = one_llm_span(spans)
    assert span.attributes["step.stream.ended_by"] == "exhausted"
    assert span.attributes["step.stream.completed"] is True


def test_caller_exception_inside_with_is_not_a_provider_failure(
    provider: Provider, client: Any, spans
) -> None:
    with pytest.raises(KeyError), provider.stream(client) as stream:
        for chunk in stream:
            if provider.text(chunk):
                raise KeyError("caller's own bug")
    assert_truncated(one_llm_span(spans), "closed", PIECES[0])


def test_stream_cut_short_by_the_server_is_truncated(
    provider: Provider, server: LLMServer, client: Any, spans
) -> None:
    server.script = Reply(chunks=PIECES, end_after=TWO_TOKENS[provider.name])
    text = "".join(provider.text(c) for c in provider.stream(client))
    assert text == "one two "
    assert_truncated(one_llm_span(spans), "exhausted", "one two ")


def test_error_event_mid_stream_fails_and_reraises_the_provider_error(
    provider: Provider, server: LLMServer, client: Any, spans
) -> None:
    server.script = Reply(chunks=PIECES, error_after=TWO_TOKENS[provider.name])
    expected = raw_error(provider, client)
    spans.clear()
    read = ""
    with pytest.raises(type(expected)) as info:
        for chunk in provider.stream(client):
            read += provider.text(chunk)
    assert read == "one two "
    assert str(info.value) == str(expected)
    assert_failed(one_llm_span(spans), info.value, "one two ")


def test_connection_dropped_mid_stream(
    provider: Provider, server: LLMServer, client: Any, spans
) -> None:
    server.script = Reply(chunks=PIECES, disconnect_after=TWO_TOKENS[provider.name])
    expected = raw_error(provider, client)
    spans.clear()
    with pytest.raises(type(expected)) as info:
        for _ in provider.stream(client):
            pass
    assert str(info.value) == str(expected)
    assert_failed(one_llm_span(spans), info.value, "one two ")


def test_read_timeout_mid_stream(provider: Provider, server: LLMServer, spans) -> None:
    server.script = Reply(chunks=PIECES, stall_after=TWO_TOKENS[provider.name])
    client = provider.sync_client(server.base_url, timeout=0.5)
    try:
        with pytest.raises(Exception) as info:
            for _ in provider.stream(client):
                pass
    finally:
        client.close()
    assert "timeout" in type(info.value).__name__.lower() or "Timeout" in str(info.value)
    assert_failed(one_llm_span(spans), info.value, "one two ")


# -- async -----------------------------------------------------------------------------------


async def test_async_exhausted(provider: Provider, aclient: Any, spans) -> None:
    stream = await provider.astream(aclient)
    assert stream.__aiter__() is stream
    text = "".join([provider.text(c) async for c in stream])
    assert text == ANSWER
    span = one_llm_span(spans)
    assert span.attributes["step.stream.completed"] is True
    assert span.attributes["step.stream.ended_by"] == "exhausted"
    assert token_text(span) == ANSWER


async def test_async_break_inside_async_with(provider: Provider, aclient: Any, spans) -> None:
    stream = await provider.astream(aclient)
    async with stream as entered:
        assert entered is stream
        async for chunk in entered:
            if provider.text(chunk):
                break
    assert_truncated(one_llm_span(spans), "closed", PIECES[0])


@pytest.mark.parametrize("method", ["close", "aclose"])
async def test_async_close_and_aclose(provider: Provider, aclient: Any, spans, method: str) -> None:
    stream = await provider.astream(aclient)
    read = ""
    async for chunk in stream:
        read += provider.text(chunk)
        if read:
            break
    await getattr(stream, method)()
    assert_truncated(one_llm_span(spans), "closed", PIECES[0])


async def test_async_dropped_unread(provider: Provider, aclient: Any, spans) -> None:
    stream = await provider.astream(aclient)
    del stream
    gc.collect()
    assert_truncated(one_llm_span(spans), "garbage_collected", "")


async def test_async_error_mid_stream(
    provider: Provider, server: LLMServer, aclient: Any, spans
) -> None:
    server.script = Reply(chunks=PIECES, error_after=TWO_TOKENS[provider.name])
    with pytest.raises(Exception) as info:
        async for _ in await provider.astream(aclient):
            pass
    assert_failed(one_llm_span(spans), info.value, "one two ")


async def test_async_cancelled_while_waiting_for_a_chunk(
    provider: Provider, server: LLMServer, aclient: Any, spans
) -> None:
    gate = threading.Event()
    server.script = Reply(chunks=PIECES, gate=gate, gate_after=TWO_TOKENS[provider.name])
    got_two = asyncio.Event()

    async def read() -> None:
        text = ""
        async for chunk in await provider.astream(aclient):
            text += provider.text(chunk)
            if text == "one two ":
                got_two.set()

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(got_two.wait(), timeout=30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        gate.set()
    span = one_llm_span(spans)
    assert span.attributes["step.status"] == "failed"
    assert span.attributes["step.stream.ended_by"] == "error"
    assert span.attributes["error.type"] == "CancelledError"
    assert token_text(span) == "one two "
