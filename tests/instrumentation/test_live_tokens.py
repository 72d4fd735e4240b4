"""Tokens of an instrumented stream reach ``steptrace.add_listener`` while the caller reads.

The local server holds the rest of the answer back (a gate) after the first text token, so
the stream is provably unfinished when the listener is checked: the token cannot have been
delivered at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import steptrace
from steptrace.testing import AnthropicServer, OpenAIServer, Reply

from .helpers import PROVIDERS, Provider

pytestmark = pytest.mark.integration

PIECES = ["Streaming ", "reaches ", "the ", "chat ", "live."]
ANSWER = "".join(PIECES)
#: Stream events up to and including the first text delta.
FIRST_TOKEN = {"openai": 2, "anthropic": 4}


class Recorder:
    """A listener that remembers the llm step's events and signals its first token."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.llm_id: str | None = None
        self.first_token = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        with self.lock:
            # (the anthropic client's own span is mirrored too, as a child step)
            if event == "new_message" and payload.get("name", "").startswith("chat "):
                self.llm_id = payload["id"]
            if self.llm_id is None or payload.get("id") != self.llm_id:
                return
            self.events.append((event, dict(payload)))
            text = payload.get("token") if event == "stream_token" else payload.get("output")
            if event in ("stream_start", "stream_token") and PIECES[0] in (text or ""):
                self.first_token.set()

    def ended(self) -> bool:
        with self.lock:
            return any(e == "update_message" and p.get("end") for e, p in self.events)

    def streamed_text(self) -> str:
        text = ""
        with self.lock:
            for event, payload in self.events:
                if event == "stream_start":
                    text = payload.get("output") or ""
                elif event == "stream_token" and not payload.get("isInput"):
                    text = (
                        payload["token"] if payload.get("isSequence") else text + payload["token"]
                    )
        return text


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    steptrace.add_listener(rec)
    yield rec
    steptrace.remove_listener(rec)


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.name)
def provider(request: pytest.FixtureRequest) -> Provider:
    return request.param


def test_tokens_reach_the_listener_before_the_stream_ends(
    provider: Provider, recorder: Recorder, spans
) -> None:
    gate = threading.Event()
    cls = OpenAIServer if provider.name == "openai" else AnthropicServer
    with cls(Reply(chunks=PIECES, gate=gate, gate_after=FIRST_TOKEN[provider.name])) as srv:
        client = provider.sync_client(srv.base_url)
        try:
            stream = provider.stream(client)
            read = ""
            while not read:
                read = provider.text(next(stream))
            assert read == PIECES[0]
            # The server is holding the rest back: the caller is mid-stream.
            try:
                assert recorder.first_token.wait(timeout=30), "token not delivered live"
                assert not recorder.ended()
            finally:
                gate.set()
            read += "".join(provider.text(chunk) for chunk in stream)
        finally:
            client.close()
    assert read == ANSWER
    assert steptrace.flush()
    assert recorder.ended()
    assert recorder.streamed_text() == ANSWER
    last_event, last = recorder.events[-1]
    assert last_event == "update_message"
    assert last["output"] == ANSWER
    assert last["streaming"] is False
    assert last["status"] == "success"
    assert last["type"] == "llm"


async def test_async_tokens_reach_the_listener_before_the_stream_ends(
    recorder: Recorder, spans
) -> None:
    import asyncio

    provider = PROVIDERS[0]
    gate = threading.Event()
    with OpenAIServer(Reply(chunks=PIECES, gate=gate, gate_after=FIRST_TOKEN["openai"])) as srv:
        client = provider.async_client(srv.base_url)
        try:
            stream = await provider.astream(client)
            read = ""
            while not read:
                read = provider.text(await stream.__anext__())
            try:
                delivered = await asyncio.to_thread(recorder.first_token.wait, 30)
                assert delivered, "token not delivered live"
                assert not recorder.ended()
            finally:
                gate.set()
            read += "".join([provider.text(chunk) async for chunk in stream])
        finally:
            await client.close()
    assert read == ANSWER
    assert steptrace.flush()
    assert recorder.streamed_text() == ANSWER
