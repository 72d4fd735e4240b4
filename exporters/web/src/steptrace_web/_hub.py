"""The hub: applies step events to the store and fans the visible ones out to clients.

Everything here runs on the server's event loop, one event at a time, so a client's snapshot
and the live events that follow it are consistent by construction: a snapshot is taken between
two events, and every later event goes to that client's outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._outbox import RESYNC, Outbox
from ._protocol import (
    BYE,
    DELETE,
    HELLO,
    NEW,
    SNAPSHOT,
    STREAM_START,
    STREAM_TOKEN,
    UPDATE,
    Frame,
    TokenFrame,
    dumps,
)
from ._store import StepState, StepStore
from ._visibility import Visibility

logger = logging.getLogger("steptrace.web")


class Client:
    """One connected viewer: which thread it follows and what is waiting to be sent to it."""

    __slots__ = ("outbox", "thread", "transport")

    def __init__(self, thread: str | None, outbox: Outbox, transport: str):
        self.thread = thread
        self.outbox = outbox
        self.transport = transport

    def wants(self, thread: str | None) -> bool:
        return self.thread is None or self.thread == thread


class Hub:
    """Step state plus the set of connected clients, driven from one event loop."""

    def __init__(
        self,
        *,
        visibility: str = "full",
        thread_id: str | None = None,
        max_ended_steps: int = 1000,
        max_steps: int = 10000,
        max_step_chars: int = 100_000,
        max_store_chars: int = 20_000_000,
        client_max_frames: int = 5000,
        client_max_bytes: int = 8_000_000,
        token_interval: float = 0.02,
        version: str = "",
    ):
        self.visibility = Visibility(visibility)
        self.thread_id = thread_id
        self.store = StepStore(
            max_ended=max_ended_steps,
            max_steps=max_steps,
            max_chars=max_step_chars,
            max_total_chars=max_store_chars,
        )
        self.client_max_frames = client_max_frames
        self.client_max_bytes = client_max_bytes
        self.token_interval = token_interval
        self.version = version
        self.clients: set[Client] = set()
        self.events_in = 0
        self.pumping = 0
        self.closed = False

    # -- clients ------------------------------------------------------------------------------

    def attach(self, thread: str | None, transport: str) -> Client:
        """Register a viewer; its outbox starts with ``hello`` and a snapshot of now."""
        if self.thread_id is not None:
            thread = self.thread_id
        client = Client(thread, Outbox(self.client_max_frames, self.client_max_bytes), transport)
        client.outbox.put(self.hello_frame(client))
        client.outbox.put(self.snapshot_frame(client, "join"))
        if self.closed:
            client.outbox.close()
        else:
            self.clients.add(client)
        return client

    def detach(self, client: Client) -> None:
        self.clients.discard(client)
        client.outbox.close()

    def hello_frame(self, client: Client) -> Frame:
        return Frame(
            HELLO,
            {
                "serverTime": time.time() * 1000.0,
                "visibility": self.visibility.mode,
                "thread": client.thread,
                "version": self.version,
                "transport": client.transport,
            },
        )

    def snapshot_frame(self, client: Client, reason: str) -> Frame:
        """Every step the client may see, parents first, as one frame."""
        shows = self.visibility.shows

        def include(state: StepState) -> bool:
            return client.wants(state.thread) and shows(state)

        steps = ",".join(
            state.encoded(self.visibility.visible_parent(state, self.store))
            for state in self.store.in_tree_order(include)
        )
        head = dumps({"reason": reason, "thread": client.thread})[:-1]
        return Frame.encoded(SNAPSHOT, head + ',"steps":[' + steps + "]}")

    async def pump(self, client: Client, send: Callable[[str], Awaitable[None]]) -> None:
        """Send the client's frames until its outbox is closed; ``send`` may block freely."""
        self.pumping += 1
        try:
            await self._pump(client, send)
        finally:
            self.pumping -= 1

    async def _pump(self, client: Client, send: Callable[[str], Awaitable[None]]) -> None:
        outbox = client.outbox
        while True:
            batch = await outbox.next_batch()
            if batch is None:
                return
            if batch is RESYNC:
                frames: list[Any] = [self.snapshot_frame(client, "resync")]
            else:
                frames = batch  # type: ignore[assignment]
            streamed = False
            for frame in frames:
                if outbox.resync_needed:
                    break  # the rest is stale; a snapshot comes next
                await send(frame.encode())
                streamed = streamed or frame.event == STREAM_TOKEN
            if streamed and self.token_interval > 0 and not outbox.closed:
                # Let the next tokens of a fast stream gather into one frame.
                await asyncio.sleep(self.token_interval)

    def close(self) -> None:
        """Say goodbye to every client and let their senders finish."""
        self.closed = True
        bye = Frame(BYE, {})
        for client in list(self.clients):
            client.outbox.close(bye)
        self.clients.clear()

    # -- events -------------------------------------------------------------------------------

    def ingest(self, event: str, payload: Any) -> None:
        """Apply one live event; never raises (a bad event is logged and skipped)."""
        try:
            self._ingest(event, payload)
        except Exception:
            logger.exception("steptrace-web: could not apply %s event", event)

    def ingest_many(self, events: list[tuple[str, Any]]) -> None:
        for event, payload in events:
            self.ingest(event, payload)

    def _ingest(self, event: str, payload: Any) -> None:
        if self.closed or not isinstance(payload, dict):
            return
        step_id = payload.get("id")
        if not isinstance(step_id, str) or not step_id:
            return
        self.events_in += 1
        if event == STREAM_TOKEN:
            self._token(step_id, payload)
        elif event in (NEW, UPDATE, STREAM_START):
            self._upsert(event, step_id, payload)
        elif event == DELETE:
            self._delete(step_id)

    def _token(self, step_id: str, payload: dict[str, Any]) -> None:
        token = payload.get("token")
        if not isinstance(token, str):
            return
        is_sequence = bool(payload.get("isSequence"))
        is_input = bool(payload.get("isInput"))
        state = self.store.token(step_id, token, is_sequence, is_input)
        if state is None or not self.visibility.shows(state):
            return
        self._fan_out(state.thread, TokenFrame(step_id, state.thread, token, is_sequence, is_input))

    def _upsert(self, event: str, step_id: str, payload: dict[str, Any]) -> None:
        known = self.store.get(step_id)
        if known is None and self.thread_id is not None:
            if self.store.thread_of(payload) != self.thread_id:
                return  # this channel follows one thread; others never enter it
        was_shown = self.visibility.shows(known) if known is not None else None
        state, created = self.store.upsert(payload)
        if event == STREAM_START:
            state.note_token()
        shown = self.visibility.shows(state)
        if was_shown is not None and was_shown != shown:
            # The step's type changed across the visibility line: its subtree must be
            # re-parented on the clients, which a fresh snapshot does exactly.
            self._resync_thread(state.thread)
            return
        if not shown:
            return
        out_event = NEW if created and event == UPDATE else event
        data = state.to_dict(self.visibility.visible_parent(state, self.store))
        self._fan_out(state.thread, Frame(out_event, data, step_id))

    def _delete(self, step_id: str) -> None:
        removed = self.store.delete(step_id)
        for state in self.visibility.hidden_frontier(removed):
            frame = Frame(DELETE, {"id": state.id, "threadId": state.thread}, state.id)
            self._fan_out(state.thread, frame)

    def _fan_out(self, thread: str | None, frame: Any) -> None:
        for client in self.clients:
            if client.wants(thread):
                client.outbox.put(frame)

    def _resync_thread(self, thread: str | None) -> None:
        for client in self.clients:
            if client.wants(thread):
                client.outbox.request_resync()
