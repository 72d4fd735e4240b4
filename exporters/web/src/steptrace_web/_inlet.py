"""The hand-off from steptrace's dispatcher thread (or any thread) to the server's event loop.

A listener must never block the app: calling an :class:`Inlet` appends to a deque under a short
lock and, at most once per batch, wakes the loop with ``call_soon_threadsafe``. The loop then
applies the whole batch in order. If the loop stops draining (it never should), the deque is
capped and further events are counted as dropped rather than growing without bound.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("steptrace.web")


class Inlet:
    """A thread-safe, non-blocking ``(event, payload)`` callable feeding a consumer on a loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        consume: Callable[[list[tuple[str, Any]]], None],
        max_pending: int = 200_000,
    ):
        self._loop = loop
        self._consume = consume
        self._max_pending = max_pending
        self._pending: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self.dropped = 0
        self.closed = False

    def __call__(self, event: str, payload: Any) -> None:
        """Listener entry point: ``steptrace.add_listener(inlet)``. Never raises."""
        if self.closed:
            return
        try:
            # The payload may be shared with other listeners: keep our own shallow copy.
            item = (event, dict(payload) if isinstance(payload, dict) else payload)
            with self._lock:
                if len(self._pending) >= self._max_pending:
                    self.dropped += 1
                    if self.dropped == 1:
                        logger.warning("steptrace-web: server loop is not keeping up; dropping")
                    return
                self._pending.append(item)
                if self._scheduled:
                    return
                self._scheduled = True
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            self.closed = True  # the loop has been closed: the channel is gone
        except Exception:
            logger.exception("steptrace-web: could not hand over a %s event", event)

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        if batch:
            self._consume(batch)

    def close(self) -> None:
        self.closed = True
