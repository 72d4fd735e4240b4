"""Emitting on Chainlit's own sockets, from steptrace's dispatcher thread.

Socket.IO emits must run on the Chainlit server's event loop. Events are handed over with
``call_soon_threadsafe`` (FIFO) to one queue per loop, drained by one task that awaits each emit
before the next, so a session receives its events exactly in the order steptrace produced them
(a parent's create before its children, tokens before the end update). Nothing here ever runs
``cl.Step`` code, so it works for steps created in any thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import Any

from chainlit.session import WebsocketSession

logger = logging.getLogger("steptrace.chainlit")

Item = tuple[WebsocketSession, str, dict[str, Any]]


def raw_emit(session: WebsocketSession) -> Any:
    """The session's socket emit, under the ordering wrapper if there is one."""
    emit = session.emit
    return getattr(emit, "original", emit)


class LoopSender:
    """Ordered delivery of ``(session, event, data)`` on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: asyncio.Queue[Item | asyncio.Future[None]] | None = None
        self._task: asyncio.Task[None] | None = None

    def submit(self, session: WebsocketSession, event: str, data: dict[str, Any]) -> bool:
        """Queue one emit (any thread). ``False`` when the loop is gone."""
        if self.loop.is_closed():
            return False
        try:
            self.loop.call_soon_threadsafe(self._enqueue, (session, event, data))
        except RuntimeError:  # closed between the check and the call
            return False
        return True

    async def sent_so_far(self) -> None:
        """(On the loop.) Return once everything submitted before this call has been emitted.

        Submissions made from other threads before this call are already in the loop's FIFO
        of ready callbacks, so a marker queued now lands behind them.
        """
        marker: asyncio.Future[None] = self.loop.create_future()
        self.loop.call_soon(self._enqueue, marker)
        await marker

    def _enqueue(self, item: Item | asyncio.Future[None]) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._drain(self._queue), name="steptrace-chainlit")
        self._queue.put_nowait(item)

    async def _drain(self, queue: asyncio.Queue[Item | asyncio.Future[None]]) -> None:
        while True:
            item = await queue.get()
            if isinstance(item, asyncio.Future):
                if not item.done():
                    item.set_result(None)
                continue
            session, event, data = item
            try:
                sent = raw_emit(session)(event, data)  # typed None by Chainlit; a coroutine
                if inspect.isawaitable(sent):
                    await sent
            except Exception:
                logger.exception("steptrace-chainlit: could not emit %s", event)


class Senders:
    """One ``LoopSender`` per event loop (a Chainlit server has one)."""

    def __init__(self) -> None:
        self._by_loop: dict[int, LoopSender] = {}
        self._lock = threading.Lock()

    def for_loop(self, loop: asyncio.AbstractEventLoop) -> LoopSender:
        key = id(loop)
        with self._lock:
            sender = self._by_loop.get(key)
            if sender is None or sender.loop is not loop:
                sender = self._by_loop[key] = LoopSender(loop)
            return sender

    def clear(self) -> None:
        with self._lock:
            self._by_loop.clear()
