"""Keeping Chainlit's own messages and steptrace's steps in the order they happened.

The Chainlit client lists a run's children in the order their creates arrive. steptrace events
reach the socket a moment after they happen (through steptrace's dispatcher thread), so a step
that started just before ``cl.Message(...).send()`` would be listed after the message. To avoid
that, the session's emit is wrapped: before Chainlit creates a message or step
(``new_message``/``stream_start``), it waits until every steptrace event published so far has
been emitted. Other Chainlit events (tokens, updates, tasks) go straight through. The wait is
bounded; past it, Chainlit's event simply goes out first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import steptrace

logger = logging.getLogger("steptrace.chainlit")

#: Chainlit events that place something in the client's list.
CREATES = frozenset({"new_message", "stream_start"})
#: Longest a Chainlit create waits for steptrace's pending events.
CATCH_UP_TIMEOUT_S = 1.0


def wait_for_listeners(timeout: float) -> bool:
    """Block until every steptrace event published so far has been handed to the listeners
    (not ``steptrace.flush()``: that also force-flushes the span exporter, a network trip)."""
    return steptrace.flush_listeners(timeout)


class OrderedEmit:
    """A session's ``emit`` that lets steptrace's pending events out before Chainlit creates."""

    def __init__(
        self,
        original: Callable[[str, Any], Any],
        catch_up: Callable[[], Awaitable[None]],
    ) -> None:
        self.original = original
        self._catch_up = catch_up

    def __call__(self, event: str, data: Any) -> Any:
        if event not in CREATES:
            return self.original(event, data)
        return self._after_catching_up(event, data)

    async def _after_catching_up(self, event: str, data: Any) -> Any:
        try:
            await asyncio.wait_for(self._catch_up(), CATCH_UP_TIMEOUT_S * 2)
        except Exception:  # never hold up or break Chainlit's own message
            logger.debug("steptrace-chainlit: could not catch up before %s", event, exc_info=True)
        return await self.original(event, data)


async def catch_up(loop: asyncio.AbstractEventLoop, sent_so_far: Callable[[], Any]) -> None:
    """(On the loop.) Wait for the bus to deliver, then for those events to be emitted."""
    await loop.run_in_executor(None, wait_for_listeners, CATCH_UP_TIMEOUT_S)
    await sent_so_far()
